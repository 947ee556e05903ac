"""The batch the data modules yield and the models consume: the one type both sides share."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

IGNORE_INDEX = -100  # framewise targets on padding; cross-entropy and metrics skip it


class Batch(NamedTuple):
    feats: Tensor  # (B, T, F), zeros past each length
    lengths: Tensor  # (B,) frames
    targets: Tensor  # (B,) class ids, or (B, T) framewise with IGNORE_INDEX on padding
    speech_lengths: Tensor  # (B,) frames of real audio; the key of accuracy against length
    indices: Tensor  # (B,) positions in the split


def padding_mask(lengths: Tensor, max_len: int) -> Tensor:
    """``(B, T)``: True on each sequence's real frames, False on its padding."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]
