import json
import math

from benchmarks import graph_rtf


def test_graph_rtf_measures_the_graph_and_the_python_front_end_on_a_second_of_audio(tmp_path, capsys):
    assert graph_rtf.main(["--seconds", "1", "--fsdd_root", str(tmp_path), "--out", str(tmp_path / "rtf.json")]) == 0
    figures = json.loads((tmp_path / "rtf.json").read_text())
    assert figures["audio_s"] == 1.0 and set(figures["rtf"]) == {"graph", "python+step"}
    assert all(math.isfinite(value) and value > 0 for value in figures["rtf"].values())
    assert "graph        RTF" in capsys.readouterr().out
