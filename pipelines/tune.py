"""Tune every cell alike: the same recipes, the same budget, selected by validation accuracy.

    python -m pipelines.tune --grid configs/tune/fsdd.yaml --out runs/tune [-- EXTRA CLI ARGS]
    make tune    # FSDD, read from FSDD_ROOT

A corpus's default recipe is usually tuned for one cell; comparing cells under it measures the
recipe as much as the cells. Here each cell fits every recipe of the grid (a recipe is a set of
``--data.init_args`` and ``--model`` overrides on the corpus's default, ``default: {}`` being the
default itself) on the selection seed; the recipe with the best validation accuracy is the cell's
(the first listed of ties, so the default wins a tie). The test split is never looked at to choose.
Then the default and the chosen recipe are fitted on every seed of the grid, and each is reported
as the mean test accuracy with a 95% t-interval over seeds, beside the epochs used under early
stopping (``patience`` epochs without gain, under a ``max_epochs`` cap a run should not reach).

Every fit is ``speechrnn fit`` with the data config and its experiment file, ``configs/model/<cell>.yaml``
and the trainer config. A fit whose ``record.json`` exists is not run again, so an interrupted run
resumes; records hold the settings the fit was trained under, and a rerun under other ones (an
edited grid or config file, other extra arguments) into the same ``--out`` is refused.
``results.json`` and ``table.md`` are written whole or not at all.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from pipelines.configs import CONFIGS, recipe_args, trainer_args
from pipelines.fit_settings import check_reusable, fit_recorded, fit_settings
from speechrnn.cli import exit_on_user_error
from speechrnn.errors import SpeechRNNError
from speechrnn.files import atomic_write, write_json
from speechrnn.options import Parser
from speechrnn.reports import percent
from speechrnn.stats import t_interval
from speechrnn.training import tracking
from speechrnn.training.learning_curve import LearningCurve
from speechrnn.training.runlock import RunLock

DEFAULT = "default"  # the recipe with no overrides: the corpus's own


def recipe_flags(recipe: dict) -> list[str]:
    """``--data.init_args.KEY=VALUE`` and ``--model.KEY=VALUE`` for a recipe's overrides.

    Lists and numbers go as JSON; a string goes bare, since a quoted one is not a choice's name.
    """
    prefixes = {"data": "--data.init_args.", "model": "--model."}
    unknown = set(recipe) - set(prefixes)
    if unknown:
        raise SpeechRNNError(f"a tuning recipe sets {', '.join(sorted(unknown))}; only data and model keys are tuned")
    return [f"{prefixes[part]}{key}={value if isinstance(value, str) else json.dumps(value)}"
            for part, keys in recipe.items() for key, value in keys.items()]


def fit_args(grid: dict, cell: str, recipe: str, seed: int, run_dir: Path) -> list[str]:
    """``speechrnn fit`` arguments of one cell under one recipe and seed."""
    return ["fit", *recipe_args(grid["data_config"]), "--config", str(CONFIGS / f"model/{cell}.yaml"),
            *trainer_args(grid["trainer_config"]), *recipe_flags(grid["recipes"][recipe]),
            "--seed_everything", str(seed), "--data.init_args.seed", str(seed),
            "--trainer.max_epochs", str(grid["max_epochs"]),
            # the trainer config's last callback is the EarlyStopping this sets
            "--trainer.callbacks.patience", str(grid["patience"]),
            "--trainer.callbacks+=speechrnn.training.learning_curve.LearningCurve",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
            "--trainer.logger.init_args.name", run_dir.name,
            "--trainer.logger.init_args.group", os.environ.get("WANDB_RUN_GROUP", "tune"),
            "--run_dir", str(run_dir)]


def train_one(args: list[str], record_path: Path, **names) -> dict:
    """Fit, test and record one run: validation accuracy of its best checkpoint, test accuracy, epochs."""
    with RunLock(record_path.parent, flag="--out") as lock:  # from the fit to its record
        trainer = fit_recorded(record_path.parent, args, lock).trainer
        results = json.loads((record_path.parent / "results.json").read_text())
        curve = next(c for c in trainer.callbacks if isinstance(c, LearningCurve))
        record = {**names, "settings": fit_settings(args), "val_acc": float(trainer.checkpoint_callback.best_model_score),
                  "test_acc": results["test"]["accuracy"], "train_seconds": results["train_seconds"],
                  "max_epochs": trainer.max_epochs, **curve.summary(trainer.max_epochs)}
        tracking.finish_run()
        write_json(record_path, record)
    return record


def execute(grid: dict, out: Path, runs: list[tuple[str, str, int]], extra: list[str], desc: str) -> dict:
    """Fit each ``(cell, recipe, seed)`` of ``runs`` not yet recorded; every record by its key.

    Every finished run is checked against the settings it would be fitted with now before any fits.
    """
    plan = {}
    for cell, recipe, seed in dict.fromkeys(runs):
        run_dir = out / "runs" / f"{cell}-{recipe}-s{seed}"
        plan[cell, recipe, seed] = (run_dir / "record.json", [*fit_args(grid, cell, recipe, seed, run_dir), *extra])
    records = {}
    for key, (path, args) in plan.items():
        if path.is_file():
            records[key] = json.loads(path.read_text())
            check_reusable(path.parent, records[key].get("settings"), fit_settings(args), out)
    todo = [key for key in plan if key not in records]
    for key in tqdm(todo, unit="fit", desc=desc):
        cell, recipe, seed = key
        records[key] = train_one(plan[key][1], plan[key][0], cell=cell, recipe=recipe, seed=seed)
    return records


def select(records: dict, cell: str, recipes: list[str], seed: int) -> str:
    """The recipe with the best validation accuracy for ``cell`` on ``seed``; the first listed of ties."""
    return max(recipes, key=lambda recipe: (records[cell, recipe, seed]["val_acc"], -recipes.index(recipe)))


def over_seeds(runs: list[dict]) -> dict:
    """Test accuracy over seeds (mean, 95% t-interval), validation accuracy and epochs of each seed."""
    mean, low, high = t_interval([run["test_acc"] for run in runs])
    return {"seeds": [run["seed"] for run in runs], "test_acc": [run["test_acc"] for run in runs],
            "mean": mean, "ci95": [low, high], "val_acc": [run["val_acc"] for run in runs],
            "epochs": [run["epochs"] for run in runs], "best_epoch": [run["best_epoch"] for run in runs],
            "hit_cap": any(run["hit_cap"] for run in runs),
            "train_seconds": sum(run["train_seconds"] or 0 for run in runs)}


def summarise(grid: dict, records: dict) -> dict:
    """Per cell: the recipe chosen, and the default and the chosen recipe over the grid's seeds."""
    recipes, seed = list(grid["recipes"]), grid["seeds"][0]
    summary = {}
    for cell in grid["cells"]:
        best = select(records, cell, recipes, seed)
        summary[cell] = {"selected": best,
                         "selection": {recipe: {key: records[cell, recipe, seed][key] for key in
                                                ("val_acc", "test_acc", "epochs", "best_epoch", "hit_cap")}
                                       for recipe in recipes},
                         **{name: over_seeds([records[cell, recipe, s] for s in grid["seeds"]])
                            for name, recipe in ((DEFAULT, DEFAULT), ("best", best))}}
    return summary


def interval(result: dict) -> str:
    low, high = result["ci95"]
    spread = f" ({percent(low)}-{percent(high)})" if len(result["seeds"]) > 1 else ""
    return f"{percent(result['mean'])}{spread}"


def numbers(values: list) -> str:
    return " / ".join(percent(v) if isinstance(v, float) else str(v) for v in values)


def tables(grid: dict, summary: dict) -> str:
    """Markdown: each cell at the default and at its best recipe, then every recipe on the selection seed."""
    seeds = ", ".join(str(seed) for seed in grid["seeds"])
    head = ["cell", "recipe", f"test acc, mean (95% CI), seeds {seeds}", "per seed", "val acc per seed",
            "epochs used (best epoch)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell, result in summary.items():
        for name in (DEFAULT, "best"):
            row = result[name]
            recipe = DEFAULT if name == DEFAULT else f"best: {result['selected']}"
            epochs = " / ".join(f"{e} ({b})" for e, b in zip(row["epochs"], row["best_epoch"]))
            lines.append(f"| {cell} | {recipe} | {interval(row)} | {numbers(row['test_acc'])} | "
                         f"{numbers(row['val_acc'])} | {epochs}{' (cap)' if row['hit_cap'] else ''} |")
    recipes = list(grid["recipes"])
    selection = [f"Selection, seed {grid['seeds'][0]}: val acc / test acc (epochs used); **bold**: chosen by val acc",
                 "", "| cell | " + " | ".join(recipes) + " |", "|" + "---|" * (len(recipes) + 1)]
    for cell, result in summary.items():
        cells = []
        for recipe in recipes:
            run = result["selection"][recipe]
            text = f"{percent(run['val_acc'])} / {percent(run['test_acc'])} ({run['epochs']})"
            cells.append(f"**{text}**" if recipe == result["selected"] else text)
        selection.append(f"| {cell} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", *selection])


def write_report(out: Path, grid: dict, summary: dict, extra: list[str], fit_seconds: float) -> str:
    """``results.json`` and ``table.md`` in ``out``, each written whole or not at all.

    ``fit_seconds``: the training time of every fit, summed, however many invocations it took.
    """
    write_json(out / "results.json", {"grid": grid, "extra": extra, "fit_seconds": fit_seconds, "cells": summary})
    table = f"{tables(grid, summary)}\n\nTraining time of all {len(grid['cells'])} cells' fits: {fit_seconds / 60:.0f} min"
    with atomic_write(out / "table.md") as tmp:
        tmp.write_text(table + "\n")
    return table


def tune(grid: dict, out: Path, extra: list[str]) -> tuple[dict, float]:
    """Select each cell's recipe on the first seed, then fit the default and the selected on every seed.

    Returns the summary and the training seconds of all fits.
    """
    recipes, seeds = list(grid["recipes"]), grid["seeds"]
    if DEFAULT not in recipes:
        raise SpeechRNNError(f"the tuning grid has no {DEFAULT!r} recipe ({{}}: the corpus's own) to compare against")
    # recipe by recipe, every cell at each: a run stopped part-way has compared the cells on some
    trials = [(cell, recipe, seeds[0]) for recipe in recipes for cell in grid["cells"]]
    records = execute(grid, out, trials, extra, "selection")
    chosen = {cell: select(records, cell, recipes, seeds[0]) for cell in grid["cells"]}
    repeats = [(cell, recipe, seed) for seed in seeds[1:] for cell in grid["cells"]
               for recipe in dict.fromkeys((DEFAULT, chosen[cell]))]
    records |= execute(grid, out, repeats, extra, "seeds")
    return summarise(grid, records), sum(record["train_seconds"] or 0 for record in records.values())


def main(argv: list[str] | None = None) -> Path:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=Path, default=CONFIGS / "tune/fsdd.yaml")
    parser.add_argument("--out", type=Path, default=Path("runs/tune"))
    parser.add_argument("extra", nargs="*", help="arguments passed to every `speechrnn fit` (after --)")
    args = parser.parse_args(argv)
    if not args.grid.is_file():
        raise SpeechRNNError(f"tuning grid {args.grid} not found; see configs/tune/fsdd.yaml")
    grid = yaml.safe_load(args.grid.read_text())
    tracking.default_wandb_mode()
    os.environ.setdefault("WANDB_RUN_GROUP", f"tune-{args.out.name}")
    # One thread: small recurrent layers gain nothing from more, and spin-waiting OpenMP threads
    # slow every run on a shared CPU (see pipelines/demo.py).
    torch.set_num_threads(1)
    summary, fit_seconds = tune(grid, args.out, args.extra)
    print(write_report(args.out, grid, summary, args.extra, fit_seconds))
    return args.out


if __name__ == "__main__":
    exit_on_user_error(main)
