"""The linear recurrence of :mod:`~speechrnn.models.mingru` as one Triton kernel for CUDA tensors.

The chunked torch scan costs about ``2 sqrt(T)`` kernel launches, each a pass over a
``(B, T, H)`` tensor; here one launch reads each decay and drive once and writes each state once.
Each program owns one batch row and a block of hidden units and walks the frames in tiles: a
tile is solved by ``tl.associative_scan`` over ``(decay, drive)`` pairs, then shifted by the
state carried in from the previous tile. Arithmetic is float32 (float64 for float64 inputs).

Triton is imported guarded: where it is missing (CPU-only installs), :func:`available` is False
and the layers keep the torch scan.
"""

from __future__ import annotations

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:
    triton = None

# BLOCK_H 32: a tile row of 32 float32 units is one 128-byte memory transaction, and B * H / 32
# programs are enough to fill the GPU at speech batch sizes. BLOCK_T 64: a (64, 32) tile keeps
# both scan operands in registers (16 values per thread each at 4 warps) with half the sequential
# tiles of 32. Both are educated guesses, not tuned on hardware.
BLOCK_T, BLOCK_H = 64, 32


def available(x: Tensor) -> bool:
    """Whether :func:`linear_scan` can run on ``x``: a CUDA tensor, Triton installed, no tracing
    (a traced graph cannot hold a Triton launch)."""
    return triton is not None and x.is_cuda and not torch.jit.is_tracing()


if triton is not None:

    @triton.jit
    def _combine(a1, b1, a2, b2):
        """Two steps of ``h -> a h + b`` composed: first ``(a1, b1)``, then ``(a2, b2)``."""
        return a1 * a2, a2 * b1 + b2

    @triton.jit
    def _scan_kernel(decay, drive, h0, out, frames, hidden, REVERSE: tl.constexpr, BLOCK_T: tl.constexpr,
                     BLOCK_H: tl.constexpr, ACC: tl.constexpr):
        """Program (batch row, block of units): all frames of ``out``, tile by tile."""
        row = tl.program_id(0).to(tl.int64)
        units = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
        in_units = units < hidden
        carry = tl.load(h0 + row * hidden + units, mask=in_units, other=0.0).to(ACC)
        steps = tl.arange(0, BLOCK_T)
        # the row that ends a tile: after its last frame, or before its first in reverse
        last = (steps == 0) if REVERSE else (steps == BLOCK_T - 1)
        final = (frames - 1) // BLOCK_T * BLOCK_T  # the last tile's first frame
        # a while loop, not range(frames): Triton 3.6's interpreter cannot take a runtime bound
        # with numpy >= 2.4 (it converts the bound's 1-element array to an int)
        walked = tl.full([], 0, tl.int32)
        while walked < frames:
            start = (final - walked) if REVERSE else walked
            offsets = (row * frames + start + steps[:, None]) * hidden + units[None, :]
            mask = ((start + steps[:, None]) < frames) & in_units[None, :]
            # frames past the end keep the state as it is (decay 1, drive 0), in either direction
            a = tl.load(decay + offsets, mask=mask, other=1.0).to(ACC)
            b = tl.load(drive + offsets, mask=mask, other=0.0).to(ACC)
            a, b = tl.associative_scan((a, b), 0, _combine, reverse=REVERSE)
            h = a * carry[None, :] + b
            tl.store(out + offsets, h.to(out.dtype.element_ty), mask=mask)
            carry = tl.sum(tl.where(last[:, None], h, 0.0), axis=0)
            walked += BLOCK_T


def linear_scan(decay: Tensor, drive: Tensor, h0: Tensor, reverse: bool = False, block_t: int = BLOCK_T,
                block_h: int = BLOCK_H) -> Tensor:
    """``h_t = decay_t * h_{t-1} + drive_t`` over ``(B, T, H)`` from ``h0`` ``(B, H)``, one launch;
    no autograd. ``reverse`` runs from the last frame to the first (``h_{t+1}`` for ``h_{t-1}``)."""
    decay, drive, h0 = decay.contiguous(), drive.contiguous(), h0.contiguous()
    batch, frames, hidden = drive.shape
    out = torch.empty_like(drive, dtype=torch.promote_types(decay.dtype, drive.dtype))
    if out.numel() == 0:
        return out
    acc = tl.float64 if out.dtype == torch.float64 else tl.float32
    _scan_kernel[(batch, triton.cdiv(hidden, block_h))](decay, drive, h0, out, frames, hidden, reverse,
                                                        block_t, block_h, acc)
    return out
