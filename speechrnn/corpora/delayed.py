"""The delayed-keyword task: a labelled utterance, then ``delay_s`` seconds of distractor frames.

The readout (the last frame) comes ``delay_s`` after the utterance ends, so a classifier must
carry the label's evidence across that gap: the test of long-range memory that vanilla RNNs are
known to fail (Bengio et al. 1994; Hochreiter & Schmidhuber 1997).

Each example is built from the inner module's cached features, without decoding audio::

    [ distractor | utterance ]  [ distractor ........................ ]
    <------- window_s ------->  <------------- delay_s -------------->  readout

The utterance is cut to ``window_s`` and right-aligned in that window, so its last frame lies
exactly ``delay_s`` before the readout and every example of one delay has the same length:
``window_s + delay_s``. Each utterance gets one delay from ``delays_s``, drawn deterministically
from ``seed``. Distractors are MFCC frames of white noise at ``noise_dbfs`` (a low level such as
-70 dBFS is near silence) or frames of other utterances of the same split.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import ClassVar, Literal

import torch

from speechrnn.data.cache import SplitFeatures
from speechrnn.data.corpus import SPLITS
from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.data.features import MFCC
from speechrnn.data.pipeline import data_module_class
from speechrnn.errors import SpeechRNNError

NOISE_POOL_S = 20.0  # seconds of noise per split; slices of it are drawn at random offsets


class DelayedDataModule(SpeechDataModule):
    """Wraps any keyword data module; its labels, features and cache are the inner module's.

    Args:
        inner: the utterance data module (``class_path``/``init_args`` in a config).
        delays_s: the delays (seconds) between the utterance's end and the readout.
        window_s: seconds kept of each utterance (longer ones are cut at the end).
        distractor: ``noise`` (white noise at ``noise_dbfs``) or ``utterances`` (other
            utterances of the split, back to back).
        noise_dbfs: the noise level in dB relative to full scale.
        batch_size: examples per batch.
        seed: decides each example's delay and distractor frames, and the batch order.
    """

    name: ClassVar[str] = "delayed"  # an instance says its corpus too: ``fsdd-delayed``

    def __init__(
        self,
        inner: SpeechDataModule,
        delays_s: list[float] = [0.0, 0.5, 1.0, 2.0, 4.0],  # noqa: B006 (jsonargparse reads the default)
        window_s: float = 0.8,
        distractor: Literal["noise", "utterances"] = "noise",
        noise_dbfs: float = -30.0,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        if inner.task != "keyword":
            raise SpeechRNNError(f"the delayed task needs a keyword data module; {type(inner).__name__} "
                                 f"has task {inner.task!r}")
        if not delays_s or min(delays_s) < 0:
            raise SpeechRNNError(f"delays_s must list delays of 0 s or more, got {delays_s}")
        if distractor not in ("noise", "utterances"):
            raise SpeechRNNError(f"distractor must be 'noise' or 'utterances', got {distractor!r}")
        self.inner = inner
        self.delays_s = list(delays_s)
        self.window_frames = self.frames(window_s)
        self.distractor = distractor
        self.noise_dbfs = noise_dbfs
        # the features, the corpus's location and its labels are the inner module's
        super().__init__(task=inner.task, data_root=str(inner.data_root), cache_dir=str(inner.cache_dir),
                         **asdict(inner.features), batch_size=batch_size, length_buckets=self.length_buckets,
                         seed=seed, feature_device=inner.feature_device)
        self.arguments.update(inner=inner, delays_s=delays_s, window_s=window_s, distractor=distractor,
                              noise_dbfs=noise_dbfs)
        self.save_hyperparameters(ignore=["inner"])
        self.name = self.dataset_name({"inner": {"class_path": type(inner)}})

    @classmethod
    def dataset_name(cls, init_args) -> str:
        inner = init_args["inner"]["class_path"]
        inner = inner if isinstance(inner, type) else data_module_class(inner, "the delayed task's inner module")
        return f"{inner.dataset_name(init_args['inner'].get('init_args') or {})}-{cls.name}"

    @property
    def pad_to_s(self) -> float | None:
        return self.inner.pad_to_s

    @property
    def corpus_dir(self) -> Path:
        return self.inner.corpus_dir

    def vocabulary(self) -> list[str]:
        return self.inner.labels

    def frames(self, seconds: float) -> int:
        return self.inner.features.frames_in(seconds)

    @property
    def total_frames(self) -> list[int]:
        """Example length (frames) for each delay, in the order of ``delays_s``."""
        return [self.window_frames + self.frames(d) for d in self.delays_s]

    @property
    def length_buckets(self) -> list[int]:
        """Edges at each distinct total length: one bucket per delay (the first stays empty)."""
        return sorted(set(self.total_frames))

    @length_buckets.setter
    def length_buckets(self, edges: list[int]) -> None:
        if list(edges) != self.length_buckets:
            raise SpeechRNNError(f"the delayed task's length buckets follow its delays ({self.length_buckets} "
                                 f"frames); got {list(edges)}: change delays_s instead")

    def scoring_map(self) -> dict[str, str] | None:
        return self.inner.scoring_map()

    def prepare_data(self) -> None:
        self.inner.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.inner.setup(stage)
        for index, split in enumerate(SPLITS):
            generator = torch.Generator().manual_seed(self.seed * len(SPLITS) + index)
            source = self.inner.splits[split]
            self.splits[split] = self.delayed(source, self.distractor_pool(source, generator), generator)
        self._fit_normalisation()  # over the delayed training frames, distractors included

    def distractor_pool(self, source: SplitFeatures, generator: torch.Generator) -> torch.Tensor:
        """Frames ``(P, F)`` that distractor stretches are cut from."""
        if self.distractor == "utterances":
            order = torch.randperm(len(source), generator=generator).tolist()
            return torch.cat([source.feats[source.offsets[i] : source.offsets[i + 1]] for i in order])
        sample_rate = self.features.sample_rate
        samples = int((NOISE_POOL_S + max(self.delays_s) + 1) * sample_rate)
        noise = torch.randn(1, samples, generator=generator) * 10 ** (self.noise_dbfs / 20)
        with torch.inference_mode():
            return MFCC(self.features)(noise, torch.tensor([samples]))[0].clone()

    def delayed(self, source: SplitFeatures, pool: torch.Tensor, generator: torch.Generator) -> SplitFeatures:
        """One delayed example per utterance of ``source``, as a split the shared batching reads."""
        count = len(source)
        totals = torch.tensor(self.total_frames)
        totals = totals[torch.randperm(count, generator=generator) % len(totals)]  # (N,) frames
        kept = source.lengths.clamp(max=self.window_frames)  # (N,) utterance frames kept
        gaps = totals - kept  # distractor frames per example: lead-in plus delay
        if int(gaps.max()) >= len(pool):
            raise SpeechRNNError(f"the distractor pool has {len(pool)} frames, fewer than the {int(gaps.max())} "
                                 "a delay needs; use shorter delays or a larger split")
        starts = (torch.rand(count, generator=generator) * (len(pool) - gaps)).long()  # (N,) in the pool
        rows = []  # per example, row indices into cat(source.feats, pool)
        for i in range(count):
            lead = self.window_frames - int(kept[i])
            noise = len(source.feats) + starts[i] + torch.arange(int(gaps[i]))
            speech = source.offsets[i] + torch.arange(int(kept[i]))
            rows.append(torch.cat([noise[:lead], speech, noise[lead:]]))
        feats = torch.cat([source.feats, pool])[torch.cat(rows)]  # (sum totals, F)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), totals.cumsum(0)])
        # speech_lengths is the key of accuracy against length; here that is the whole example
        return SplitFeatures(feats, offsets, source.targets.clone(), totals.clone(), list(source.keys))
