"""A linear recurrence over one chunk of frames in closed form: what streaming and export run.

``h_t = a_t * h_{t-1} + b_t`` (minGRU, minLSTM, the causal normalisation's running statistics)
has the solution ``h_t = A_t h_0 + sum_{s <= t} (A_t / A_s) b_s`` with ``A_t = a_1 ... a_t``.
Written with a cumulative sum of ``log a`` and a ``(T, T)`` causal mask it is a handful of
tensor ops with no loop, so a traced ONNX or TorchScript graph keeps the chunk length free. It
costs ``O(T^2)`` per chunk: meant for stream chunks (:data:`MAX_CHUNK_FRAMES` at most per call);
training runs the scan of :mod:`speechrnn.models.mingru`, which is linear in T.
"""

from __future__ import annotations

import torch
from torch import Tensor

MAX_CHUNK_FRAMES = 128  # frames per call the streaming runner feeds: (T, T) weights stay small


def recurrence_chunk(log_decay: Tensor, drive: Tensor, h0: Tensor) -> Tensor:
    """All states ``(B, T, H)`` of ``h_t = exp(log_decay_t) * h_{t-1} + drive_t`` from ``h0`` ``(B, H)``.

    Exponents are differences of a float64 cumulative sum, so a long chunk of strong decays loses
    no precision where the weights are near 1; every weight is ``exp(<= 0)``, so none overflows.
    """
    cumulative = log_decay.double().cumsum(1)  # (B, T, H): log A_t
    position = torch.ones_like(cumulative[0, :, 0]).cumsum(0)  # (T,): 1..T, T free in a traced graph
    causal = position[:, None] >= position[None, :]  # (T, T): s <= t
    exponents = cumulative[:, :, None] - cumulative[:, None, :]  # (B, T, T, H): log A_t - log A_s
    weights = torch.where(causal[None, :, :, None], exponents, torch.full_like(exponents, -torch.inf)).exp()
    states = (weights * drive.double()[:, None]).sum(2) + cumulative.exp() * h0.double()[:, None]
    return states.to(drive.dtype)
