"""The leave-one-speaker-out pipeline on a tiny generated FSDD-style tree: folds, summary, resuming."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines import fit_settings
from speechrnn.errors import SpeechRNNError
from tones import SPEAKERS, write_digits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def loso(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import pipelines.loso

    return pipelines.loso


def reject_constant(name):
    raise ValueError(f"{name} is not JSON")


@pytest.mark.parametrize("args, named", [(["--epochs", "0"], "--epochs: 0 is not a whole number >= 1"),
                                         (["--epochs", "-2"], "--epochs: -2 is not"),
                                         (["--speakers", "ann"], "two or more speakers, got 1 (ann)"),
                                         (["--speakers", "ann", "bob", "--folds", "2", "--train_speakers", "1"],
                                          "--train_speakers needs one held-out speaker per fold (no --folds)")])
def test_bad_arguments_exit_2_with_one_line_before_any_work(tmp_path, args, named):
    out = tmp_path / "loso"
    done = subprocess.run([sys.executable, "-m", "pipelines.loso", "--out", str(out), "--data_root",
                           str(tmp_path / "missing"), *args], check=False, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert done.returncode == 2, done.stderr
    assert named in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()  # nothing trained, nothing written


def test_an_empty_length_bucket_is_written_as_null(loso, tmp_path):
    fold = {"dataset": "fsdd", "hop_ms": 10, "parameters": 5, "train_seconds": 1.0,
            "test": {"accuracy": 0.5, "edges": [10], "buckets": [["<10", 0, None], [">=10", 4, 0.5]]}}
    summary = loso.summarise({"gru": {"ann": fold, "bob": {**fold, "test": {**fold["test"], "accuracy": 1.0}}}})
    loso.write_report(tmp_path, summary, [])
    results = json.loads((tmp_path / "results.json").read_text(), parse_constant=reject_constant)
    assert results["cells"]["gru"]["test"]["buckets"][0] == ["<10", 0, None]


def test_speaker_folds_deal_every_speaker_into_one_group(loso):
    speakers = ["a", "b", "c", "d", "e"]
    assert loso.speaker_folds(speakers, None) == {s: [s] for s in speakers}
    groups = loso.speaker_folds(speakers, 2)
    assert list(groups) == ["fold1", "fold2"] and sorted(len(g) for g in groups.values()) == [2, 3]
    assert sorted(groups["fold1"] + groups["fold2"]) == speakers
    for folds in (1, 6):
        with pytest.raises(SpeechRNNError, match="--folds"):
            loso.speaker_folds(speakers, folds)


def test_each_fold_trains_on_the_speakers_after_its_own_wrapping_round(loso):
    speakers = ["e", "a", "c", "b", "d"]
    assert loso.training_voices(speakers, "a", 2) == ["b", "c"]
    assert loso.training_voices(speakers, "d", 3) == ["e", "a", "b"]
    for count in (0, 5):
        with pytest.raises(SpeechRNNError, match=f"--train_speakers {count} must be between 1 and 4"):
            loso.training_voices(speakers, "a", count)


def test_teachers_are_each_runs_best_checkpoint_of_the_fold_and_a_missing_one_is_refused(loso, tmp_path):
    best = tmp_path / "seed0" / "gru" / "ann" / "checkpoints" / "best.ckpt"
    best.parent.mkdir(parents=True)
    best.write_bytes(b"")
    (argument,) = loso.distillation_args([tmp_path / "seed0"], "gru", "ann", 0.5, 2.0)
    callback = json.loads(argument.removeprefix("--trainer.callbacks+="))
    assert callback["class_path"] == "speechrnn.training.distillation.Distillation"
    assert callback["init_args"] == {"teachers": [str(best)], "weight": 0.5, "temperature": 2.0}
    with pytest.raises(SpeechRNNError, match=f"no best checkpoint at {tmp_path / 'seed1' / 'gru' / 'ann'}"):
        loso.distillation_args([tmp_path / "seed0", tmp_path / "seed1"], "gru", "ann", 0.5, 2.0)


def test_a_corpus_without_a_speakers_split_is_refused(loso, tmp_path):
    config = tmp_path / "tones.yaml"
    config.write_text(yaml.safe_dump({"data": {"class_path": "tones.ToneDataModule"}}))
    with pytest.raises(SpeechRNNError, match="test_speakers"):
        loso.corpus_speakers(config, str(tmp_path))


def test_every_speaker_is_held_out_once_and_finished_folds_are_not_run_again(loso, tmp_path):
    write_digits(tmp_path / "data")
    out = tmp_path / "loso"
    args = ["--out", str(out), "--cells", "gru", "--data_root", str(tmp_path / "data"), "--epochs", "1",
            f"--data.init_args.cache_dir={tmp_path / 'cache'}", "--data.init_args.batch_size=8",
            "--model.hidden_size=8", "--model.num_layers=1"]
    loso.main(args)
    results = json.loads((out / "results.json").read_text())["cells"]["gru"]
    assert list(results["speakers"]) == SPEAKERS
    accuracies = list(results["speakers"].values())
    mean = sum(accuracies) / 3
    half = 4.3027 * (sum((a - mean) ** 2 for a in accuracies) / 2) ** 0.5 / 3**0.5  # t(0.975, 2) s / sqrt(n)
    assert results["ci95"] == pytest.approx([max(0.0, mean - half), min(1.0, mean + half)], abs=1e-4)
    assert sum(count for _, count, _ in results["test"]["buckets"]) == len(SPEAKERS) * 3 * 7
    for speaker in SPEAKERS:
        config = yaml.safe_load((out / "gru" / speaker / "config.yaml").read_text())
        assert config["data"]["init_args"]["test_speakers"] == [speaker]
        assert config["trainer"]["logger"]["init_args"]["group"] == "loso"
    table = (out / "table.md").read_text()
    assert all(speaker in table for speaker in SPEAKERS) and "95% CI" in table
    assert (out / "speakers.png").stat().st_size and (out / "accuracy_by_length.png").stat().st_size

    finished = {s: (out / "gru" / s / "results.json").stat().st_mtime_ns for s in SPEAKERS}
    (out / "gru" / "bob" / "results.json").unlink()  # as if stopped during that fold
    loso.main(args)
    again = {s: (out / "gru" / s / "results.json").stat().st_mtime_ns for s in SPEAKERS}
    assert again["ann"] == finished["ann"] and again["cyd"] == finished["cyd"]
    assert (out / "gru" / "bob" / "results.json").is_file()


def test_train_speakers_passes_a_fold_the_voices_after_its_own(loso, tmp_path, monkeypatch):
    write_digits(tmp_path / "data")
    trained = {}

    def record_fit(run_dir, argv, out):
        trained[run_dir.name] = next(arg.split("=", 1)[1] for arg in argv if arg.startswith("--data.init_args.train_"))
        raise SystemExit  # the plan is what is checked: nothing trains

    monkeypatch.setattr(loso, "fit_once", record_fit)
    with pytest.raises(SystemExit):
        loso.main(["--out", str(tmp_path / "loso"), "--cells", "gru", "--data_root", str(tmp_path / "data"),
                   "--train_speakers", "1"])
    assert trained == {"ann": '["bob"]'}  # the first fold: the speaker after ann, and only that one


def test_a_rerun_with_other_settings_never_reuses_the_old_folds(loso, tmp_path, monkeypatch):
    write_digits(tmp_path / "data")
    out = tmp_path / "loso"
    args = ["--out", str(out), "--cells", "gru", "--data_root", str(tmp_path / "data"), "--speakers", "ann", "bob",
            f"--data.init_args.cache_dir={tmp_path / 'cache'}", "--data.init_args.batch_size=8",
            "--model.num_layers=1"]
    loso.main([*args, "--epochs", "1", "--model.hidden_size=8"])
    finished = (out / "results.json").read_text()

    def no_training(argv, **kwargs):
        raise AssertionError(f"a fold trained: {argv}")

    monkeypatch.setattr(fit_settings, "run_lightning", no_training)
    for other in (["--epochs", "2", "--model.hidden_size=8"], ["--epochs", "1", "--model.hidden_size=4"]):
        with pytest.raises(SpeechRNNError, match=r"gru/ann was trained under other settings .*another --out"):
            loso.main([*args, *other])
    assert (out / "results.json").read_text() == finished  # the old experiment's summary is left as it was
    loso.main([*args, "--epochs", "1", "--model.hidden_size=8"])  # the same settings: resumed, nothing trains


def test_fit_settings_follow_config_files_not_wandb_names(tmp_path):
    from pipelines.fit_settings import fit_settings

    config = tmp_path / "model.yaml"
    config.write_text("model:\n  hidden_size: 8\n")
    args = ["fit", "--config", str(config), "--trainer.logger.init_args.name", "a", "--model.lr=0.1"]
    before = fit_settings(args)
    assert fit_settings([*args[:4], "b", args[5]]) == before  # another W&B name trains the same model
    config.write_text("model:\n  hidden_size: 16\n")
    assert fit_settings(args) != before
