"""Feature normalisation: the training set's statistics, then optionally each utterance's own.

Modes (``SpeechClassifier(normalisation=...)``):

- ``global``: each feature minus the training set's mean, over its standard deviation.
- ``causal``: ``global``, then minus a running mean and over a running deviation of the frames
  read so far, as Kaldi's online CMVN does. The running statistics start from the global ones as
  a prior worth ``prior_frames`` frames and forget at the rate of a ``window_frames`` moving
  average once that many frames were read, so frame t depends on frames ``<= t`` only: the
  model trained is the model streamed.
- ``utterance_mean`` / ``utterance``: ``global``, then minus each utterance's own mean (and over
  its deviation). They read the whole utterance, so they cannot stream.

All remove a fixed channel or gain; the per-utterance forms from the first frame, the causal
one once it has heard a little.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from speechrnn.batch import padding_mask
from speechrnn.errors import SpeechRNNError
from speechrnn.models.mingru import linear_scan
from speechrnn.models.recurrence import recurrence_chunk

Normalisation = Literal["global", "causal", "utterance_mean", "utterance"]
STREAMABLE = ("global", "causal")
EPS = 1e-5  # keeps a one-frame or constant feature finite


def normalise_utterances(feats: Tensor, lengths: Tensor, variance: bool = True) -> Tensor:
    """``(B, T, F)`` -> ``(B, T, F)``: minus each utterance's mean (and over its standard deviation).

    Statistics cover frames ``[0, length)`` only, so padding never shifts them; padding stays zero.
    """
    valid = padding_mask(lengths, feats.shape[1])[..., None]  # (B, T, 1)
    count = valid.sum(1, keepdim=True).clamp_min(1)  # (B, 1, 1)
    mean = (feats * valid).sum(1, keepdim=True) / count  # (B, 1, F)
    centred = (feats - mean) * valid
    if variance:
        centred = centred / (centred.square().sum(1, keepdim=True) / count + EPS).sqrt()
    return centred


class FeatureNormaliser(nn.Module):
    """Raw features ``(B, T, F)`` -> normalised features; :meth:`step` does it chunk by chunk.

    Args:
        input_size: F.
        mode: see the module docstring.
        prior_frames, window_frames: the causal mode's prior weight and forgetting window.
    """

    def __init__(self, input_size: int, mode: Normalisation = "global", prior_frames: int = 10,
                 window_frames: int = 300) -> None:
        super().__init__()
        if not 1 <= prior_frames < window_frames:
            raise SpeechRNNError(f"model.norm_prior_frames ({prior_frames}) must be at least 1 and below "
                                 f"model.norm_window_frames ({window_frames})")
        self.mode = mode
        self.prior_frames = prior_frames
        self.window_frames = window_frames
        self.register_buffer("mean", torch.zeros(input_size))  # of the training set, written before fit
        self.register_buffer("std", torch.ones(input_size))

    def standardised(self, feats: Tensor) -> Tensor:
        """Minus the training set's mean, over its deviation: one fused pass (``x / s - m / s``)."""
        scale = 1 / self.std
        return torch.addcmul(-self.mean * scale, feats, scale)

    def forward(self, feats: Tensor, lengths: Tensor) -> Tensor:
        x = self.standardised(feats)
        if self.mode == "global":
            return x
        if self.mode == "causal":
            counts = self._counts(x.new_zeros(1, 1, 1), self._positions(x))  # (1, T, 1)
            decay = (1 - 1 / counts).expand_as(x)
            zeros, ones = x.new_zeros(x.shape[0], x.shape[2]), x.new_ones(x.shape[0], x.shape[2])
            running_mean = linear_scan(decay, x / counts, zeros)  # the prior mean is 0 ...
            running_square = linear_scan(decay, x.square() / counts, ones)  # ... and variance 1
            return self._scaled(x, running_mean, running_square) * padding_mask(lengths, x.shape[1])[..., None]
        return normalise_utterances(x, lengths, variance=self.mode == "utterance")

    # ----- streaming -----------------------------------------------------------------------------

    def initial_state(self, batch_size: int) -> tuple[Tensor, ...]:
        """Causal mode: running mean ``(B, F)``, mean square ``(B, F)``, frames counted ``(B, 1)``."""
        if self.mode != "causal":
            return ()
        size = (batch_size, len(self.mean))
        return self.mean.new_zeros(size), self.mean.new_ones(size), self.mean.new_zeros(batch_size, 1)

    def step(self, feats: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Frames ``(B, T, F)`` that follow ``state`` -> what :meth:`forward` gives them, and the next state."""
        x = self.standardised(feats)
        if self.mode != "causal":
            return x, state
        mean, square, seen = state
        positions = self._positions(x)
        counts = self._counts(seen[:, None], positions)  # (B, T, 1)
        log_decay = torch.log1p(-1 / counts).expand_as(x)
        running_mean = recurrence_chunk(log_decay, x / counts, mean)
        running_square = recurrence_chunk(log_decay, x.square() / counts, square)
        # frames read, counted only up to the window: past it every weight is the same
        seen = (seen + positions[:, -1]).clamp(max=float(self.window_frames))
        return self._scaled(x, running_mean, running_square), (running_mean[:, -1], running_square[:, -1], seen)

    @staticmethod
    def _positions(x: Tensor) -> Tensor:
        """``(1, T, 1)``: 1, 2, ..., T, from a cumulative sum so a traced graph keeps T free."""
        return torch.ones_like(x[:1, :, :1]).cumsum(1)

    def _counts(self, seen: Tensor, positions: Tensor) -> Tensor:
        """Each frame's weight denominator: the prior plus the frames read, up to the window."""
        return (seen + positions + self.prior_frames).clamp(max=float(self.window_frames))

    @staticmethod
    def _scaled(x: Tensor, running_mean: Tensor, running_square: Tensor) -> Tensor:
        variance = (running_square - running_mean.square()).clamp_min(0)
        return (x - running_mean) / (variance + EPS).sqrt()
