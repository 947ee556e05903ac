import json
import math

import pytest

from speechrnn.cli import main


def results(cell: str, accuracy: float, buckets: list[list]) -> dict:
    """A results.json as ``speechrnn fit`` writes it (empty buckets hold NaN)."""
    return {"cell": cell, "dataset": "tones", "task": "keyword", "hop_ms": 10.0,
            "test": {"accuracy": accuracy, "edges": [50, 100], "buckets": buckets}}


@pytest.fixture
def runs(tmp_path):
    for cell, accuracy, rows in [("gru", 0.9, [["0000-0050", 10, 1.0], ["0050-0100", 10, 0.8], ["0100-inf", 0, math.nan]]),
                                 ("rnn", 0.6, [["0000-0050", 10, 0.9], ["0050-0100", 10, 0.3], ["0100-inf", 0, math.nan]])]:
        (tmp_path / cell).mkdir()
        (tmp_path / cell / "results.json").write_text(json.dumps(results(cell, accuracy, rows)))
    report = {"cell": "lstm", "dataset": "folder", "task": "keyword", "hop_ms": 10.0, "split": "validation",
              "validation": {"accuracy": 0.75, "edges": [30], "buckets": [["0000-0030", 4, 0.5], ["0030-inf", 4, 1.0]]}}
    (tmp_path / "lstm_eval.json").write_text(json.dumps(report))
    return tmp_path


def test_compare_prints_one_table_and_writes_one_plot(runs, capsys):
    main(["compare", str(runs / "gru"), str(runs / "rnn" / "results.json"), str(runs / "lstm_eval.json"),
          "--plot", str(runs / "compare.png")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["gru", "rnn", "lstm_eval"]
    assert lines[2].split() == ["accuracy", "90.0%", "60.0%", "75.0%"]
    rows = {line.split()[1]: line for line in lines if line.startswith("len ")}
    assert list(rows) == ["0000-0030", "0000-0050", "0030-inf", "0050-0100", "0100-inf"]
    assert rows["0050-0100"].split()[2:] == ["80.0%", "(10)", "30.0%", "(10)"]
    assert rows["0100-inf"].split()[2:] == ["-", "(0)", "-", "(0)"]
    assert (runs / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_runs_with_the_same_name_each_keep_a_line(runs, capsys):
    main(["compare", str(runs / "gru"), str(runs / "gru"), "--plot", str(runs / "same.png")])
    assert capsys.readouterr().out.splitlines()[0].split() == ["gru", "gru-2"]


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing", "results.json not found"),
    (lambda d: (d / "x.json").write_text("{}") and d / "x.json", "is not a speechrnn results file"),
    (lambda d: (d / "y.json").write_text("not json") and d / "y.json", "is not a speechrnn results file"),
])
def test_a_run_without_results_is_named(tmp_path, capsys, make, message):
    (tmp_path / "missing").mkdir()
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(make(tmp_path)), "--plot", str(tmp_path / "c.png")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "c.png").exists()
