"""``speechrnn compare --plot``: a folder gets compare.png inside, a bare name gets .png."""

from speechrnn.cli import main
from speechrnn.files import write_json


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
