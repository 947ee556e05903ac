import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sweep_module(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import pipelines.sweep

    return pipelines.sweep


def tiny_grid(tmp_path) -> Path:
    data = {"data": {"class_path": "speechrnn.data.delayed.DelayedDataModule", "init_args": {
        "inner": {"class_path": "tones.ToneDataModule",
                  "init_args": {"data_root": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache")}},
        "window_s": 0.3}}}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data))
    grid = {"data_config": str(tmp_path / "data.yaml"), "trainer_config": str(ROOT / "configs/trainer/cpu.yaml"),
            "encoders": {"gru": str(ROOT / "configs/model/gru.yaml")}, "hidden_sizes": [8], "num_layers": 1,
            "delays_s": [0.0, 0.2], "seeds": [0, 1], "learning_rates": [0.01], "clips": [1.0, 0.0],
            "clip_seeds": [0], "max_epochs": 1, "batch_size": 8}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    return tmp_path / "grid.yaml"


def test_sweep_writes_table_plot_and_results_and_resumes(sweep_module, tmp_path, monkeypatch):
    grid, out = tiny_grid(tmp_path), tmp_path / "sweep"
    sweep_module.main(["--grid", str(grid), "--out", str(out)])
    results = json.loads((out / "results.json").read_text())
    assert len(results["runs"]) == 6  # 2 delays x (2 seeds + 1 run without clipping)
    assert {run["total_frames"] for run in results["runs"]} == {30, 50}
    assert [len(point["accs"]) for point in results["summary"]["gru"].values()] == [2, 2]
    assert all("grad_spikes" in run["stability"] and run["decay_trained"] > 0 for run in results["runs"])
    table = (out / "table.md").read_text()
    assert "| gru |" in table and "| clip 1 | clip 0 |" in table
    assert (out / "accuracy_vs_length.png").stat().st_size and (out / "gradients.png").stat().st_size

    def no_training(args):
        raise AssertionError(f"run repeated: {args}")

    monkeypatch.setattr(sweep_module, "run_lightning", no_training)
    sweep_module.main(["--grid", str(grid), "--out", str(out)])  # every record exists: nothing reruns
