"""``speechrnn tune``: a spotter trained with ``speechrnn fit`` alone is tuned on streams and streams at
the point it stored."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from pipelines.configs import CONFIGS, trainer_args
from speechrnn.checkpoint import load_checkpoint
from speechrnn.cli import main
from speechrnn.data.pipeline import build_data_module
from tones import tone_stream_config


@pytest.fixture(scope="module")
def spotter(tmp_path_factory):
    """A GRU spotter fitted by ``speechrnn fit`` with the spotter recipe's configs; its checkpoint and data config."""
    root = tmp_path_factory.mktemp("tune")
    (root / "stream.yaml").write_text(yaml.safe_dump(tone_stream_config(root)))
    main(["fit", "--config", str(root / "stream.yaml"), "--config", str(CONFIGS / "model/gru.yaml"),
          *trainer_args(CONFIGS / "trainer/cpu.yaml"), "--config", str(CONFIGS / "experiment/streaming.yaml"),
          "--run_dir", str(root / "run"), "--trainer.max_epochs", "2", "--trainer.logger", "false",
          "--trainer.enable_progress_bar", "false", "--model.hidden_size", "8", "--test_after_fit", "false"])
    return root / "run/checkpoints/best.ckpt", root / "stream.yaml"


@pytest.fixture
def fresh(spotter, tmp_path):
    """A copy of the untuned spotter, so each test stores its own point."""
    copy = tmp_path / "spotter.ckpt"
    shutil.copy(spotter[0], copy)
    return copy


def validation_streams(config) -> dict:
    datamodule = build_data_module(config)
    datamodule.prepare_data()
    return datamodule.stream_files("validation")


def run(argv, capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def test_tune_help_shows_the_usage(capsys):
    code, out, _ = run(["tune", "--help"], capsys)
    assert code == 0
    assert "speechrnn tune CKPT --keywords val.wav --keyword-free free.wav" in out and "--false-alarms-per-hour" in out


def test_a_fitted_spotter_is_tuned_on_its_own_streams_and_streams_at_the_stored_point(fresh, spotter, capsys):
    assert load_checkpoint(fresh).operating_point is None
    code, out, err = run(["tune", str(fresh), "--json", str(fresh.with_name("tuned.json"))], capsys)
    assert code == 0, err
    report = json.loads(out.splitlines()[0])
    stored = load_checkpoint(fresh).operating_point
    assert stored is not None and stored.to_json() == report["operating_point"]
    assert json.loads(fresh.with_name("tuned.json").read_text()) == report
    assert report["streams"]["keywords"].endswith("validation.wav")
    weights, before = load_checkpoint(fresh).state_dict, load_checkpoint(spotter[0]).state_dict
    assert weights.keys() == before.keys() and all(torch.equal(weights[k], before[k]) for k in weights)

    test_stream = Path(report["streams"]["keywords"]).with_name("test.wav")  # the split it was not tuned on
    code, streamed, err = run(["stream", str(fresh), str(test_stream)], capsys)
    assert code == 0 and "holds no tuned operating point" not in err, err
    flags = ["--threshold", str(stored.threshold), "--smooth-s", str(stored.smooth_s),
             "--refractory-s", str(stored.refractory_s)]
    code, explicit, _ = run(["stream", str(spotter[0]), str(test_stream), *flags], capsys)
    assert code == 0 and streamed == explicit  # the untuned copy, given the stored point by hand


def test_given_streams_tune_as_the_same_streams_built(fresh, capsys):
    code, built, err = run(["tune", str(fresh)], capsys)
    assert code == 0, err
    files = json.loads(built.splitlines()[0])["streams"]
    code, given, err = run(["tune", str(fresh), "--keywords", str(files["keywords"]),
                            "--keyword-free", str(files["keyword_free"])], capsys)
    assert code == 0, err
    assert json.loads(given.splitlines()[0])["operating_point"] == json.loads(built.splitlines()[0])["operating_point"]


def test_a_stream_without_its_timeline_or_of_other_keywords_is_refused_in_one_line(fresh, spotter, tmp_path, capsys):
    files = validation_streams(spotter[1])
    bare = tmp_path / "bare.wav"
    shutil.copy(files["keywords"], bare)
    code, _, err = run(["tune", str(fresh), "--keywords", str(bare), "--keyword-free", str(files["keyword_free"])],
                       capsys)
    assert code == 2 and "no timeline" in err and "bare.json" in err and len(err.strip().splitlines()) == 1
    timeline = json.loads(files["keywords"].with_suffix(".json").read_text())
    for event in timeline["events"]:
        event["label"] = "yes" if event["kind"] == "keyword" else event["label"]
    bare.with_suffix(".json").write_text(json.dumps(timeline))
    code, _, err = run(["tune", str(fresh), "--keywords", str(bare), "--keyword-free", str(files["keyword_free"])],
                       capsys)
    assert code == 2 and "['yes']" in err and "does not know" in err
    assert load_checkpoint(fresh).operating_point is None  # nothing stored


@pytest.mark.parametrize(("flags", "message"), [
    (["--keywords", "a.wav"], "together"),
    (["--false-alarms-per-hour", "nan"], "finite rate"),
    (["--false-alarms-per-hour", "-1"], "finite rate"),
])
def test_bad_flags_are_refused_before_the_checkpoint_is_read(flags, message, tmp_path, capsys):
    code, _, err = run(["tune", str(tmp_path / "missing.ckpt"), *flags], capsys)
    assert code == 2 and message in err


def test_a_json_report_over_the_checkpoint_is_refused(fresh, capsys):
    code, _, err = run(["tune", str(fresh), "--json", str(fresh)], capsys)
    assert code == 2 and "is an input" in err
    assert load_checkpoint(fresh).operating_point is None


def test_a_checkpoint_that_cannot_stream_or_data_without_streams_is_refused_in_one_line(fresh, tmp_path, capsys):
    (tmp_path / "tones.yaml").write_text(yaml.safe_dump({"data": {"class_path": "tones.ToneDataModule", "init_args": {
        "data_root": str(tmp_path / "tones")}}}))
    code, _, err = run(["tune", str(fresh), "--data", str(tmp_path / "tones.yaml")], capsys)
    assert code == 2 and "writes no streams" in err and len(err.strip().splitlines()) == 1
    main(["fit", "--config", str(tmp_path / "tones.yaml"), "--config", str(CONFIGS / "model/gru.yaml"),
          *trainer_args(CONFIGS / "trainer/cpu.yaml"), "--run_dir", str(tmp_path / "run"), "--trainer.max_epochs", "1",
          "--trainer.logger", "false", "--trainer.enable_progress_bar", "false", "--model.hidden_size", "8",
          "--model.pooling", "mean", "--test_after_fit", "false"])
    capsys.readouterr()  # the fit's progress
    code, _, err = run(["tune", str(tmp_path / "run/checkpoints/last.ckpt")], capsys)
    assert code == 2 and "pools its states with 'mean'" in err and len(err.strip().splitlines()) == 1
