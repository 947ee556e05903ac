"""Softmax heads: one label per utterance (pooled) or one per frame."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from speechrnn.batch import padding_mask
from speechrnn.models.pooling import mean_weights

POOLINGS = ("last", "mean", "attention")


class UtteranceHead(nn.Module):
    """The encoder's output -> logits ``(B, C)``.

    ``last`` reads the state at each sequence's own last frame (for a bidirectional encoder the
    backward half has read the whole sequence there too); ``mean`` averages real frames, a
    weighted sum that the encoder takes (:meth:`frame_weights`); ``attention`` is a learned
    softmax weighting over real frames.
    """

    def __init__(self, hidden_size: int, num_classes: int, pooling: str = "last") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.score = nn.Linear(hidden_size, 1) if pooling == "attention" else None
        self.out = nn.Linear(hidden_size, num_classes)

    def frame_weights(self, lengths: Tensor, frames: int, dtype: torch.dtype) -> Tensor | None:
        """``(B, T)`` weights for the encoder to sum its states with (mean pooling), else None."""
        return mean_weights(lengths, frames, dtype) if self.pooling == "mean" else None

    def forward(self, encoded: Tensor, lengths: Tensor) -> Tensor:
        """``encoded``: states ``(B, T, H)``, or for ``mean`` their sum with :meth:`frame_weights` ``(B, H)``."""
        if self.pooling == "mean":
            pooled = encoded
        elif self.pooling == "last":
            pooled = encoded[torch.arange(len(encoded), device=encoded.device), lengths - 1]  # (B, H)
        else:
            mask = padding_mask(lengths, encoded.shape[1])  # (B, T)
            scores = self.score(encoded).squeeze(-1).masked_fill(~mask, float("-inf"))  # (B, T)
            pooled = (scores.softmax(1)[..., None] * encoded).sum(1)
        return self.out(pooled)

    def per_frame(self, states: Tensor) -> Tensor:
        """``(B, T, H)`` -> ``(B, T, C)``: with ``last`` pooling, frame t's logits are the answer for
        the utterance ending at t. Other poolings read every frame, so they have no such answer."""
        if self.pooling != "last":
            raise ValueError(f"pooling {self.pooling!r} has no answer per frame; only 'last' does")
        return self.out(states)


class FrameHead(nn.Module):
    """Hidden states ``(B, T, H)`` -> logits ``(B, T, C)``; padding frames are ignored by the loss."""

    def __init__(self, hidden_size: int, num_classes: int) -> None:
        super().__init__()
        self.out = nn.Linear(hidden_size, num_classes)

    def frame_weights(self, lengths: Tensor, frames: int, dtype: torch.dtype) -> None:
        """None: every frame is read, so the encoder returns its states."""

    def forward(self, states: Tensor, lengths: Tensor) -> Tensor:
        return self.out(states)

    def per_frame(self, states: Tensor) -> Tensor:
        return self.out(states)
