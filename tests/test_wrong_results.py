"""Inputs that once gave a wrong result with exit status 0, or a traceback: now a right result,
or a SpeechRNNError that names the cause."""

import errno
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch

from pipelines.configs import trainer_args
from speechrnn.cli import main, write_run_results
from speechrnn.corpora.folder import FolderDataModule
from speechrnn.data.audio import read_audio
from speechrnn.errors import SpeechRNNError
from speechrnn.files import write_json
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.processes import HOST, global_rank_is_zero
from speechrnn.training.runlock import LOCK_NAME, RunLock
from tones import SAMPLE_RATE, ToneDataModule, write_tones

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def tones(tmp_path, **kwargs) -> ToneDataModule:
    return ToneDataModule(data_root=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"), **kwargs)


def prepared(tmp_path, **kwargs) -> ToneDataModule:
    dm = tones(tmp_path, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def strict_json(path: Path):
    """Parse as a strict reader would: NaN and Infinity are errors."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def dead_pid() -> int:
    """The pid of a process that has already exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ----- 1. the feature cache follows the audio, not just its size ---------------------------------

def test_audio_rewritten_in_place_with_the_same_size_and_time_gets_new_features(tmp_path):
    old = prepared(tmp_path).splits["train"].feats
    rng = np.random.default_rng(1)
    for wav in sorted((tmp_path / "data" / "tones").glob("*.wav")):
        info, stat = sf.info(wav), wav.stat()
        sf.write(wav, 0.5 * rng.standard_normal(info.frames), SAMPLE_RATE, subtype=info.subtype)
        assert wav.stat().st_size == stat.st_size
        os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `cp -p` or `rsync -t` would leave it
    new = prepared(tmp_path).splits["train"].feats
    shutil.copytree(tmp_path / "data", tmp_path / "copy" / "data")
    fresh = prepared(tmp_path / "copy").splits["train"].feats  # the noise, through an empty cache
    assert not torch.allclose(new, old)
    torch.testing.assert_close(new, fresh)


# ----- 2. non-finite and too-short audio is skipped and listed ----------------------------------

def test_audio_with_nan_samples_is_an_error_naming_the_file(tmp_path):
    wave = np.full(800, 0.1, dtype=np.float32)
    wave[400] = np.nan
    sf.write(tmp_path / "nan.wav", wave, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(SpeechRNNError, match=r"nan\.wav holds 1 NaN or infinite samples"):
        read_audio(tmp_path / "nan.wav", SAMPLE_RATE)


def test_nan_infinite_and_too_short_clips_are_skipped_and_the_statistics_stay_finite(tmp_path):
    dm = tones(tmp_path)
    dm.download()
    corpus = tmp_path / "data" / "tones"
    nan = np.full(2000, 0.1, dtype=np.float32)
    nan[10] = np.nan
    sf.write(corpus / "0_00.wav", nan, SAMPLE_RATE, subtype="FLOAT")
    sf.write(corpus / "0_01.wav", np.full(2000, np.inf, dtype=np.float32), SAMPLE_RATE, subtype="FLOAT")
    sf.write(corpus / "1_00.wav", np.array([0.5]), SAMPLE_RATE)  # one sample
    sf.write(corpus / "1_01.wav", 0.5 * np.ones(SAMPLE_RATE // 100), SAMPLE_RATE)  # 10 ms < a 25 ms window
    dm.prepare_data()
    dm.setup("fit")
    reasons = {s["key"]: s["reason"] for s in dm.feature_cache().manifest()["skipped"]}
    assert sorted(reasons) == ["0_00", "0_01", "1_00", "1_01"]
    assert "NaN or infinite" in reasons["0_00"] and "NaN or infinite" in reasons["0_01"]
    assert "too short: 1 samples" in reasons["1_00"] and "200-sample analysis window" in reasons["1_01"]
    assert dm.mean.isfinite().all() and dm.std.isfinite().all()
    assert len(dm.splits["train"]) == 3 * 8 - 4


# ----- 3. non-finite statistics stop the run ---------------------------------------------------------

def test_non_finite_cached_features_stop_setup_naming_the_dataset(tmp_path):
    cache = prepared(tmp_path).feature_cache().directory
    feats = np.load(cache / "train.feats.npy")
    feats[3, 2] = np.nan
    np.save(cache / "train.feats.npy", feats)  # same size: the cache still looks complete
    with pytest.raises(SpeechRNNError, match=r"tones's \d+ training frames are not finite.*cache_dir"):
        prepared(tmp_path)


# ----- 4. strict JSON: an empty bucket is null -----------------------------------------------------

def test_results_with_an_empty_bucket_are_strict_json_that_compare_reads(tmp_path, tone_data, capsys):
    buckets = [20, 40, 1000]  # tones last 11-61 frames: nothing reaches 1000
    model = SpeechClassifier(labels=tone_data.labels, input_size=tone_data.feature_dim, hidden_size=8,
                             length_buckets=buckets)
    tone_data.length_buckets = buckets
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    accuracy = trainer.test(model, datamodule=tone_data, verbose=False)[0]["test/acc"]
    (tmp_path / "run").mkdir()
    path = write_run_results(tmp_path / "run", model, trainer, accuracy, "")
    results = strict_json(path)
    assert results["test"]["buckets"][-1] == ["1000-inf", 0, None]
    main(["compare", str(tmp_path / "run"), "--plot", str(tmp_path / "c.png")])
    row = next(line for line in capsys.readouterr().out.splitlines() if "1000-inf" in line)
    assert row.split()[2:] == ["-", "(0)"]


def test_write_json_writes_null_for_non_finite_floats_and_leaves_no_temporary_file(tmp_path):
    path = write_json(tmp_path / "r.json", {"a": [math.nan, 1.5, (math.inf, -math.inf)], "b": {"c": 2}})
    assert strict_json(path) == {"a": [None, 1.5, [None, None]], "b": {"c": 2}}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


# ----- 5. one run per run folder ----------------------------------------------------------------------

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
                               stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
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


# ----- 6. disk errors --------------------------------------------------------------------------------

def test_a_full_disk_is_named_with_the_cache_folder_and_leaves_no_staging(tmp_path, monkeypatch):
    dm = tones(tmp_path)
    dm.download()

    def disk_full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(SpeechRNNError, match=f"no room left to write the feature cache in {tmp_path / 'cache'}"):
        dm.prepare_data()
    monkeypatch.undo()
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_build_stopped_by_any_error_leaves_no_staging_folder(tmp_path):
    dm = tones(tmp_path)
    dm.labels = ["0", "1"]  # the corpus also holds label 2
    with pytest.raises(SpeechRNNError, match="label '2' is not in the vocabulary"):
        dm.prepare_data()
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_cache_dir_that_is_a_file_is_named(tmp_path):
    (tmp_path / "cache").write_text("not a folder")
    with pytest.raises(SpeechRNNError, match=f"feature cache folder {tmp_path / 'cache'} is a file"):
        tones(tmp_path).prepare_data()


def test_staging_folders_of_killed_builds_are_removed_and_live_ones_kept(tmp_path):
    cache = tmp_path / "cache"
    dead, legacy, live = (cache / f"tones-keyword-0123.tmp-{HOST}-{dead_pid()}", cache / f"x.tmp-{dead_pid()}",
                          cache / f"tones-keyword-4567.tmp-{HOST}-{os.getppid()}")
    for folder in (dead, legacy, live):
        folder.mkdir(parents=True)
    tones(tmp_path).prepare_data()
    assert not dead.exists() and not legacy.exists() and live.exists()


# ----- 8. invalid settings are refused when the data module is built ---------------------------------

@pytest.mark.parametrize("setting, message", [
    ({"hop_ms": 0}, "hop_ms is 0"), ({"hop_ms": -5}, "hop_ms is -5"), ({"win_ms": 0}, "win_ms is 0"),
    ({"n_mfcc": 0}, "n_mfcc is 0"), ({"sample_rate": 0}, "sample_rate is 0"),
    ({"n_mfcc": 40, "n_mels": 20}, "n_mfcc 40 is more than n_mels 20"), ({"hop_ms": 0.01}, "less than one sample"),
    ({"batch_size": 0}, "batch_size is 0"), ({"length_buckets": [40, 20]}, "increasing order"),
    ({"length_buckets": [20, 20]}, "increasing order"), ({"length_buckets": [0, 20]}, "at least 1"),
])
def test_invalid_data_settings_are_refused_at_construction_leaving_no_files(tmp_path, setting, message):
    with pytest.raises(SpeechRNNError, match=message):
        tones(tmp_path, **setting)
    assert not (tmp_path / "cache").exists()


# ----- 7. folder datasets ---------------------------------------------------------------------------

def folder(root: Path, labels: dict[str, int]) -> Path:
    for seed, (label, count) in enumerate(labels.items()):
        write_tones(root / label, per_class=count, num_classes=1, seed=seed)
    return root


def test_a_folder_with_one_label_cannot_train_but_can_be_scored(tmp_path):
    root = folder(tmp_path / "clips", {"yes": 2})
    with pytest.raises(SpeechRNNError, match=r"one label, 'yes': a classifier needs at least two"):
        FolderDataModule(path=str(root))
    assert FolderDataModule(path=str(root), use_all_for="test").labels == ["yes"]


def test_a_label_whose_recordings_are_all_unusable_is_an_error_naming_its_folder(tmp_path):
    root = folder(tmp_path / "clips", {"no": 6, "yes": 2})
    for wav in (root / "yes").glob("*.wav"):
        wav.write_bytes(b"RIFF broken")
    dm = FolderDataModule(path=str(root), cache_dir=str(tmp_path / "cache"), sample_rate=SAMPLE_RATE)
    dm.prepare_data()
    with pytest.raises(SpeechRNNError, match=rf"\['{root / 'yes'}'\] hold no usable recording .*cannot decode"):
        dm.setup("fit")


@pytest.mark.parametrize("make, message", [
    (lambda root: folder(root / "inner", {"a": 1, "b": 1}), "holds subfolders but no recordings"),
    (lambda root: root.write_text("x"), "is a file, not a folder"),
    (lambda root: None, "not found"),
], ids=["nested", "file", "missing"])
def test_a_wrong_folder_layout_names_the_path_and_the_layout(tmp_path, make, message):
    root = tmp_path / "clips"
    make(root)
    with pytest.raises(SpeechRNNError, match=message) as error:
        FolderDataModule(path=str(root))
    assert str(root) in str(error.value) and "<path>/<label>/<file>.wav" in str(error.value)


def test_scoring_a_folder_that_lacks_some_of_a_checkpoints_labels_lists_the_rest(tmp_path):
    dm = FolderDataModule(path=str(folder(tmp_path / "clips", {"yes": 2})), use_all_for="test")
    dm.labels = ["no", "yes"]  # the checkpoint's vocabulary, as evaluate adopts it
    assert [u.label for u in dm.utterances()] == ["yes", "yes"]


# ----- 9. compare --plot DIR ---------------------------------------------------------------------

def test_compare_plot_into_a_folder_writes_the_path_it_prints(tmp_path, capsys):
    results = {"cell": "gru", "dataset": "tones", "task": "keyword", "hop_ms": 10.0,
               "test": {"accuracy": 0.5, "edges": [20], "buckets": [["0000-0020", 2, 0.5], ["0020-inf", 0, None]]}}
    (tmp_path / "run").mkdir()
    write_json(tmp_path / "run" / "results.json", results)
    (tmp_path / "plots").mkdir()
    for plot, written in [(tmp_path / "plots", tmp_path / "plots" / "compare.png"),
                          (tmp_path / "noext", tmp_path / "noext.png")]:
        main(["compare", str(tmp_path / "run"), "--plot", str(plot)])
        assert capsys.readouterr().out.splitlines()[-1] == f"plot: {written}"
        assert written.read_bytes()[:4] == b"\x89PNG"
