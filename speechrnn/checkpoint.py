"""Reading back a checkpoint that ``speechrnn fit`` wrote: the model, its vocabulary, its data.

A checkpoint describes itself: ``hyper_parameters`` hold the model's arguments (``labels``,
``task`` and ``length_buckets`` linked from the data), ``datamodule_hyper_parameters`` the data
module's ``_class_path`` and arguments (the feature settings among them), and the state dict the
normalisation statistics (``feat_mean``, ``feat_std``) beside the weights; so the model takes raw
MFCCs. It is read with ``torch.load(weights_only=True)``: tensors and plain values, never code.
"""

from __future__ import annotations

import importlib
import pickle
import sys
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.data.features import FeatureSettings
from speechrnn.errors import SpeechRNNError
from speechrnn.models.classifier import SpeechClassifier

FIX = "pass a .ckpt file that `speechrnn fit` wrote (<run_dir>/checkpoints/best.ckpt)"
REQUIRED = {"hyper_parameters": ("labels", "input_size", "task", "cell"),
            "datamodule_hyper_parameters": ("_class_path",)}


@dataclass
class Checkpoint:
    """What a checkpoint holds, checked; build the model with :meth:`model`."""

    path: Path
    model_args: dict  # SpeechClassifier's arguments
    data_class_path: str  # the SpeechDataModule subclass it was trained on
    data_args: dict  # that class's arguments
    state_dict: dict

    @property
    def labels(self) -> list[str]:
        return list(self.model_args["labels"])

    @property
    def task(self) -> str:
        return self.model_args["task"]

    @property
    def features(self) -> FeatureSettings:
        """The feature settings of training; arguments the data module left out keep their default."""
        return FeatureSettings(**{f.name: self.data_args[f.name] for f in fields(FeatureSettings)
                                  if f.name in self.data_args})

    def model(self, length_buckets: list[int] | None = None) -> SpeechClassifier:
        """The trained model in eval mode; ``length_buckets`` replaces the bucket edges of its metrics."""
        args = dict(self.model_args)
        if length_buckets is not None:
            args["length_buckets"] = list(length_buckets)
        model = SpeechClassifier(**args)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as err:
            reason = str(err).splitlines()[0]
            raise SpeechRNNError(
                f"{self.path} does not fit the model its own hyper-parameters describe ({reason}); {FIX}"
            ) from err
        return model.eval()

    def data_class(self) -> type[SpeechDataModule]:
        return data_module_class(self.data_class_path, f"checkpoint {self.path}")


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check ``path``; raise SpeechRNNError naming the file when it is not ours."""
    path = Path(path)
    if not path.is_file():
        raise SpeechRNNError(f"checkpoint {path} not found; {FIX}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SpeechRNNError(f"cannot read checkpoint {path} ({reason}); {FIX}") from err
    missing = [f"{section}.{key}" for section, keys in REQUIRED.items() for key in keys
               if not isinstance(raw, dict) or key not in (raw.get(section) or {})]
    if missing or "state_dict" not in raw:
        missing = missing or ["state_dict"]
        raise SpeechRNNError(f"{path} is not a speechrnn checkpoint (it lacks {', '.join(missing)}); {FIX}")
    model_args = {k: v for k, v in raw["hyper_parameters"].items() if not k.startswith("_")}
    data_args = dict(raw["datamodule_hyper_parameters"])
    class_path = data_args.pop("_class_path")
    data_args = {k: v for k, v in data_args.items() if not k.startswith("_")}
    return Checkpoint(path, model_args, class_path, data_args, raw["state_dict"])


def data_module_class(class_path: str, source: str) -> type[SpeechDataModule]:
    """The data module class ``class_path`` names.

    Only modules of this package are imported; any other class must already be imported (as
    Lightning does for the classes a checkpoint names), so reading a file never runs new code.
    """
    module_name, _, name = class_path.rpartition(".")
    if module_name.split(".")[0] == "speechrnn":
        try:
            importlib.import_module(module_name)
        except ImportError as err:
            raise SpeechRNNError(f"{source} names {class_path}, which this speechrnn lacks: {err}") from err
    found = getattr(sys.modules.get(module_name), name, None)
    if not (isinstance(found, type) and issubclass(found, SpeechDataModule)):
        raise SpeechRNNError(
            f"{source} names the data module {class_path}, which is not part of speechrnn; "
            "pass --dataset with a configs/data name (or `folder` and --data-root)"
        )
    return found
