"""The Triton scan. Its kernel runs on CPU tensors under Triton's interpreter, which is chosen
when ``triton.jit`` decorates (Triton's own library included, at import): so this file runs
itself again in a child process with ``TRITON_INTERPRET=1``, where the interpreted tests run."""

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

from speechrnn.models import scan_kernel, scan_triton
from speechrnn.models.mingru import linear_scan

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
interpreted_only = pytest.mark.skipif(not INTERPRETED, reason="run by test_kernel_under_the_interpreter")
# small blocks, so that T = 37 spans three tiles (the last one partial) and H = 20 two unit blocks
BLOCKS = {"block_t": 16, "block_h": 16}


@pytest.mark.skipif(INTERPRETED, reason="this is the child process")
def test_kernel_under_the_interpreter():
    child = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
                           check=False, env={**os.environ, "TRITON_INTERPRET": "1"}, cwd=Path(__file__).parents[1],
                           capture_output=True, text=True)
    assert child.returncode == 0, child.stdout + child.stderr
    assert " passed" in child.stdout and "skipped" in child.stdout  # the interpreted tests ran


@pytest.fixture
def interpreted(monkeypatch):
    """The layers take the (interpreted) kernel on CPU tensors, with small blocks."""
    monkeypatch.setattr(scan_triton, "available", lambda x: True)
    monkeypatch.setattr(scan_triton, "linear_scan", functools.partial(scan_triton.linear_scan, **BLOCKS))
    monkeypatch.setattr(scan_kernel, "kernel", lambda x: None)  # not the CPU kernel
    return scan_triton


def inputs(dtype, device="cpu", batch=2, frames=37, hidden=20):
    generator = torch.Generator().manual_seed(0)
    decay = torch.rand(batch, frames, hidden, dtype=dtype, generator=generator)
    drive = torch.randn(batch, frames, hidden, dtype=dtype, generator=generator)
    h0 = torch.randn(batch, hidden, dtype=dtype, generator=generator)
    return decay.to(device), drive.to(device), h0.to(device)


def frame_by_frame(decay, drive, h0, reverse):
    """The recurrence one frame at a time, in float64."""
    h, states = h0.double(), []
    frames = range(decay.shape[1])
    for t in reversed(frames) if reverse else frames:
        h = decay[:, t].double() * h + drive[:, t].double()
        states.append(h)
    return torch.stack(states[::-1] if reverse else states, dim=1)


@interpreted_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reverse", [False, True])
def test_kernel_matches_the_frame_by_frame_recurrence(interpreted, dtype, reverse):
    decay, drive, h0 = inputs(dtype)
    h = interpreted.linear_scan(decay, drive, h0, reverse)
    assert h.dtype == dtype
    tolerance = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(h.double(), frame_by_frame(decay, drive, h0, reverse), atol=tolerance,
                               rtol=tolerance)


@interpreted_only
def test_kernel_stores_in_the_inputs_dtype(interpreted):
    decay, drive, h0 = (x.to(torch.bfloat16) for x in inputs(torch.float32))
    h = interpreted.linear_scan(decay, drive, h0)
    assert h.dtype == torch.bfloat16
    torch.testing.assert_close(h, frame_by_frame(decay, drive, h0, reverse=False).to(torch.bfloat16))


@interpreted_only
def test_gradients_through_the_kernel_equal_the_chunked_scans(interpreted):
    decay, drive, h0 = (x.requires_grad_() for x in inputs(torch.float64))
    weights = torch.randn(decay.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def run(chunk):
        h = linear_scan(decay, drive, h0, chunk)
        return h, *torch.autograd.grad((h * weights).sum(), [decay, drive, h0])

    for kernel, chunked in zip(run(None), run(chunk=6)):
        torch.testing.assert_close(kernel, chunked, atol=1e-12, rtol=1e-12)


def test_kernel_is_only_offered_for_cuda_tensors():
    assert not scan_triton.available(torch.zeros(2, 3, 4))


@pytest.mark.skipif(INTERPRETED or not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("reverse", [False, True])
def test_compiled_kernel_on_cuda(reverse):
    decay, drive, h0 = inputs(torch.float32, "cuda", batch=3, frames=1000, hidden=70)
    assert scan_triton.available(drive)
    h = scan_triton.linear_scan(decay, drive, h0, reverse)
    torch.testing.assert_close(h.double(), frame_by_frame(decay, drive, h0, reverse), atol=1e-5, rtol=1e-5)
