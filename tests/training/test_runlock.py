"""One run at a time in a run folder; a killed run's folder is taken over, its files set aside."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dead_process import dead_pid

from pipelines.configs import CONFIGS, trainer_args
from speechrnn.cli import main
from speechrnn.errors import SpeechRNNError
from speechrnn.processes import HOST, global_rank_is_zero
from speechrnn.training.runlock import LOCK_NAME, RunLock

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import sys
from speechrnn.training.runlock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("held", flush=True)
sys.stdin.read()  # hold until the test closes stdin (or kills us)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding the run folder ``tmp_path / run``."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "run")], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()


def test_a_second_fit_in_a_busy_run_folder_is_refused_naming_the_holder(tmp_path, holder, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(CONFIGS / "model/lstm.yaml"), *trainer_args(CONFIGS / "trainer/cpu.yaml"),
              "--data", "tones.ToneDataModule", "--data.data_root", str(tmp_path / "data"),
              "--data.cache_dir", str(tmp_path / "cache"), "--run_dir", str(tmp_path / "run"),
              "--trainer.max_epochs=1", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
              "--trainer.enable_progress_bar=false", "--model.hidden_size=8"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"run folder {tmp_path / 'run'} is in use" in err and f"pid {holder.pid} on {HOST}" in err
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "cache").exists()


def test_the_folder_is_free_once_the_holder_ends_even_when_killed(tmp_path, holder):
    with pytest.raises(SpeechRNNError, match=f"pid {holder.pid}"):
        RunLock(tmp_path / "run").acquire()
    holder.kill()  # SIGKILL: no clean-up runs, the lock file stays behind
    holder.wait()
    assert (tmp_path / "run" / LOCK_NAME).read_text().split()[0] == str(holder.pid)
    with RunLock(tmp_path / "run"):
        assert (tmp_path / "run" / LOCK_NAME).read_text().split() == [str(os.getpid()), HOST]
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_a_lock_file_naming_a_dead_pid_is_taken_over(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_NAME).write_text(f"{dead_pid()} {HOST}\n")
    with RunLock(tmp_path / "run"), pytest.raises(SpeechRNNError, match=f"pid {os.getpid()} on {HOST}"):
        RunLock(tmp_path / "run").acquire()


def tiny_fit(tmp_path, *args) -> None:
    main(["fit", "--config", str(CONFIGS / "model/gru.yaml"), *trainer_args(CONFIGS / "trainer/cpu.yaml"),
          "--data", "tones.ToneDataModule", "--data.data_root", str(tmp_path / "data"),
          "--data.cache_dir", str(tmp_path / "cache"), "--run_dir", str(tmp_path / "run"), "--trainer.logger=false",
          "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
          "--model.hidden_size=8", "--model.num_layers=1", *args])


def killed_run(run: Path, files: dict[str, bytes]) -> int:
    """``run`` as a run killed mid-fit leaves it: its lock file, naming a pid that has ended, and ``files``."""
    pid = dead_pid()
    (run / LOCK_NAME).write_text(f"{pid} {HOST}\n")
    for name, content in files.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(content)
    return pid


def test_a_fresh_fit_that_takes_over_a_killed_runs_folder_moves_its_files_aside(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    left = {"checkpoints/best.ckpt": b"killed best", "checkpoints/last.ckpt": b"killed last", "config.yaml": b"a: 1"}
    pid = killed_run(run, left)
    tiny_fit(tmp_path, "--trainer.max_epochs=1")
    aside = run / f"killed-run-pid{pid}"
    assert {name: (aside / name).read_bytes() for name in left} == left  # nothing lost
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]  # no best-v1
    assert torch.load(run / "checkpoints/best.ckpt", weights_only=True)["epoch"] == 0  # this run's own
    err = capsys.readouterr().err
    assert f"moved its checkpoints, config.yaml to {aside}" in err and f"pid {pid} on {HOST}" in err

    # a resume of a killed run continues from the files it left: they stay where they are
    killed_run(run, {})
    tiny_fit(tmp_path, "--trainer.max_epochs=2", "--ckpt_path", str(run / "checkpoints/last.ckpt"))
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("killed-run")) == [aside.name]
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 1


def test_a_run_folder_that_is_a_file_is_named(tmp_path):
    (tmp_path / "run").write_text("not a folder")
    with pytest.raises(SpeechRNNError, match=f"cannot write the run folder {tmp_path / 'run'}"):
        RunLock(tmp_path / "run").acquire()


@pytest.mark.parametrize("variable", ["RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"])
def test_only_the_first_process_of_a_distributed_job_takes_the_run_folder(monkeypatch, variable):
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    assert global_rank_is_zero()
    monkeypatch.setenv(variable, "0")
    assert global_rank_is_zero()
    monkeypatch.setenv(variable, "1")
    assert not global_rank_is_zero()
