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

The same grid as a W&B sweep, its runs spread over any number of machines (each learning rate
of the selection is fitted everywhere, and chosen afterwards from ``val/acc``)::

    python -m pipelines.sweep --grid configs/sweep/default.yaml --wandb-config > sweep.yaml
    wandb sweep sweep.yaml    # then, on each machine: wandb agent <entity/project/id>

``WANDB_MODE=disabled`` fits every run without a W&B logger (on a GPU machine without ``wandb``,
add ``-- --trainer.accelerator gpu``).

On a shared CPU run it with ``OMP_NUM_THREADS=1`` (``make sweep`` does): these small recurrent
steps gain nothing from a second thread, and threads spinning against other jobs made each run
about 25 times slower in our measurements.
"""

from __future__ import annotations

import gc
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping
from tqdm import tqdm

from pipelines.configs import recipe_args, trainer_args
from pipelines.fit_settings import check_reusable, fit_settings
from pipelines.sweep_report import write_report
from speechrnn.cli import exit_on_user_error, run_lightning
from speechrnn.data.pipeline import build_data_module
from speechrnn.errors import SpeechRNNError, TrainingDiverged
from speechrnn.files import write_json
from speechrnn.models.gradient_decay import decay_factor, initialised_copy, input_gradient_norms
from speechrnn.options import Parser, number
from speechrnn.training import tracking
from speechrnn.training.callbacks import TrainingStability
from speechrnn.training.learning_curve import LearningCurve
from speechrnn.training.runlock import RunLock


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
    data = build_data_module(data_config, delays_s=delays_s)
    data.prepare_data()
    return dict(zip(delays_s, data.total_frames))


def fit_args(grid: dict, run: Run, frames: int, run_dir: Path) -> list[str]:
    """``speechrnn fit`` arguments for one run."""
    variant = grid["variants"][run.variant]
    overrides = dict(variant.get("model", {}))
    if overrides.get("gate_init") == "chrono":
        overrides["chrono_frames"] = frames  # T_max: the longest dependency is the whole sequence
    return ["fit", *trainer_args(grid["trainer_config"]), "--config", variant["config"],
            *recipe_args(grid["data_config"]),
            *(arg for key, value in overrides.items() for arg in (f"--model.{key}", str(value))),
            "--data.init_args.delays_s", f"[{run.delay_s}]", "--data.init_args.seed", str(run.seed),
            "--data.init_args.batch_size", str(grid["batch_size"]), "--seed_everything", str(run.seed),
            "--model.hidden_size", str(run.hidden_size), "--model.num_layers", str(grid["num_layers"]),
            "--model.lr", str(run.lr), "--trainer.max_epochs", str(grid["max_epochs"]),
            # the trainer config's last callback is the EarlyStopping these keys set
            "--trainer.callbacks.patience", str(grid["patience"]),
            "--trainer.callbacks+=speechrnn.training.learning_curve.LearningCurve",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            *logger_args(run), "--run_dir", str(run_dir)]


def logger_args(run: Run) -> list[str]:
    """The run's W&B name, group and tags; with ``WANDB_MODE=disabled``, no logger at all, so a
    machine without ``wandb`` installed can run the grid."""
    if os.environ.get("WANDB_MODE") == "disabled":
        return ["--trainer.logger", "false"]
    return ["--trainer.logger.init_args.name", run.name,
            "--trainer.logger.init_args.group", os.environ["WANDB_RUN_GROUP"],
            "--trainer.logger.init_args.tags", json.dumps([run.variant, f"delay{run.delay_s:g}s"])]


def record_path(out: Path, run: Run) -> Path:
    return out / "runs" / run.name / "record.json"


def train_one(grid: dict, out: Path, run: Run, frames: int, extra: list[str]) -> dict:
    """Fit and test one run under its folder's lock, from the fit to its record (see fit_and_record)."""
    with RunLock(record_path(out, run).parent, flag="--out") as lock:
        return fit_and_record(grid, out, run, frames, extra, lock)


def fit_and_record(grid: dict, out: Path, run: Run, frames: int, extra: list[str], lock: RunLock) -> dict:
    """Fit and test one run, measure its gradient through time and write its record.

    A run whose loss turned non-finite is recorded as diverged, with no accuracy: the grid goes on.
    """
    run_dir = record_path(out, run).parent
    args = [*fit_args(grid, run, frames, run_dir), *extra]
    settings = fit_settings(args)
    try:
        cli = run_lightning(args, run_lock=lock)
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


def grid_runs(grid: dict) -> list[Run]:
    """Every run the grid may fit, at every learning rate its variant may be given: each variant's
    selection trials and, at each candidate rate, its main and capacity runs.

    ``sweep`` fits the main runs at the selected rate only; a W&B sweep cannot wait for that choice,
    so it fits them all and the rate is read off ``val/acc`` afterwards.
    """
    selection = grid["lr_selection"]
    rates = {v: [spec["lr"]] if "lr" in spec else selection["learning_rates"] for v, spec in grid["variants"].items()}
    trials = [Run(v, grid["hidden_size"], selection["delay_s"], 0.0, selection["seed"])
              for v, spec in grid["variants"].items() if "lr" not in spec]
    every = main_runs(grid, dict.fromkeys(grid["variants"], 0.0))  # every run, its rate to be set
    return list(dict.fromkeys(replace(run, lr=lr) for run in trials + every for lr in rates[run.variant]))


def wandb_sweep_config(grid: dict, grid_path: Path, out: Path) -> dict:
    """A W&B sweep of the grid file ``grid_path``: ``wandb sweep`` it, then ``wandb agent`` it on any
    number of machines. Each agent's run is ``python -m pipelines.sweep --run <name>``, one run of
    :func:`grid_runs`, so it is fitted as ``sweep`` fits it (configs, budget, chrono's T_max).
    """
    return {
        "program": "pipelines/sweep.py",
        "command": ["${env}", "${interpreter}", "-m", "pipelines.sweep", "--grid", str(grid_path),
                    "--out", str(out), "${args}"],
        "method": "grid",
        "metric": {"name": "val/acc", "goal": "maximize"},
        "parameters": {"run": {"values": [run.name for run in grid_runs(grid)]}},
    }


def fit_named_run(grid: dict, grid_path: Path, out: Path, name: str, extra: list[str]) -> dict:
    """Fit the one run of the grid called ``name`` (a W&B agent's), unless its record exists."""
    runs = {run.name: run for run in grid_runs(grid)}
    if name not in runs:
        raise SpeechRNNError(f"--run {name} is not a run of {grid_path}; its runs are named like "
                             f"{next(iter(runs))} (python -m pipelines.sweep --grid {grid_path} --wandb-config)")
    run = runs[name]
    frames = prepare_data(grid["data_config"], [run.delay_s])
    return execute(grid, out, [run], frames, extra, 1, name)[0]


def main(argv: list[str] | None = None) -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=Path, default=Path("configs/sweep/default.yaml"))
    parser.add_argument("--out", type=Path, default=Path("runs/sweep"))
    parser.add_argument("--jobs", type=number(1, 256, integer=True), default=1, help="fits at once, each in its own process")
    parser.add_argument("--wandb-config", action="store_true",
                        help="print the grid as a W&B sweep config (YAML) and exit: "
                        "`wandb sweep` it, then `wandb agent <id>` on each machine")
    parser.add_argument("--run", help="fit only this run of the grid (what a W&B agent asks for)")
    parser.add_argument("extra", nargs="*", help="arguments passed to every `speechrnn fit` (after --)")
    args = parser.parse_args(argv)
    if not args.grid.is_file():
        raise SpeechRNNError(f"sweep grid {args.grid} not found; see configs/sweep/default.yaml")
    grid = yaml.safe_load(args.grid.read_text())
    if args.wandb_config:
        print(yaml.safe_dump(wandb_sweep_config(grid, args.grid, args.out), sort_keys=False), end="")
        return
    tracking.default_wandb_mode()
    os.environ.setdefault("WANDB_RUN_GROUP", f"sweep-{args.out.name}")  # one W&B group for all runs
    args.out.mkdir(parents=True, exist_ok=True)
    if args.run:
        fit_named_run(grid, args.grid, args.out, args.run, args.extra)
        return
    records, lrs = sweep(grid, args.out, args.extra, args.jobs)
    write_report(records, lrs, grid, args.out)
    print((args.out / "table.md").read_text())


if __name__ == "__main__":
    exit_on_user_error(main)
