"""The linear recurrence of :mod:`~speechrnn.models.mingru` as one compiled CPU pass each way.

On a CPU the recurrence needs no parallel scan: one pass over the frames that updates a row of
``H`` channels per step (vectorised) reads each input once and writes each state once, where the
chunked torch scan makes a dozen passes, each a freshly allocated ``(B, T, H)`` tensor. minGRU's
gates are computed inside the same pass from the two input projections, so neither the decay nor
the drive is ever stored; backward recomputes them from the projections.

``scan_kernel.cpp`` is compiled with ``g++`` (``$CXX``) on first use, once per process (about a
second: it includes no torch headers and is called through ``ctypes``), for the CPU it runs on.
:func:`kernel` returns None, and the layers fall back to the torch scan, where it does not apply:
not a CPU float32/float64 tensor, inside ``torch.jit.trace`` / ONNX export / ``torch.compile``
(a foreign call cannot be traced), or no working compiler (with a warning).
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
# library does not switch the whole process to flushing denormals to zero when it loads
COMPILE_FLAGS = ("-O3", "-march=native", "-ffast-math", "-fno-associative-math", "-fno-reciprocal-math",
                 "-fPIC")
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
        return ctypes.CDLL(str(library))  # mapped into the process: the file may go


def kernel(x: Tensor) -> ctypes.CDLL | None:
    """The compiled kernels if they apply to ``x``, else None (see the module's docstring)."""
    if (x.device.type != "cpu" or x.dtype not in DTYPES or torch.jit.is_tracing()
            or torch.compiler.is_compiling()):
        return None
    return _library()


def _pointer(tensor: Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(tensor.data_ptr())


class Scan(torch.autograd.Function):
    """``h_t = keep_t * h_{t-1} + write_t`` with ``keep, write = gates(a_t, b_t)``, from ``h0`` ``(B, H)``.

    ``a`` and ``b`` are ``(B, T, H)`` each, or ``b`` is None and ``a`` is one ``(B, T, 2H)``
    projection holding both side by side (so its gradient is one tensor too, not two halves that
    autograd would pad and add). ``gates`` is ``given`` (``keep = a``, ``write = b``) or ``mingru``
    (``keep = sigmoid(-a)``, ``write = sigmoid(a) g(b)``). Saves the inputs and the states;
    backward is one reverse pass.
    """

    @staticmethod
    def forward(ctx, library: ctypes.CDLL, gates: str, a: Tensor, b: Tensor | None, h0: Tensor) -> Tensor:
        a, h0 = a.contiguous(), h0.contiguous()
        first, second = a.chunk(2, dim=-1) if b is None else (a, b.contiguous())
        h = torch.empty_like(second, memory_format=torch.contiguous_format)
        getattr(library, f"forward_{gates}_{DTYPES[a.dtype]}")(
            *map(_pointer, (first, second)), _stride(first), *map(_pointer, (h0, h)), *_sizes(h))
        ctx.save_for_backward(a, second, h0, h)
        ctx.library, ctx.gates, ctx.paired = library, gates, b is None
        return h

    @staticmethod
    def backward(ctx, grad_h: Tensor):
        a, second, h0, h = ctx.saved_tensors
        first = a.chunk(2, dim=-1)[0] if ctx.paired else a
        grad_a = torch.empty_like(a)
        grad_first, grad_second = grad_a.chunk(2, dim=-1) if ctx.paired else (grad_a, torch.empty_like(second))
        grad_h0 = torch.empty_like(h0)
        getattr(ctx.library, f"backward_{ctx.gates}_{DTYPES[a.dtype]}")(
            *map(_pointer, (first, second)), _stride(first),
            *map(_pointer, (h0, h, grad_h.contiguous(), grad_first, grad_second, grad_h0)), *_sizes(h))
        return None, None, grad_a, None if ctx.paired else grad_second, grad_h0


def _stride(rows: Tensor) -> ctypes.c_int64:
    return ctypes.c_int64(rows.stride(1))


def _sizes(h: Tensor) -> tuple[ctypes.c_int64, ...]:
    return tuple(map(ctypes.c_int64, (*h.shape, torch.get_num_threads())))
