"""`pipelines.loso` arguments it cannot use end in one line before any fold trains."""

import pytest

from pipelines import loso
from speechrnn.errors import SpeechRNNError
from tones import write_digits


@pytest.mark.parametrize(("args", "message"), [
    (["--cells", "gru", "bogus"], r"argument --cells: invalid choice: 'bogus'"),
    (["--data", "missing.yaml"], r"--data missing.yaml not found"),
    (["--speakers", "ann", "ann"], r"--speakers ann ann names a speaker twice"),
    (["--speakers", "ann", "zed", "--train_speakers", "1"], r"--speakers zed is not a speaker of the corpus"),
    (["--distill_weight", "nan"], r"--distill_weight: nan is not a number in \(0, 1\]"),
])
def test_unusable_arguments_are_refused_before_any_fold_trains(tmp_path, args, message):
    write_digits(tmp_path / "data")
    out = tmp_path / "loso"
    with pytest.raises(SpeechRNNError, match=message) as refused:
        loso.main(["--out", str(out), "--data_root", str(tmp_path / "data"), *args])
    assert "\n" not in str(refused.value)
    assert not (out / "gru").exists() and not (out / "results.json").exists()
