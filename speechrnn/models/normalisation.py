"""Per-utterance feature normalisation: each sequence scaled by statistics of its own real frames."""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-5  # keeps a one-frame or constant feature finite


def normalise_utterances(feats: Tensor, lengths: Tensor, variance: bool = True) -> Tensor:
    """``(B, T, F)`` -> ``(B, T, F)``: minus each utterance's mean (and over its standard deviation).

    Statistics cover frames ``[0, length)`` only, so padding never shifts them; padding stays zero.
    """
    valid = (torch.arange(feats.shape[1], device=feats.device)[None, :] < lengths[:, None])[..., None]
    count = valid.sum(1, keepdim=True).clamp_min(1)  # (B, 1, 1)
    mean = (feats * valid).sum(1, keepdim=True) / count  # (B, 1, F)
    centred = (feats - mean) * valid
    if variance:
        centred = centred / (centred.square().sum(1, keepdim=True) / count + EPS).sqrt()
    return centred
