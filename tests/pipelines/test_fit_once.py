"""A pipeline's fit: under its folder's lock from the reuse check to the records, and reused only
when everything that made it (arguments, every file they name) is the same."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import loso
from pipelines.fit_settings import difference, fit_once, fit_settings
from speechrnn.errors import SpeechRNNError
from speechrnn.training.runlock import LOCK_NAME
from tones import write_digits

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import sys
from speechrnn.training.runlock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("held", flush=True)
sys.stdin.read()  # hold until the test closes stdin (or kills us)
"""


@pytest.fixture
def hold():
    """``hold(folder)``: another process holding ``folder``'s run lock, as a live fit would."""
    processes = []

    def start(folder: Path) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert process.stdout.readline().strip() == "held"
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.kill()
        process.wait()


def loso_args(tmp_path: Path) -> list[str]:
    write_digits(tmp_path / "data")
    return ["--out", str(tmp_path / "loso"), "--cells", "gru", "--data_root", str(tmp_path / "data"),
            "--speakers", "ann", "bob", "--epochs", "1", f"--data.init_args.cache_dir={tmp_path / 'cache'}"]


def test_a_second_pipeline_on_a_busy_out_is_refused_naming_the_first(tmp_path, hold):
    args = loso_args(tmp_path)
    first = hold(tmp_path / "loso")
    with pytest.raises(SpeechRNNError, match=rf"loso is in use by another run \(pid {first.pid} .*another --out"):
        loso.main(args)
    assert not (tmp_path / "cache").exists()  # refused before any work


def test_a_fold_being_trained_is_neither_deleted_nor_trained_into(tmp_path, hold):
    """What a second pipeline once did: delete the live fold's folder (lock file included) and train into it."""
    args = loso_args(tmp_path)
    fold = tmp_path / "loso" / "gru" / "ann"
    live = hold(fold)
    (fold / "settings.json").write_text("the live run's")
    with pytest.raises(SpeechRNNError, match=rf"gru/ann is in use by another run \(pid {live.pid} "):
        loso.main(args)
    assert sorted(p.name for p in fold.iterdir()) == [LOCK_NAME, "settings.json"]
    assert (fold / "settings.json").read_text() == "the live run's"


def test_a_finished_fit_is_reused_and_a_refit_leaves_only_its_own_files(tmp_path, monkeypatch):
    fits = []

    def fake_fit(args, run_lock=None):
        assert run_lock is not None and run_lock.fd is not None  # the fit runs under the pipeline's lock
        fits.append(args)
        (run_lock.run_dir / "results.json").write_text("{}")

    monkeypatch.setattr("pipelines.fit_settings.run_lightning", fake_fit)
    run_dir = tmp_path / "out" / "gru"
    run_dir.mkdir(parents=True)
    (run_dir / "best.ckpt").write_text("a killed run's")  # neither kept beside the new fit's, nor reported
    fit_once(run_dir, ["fit", "--model.hidden_size=8"], tmp_path / "out")
    fit_once(run_dir, ["fit", "--model.hidden_size=8"], tmp_path / "out")
    assert len(fits) == 1
    assert sorted(p.name for p in run_dir.iterdir()) == ["results.json", "settings.json"]  # lock released
    with pytest.raises(SpeechRNNError, match=r"now --model.hidden_size=16; then --model.hidden_size=8"):
        fit_once(run_dir, ["fit", "--model.hidden_size=16"], tmp_path / "out")


@pytest.mark.parametrize("spelling", [["--config", "{}"], ["-c", "{}"], ["--config={}"]])
def test_every_spelling_of_a_config_file_is_hashed(tmp_path, spelling):
    config = tmp_path / "model.yaml"
    config.write_text("model:\n  hidden_size: 8\n")
    args = ["fit", *(token.format(config) for token in spelling)]
    before = fit_settings(args)
    config.write_text("model:\n  hidden_size: 16\n")
    assert fit_settings(args) != before


def test_a_retrained_teacher_or_starting_checkpoint_counts_as_other_settings(tmp_path):
    teacher = tmp_path / "best.ckpt"
    teacher.write_bytes(b"teacher, first training")
    callback = {"class_path": "speechrnn.training.distillation.Distillation", "init_args": {"teachers": [str(teacher)]}}
    args = ["fit", f"--trainer.callbacks+={json.dumps(callback)}", f"--data.init_args.mined_windows={teacher}"]
    before = fit_settings(args)
    assert list(before["files"]) == [str(teacher)]
    teacher.write_bytes(b"teacher, trained again")
    assert fit_settings(args) != before


def test_an_edited_config_file_is_named_when_refused(tmp_path):
    config = tmp_path / "model.yaml"
    config.write_text("a: 1\n")
    wanted = fit_settings(["fit", "-c", str(config)])
    recorded = {**wanted, "files": {str(config): "an older digest"}}
    assert difference(recorded, wanted) == f"files new or changed since: {config}"
