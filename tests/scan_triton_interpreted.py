"""The Triton scan's kernel under Triton's interpreter, on CPU tensors: started in a child process
with ``TRITON_INTERPRET=1`` by ``test_scan_triton.py`` (the file name keeps pytest from
collecting it in the parent process, where Triton compiles for a GPU)."""

import functools
import os

import pytest
import torch
from test_scan_triton import frame_by_frame, inputs

from speechrnn.models import scan_kernel, scan_triton
from speechrnn.models.mingru import linear_scan

# small blocks, so that T = 37 spans three tiles (the last one partial) and H = 20 two unit blocks
BLOCKS = {"block_t": 16, "block_h": 16}


@pytest.fixture
def interpreted(monkeypatch):
    """The layers take the (interpreted) kernel on CPU tensors, with small blocks."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.fail("these tests run under Triton's interpreter: test_scan_triton.py starts them so")
    monkeypatch.setattr(scan_triton, "available", lambda x: True)
    monkeypatch.setattr(scan_triton, "linear_scan", functools.partial(scan_triton.linear_scan, **BLOCKS))
    monkeypatch.setattr(scan_kernel, "kernel", lambda x: None)  # not the CPU kernel
    return scan_triton


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reverse", [False, True])
def test_kernel_matches_the_frame_by_frame_recurrence(interpreted, dtype, reverse):
    decay, drive, h0 = inputs(dtype)
    h = interpreted.linear_scan(decay, drive, h0, reverse)
    assert h.dtype == dtype
    tolerance = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(h.double(), frame_by_frame(decay, drive, h0, reverse), atol=tolerance,
                               rtol=tolerance)


def test_kernel_stores_in_the_inputs_dtype(interpreted):
    decay, drive, h0 = (x.to(torch.bfloat16) for x in inputs(torch.float32))
    h = interpreted.linear_scan(decay, drive, h0)
    assert h.dtype == torch.bfloat16
    torch.testing.assert_close(h, frame_by_frame(decay, drive, h0, reverse=False).to(torch.bfloat16))


def test_gradients_through_the_kernel_equal_the_chunked_scans(interpreted):
    decay, drive, h0 = (x.requires_grad_() for x in inputs(torch.float64))
    weights = torch.randn(decay.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def run(chunk):
        h = linear_scan(decay, drive, h0, chunk)
        return h, *torch.autograd.grad((h * weights).sum(), [decay, drive, h0])

    for kernel, chunked in zip(run(None), run(chunk=6)):
        torch.testing.assert_close(kernel, chunked, atol=1e-12, rtol=1e-12)
