"""`pipelines.loso_ensemble` refuses an --out it cannot write, or one it reads, before scoring."""

import pytest

from pipelines import loso_ensemble
from speechrnn.errors import SpeechRNNError


@pytest.mark.parametrize(("out", "message"), [
    ("a_file", "--out {tmp}/a_file is a file, not a folder"),
    ("a_file/ens", "--out {tmp}/a_file/ens lies under {tmp}/a_file, which is a file"),
    ("run", "--out {tmp}/run is one of the runs it reads"),
])
def test_an_out_that_cannot_hold_the_results_is_refused_before_any_scoring(tmp_path, out, message):
    (tmp_path / "a_file").write_text("kept")
    (tmp_path / "run").mkdir()  # no finished fold: scoring would fail with another message
    with pytest.raises(SpeechRNNError, match=message.format(tmp=tmp_path)):
        loso_ensemble.main([str(tmp_path / "run"), "--out", str(tmp_path / out), "--tta-warps", "0.9", "1.1"])
    assert (tmp_path / "a_file").read_text() == "kept" and list((tmp_path / "run").iterdir()) == []
