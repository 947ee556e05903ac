"""The data module every corpus shares: download, feature cache, normalisation, bucketed batches.

A corpus module subclasses :class:`SpeechDataModule` and implements three hooks:

- ``vocabulary()``: the label list for ``self.task``, known without touching the data (so the
  model's class count can be linked from it when the CLI instantiates both);
- ``download()``: make ``self.corpus_dir`` hold the corpus (called once, from ``prepare_data``);
  raise :class:`~speechrnn.errors.SpeechRNNError` naming the URL and the fix when it cannot;
- ``utterances()``: every usable recording as a sorted list of :class:`Utterance` with its split.

Everything after that (decoding, resampling, MFCC, the cache, normalisation, batching) is shared.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path
from typing import ClassVar

import lightning as L
import torch
from torch.utils.data import DataLoader

from speechrnn.batch import Batch
from speechrnn.data.augment import Augmentation, AugmentSettings
from speechrnn.data.batching import LengthBucketSampler, PaddedBatches
from speechrnn.data.cache import FeatureCache, SplitFeatures, cache_key
from speechrnn.data.corpus import Utterance
from speechrnn.data.features import FeatureSettings
from speechrnn.errors import SpeechRNNError
from speechrnn.metrics import DEFAULT_LENGTH_BUCKETS

TASKS = ("keyword", "phones")
FEATURE_DEVICES = ("auto", "cpu", "cuda")
GPU_CACHE_SHARE = 0.5  # of the free GPU memory the feature arrays may take under ``auto``
PIPELINE_KEY = "speechrnn_pipeline"  # the entry of ``state_dict`` that describes the data pipeline


def default_data_root() -> Path:
    return Path(os.environ.get("SPEECHRNN_DATA_ROOT", "data"))


def default_cache_dir() -> Path:
    return Path(os.environ.get("SPEECHRNN_CACHE_DIR", ".cache/speechrnn"))


def accepts(cls: type, name: str) -> bool:
    """Whether ``cls(name=...)`` is a valid call: a named parameter, or ``**kwargs`` to the base."""
    parameters = inspect.signature(cls.__init__).parameters
    if name in parameters:
        return True
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return accepts(cls.__mro__[1], name)
    return False


def adopted_labels(own: list[str], labels: list[str], datamodule: SpeechDataModule) -> list[str]:
    """``labels``, once every label of the corpus (``own``) is found among them."""
    unknown = [label for label in own if label not in labels]
    if unknown:
        source = getattr(datamodule, "path", datamodule.corpus_dir)
        raise SpeechRNNError(
            f"{source} has labels {unknown} that the vocabulary it was given (a model's) does not know; it "
            f"knows {list(labels)}: rename or remove those, or score a model trained on them"
        )
    return list(labels)


def check_batching(batch_size: int, length_buckets: list[int]) -> None:
    """Refuse a batch size below 1 and bucket edges that do not rise."""
    if batch_size < 1:
        raise SpeechRNNError(f"batch_size is {batch_size}; it must be at least 1")
    if any(edge < 1 for edge in length_buckets) or any(lo >= hi for lo, hi in pairwise(length_buckets)):
        raise SpeechRNNError(f"length_buckets {list(length_buckets)} must be frame counts of at least 1 "
                             "in increasing order, e.g. [50, 100, 150]")


class SpeechDataModule(L.LightningDataModule):
    """Shared machinery; see the module docstring for the three hooks a corpus implements.

    Args:
        task: ``keyword`` (one label per utterance) or ``phones`` (one label per frame).
        data_root: holds each dataset in ``data_root/<name>/``; default ``$SPEECHRNN_DATA_ROOT``
            or ``data/``. May be read-only.
        cache_dir: where feature caches go; default ``$SPEECHRNN_CACHE_DIR`` or ``.cache/speechrnn``.
        sample_rate: audio is resampled to this rate (Hz) before feature extraction.
        n_mfcc, n_mels, win_ms, hop_ms, deltas: MFCC settings (see ``FeatureSettings``).
        batch_size: utterances per batch.
        length_buckets: bucket edges in frames for accuracy against sequence length.
        seed: seeds the per-epoch batch order and the augmentation.
        time_masks, time_mask_frames: SpecAugment time masks per training utterance, and the widest.
        coeff_masks, coeff_mask_width: masks over cepstral coefficients, and the widest.
        tempo_factors: tempo changes drawn per training utterance (e.g. ``[0.9, 1.0, 1.1]``).
        gain_db: the largest gain (dB) either way applied to a training utterance.
        vtlp: the largest vocal-tract warp of the frequency axis either way (0.1: factors 0.9-1.1).
            All five act on training batches on the device; see :mod:`speechrnn.data.augment`.
        feature_device: where the feature arrays live during training. ``cuda``: on the training
            GPU, so batches are gathered there; ``cpu``: in RAM, batches pinned for the copy;
            ``auto``: on the GPU when the trainer uses one and the arrays fit in a share of its
            free memory (GPU_CACHE_SHARE), otherwise in RAM.
        target_labels: the labels to number the targets by (a trained model's, to score it); the
            corpus's labels must be among them. Default: the corpus's own (``vocabulary()``).
    """

    name: ClassVar[str]  # the folder under data_root, and the cache's prefix
    tasks: ClassVar[tuple[str, ...]] = ("keyword",)
    pad_to_s: ClassVar[float | None] = None  # shorter recordings are zero-padded to this (seconds)
    augmentation: Augmentation | None = None  # modules that wrap another (delayed) augment nothing

    def __init__(
        self,
        task: str = "keyword",
        data_root: str | None = None,
        cache_dir: str | None = None,
        sample_rate: int = FeatureSettings.sample_rate,
        n_mfcc: int = FeatureSettings.n_mfcc,
        n_mels: int = FeatureSettings.n_mels,
        win_ms: float = FeatureSettings.win_ms,
        hop_ms: float = FeatureSettings.hop_ms,
        deltas: bool = FeatureSettings.deltas,
        floor_db: float | None = FeatureSettings.floor_db,
        batch_size: int = 64,
        length_buckets: list[int] = DEFAULT_LENGTH_BUCKETS,  # jsonargparse reads the default
        seed: int = 0,
        feature_device: str = "auto",
        time_masks: int = 0,
        time_mask_frames: int = 10,
        coeff_masks: int = 0,
        coeff_mask_width: int = 8,
        tempo_factors: list[float] = [],  # noqa: B006
        gain_db: float = 0.0,
        vtlp: float = 0.0,
        target_labels: list[str] | None = None,
    ) -> None:
        # Our own record of the constructor arguments, for ``description``: Lightning's hparams are
        # replaced by LightningCLI's config for every data module it builds, a wrapped one included.
        # These are this class's; a subclass adds those it does not pass on to it.
        self.arguments: dict = {name: value for name, value in locals().items() if name not in ("self", "__class__")}
        super().__init__()
        if task not in self.tasks:
            raise SpeechRNNError(
                f"{type(self).__name__} has no task {task!r}; choose one of {list(self.tasks)}"
            )
        self.save_hyperparameters()
        self.task = task
        self.data_root = Path(data_root) if data_root else default_data_root()
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.features = FeatureSettings(sample_rate, n_mfcc, n_mels, win_ms, hop_ms, deltas, floor_db)
        check_batching(batch_size, length_buckets)
        self.batch_size = batch_size
        self.length_buckets = list(length_buckets)
        self.seed = seed
        if feature_device not in FEATURE_DEVICES:
            raise SpeechRNNError(
                f"feature_device {feature_device!r} is unknown; choose one of {list(FEATURE_DEVICES)}"
            )
        self.feature_device = feature_device
        self.augmentation = Augmentation(AugmentSettings(
            time_masks, time_mask_frames, coeff_masks, coeff_mask_width, tuple(tempo_factors), gain_db,
            vtlp, seed, n_mfcc, n_mels, sample_rate))
        self.labels = (self.vocabulary() if target_labels is None
                       else adopted_labels(self.vocabulary(), target_labels, self))
        self.splits: dict[str, SplitFeatures] = {}

    # ----- hooks for corpus modules -----------------------------------------------------------

    def vocabulary(self) -> list[str]:
        raise NotImplementedError

    def download(self) -> None:
        raise NotImplementedError

    def utterances(self) -> list[Utterance]:
        raise NotImplementedError

    def scoring_map(self) -> dict[str, str] | None:
        """Labels folded together for scoring (TIMIT's 61 to 39 phones); None when not used."""
        return None

    def augment(self, batch: Batch) -> Batch:
        """Training-only augmentation of a raw batch already on the device (data-module arguments)."""
        if self.augmentation is None:
            return batch
        return self.augmentation(batch, fill=self.mean)

    # ----- shared machinery -------------------------------------------------------------------

    @classmethod
    def dataset_name(cls, init_args) -> str:
        """The dataset's name before the module exists (W&B groups runs by it); see ``name``."""
        return cls.name

    def description(self) -> dict:
        """``{"class_path", "init_args"}`` that builds this module again; a wrapped module is described
        alike, nested (``speechrnn.data.pipeline.build_data_module`` reads it)."""
        cls = type(self)
        init_args = {}
        for name, value in self.arguments.items():
            if accepts(cls, name):  # base-class arguments this class fixes itself are left out
                init_args[name] = value.description() if isinstance(value, SpeechDataModule) else value
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": init_args}

    def state_dict(self) -> dict:
        """What every checkpoint carries of the data: this module's description, the feature settings
        its frames were computed with and the padding its corpus gives short clips.

        Lightning saves it under the class's name (``checkpoint["FSDDDataModule"]``); ``evaluate``,
        ``predict`` and the other tools rebuild the exact pipeline from it
        (:func:`speechrnn.checkpoint.load_checkpoint`). On a resumed fit there is nothing to restore:
        the description follows from the arguments, so ``load_state_dict`` stays Lightning's no-op.
        """
        return {PIPELINE_KEY: {"data": self.description(), "features": asdict(self.features),
                               "pad_to_s": self.pad_to_s}}

    def check_corpus_present(self) -> None:
        """Refuse a missing corpus folder, where scoring a copy that is not there would download one."""
        if not self.corpus_dir.is_dir():
            raise SpeechRNNError(
                f"{self.corpus_dir.parent} holds no {self.corpus_dir.name}/ folder; point data_root (--data-root) "
                f"at the folder that holds {self.corpus_dir.name}/ (`speechrnn fit` on this dataset downloads it there)"
            )

    @property
    def corpus_dir(self) -> Path:
        return self.data_root / self.name

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def feature_dim(self) -> int:
        return self.features.feature_dim

    @property
    def framewise(self) -> bool:
        return self.task == "phones"

    def _locate_cache(self) -> tuple[FeatureCache, list[Utterance], str]:
        """The cache folder for the current corpus listing and settings, that listing, and its key."""
        utterances = self.utterances()
        key = cache_key(utterances, self.features, self.task, self.labels)
        return FeatureCache(self.cache_dir / f"{self.name}-{self.task}-{key}"), utterances, key

    def feature_cache(self) -> FeatureCache:
        return self._locate_cache()[0]

    def prepare_data(self) -> None:
        """Download (or generate) the corpus and build its feature cache; once per node."""
        self.download()
        cache, utterances, key = self._locate_cache()
        if not cache.is_complete():
            cache.build(utterances, self.features, self.task, self.labels, self.name, key)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        cache = self.feature_cache()
        if not cache.is_complete():
            raise SpeechRNNError(
                f"the feature cache {cache.directory} is missing or incomplete; run prepare_data() "
                "first (the Trainer does), or delete the folder to rebuild it"
            )
        self.cache = cache
        self.splits = {split: cache.load(split) for split in ("train", "validation", "test")}
        self._fit_normalisation()
        device = self._feature_placement()
        self.splits = {name: split.to(device) for name, split in self.splits.items()}

    def _fit_normalisation(self) -> None:
        """Mean and std of the training frames (NaN with none: a folder scored with ``use_all_for``)."""
        train = self.splits["train"].feats  # (N_frames, F)
        self.mean, self.std = train.mean(0), train.std(0).clamp_min(1e-5)  # (F,) each
        # NaN here would make every normalised input, and so the whole run, NaN without an error
        if len(train) and not (self.mean.isfinite().all() and self.std.isfinite().all()):
            raise SpeechRNNError(
                f"the feature statistics of {self.name}'s {len(train)} training frames are not finite: "
                "some features are NaN or infinite; delete this dataset's folder under the cache_dir "
                "to rebuild its features, and replace audio files that hold NaN or infinite samples"
            )

    def feature_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-dimension mean and standard deviation over the training frames, ``(F,)`` each.

        The model keeps them as buffers and normalises its raw input, so a checkpoint carries them.
        """
        return self.mean, self.std

    def _training_device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def _feature_placement(self) -> torch.device:
        """The device for the feature arrays under ``feature_device`` (see the class docstring)."""
        device = self._training_device()
        if self.feature_device == "cuda" and device.type != "cuda":
            raise SpeechRNNError(
                f"feature_device: cuda needs a GPU trainer, but this one runs on {device}; use "
                "trainer.accelerator: gpu, or feature_device: auto or cpu"
            )
        if self.feature_device == "cpu" or device.type != "cuda":
            return torch.device("cpu")
        if self.feature_device == "auto":
            size = sum(split.nbytes for split in self.splits.values())
            if size > GPU_CACHE_SHARE * torch.cuda.mem_get_info(device)[0]:
                return torch.device("cpu")
        return device

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if not len(self.splits[split]):
            # an empty loader would fail inside Lightning with an indexing error, or score nothing
            raise SpeechRNNError(
                f"{self.name}'s {split} split is empty under these arguments {self.arguments}; every "
                f"{split} utterance was moved elsewhere (held-out speakers?) or none was found"
            )
        trainer = self.trainer
        sampler = LengthBucketSampler(
            self.splits[split].lengths,
            self.batch_size,
            shuffle=shuffle,
            seed=self.seed,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
        )
        batches = PaddedBatches(self.splits[split], self.framewise)
        # batches gathered in RAM for a GPU are pinned, so the copy to the GPU runs asynchronously
        pin = batches.device.type == "cpu" and self._training_device().type == "cuda"
        return DataLoader(batches, sampler=sampler, batch_size=None, pin_memory=pin)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        if self.trainer is not None and self.trainer.training:
            return self.augment(batch)
        return batch
