"""The linear recurrence of :mod:`~speechrnn.models.mingru` as one compiled CPU pass each way.

On a CPU the recurrence needs no parallel scan: one pass over the frames that updates a row of
``H`` channels per step (vectorised) reads each input once and writes each state once, where the
chunked torch scan makes a dozen passes, each a freshly allocated ``(B, T, H)`` tensor. minGRU's
gates are computed inside the same pass from the input projections, which are made a few batch
rows at a time in a cache-sized buffer: no decay, drive or projection tensor is ever stored, and
backward recomputes them.

``scan_kernel.cpp`` is compiled with ``g++`` (``$CXX``) on first use, once per process (seconds:
it includes no torch headers and is called through ``ctypes``), for the CPU it runs on.
:func:`kernel` returns None, and the layers fall back to the torch scan, where it does not apply:
not a plain CPU float32/float64 tensor, under CPU autocast (the torch path's matmuls follow it),
inside ``torch.jit.trace`` / ONNX export / ``torch.compile`` / ``torch.export`` (a foreign call
cannot be traced), or no working compiler (with a warning).
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

SOURCE = Path(__file__).with_name("scan_kernel.cpp")
# fast-math lets g++ call glibc's vectorised exp; linked in a second step without it, so the
# library does not switch the whole process to flushing denormals to zero when it loads.
# -fopenmp-simd reads the source's `omp simd` loops only: no OpenMP runtime is linked.
COMPILE_FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-ffast-math", "-fno-associative-math",
                 "-fno-reciprocal-math", "-fPIC")
DTYPES = {torch.float32: "float32", torch.float64: "float64"}


@functools.cache
def _library() -> ctypes.CDLL | None:
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        warnings.warn(f"no C++ compiler ({compiler}) for minGRU's CPU kernel: using the slower torch scan",
                      stacklevel=3)
        return None
    with tempfile.TemporaryDirectory(prefix="speechrnn-scan-") as scratch:
        objects, library = Path(scratch, "scan_kernel.o"), Path(scratch, "scan_kernel.so")
        try:
            subprocess.run([compiler, *COMPILE_FLAGS, "-c", str(SOURCE), "-o", str(objects)], check=True,
                           capture_output=True, text=True)
            subprocess.run([compiler, "-shared", "-pthread", str(objects), "-o", str(library)], check=True,
                           capture_output=True, text=True)
        except subprocess.CalledProcessError as err:
            warnings.warn(f"minGRU's CPU kernel did not compile, using the slower torch scan:\n{err.stderr}",
                          stacklevel=3)
            return None
        loaded = ctypes.CDLL(str(library))  # mapped into the process: the file may go
    # declared, so that plain ints (addresses, sizes) pass without a ctypes object each
    address, size = ctypes.c_void_p, ctypes.c_int64
    for gates in ("given", "mingru"):
        for dtype in DTYPES.values():
            getattr(loaded, f"forward_{gates}_{dtype}").argtypes = [address, address, size, *[address] * 5,
                                                                      *[size] * 4]
            getattr(loaded, f"backward_{gates}_{dtype}").argtypes = [address, address, size, *[address] * 10,
                                                                       *[size] * 4]
    return loaded


def kernel(x: Tensor) -> ctypes.CDLL | None:
    """The compiled kernels if they apply to ``x``, else None (see the module's docstring)."""
    if (x.device.type != "cpu" or x.dtype not in DTYPES or type(x) is not Tensor  # fake, traced
            or torch.is_autocast_enabled("cpu") or torch.jit.is_tracing() or torch.compiler.is_compiling()):
        return None
    return _library()


CACHE_BYTES = 2**20  # a block's projections fit a core's L2 cache (1-2 MiB on current x86 CPUs)


def linear_scan(library: ctypes.CDLL, decay: Tensor, drive: Tensor, h0: Tensor) -> Tensor:
    """``h_t = decay_t * h_{t-1} + drive_t`` over ``(B, T, H)`` from ``h0`` ``(B, H)``, one pass; no autograd."""
    decay, drive, h0 = decay.contiguous(), drive.contiguous(), h0.contiguous()
    h, no_bias = torch.empty_like(drive), drive.new_zeros(2 * drive.shape[-1])
    _call(library, "forward_given", h, slice(0, len(h)), decay.data_ptr(), drive.data_ptr(), h.shape[-1], no_bias.data_ptr(),
          h0.data_ptr(), h.data_ptr(), None, None)
    return h


def linear_scan_backward(library: ctypes.CDLL, decay: Tensor, h0: Tensor, h: Tensor,
                         grad_h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of decay, drive and ``h0`` from those of the states ``h``: one reverse pass."""
    decay, h0 = decay.contiguous(), h0.contiguous()
    grad_decay, grad_drive, grad_h0 = torch.empty_like(decay), torch.empty_like(decay), torch.empty_like(h0)
    no_bias, unused_sums = decay.new_zeros(2 * decay.shape[-1]), decay.new_empty(len(decay), 2 * decay.shape[-1])
    # the given gates read no drive in backward: decay stands in for it
    _call(library, "backward_given", h, slice(0, len(h)), decay.data_ptr(), decay.data_ptr(), h.shape[-1],
          *(t.data_ptr() for t in (no_bias, h0, h, grad_h.contiguous())), None, None,
          *(t.data_ptr() for t in (grad_decay, grad_drive, unused_sums, grad_h0)))
    return grad_decay, grad_drive, grad_h0


class MinGRUScan(torch.autograd.Function):
    """A minGRU layer: ``x`` ``(B, T, F)``, both projections stacked (``weight`` ``(2H, F)``: update
    then candidate; ``bias`` ``(2H,)``) and ``h0`` ``(B, H)`` -> states ``(B, T, H)``, and given
    ``weights`` ``(B, T)``, each row's weighted sum of its states over frames ``(B, H)`` (else None).

    Batch rows go a few at a time: their projections (one matmul, without the bias, which the
    kernel adds) land in a buffer that stays in cache while the kernel reads them, so no
    ``(B, T, 2H)`` tensor is ever allocated or saved (saved: ``x`` and the states). Backward
    recomputes each block's projections the same way, runs the reverse pass into a second block
    buffer (summing the bias gradients as it goes), and adds that block's weight gradients. The
    weighted sum is taken inside the pass, and its gradient enters the reverse pass as it goes:
    where only the sum is used (mean pooling), no ``(B, T, H)`` gradient of the states exists.
    """

    @staticmethod
    def forward(ctx, library: ctypes.CDLL, x: Tensor, weight: Tensor, bias: Tensor, h0: Tensor,
                weights: Tensor | None) -> tuple[Tensor, Tensor | None]:
        x, bias, h0 = x.contiguous(), bias.contiguous(), h0.contiguous()
        weights = None if weights is None else weights.to(x.dtype).contiguous()  # the kernel reads x's type
        h = x.new_empty(*x.shape[:2], weight.shape[0] // 2)
        pooled = None if weights is None else x.new_empty(len(x), h.shape[-1])
        rows_h, rows_h0, rows_weights, rows_pooled = (_rows(t) for t in (h, h0, weights, pooled))
        for rows, projection in _projections(x, weight):
            _call(library, "forward_mingru", h, rows, *_halves(projection), bias.data_ptr(), rows_h0(rows),
                  rows_h(rows), rows_weights(rows), rows_pooled(rows))
        ctx.save_for_backward(x, weight, bias, h0, h, weights)
        ctx.library = library
        ctx.set_materialize_grads(False)  # an output nobody used has no gradient: None, not zeros
        return h, pooled

    @staticmethod
    def backward(ctx, grad_h: Tensor | None, grad_pooled: Tensor | None):
        x, weight, bias, h0, h, weights = ctx.saved_tensors
        grad_h = None if grad_h is None else grad_h.contiguous()
        grad_pooled = None if grad_pooled is None else grad_pooled.contiguous()
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[1] else None
        # (F, 2H): x^T @ grad is a third faster than grad^T @ x with MKL at these shapes
        grad_weight_t = weight.new_zeros(weight.shape[1], weight.shape[0])
        grad_bias, grad_h0 = x.new_empty(len(x), len(bias)), torch.empty_like(h0)  # bias: per batch row
        rows_of = [_rows(t) for t in (h0, h, grad_h, weights if grad_pooled is not None else None,
                                      grad_pooled, grad_bias, grad_h0)]
        inputs, frames, grad_buffer = x.flatten(0, 1), x.shape[1], None
        for rows, projection in _projections(x, weight):
            grad_buffer = torch.empty_like(projection) if grad_buffer is None else grad_buffer
            grad_pre = grad_buffer[:len(projection)]  # (n T, 2H)
            addresses = [row_address(rows) for row_address in rows_of]
            _call(ctx.library, "backward_mingru", h, rows, *_halves(projection), bias.data_ptr(), *addresses[:5],
                  *_halves(grad_pre)[:2], *addresses[5:])
            block = inputs[rows.start * frames:rows.stop * frames]  # (n T, F)
            grad_weight_t.addmm_(block.t(), grad_pre)
            if grad_x is not None:
                torch.mm(grad_pre, weight, out=grad_x.view_as(inputs)[rows.start * frames:rows.stop * frames])
        return None, grad_x, grad_weight_t.t(), grad_bias.sum(0), grad_h0, None


def _projections(x: Tensor, weight: Tensor):
    """``(rows, x[rows] @ weight.T)`` (``(n T, 2H)``) for blocks of batch rows, in one reused buffer."""
    batch, frames, _ = x.shape
    block = max(torch.get_num_threads(), CACHE_BYTES // (frames * weight.shape[0] * x.element_size()))
    inputs, weight_t = x.flatten(0, 1), weight.t()
    buffer = x.new_empty(min(block, batch) * frames, weight.shape[0])
    for start in range(0, batch, block):
        rows = slice(start, min(start + block, batch))
        projection = buffer[:(rows.stop - start) * frames]
        torch.mm(inputs[rows.start * frames:rows.stop * frames], weight_t, out=projection)
        yield rows, projection


def _rows(tensor: Tensor | None):
    """``rows`` (a slice of batch rows) -> the address of ``tensor[rows]`` (None for no tensor):
    address arithmetic, which costs a fraction of a tensor view in the per-block loop."""
    if tensor is None:
        return lambda rows: None
    start, row_bytes = tensor.data_ptr(), tensor[0].numel() * tensor.element_size()
    return lambda rows: start + rows.start * row_bytes


def _halves(rows: Tensor) -> tuple[int, int, int]:
    """Addresses of the two halves of each row of ``(N, 2H)`` ``rows``, and their row stride."""
    start = rows.data_ptr()
    return start, start + rows.shape[1] // 2 * rows.element_size(), rows.shape[1]


def _call(library: ctypes.CDLL, name: str, h: Tensor, rows: slice, *addresses: int | None) -> None:
    """Call ``scan_kernel.cpp``'s ``name`` for batch ``rows`` of the states ``h`` ``(B, T, H)``
    (only their count, shape and dtype are read here) with ``addresses``: gate inputs ``a``, ``b``
    and their row stride, then bias, h0, h, weights, pooled (forward) or bias, h0, h, grad_h,
    weights, grad_pooled, grad_a, grad_b (laid out as ``a`` and ``b``), grad_bias ``(n, 2H)``
    (each batch row's sum over frames), grad_h0 (backward); None passes a null pointer."""
    getattr(library, f"{name}_{DTYPES[h.dtype]}")(*addresses, rows.stop - rows.start, *h.shape[1:],
                                                  torch.get_num_threads())
