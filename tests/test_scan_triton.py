"""The Triton scan. Its kernel also runs on CPU tensors under Triton's interpreter, which is
chosen when ``triton.jit`` decorates (Triton's own library included, at import): so the
interpreted tests, in ``scan_triton_interpreted.py``, run in a child process with
``TRITON_INTERPRET=1``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

from speechrnn.models import scan_triton


def test_kernel_under_the_interpreter():
    interpreted = Path(__file__).with_name("scan_triton_interpreted.py")
    child = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(interpreted)],
                           check=False, env={**os.environ, "TRITON_INTERPRET": "1"}, cwd=Path(__file__).parents[1],
                           capture_output=True, text=True)
    assert child.returncode == 0, child.stdout + child.stderr
    assert " passed" in child.stdout and "skipped" not in child.stdout  # the interpreted tests ran


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


def test_kernel_is_only_offered_for_cuda_tensors():
    assert not scan_triton.available(torch.zeros(2, 3, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("reverse", [False, True])
def test_compiled_kernel_on_cuda(reverse):
    decay, drive, h0 = inputs(torch.float32, "cuda", batch=3, frames=1000, hidden=70)
    assert scan_triton.available(drive)
    h = scan_triton.linear_scan(decay, drive, h0, reverse)
    torch.testing.assert_close(h.double(), frame_by_frame(decay, drive, h0, reverse), atol=1e-5, rtol=1e-5)
