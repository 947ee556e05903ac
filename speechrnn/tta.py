"""Test-time augmentation: an utterance classifier scored under several vocal-tract warps and tempos.

A held-out speaker's vocal tract may lie outside the training voices'. Each test utterance is
scored again with its spectrum warped by a factor (the training VTLP warp, :func:`warp_vocal_tract`)
and, optionally, its tempo changed (:func:`change_tempo`), one posterior per (warp, tempo)
variant, and the variants are combined by one of ``CHOICES``:

- ``mean``: the posteriors averaged over the variants;
- ``utterance``: per utterance, the variant the model is most confident in (highest max
  posterior), as VTLN picks a warp per utterance (Lee & Rose 1998, by likelihood there);
- ``speaker``: the one variant with the highest mean confidence over all the utterances given,
  which must be one speaker's (a leave-one-speaker-out fold's test split); it reads no labels.

The warped features go through the model's own normalisation, as training's warped batches do.
A factor of 1 leaves the features untouched, so warps ``(1.0,)`` and tempos ``(1.0,)`` give the
plain posteriors bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import torch
from torch import Tensor, nn

from speechrnn.batch import Batch
from speechrnn.data.augment import change_tempo, warp_vocal_tract
from speechrnn.data.features import FeatureSettings
from speechrnn.errors import SpeechRNNError
from speechrnn.options import Range

# a warp or tempo beyond these moves formants past any voice's, or multiplies the frames (and memory)
FACTORS = Range(0.5, 2.0)


@dataclass(frozen=True)
class TTASettings:
    """The warp and tempo factors to score under; every pair of them is one variant."""

    warps: tuple[float, ...] = (1.0,)  # frequency warps (VTLP's alpha)
    tempos: tuple[float, ...] = (1.0,)  # speed-up factors (> 1: faster, fewer frames)

    def __post_init__(self) -> None:
        for option, factors in (("--tta-warps", self.warps), ("--tta-tempos", self.tempos)):
            if not factors or not all(map(FACTORS.accepts, factors)):
                raise SpeechRNNError(f"{option} {list(factors)}: every factor must be {FACTORS} "
                                     "(1.0 leaves the features as they are), e.g. 0.9 0.95 1.0 1.05 1.1")

    @property
    def variants(self) -> list[tuple[float, float]]:
        """Every ``(warp, tempo)`` pair, warps outermost."""
        return list(product(self.warps, self.tempos))


def augmented(batch: Batch, warp: float, tempo: float, features: FeatureSettings) -> Batch:
    """``batch`` with every utterance's spectrum warped by ``warp`` and its tempo changed by ``tempo``."""
    if tempo != 1:
        batch = change_tempo(batch, torch.full_like(batch.lengths, tempo, dtype=torch.float32))
    if warp != 1:
        alpha = torch.full_like(batch.lengths, warp, dtype=torch.float64)  # (B,)
        feats = warp_vocal_tract(batch.feats, alpha, features.n_mfcc, features.n_mels, features.sample_rate)
        batch = batch._replace(feats=feats)
    return batch


def variant_posteriors(model: nn.Module, batch: Batch, settings: TTASettings, features: FeatureSettings) -> Tensor:
    """``(V, B, C)``: the posteriors of ``model`` (raw features in, logits ``(B, C)`` out) for ``batch``
    under each of ``settings.variants``; ``features`` are the settings the batch was computed with."""
    probs = []
    for warp, tempo in settings.variants:
        variant = augmented(batch, warp, tempo, features)
        probs.append(model(variant.feats, variant.lengths).softmax(-1))
    return torch.stack(probs)


def pick(probs: Tensor, chosen: Tensor) -> Tensor:
    """``(V, N, C)``, a variant per utterance ``(N,)`` -> ``(N, C)``."""
    return probs[chosen, torch.arange(probs.shape[1], device=probs.device)]


def mean_of_variants(probs: Tensor) -> Tensor:
    return probs.mean(0)


def most_confident_per_utterance(probs: Tensor) -> Tensor:
    return pick(probs, probs.amax(-1).argmax(0))


def most_confident_per_speaker(probs: Tensor) -> Tensor:
    best = probs.amax(-1).mean(1).argmax()  # the variant of highest mean confidence over the N utterances
    return pick(probs, best.expand(probs.shape[1]))


CHOICES = {"mean": mean_of_variants, "utterance": most_confident_per_utterance,
           "speaker": most_confident_per_speaker}  # (V, N, C) -> (N, C)


def combine(probs: Tensor, choice: str) -> Tensor:
    """The posteriors ``(N, C)`` that ``choice`` (one of ``CHOICES``) makes of the variants' ``(V, N, C)``."""
    if choice not in CHOICES:
        raise SpeechRNNError(f"test-time augmentation choice {choice!r} is unknown; choose one of {list(CHOICES)}")
    return CHOICES[choice](probs)
