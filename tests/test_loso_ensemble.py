"""The ensemble over leave-one-speaker-out runs, on a tiny generated FSDD-style tree."""

import json
import shutil
from pathlib import Path

import pytest

from speechrnn.errors import SpeechRNNError
from tones import write_digits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def finished_run(tmp_path, monkeypatch):
    """A finished two-fold GRU run (ann and bob held out) in ``tmp_path/run``."""
    monkeypatch.syspath_prepend(str(ROOT))
    from pipelines import loso

    write_digits(tmp_path / "data")
    loso.main(["--out", str(tmp_path / "run"), "--cells", "gru", "--data_root", str(tmp_path / "data"),
               "--speakers", "ann", "bob", "--epochs", "1", f"--data.init_args.cache_dir={tmp_path / 'cache'}",
               "--data.init_args.batch_size=8", "--model.hidden_size=8", "--model.num_layers=1"])
    return tmp_path / "run"


def test_members_are_rescored_as_reported_and_an_ensemble_of_copies_changes_nothing(finished_run, tmp_path):
    from pipelines import loso_ensemble

    shutil.copytree(finished_run, tmp_path / "copy")
    loso_ensemble.main([str(finished_run), str(tmp_path / "copy"), "--out", str(tmp_path / "ens")])
    summary = json.loads((tmp_path / "ens" / "results.json").read_text())["summary"]
    reported = {s: json.loads((finished_run / "gru" / s / "results.json").read_text())["test"]["accuracy"]
                for s in ("ann", "bob")}
    for name in ("run", "copy", "ensemble"):
        assert summary[name]["speakers"] == pytest.approx(reported, abs=1e-6)
    assert "ensemble" in (tmp_path / "ens" / "table.md").read_text()


def test_a_member_that_no_longer_scores_what_it_reported_is_refused(finished_run, tmp_path):
    from pipelines import loso_ensemble

    shutil.copytree(finished_run, tmp_path / "copy")
    results = tmp_path / "copy" / "gru" / "bob" / "results.json"
    fold = json.loads(results.read_text())
    fold["test"]["accuracy"] = 1.5  # as if the data had changed since
    results.write_text(json.dumps(fold))
    with pytest.raises(SpeechRNNError, match=r"copy/gru/bob: .* results.json says 1.5000"):
        loso_ensemble.main([str(finished_run), str(tmp_path / "copy"), "--out", str(tmp_path / "ens")])

    shutil.rmtree(tmp_path / "copy" / "gru" / "bob")
    with pytest.raises(SpeechRNNError, match="the same folds in every run"):
        loso_ensemble.main([str(finished_run), str(tmp_path / "copy"), "--out", str(tmp_path / "ens")])
    assert not (tmp_path / "ens").exists()


def test_members_of_other_cells_are_read_from_the_folder_named_per_run(finished_run, tmp_path):
    from pipelines import loso_ensemble

    shutil.copytree(finished_run / "gru", tmp_path / "other" / "lstm")  # the same folds under another cell's name
    loso_ensemble.main([str(finished_run), str(tmp_path / "other"), "--cell", "gru", "lstm",
                        "--out", str(tmp_path / "ens")])
    results = json.loads((tmp_path / "ens" / "results.json").read_text())
    assert results["cells"] == ["gru", "lstm"]
    assert results["summary"]["other"]["speakers"] == results["summary"]["run"]["speakers"]
    with pytest.raises(SpeechRNNError, match="one cell for all, or one per run"):
        loso_ensemble.main([str(finished_run), str(tmp_path / "other"), "--cell", "gru", "lstm", "rnn",
                            "--out", str(tmp_path / "ens2")])


def test_one_run_is_rescored_under_test_time_warps_and_warps_of_one_change_nothing(finished_run, tmp_path):
    from pipelines import loso_ensemble

    loso_ensemble.main([str(finished_run), "--out", str(tmp_path / "tta"), "--tta-warps", "1.0",
                        "--tta-choice", "mean", "utterance", "speaker"])
    results = json.loads((tmp_path / "tta" / "results.json").read_text())
    reported = {s: json.loads((finished_run / "gru" / s / "results.json").read_text())["test"]["accuracy"]
                for s in ("ann", "bob")}
    assert list(results["summary"]) == ["run", "run tta-mean", "run tta-utterance", "run tta-speaker"]
    for result in results["summary"].values():
        assert result["speakers"] == pytest.approx(reported, abs=1e-6)
    assert results["tta"] == {"warps": [1.0], "tempos": [1.0], "choices": ["mean", "utterance", "speaker"]}


def test_test_time_warps_score_every_member_and_the_ensemble_of_their_variants(finished_run, tmp_path):
    from pipelines import loso_ensemble

    shutil.copytree(finished_run, tmp_path / "copy")
    loso_ensemble.main([str(finished_run), str(tmp_path / "copy"), "--out", str(tmp_path / "ens"),
                        "--tta-warps", "0.8", "1.25", "--tta-tempos", "0.9", "1.1"])
    summary = json.loads((tmp_path / "ens" / "results.json").read_text())["summary"]
    assert list(summary) == ["run", "run tta-mean", "copy", "copy tta-mean", "ensemble", "ensemble tta-mean"]
    assert summary["run tta-mean"] == summary["copy tta-mean"] == summary["ensemble tta-mean"]
    assert "ensemble tta-mean" in (tmp_path / "ens" / "table.md").read_text()


def test_one_run_without_test_time_augmentation_and_a_warp_not_above_zero_are_refused(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from pipelines import loso_ensemble

    with pytest.raises(SpeechRNNError, match="two or more runs, got 1; .*--tta-warps"):
        loso_ensemble.main([str(tmp_path / "run"), "--out", str(tmp_path / "ens")])
    with pytest.raises(SpeechRNNError, match=r"argument --tta-warps: 0 is not a number in \[0.5, 2\]"):
        loso_ensemble.main([str(tmp_path / "run"), "--out", str(tmp_path / "ens"), "--tta-warps", "0.9", "0"])
    assert not (tmp_path / "ens").exists()
