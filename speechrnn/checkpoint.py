"""Reading back a checkpoint that ``speechrnn fit`` wrote: the model, its vocabulary, its data pipeline.

A checkpoint describes itself: ``hyper_parameters`` hold the model's arguments (``labels``,
``task`` and ``length_buckets`` linked from the data), the data module's entry (its
``state_dict``, which Lightning saves under the class's name) the ``speechrnn_pipeline``
description (:class:`~speechrnn.data.pipeline.DataPipeline`: its class and arguments, the feature
settings, the clip padding; a wrapped module nested inside), the state dict the normalisation
statistics (``normaliser.mean``, ``normaliser.std``) beside the weights, so the model takes raw
MFCCs; and, once ``speechrnn tune`` (or ``make streaming``) has tuned it, the detector's operating point
(``speechrnn_operating_point``). It is read with ``torch.load(weights_only=True)``: tensors and
plain values, never code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from speechrnn.data.datamodule import PIPELINE_KEY
from speechrnn.data.features import FeatureSettings
from speechrnn.data.pipeline import DataPipeline
from speechrnn.errors import SpeechRNNError
from speechrnn.files import atomic_write
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.operating_point import OperatingPoint

FIX = "pass a .ckpt file that `speechrnn fit` wrote (<run_dir>/checkpoints/best.ckpt)"
OPERATING_POINT_KEY = "speechrnn_operating_point"  # the tuned detector settings, once tuned
MODEL_KEYS = ("labels", "input_size", "task", "cell")


@dataclass
class Checkpoint:
    """What a checkpoint holds, checked; build the model with :meth:`model`."""

    path: Path
    model_args: dict  # SpeechClassifier's arguments
    pipeline: DataPipeline  # the data module of training, and the features it computed
    state_dict: dict
    operating_point: OperatingPoint | None  # the detector settings tuned for it, if any

    @property
    def labels(self) -> list[str]:
        return list(self.model_args["labels"])

    @property
    def task(self) -> str:
        return self.model_args["task"]

    @property
    def features(self) -> FeatureSettings:
        return self.pipeline.features

    def model(self, length_buckets: list[int] | None = None) -> SpeechClassifier:
        """The trained model in eval mode; ``length_buckets`` replaces the bucket edges of its metrics."""
        args = dict(self.model_args)
        if length_buckets is not None:
            args["length_buckets"] = list(length_buckets)
        try:
            model = SpeechClassifier(**args)
            model.load_state_dict(self.state_dict)
        except (RuntimeError, TypeError) as err:
            reason = str(err).splitlines()[0]
            raise SpeechRNNError(
                f"{self.path} does not fit the model its own hyper-parameters describe ({reason}); {FIX}"
            ) from err
        broken = [name for name, value in self.state_dict.items()
                  if value.is_floating_point() and not bool(value.isfinite().all())]
        if broken:
            raise SpeechRNNError(f"checkpoint {self.path} holds non-finite values in {broken[:3]}; it cannot "
                                 "give a meaningful result: retrain it (lower model.lr, keep gradient clipping)")
        return model.eval()


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check ``path``; raise SpeechRNNError naming the file when it is not ours."""
    path = Path(path)
    if not path.is_file():
        raise SpeechRNNError(f"checkpoint {path} not found; {FIX}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        # torch's own message may suggest weights_only=False: never pass on that advice
        raise SpeechRNNError(f"cannot read checkpoint {path} ({type(err).__name__}: it is not a checkpoint "
                             f"file, or it holds more than tensors and plain values); {FIX}") from err
    if not isinstance(raw, dict) or "state_dict" not in raw or not isinstance(raw.get("hyper_parameters"), dict):
        raise SpeechRNNError(f"{path} is not a speechrnn checkpoint (it lacks state_dict or hyper_parameters); {FIX}")
    missing = [f"hyper_parameters.{key}" for key in MODEL_KEYS if key not in raw["hyper_parameters"]]
    if missing:
        raise SpeechRNNError(f"{path} is not a speechrnn checkpoint (it lacks {', '.join(missing)}); {FIX}")
    described = pipeline_entries(raw)
    if len(described) != 1:
        raise SpeechRNNError(
            f"{path} was written by an older speechrnn and does not describe its data pipeline in its data "
            f"module's entry ({PIPELINE_KEY}); retrain it with this version "
            "(`speechrnn fit --config <run_dir>/config.yaml`)"
        )
    model_args = {k: v for k, v in raw["hyper_parameters"].items() if not k.startswith("_")}
    pipeline = DataPipeline.from_dict(described[0], f"checkpoint {path}")
    point = raw.get(OPERATING_POINT_KEY)
    try:
        point = None if point is None else OperatingPoint(**point)
    except (TypeError, SpeechRNNError) as err:
        raise SpeechRNNError(f"{path} holds a malformed operating point ({err}); tune it again "
                             "(speechrnn tune) or remove it") from err
    return Checkpoint(path, model_args, pipeline, raw["state_dict"], point)


def pipeline_entries(raw: dict) -> list[dict]:
    """The data-pipeline descriptions in a loaded checkpoint: its data module's ``state_dict`` holds one.

    Lightning keys that entry by the data module's class name, which the checkpoint does not
    otherwise record, so it is found by what it holds.
    """
    return [value[PIPELINE_KEY] for key, value in raw.items()
            if key != "state_dict" and isinstance(value, dict) and PIPELINE_KEY in value]


def store_operating_point(path: str | Path, point: OperatingPoint) -> None:
    """Write ``point`` into the checkpoint at ``path`` (atomically), so ``speechrnn stream`` uses it."""
    raw = torch.load(path, map_location="cpu", weights_only=True)
    raw[OPERATING_POINT_KEY] = point.to_json()
    with atomic_write(path) as tmp:
        torch.save(raw, tmp)
