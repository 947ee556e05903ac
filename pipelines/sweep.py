"""The long-range sweep: encoder variant x delay x seed (and hidden size) on the delayed-keyword task.

    python -m pipelines.sweep --grid configs/sweep/default.yaml --out runs/sweep --jobs 2 [-- EXTRA CLI ARGS]

Every run is ``speechrnn fit`` with the grid's configs: a variant is a model config plus ``--model``
overrides; ``gate_init: chrono`` gets ``chrono_frames`` = the run's total length in frames.
Budget: early stopping on ``val/acc`` (``patience`` epochs) under a cap of ``max_epochs``.
Learning rate: each variant tries every ``lr_selection.learning_rates`` on one seed at one
reference delay (main hidden size); the best validation accuracy (first of ties) is then used
for all of that variant's runs; a variant with its own ``lr`` (one another grid selected) skips
the selection. A run whose ``record.json`` exists is skipped, so an interrupted sweep resumes;
records are written atomically and hold the settings the run was trained under: a rerun under
other ones (an edited grid, other extra arguments) into the same ``--out`` is refused. ``--jobs N`` fits N runs at once in worker
processes of one torch thread each. ``pipelines/sweep_report.py`` writes the tables and figures.

On a shared CPU run it with ``OMP_NUM_THREADS=1`` (``make sweep`` does): these small recurrent
steps gain nothing from a second thread, and threads spinning against other jobs made each run
about 25 times slower in our measurements.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping
from tqdm import tqdm

from pipelines.fit_settings import check_reusable, fit_settings
from pipelines.sweep_report import write_report
from speechrnn import tracking
from speechrnn.callbacks import TrainingStability
from speechrnn.cli import exit_on_user_error, run_lightning
from speechrnn.errors import SpeechRNNError, TrainingDiverged
from speechrnn.gradients import decay_factor, initialised_copy, input_gradient_norms
from speechrnn.jsonio import write_json
from speechrnn.learning_curve import LearningCurve


@dataclass(frozen=True)
class Run:
    """One fit of the grid; its name is its folder under ``runs/`` (and its W&B run name)."""

    variant: str
    hidden_size: int
    delay_s: float
    lr: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.variant}-h{self.hidden_size}-d{self.delay_s:g}-lr{self.lr:g}-s{self.seed}"


def prepare_data(data_config: str, delays_s: list[float]) -> dict[float, int]:
    """Build the feature cache once, before runs fan out, and return each delay's length in frames.

    Parallel runs that all found the cache missing would each build it and race to rename it
    into place.
    """
    from jsonargparse import ActionConfigFile, ArgumentParser

    from speechrnn.data.datamodule import SpeechDataModule

    parser = ArgumentParser()
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_subclass_arguments(SpeechDataModule, "data")
    parser.add_argument("--model", type=dict)  # the data config's model keys are not needed here
    config = parser.parse_args(["--config", data_config, "--data.init_args.delays_s", json.dumps(delays_s)])
    data = parser.instantiate_classes(config).data
    data.prepare_data()
    return dict(zip(delays_s, data.total_frames))


def fit_args(grid: dict, run: Run, frames: int, run_dir: Path) -> list[str]:
    """``speechrnn fit`` arguments for one run."""
    variant = grid["variants"][run.variant]
    overrides = dict(variant.get("model", {}))
    if overrides.get("gate_init") == "chrono":
        overrides["chrono_frames"] = frames  # T_max: the longest dependency is the whole sequence
    return ["fit", "--config", grid["trainer_config"], "--config", variant["config"],
            "--config", grid["data_config"],
            *(arg for key, value in overrides.items() for arg in (f"--model.{key}", str(value))),
            "--data.init_args.delays_s", f"[{run.delay_s}]", "--data.init_args.seed", str(run.seed),
            "--data.init_args.batch_size", str(grid["batch_size"]), "--seed_everything", str(run.seed),
            "--model.hidden_size", str(run.hidden_size), "--model.num_layers", str(grid["num_layers"]),
            "--model.lr", str(run.lr), "--trainer.max_epochs", str(grid["max_epochs"]),
            # the trainer config's last callback is the EarlyStopping these keys set
            "--trainer.callbacks.patience", str(grid["patience"]),
            "--trainer.callbacks+=speechrnn.learning_curve.LearningCurve",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.logger.init_args.name", run.name,
            "--trainer.logger.init_args.group", os.environ["WANDB_RUN_GROUP"],
            "--trainer.logger.init_args.tags", json.dumps([run.variant, f"delay{run.delay_s:g}s"]),
            "--run_dir", str(run_dir)]


def record_path(out: Path, run: Run) -> Path:
    return out / "runs" / run.name / "record.json"


def train_one(grid: dict, out: Path, run: Run, frames: int, extra: list[str]) -> dict:
    """Fit and test one run, measure its gradient through time and write its record.

    A run whose loss turned non-finite is recorded as diverged, with no accuracy: the grid goes on.
    """
    run_dir = record_path(out, run).parent
    args = [*fit_args(grid, run, frames, run_dir), *extra]
    settings = fit_settings(args)
    try:
        cli = run_lightning(args)
    except TrainingDiverged as err:
        tracking.finish_run(exit_code=1)
        record = {**asdict(run), "name": run.name, "settings": settings, "total_frames": frames, "diverged": True,
                  "diverged_epoch": err.epoch, "val_acc": None, "test_acc": None, "hit_cap": False}
        write_json(record_path(out, run), record)
        return record
    model, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    results = json.loads((run_dir / "results.json").read_text())
    score = trainer.checkpoint_callback.best_model_score
    curve = next(c for c in trainer.callbacks if isinstance(c, LearningCurve))
    stopper = next(c for c in trainer.callbacks if isinstance(c, EarlyStopping))
    record = {**asdict(run), "name": run.name, "settings": settings, "total_frames": datamodule.total_frames[0],
              "diverged": False,
              "hop_ms": datamodule.features.hop_ms, "parameters": results["parameters"],
              "chrono_frames": model.hparams.chrono_frames, "patience": stopper.patience,
              "max_epochs": trainer.max_epochs,
              "val_acc": float(score) if score is not None and math.isfinite(score) else 0.0,
              "test_acc": results["test"]["accuracy"], "train_seconds": results["train_seconds"],
              **curve.summary(trainer.max_epochs),
              "stability": next(c.stability for c in trainer.callbacks if isinstance(c, TrainingStability)),
              **gradient_curves(model, datamodule, run.seed)}
    tracking.finish_run()
    write_json(record_path(out, run), record)
    del cli, model, datamodule, trainer
    gc.collect()
    return record


def gradient_curves(model, datamodule, seed: int) -> dict:
    """Gradient-through-time norms on the first validation batch, trained and freshly initialised."""
    batch = next(iter(datamodule.val_dataloader()))
    model = model.cpu().train()
    fresh = initialised_copy(model, seed)
    curves = {}
    for tag, net in (("init", fresh), ("trained", model)):
        norms = input_gradient_norms(net, batch.feats, batch.lengths, batch.targets)
        curves[f"grad_{tag}"] = norms.tolist()
        curves[f"decay_{tag}"] = decay_factor(norms)
    return curves


def one_thread() -> None:
    torch.set_num_threads(1)  # N workers on N cores: a second thread per worker only contends


def execute(grid: dict, out: Path, runs: list[Run], frames: dict[float, int], extra: list[str],
            jobs: int, desc: str) -> list[dict]:
    """Fit ``runs`` ``jobs`` at a time, reading back finished ones; records in the order of ``runs``.

    A finished run is reused only when trained under the settings it would be fitted with now.
    """
    runs = list(dict.fromkeys(runs))  # the same run asked for twice is fitted once
    records = {run: json.loads(record_path(out, run).read_text()) for run in runs if record_path(out, run).is_file()}
    for run, record in records.items():
        run_dir = record_path(out, run).parent
        check_reusable(run_dir, record.get("settings"),
                       fit_settings([*fit_args(grid, run, frames[run.delay_s], run_dir), *extra]), out)
    todo = [run for run in runs if run not in records]
    with tqdm(total=len(todo), unit="run", desc=desc) as progress:
        if jobs == 1:
            for run in todo:
                records[run] = train_one(grid, out, run, frames[run.delay_s], extra)
                progress.update()
        else:
            with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=one_thread) as pool:
                pending = {pool.submit(train_one, grid, out, run, frames[run.delay_s], extra): run for run in todo}
                for done in as_completed(pending):
                    records[pending[done]] = done.result()
                    progress.update()
    return [records[run] for run in runs]


def main_runs(grid: dict, lrs: dict[str, float]) -> list[Run]:
    """Every variant at the main hidden size, every delay and seed; then the capacity runs.

    Shortest delay first, every seed of every variant at each: a sweep stopped part-way still
    holds whole columns of the table, and the longest (costliest) runs come last.
    """
    runs = [Run(v, grid["hidden_size"], d, lrs[v], s)
            for d in sorted(grid["delays_s"]) for s in grid["seeds"] for v in grid["variants"]]
    capacity = grid.get("capacity")
    if capacity:
        runs += [Run(v, h, d, lrs[v], s) for v in capacity["variants"] for h in capacity["hidden_sizes"]
                 for d in capacity["delays_s"] for s in capacity["seeds"]]
    return runs


def sweep(grid: dict, out: Path, extra: list[str], jobs: int) -> tuple[list[dict], dict[str, float]]:
    """Pick each variant's learning rate, then run the grid with it."""
    selection = grid["lr_selection"]
    delays = sorted({*grid["delays_s"], selection["delay_s"], *grid.get("capacity", {}).get("delays_s", [])})
    frames = prepare_data(grid["data_config"], delays)
    fixed = {v: spec["lr"] for v, spec in grid["variants"].items() if "lr" in spec}  # chosen by another grid
    trials = [Run(v, grid["hidden_size"], selection["delay_s"], lr, selection["seed"])
              for v in grid["variants"] if v not in fixed for lr in selection["learning_rates"]]
    tried = execute(grid, out, trials, frames, extra, jobs, "learning rates")
    lrs = {v: fixed.get(v) or max((r for r in tried if r["variant"] == v), key=lambda r: r["val_acc"] or 0.0)["lr"]
           for v in grid["variants"]}  # max: the first of ties
    records = execute(grid, out, main_runs(grid, lrs), frames, extra, jobs, "sweep")
    unique = {r["name"]: r for r in tried + records}  # the chosen trial is also a main run
    return list(unique.values()), lrs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=Path, default=Path("configs/sweep/default.yaml"))
    parser.add_argument("--out", type=Path, default=Path("runs/sweep"))
    parser.add_argument("--jobs", type=int, default=1, help="fits at once, each in its own process")
    parser.add_argument("extra", nargs="*", help="arguments passed to every `speechrnn fit` (after --)")
    args = parser.parse_args(argv)
    if not args.grid.is_file():
        raise SpeechRNNError(f"sweep grid {args.grid} not found; see configs/sweep/default.yaml")
    if args.jobs < 1:
        raise SpeechRNNError(f"--jobs must be at least 1, got {args.jobs}")
    grid = yaml.safe_load(args.grid.read_text())
    tracking.default_wandb_mode()
    os.environ.setdefault("WANDB_RUN_GROUP", f"sweep-{args.out.name}")  # one W&B group for all runs
    args.out.mkdir(parents=True, exist_ok=True)
    records, lrs = sweep(grid, args.out, args.extra, args.jobs)
    write_report(records, lrs, grid, args.out)
    print((args.out / "table.md").read_text())


if __name__ == "__main__":
    exit_on_user_error(main)
