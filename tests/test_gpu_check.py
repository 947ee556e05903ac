import pytest
import torch

from benchmarks.gpu_check import main


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the check below runs instead")
def test_without_a_gpu_the_check_says_so_and_succeeds(capsys):
    assert main([]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CI has none)")
def test_one_epoch_runs_with_batches_and_model_on_the_gpu(tmp_path, capsys):
    assert main(["--per-word", "5", "--data-root", str(tmp_path)]) == 0
    assert "batches on the GPU, bf16" in capsys.readouterr().out
