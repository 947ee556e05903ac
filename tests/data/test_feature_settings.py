"""Feature settings that are not finite are refused when the data module is built, in one line."""

import pytest

from pipelines.configs import CONFIGS, trainer_args
from speechrnn.cli import main
from speechrnn.data.features import FeatureSettings
from speechrnn.errors import SpeechRNNError


@pytest.mark.parametrize("floor_db", [float("inf"), float("nan"), 0.0])
def test_a_floor_that_is_not_a_finite_positive_number_is_refused(floor_db):
    """An infinite floor once trained as no floor, while stream and export refused it."""
    with pytest.raises(SpeechRNNError, match=f"floor_db is {floor_db}; it must be a number > 0"):
        FeatureSettings(floor_db=floor_db)


@pytest.mark.parametrize(("option", "value"), [("--data.floor_db", ".inf"), ("--data.hop_ms", ".inf")])
def test_fit_with_an_infinite_feature_setting_ends_in_one_line(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", *trainer_args(CONFIGS / "trainer/cpu.yaml"), "--data", "tones.ToneDataModule",
              "--data.data_root", str(tmp_path / "data"), "--data.cache_dir", str(tmp_path / "cache"),
              "--run_dir", str(tmp_path / "run"), option, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and f"{option.rsplit('.', 1)[1]} is inf" in err[0], err
    assert not (tmp_path / "cache").exists()
