import json
import sys
from pathlib import Path

import pytest
import yaml

from speechrnn.errors import SpeechRNNError, TrainingDiverged
from speechrnn.training.learning_curve import LearningCurve

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sweep_module(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import pipelines.sweep

    return pipelines.sweep


@pytest.fixture
def report_module(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import pipelines.sweep_report

    return pipelines.sweep_report


def tiny_grid(tmp_path) -> Path:
    data = {"data": {"class_path": "speechrnn.corpora.delayed.DelayedDataModule", "init_args": {
        "inner": {"class_path": "tones.ToneDataModule",
                  "init_args": {"data_root": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache")}},
        "window_s": 0.3}}}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data))
    gru = str(ROOT / "configs/model/gru.yaml")
    grid = {"data_config": str(tmp_path / "data.yaml"), "trainer_config": str(ROOT / "configs/trainer/cpu.yaml"),
            "variants": {"gru": {"config": gru, "model": {"gate_init": "default"}},
                         "gru-chrono": {"config": gru, "model": {"gate_init": "chrono"}}},
            "hidden_size": 8, "num_layers": 1, "delays_s": [0.0, 0.2], "seeds": [0],
            # a rate too small to change a prediction: val/acc stays flat, so patience 1 stops at epoch 2
            "lr_selection": {"delay_s": 0.2, "seed": 0, "learning_rates": [1e-9]},
            "capacity": {"variants": ["gru-chrono"], "hidden_sizes": [4], "delays_s": [0.2], "seeds": [0]},
            "max_epochs": 3, "patience": 1, "batch_size": 8}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    return tmp_path / "grid.yaml"


def test_sweep_stops_early_records_the_budget_and_resumes(sweep_module, tmp_path, monkeypatch):
    grid, out = tiny_grid(tmp_path), tmp_path / "sweep"
    sweep_module.main(["--grid", str(grid), "--out", str(out), "--jobs", "2"])
    results = json.loads((out / "results.json").read_text())
    runs = results["runs"]
    assert len(runs) == 2 * 2 + 1  # variants x delays, plus one capacity run
    assert all(r["patience"] == 1 and r["epochs"] == 2 and not r["hit_cap"] and r["best_epoch"] == 1
               for r in runs)
    assert all(len(r["curve"]["val_acc"]) == len(r["curve"]["train_loss"]) == 2 for r in runs)
    assert {r["total_frames"] for r in runs} == {30, 50}
    assert all(r["chrono_frames"] == r["total_frames"] for r in runs if r["variant"] == "gru-chrono")
    assert all(r["chrono_frames"] is None for r in runs if r["variant"] == "gru")
    assert max(r["parameters"] for r in runs if r["hidden_size"] == 4) < min(
        r["parameters"] for r in runs if r["hidden_size"] == 8)
    table = (out / "table.md").read_text()
    assert "| gru-chrono |" in table and "Memory capacity" in table and "T_max" in table
    for figure in ("accuracy_vs_length.png", "capacity.png", "gradients.png"):
        assert (out / figure).stat().st_size
    assert not list(out.rglob("*.partial"))

    def no_training(args, **kwargs):
        raise AssertionError(f"run repeated: {args}")

    monkeypatch.setattr(sweep_module, "run_lightning", no_training)
    sweep_module.main(["--grid", str(grid), "--out", str(out)])  # every record exists: nothing reruns
    with pytest.raises(SpeechRNNError, match=r"trained under other settings \(now --model.dropout 0.5\).*--out"):
        sweep_module.main(["--grid", str(grid), "--out", str(out), "--", "--model.dropout", "0.5"])
    edited = yaml.safe_load(grid.read_text())
    edited["max_epochs"] = 4
    grid.write_text(yaml.safe_dump(edited))
    with pytest.raises(SpeechRNNError, match=r"now --trainer.max_epochs 4"):
        sweep_module.main(["--grid", str(grid), "--out", str(out)])


def test_a_diverged_run_is_recorded_and_the_grid_goes_on(sweep_module, tmp_path, monkeypatch):
    grid_path, out = tiny_grid(tmp_path), tmp_path / "sweep"
    grid = yaml.safe_load(grid_path.read_text())
    grid["variants"].pop("gru")
    grid.pop("capacity")
    grid_path.write_text(yaml.safe_dump(grid))
    real_fit = sweep_module.run_lightning

    def diverge_at_the_longer_delay(args, **kwargs):
        if args[args.index("--data.init_args.delays_s") + 1] == "[0.2]":
            raise TrainingDiverged("training met 3 non-finite loss(es) by epoch 0", 0)
        return real_fit(args, **kwargs)

    monkeypatch.setattr(sweep_module, "run_lightning", diverge_at_the_longer_delay)
    sweep_module.main(["--grid", str(grid_path), "--out", str(out)])
    runs = {r["delay_s"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    assert runs[0.2]["diverged"] and runs[0.2]["test_acc"] is None and runs[0.2]["diverged_epoch"] == 0
    assert not runs[0.0]["diverged"] and 0 <= runs[0.0]["test_acc"] <= 1
    assert "| gru-chrono | " in (table := (out / "table.md").read_text()) and "diverged (1/1)" in table


def test_a_variant_with_its_own_rate_skips_the_selection(sweep_module, tmp_path):
    grid_path, out = tiny_grid(tmp_path), tmp_path / "sweep"
    grid = yaml.safe_load(grid_path.read_text())
    grid["variants"] = {"gru": {**grid["variants"]["gru"], "lr": 1e-9}}
    grid["lr_selection"]["learning_rates"] = []
    grid.pop("capacity")
    grid_path.write_text(yaml.safe_dump(grid))
    sweep_module.main(["--grid", str(grid_path), "--out", str(out)])
    results = json.loads((out / "results.json").read_text())
    assert results["learning_rates"] == {"gru": 1e-9}
    assert sorted(r["name"] for r in results["runs"]) == ["gru-h8-d0-lr1e-09-s0", "gru-h8-d0.2-lr1e-09-s0"]
    assert "Learning-rate selection" not in (out / "table.md").read_text()


def record(seed: int, acc: float, hit_cap: bool, variant: str = "lstm", delay_s: float = 1.0) -> dict:
    return {"variant": variant, "hidden_size": 64, "delay_s": delay_s, "lr": 0.003, "seed": seed,
            "test_acc": acc, "hit_cap": hit_cap, "epochs": 30 if hit_cap else 12, "best_epoch": 5,
            "total_frames": 90, "parameters": 1000, "chrono_frames": None}


def test_a_cell_is_marked_when_any_seed_hit_the_cap(report_module):
    records = [record(0, 0.9, False), record(1, 0.8, True), record(0, 0.2, False, delay_s=2.0)]
    summary = report_module.summarise(records, {"lstm": 0.003})
    assert report_module.accuracy_cell(summary[("lstm", 64, 1.0)]).endswith(report_module.CAP_MARK)
    assert not report_module.accuracy_cell(summary[("lstm", 64, 2.0)]).endswith(report_module.CAP_MARK)
    assert report_module.first_delay_below(summary, "lstm", 64, [1.0, 2.0]) == 2.0


def test_a_cell_prints_its_interval_clipped_to_0_100(report_module):
    records = [record(0, 0.1, False), record(1, 0.9, False), record(0, 0.8, False, delay_s=2.0),
               record(1, 0.9, False, delay_s=2.0), record(2, 1.0, False, delay_s=2.0)]
    summary = report_module.summarise(records, {"lstm": 0.003})
    assert report_module.accuracy_cell(summary[("lstm", 64, 1.0)]) == "50.0 (0.0-100.0)"  # raw: -458 to 558%
    assert report_module.accuracy_cell(summary[("lstm", 64, 2.0)]) == "90.0 (65.2-100.0)"  # t(0.975, 2) = 4.303


def test_diverged_seeds_are_counted_not_averaged(report_module):
    records = [record(0, 0.9, False), record(1, 0.7, False), {**record(2, None, False), "diverged": True},
               {**record(0, None, False, delay_s=2.0), "diverged": True}]
    summary = report_module.summarise(records, {"lstm": 0.003})
    assert summary[("lstm", 64, 1.0)]["mean"] == pytest.approx(0.8)
    assert report_module.accuracy_cell(summary[("lstm", 64, 1.0)]).endswith("(1 of 3 diverged)")
    assert report_module.accuracy_cell(summary[("lstm", 64, 2.0)]) == "diverged (1/1)"
    assert report_module.first_delay_below(summary, "lstm", 64, [1.0, 2.0]) == 2.0


def test_runs_at_a_rate_not_selected_stay_out_of_the_summary(report_module):
    records = [record(0, 0.9, False), {**record(0, 0.1, False), "lr": 0.01}]
    assert report_module.summarise(records, {"lstm": 0.003})[("lstm", 64, 1.0)]["accs"] == [0.9]


class FakeTrainer:
    def __init__(self, val_acc: float, train_loss: float):
        import torch

        self.callback_metrics = {"val/acc": torch.tensor(val_acc), "train/loss_epoch": torch.tensor(train_loss)}


def test_learning_curve_finds_the_first_best_epoch_and_the_cap():
    curve = LearningCurve()
    for acc, loss in [(0.2, 2.0), (0.6, 1.0), (0.6, 0.9), (0.5, 0.8)]:
        curve.on_train_epoch_end(FakeTrainer(acc, loss), None)
    assert curve.summary(max_epochs=4) == {"epochs": 4, "hit_cap": True, "best_epoch": 2, "curve": {
        "val_acc": pytest.approx([0.2, 0.6, 0.6, 0.5]), "train_loss": pytest.approx([2.0, 1.0, 0.9, 0.8])}}
    assert curve.summary(max_epochs=10)["hit_cap"] is False


def test_the_wandb_sweep_config_is_the_grid_file_at_every_candidate_rate(sweep_module, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_RUN_GROUP", "agents")
    grid_path = ROOT / "configs/sweep/default.yaml"
    sweep_module.main(["--grid", str(grid_path), "--out", "runs/sweep-wandb", "--wandb-config"])
    config = yaml.safe_load(capsys.readouterr().out)
    grid = yaml.safe_load(grid_path.read_text())
    names = config["parameters"]["run"]["values"]
    runs = {run.name: run for run in sweep_module.grid_runs(grid)}
    assert sorted(names) == sorted(runs) and len(names) == len(set(names))
    assert {runs[n].variant for n in names} == set(grid["variants"])
    assert {runs[n].delay_s for n in names} == {*grid["delays_s"], grid["lr_selection"]["delay_s"]}
    assert {runs[n].seed for n in names} == set(grid["seeds"])
    assert {runs[n].lr for n in names} == set(grid["lr_selection"]["learning_rates"])
    assert {runs[n].hidden_size for n in names} == {grid["hidden_size"]}
    assert len(names) == len(grid["variants"]) * len(grid["delays_s"]) * len(grid["seeds"]) * 3
    # each agent fits its run from the grid file itself: the same configs and budget as `make sweep`
    command = config["command"]
    assert command[command.index("--grid") + 1] == str(grid_path) and command[-1] == "${args}"
    args = sweep_module.fit_args(grid, runs[names[0]], 100, Path("run"))
    assert args[args.index("--trainer.max_epochs") + 1] == str(grid["max_epochs"])
    assert args[args.index("--trainer.callbacks.patience") + 1] == str(grid["patience"])
    assert (config["method"], config["metric"]) == ("grid", {"name": "val/acc", "goal": "maximize"})


def test_a_grid_with_fixed_rates_sweeps_only_those(sweep_module):
    grid = yaml.safe_load((ROOT / "configs/sweep/budget.yaml").read_text())
    runs = sweep_module.grid_runs(grid)
    assert {(r.variant, r.lr) for r in runs} == {(v, spec["lr"]) for v, spec in grid["variants"].items()}
    assert len(runs) == len(grid["variants"]) * len(grid["delays_s"]) * len(grid["seeds"])


def test_an_agents_run_is_fitted_by_name_and_recorded(sweep_module, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_RUN_GROUP", "agent")
    grid_path, out = tiny_grid(tmp_path), tmp_path / "sweep"
    name = sweep_module.grid_runs(yaml.safe_load(grid_path.read_text()))[0].name
    sweep_module.main(["--grid", str(grid_path), "--out", str(out), "--run", name])
    assert json.loads((out / "runs" / name / "record.json").read_text())["name"] == name
    with pytest.raises(SpeechRNNError, match="is not a run of"):
        sweep_module.main(["--grid", str(grid_path), "--out", str(out), "--run", "nothing"])


def test_with_wandb_disabled_a_run_fits_without_a_logger_or_wandb(sweep_module, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setitem(sys.modules, "wandb", None)  # as on a machine without wandb: importing it fails
    grid_path, out = tiny_grid(tmp_path), tmp_path / "sweep"
    name = sweep_module.grid_runs(yaml.safe_load(grid_path.read_text()))[0].name
    sweep_module.main(["--grid", str(grid_path), "--out", str(out), "--run", name])
    run_dir = out / "runs" / name
    assert json.loads((run_dir / "record.json").read_text())["test_acc"] is not None
    assert not (run_dir / "wandb").exists()
