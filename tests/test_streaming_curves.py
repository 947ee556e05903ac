import json

import pytest

from pipelines.streaming_curves import main
from speechrnn.errors import SpeechRNNError


def results(path, spotter: str) -> str:
    curve = [[0.5, 0.6, 40.0], [0.9, 0.3, 2.0], [0.99, 0.1, 0.0]]  # threshold, detection rate, false alarms / h
    path.write_text(json.dumps({"cells": {spotter: {"test": {"curve": curve}}}}))
    return str(path)


def test_one_line_per_named_spotter_of_any_run(tmp_path):
    first, second = results(tmp_path / "a.json", "gru"), results(tmp_path / "b.json", "gru+mined1")
    written = main(["--out", str(tmp_path / "curves.png"), f"base={first}:gru", f"mined={second}:gru+mined1"])
    assert written == tmp_path / "curves.png" and written.stat().st_size > 0


def test_a_spotter_the_run_lacks_is_refused_naming_those_it_holds(tmp_path):
    source = results(tmp_path / "a.json", "gru")
    with pytest.raises(SpeechRNNError, match=r"holds no spotter 'lstm'; it holds \['gru'\]"):
        main(["--out", str(tmp_path / "c.png"), f"x={source}:lstm"])
    with pytest.raises(SpeechRNNError, match="is not NAME=RESULTS_JSON:SPOTTER"):
        main(["--out", str(tmp_path / "c.png"), source])
