"""Pooling over frames as a weighted sum of the states: what mean pooling is, and what an encoder
can compute while it makes the states (minGRU's CPU kernel does, so that no ``(B, T, H)``
gradient of the states is ever made)."""

from __future__ import annotations

import torch
from torch import Tensor

from speechrnn.batch import padding_mask


def mean_weights(lengths: Tensor, frames: int, dtype: torch.dtype) -> Tensor:
    """``(B, T)``: ``1 / length`` on each sequence's real frames, 0 on its padding."""
    return padding_mask(lengths, frames).to(dtype) / lengths[:, None]


def weighted_sum(states: Tensor, weights: Tensor) -> Tensor:
    """``(B, T, H)`` states, ``(B, T)`` weights -> ``(B, H)``.

    One batched product ``(B, 1, T) @ (B, T, H)``: no weighted ``(B, T, H)`` copy of the states,
    forward or backward."""
    return torch.bmm(weights[:, None].to(states.dtype), states).squeeze(1)
