"""The offline demo: train vanilla RNN, GRU and LSTM on the embedded keyword task and compare them.

Each encoder is trained through the same CLI and configs a user would run by hand
(``configs/data/synth.yaml`` + ``configs/model/<cell>.yaml`` + ``configs/trainer/base.yaml`` and
``cpu.yaml`` + ``configs/experiment/demo.yaml``), tested on held-out voices, and the results
gathered into one run directory: ``results.json``, ``table.md`` and ``accuracy_by_length.png``.

    python -m pipelines.demo [--out runs/demo] [--epochs N] [--cells rnn gru lstm]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pipelines.configs import CONFIGS, MODELS, recipe_args, trainer_args
from speechrnn.cli import exit_on_user_error, run_lightning
from speechrnn.data.pipeline import build_data_module
from speechrnn.files import write_json
from speechrnn.options import Parser, number
from speechrnn.plots import plot_accuracy_by_length
from speechrnn.reports import markdown_table
from speechrnn.training.tracking import default_wandb_mode

DATA_CONFIG = CONFIGS / "data/synth.yaml"
EXPERIMENT = CONFIGS / "experiment/demo.yaml"


def config_args(cell: str, run_dir: Path, group: str, overrides: list[str]) -> list[str]:
    """The CLI arguments of one encoder's run: the same configs a user would stack by hand."""
    return [
        *recipe_args(DATA_CONFIG),
        "--config", str(CONFIGS / f"model/{cell}.yaml"),
        *trainer_args(CONFIGS / "trainer/cpu.yaml"),
        "--config", str(EXPERIMENT),
        "--run_dir", str(run_dir),
        "--trainer.logger.init_args.group", group,
        "--trainer.logger.init_args.name", f"demo-{cell}",
        *overrides,
    ]


def prepare() -> None:
    """Generate the embedded corpus and its feature cache once, before any run is timed.

    From the configs alone: a data override among the extra arguments makes the first fit prepare
    its own corpus, inside that fit's time.
    """
    build_data_module([DATA_CONFIG, EXPERIMENT]).prepare_data()


def train_one(args: list[str], run_dir: Path) -> dict:
    """Fit and test one encoder through the CLI; returns its results.json."""
    run_lightning(["fit", *args])
    return json.loads((run_dir / "results.json").read_text())


def main(argv: list[str] | None = None) -> Path:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S"))
    parser.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm"], choices=MODELS)
    parser.add_argument("--epochs", type=number(1, integer=True), help="override the demo's epoch budget")
    parser.add_argument("overrides", nargs="*", help="extra CLI overrides, e.g. --data.init_args.per_word=40")
    args = parser.parse_args(argv)
    default_wandb_mode()
    # Small recurrent layers gain little from intra-op threads, and on a busy 2-core machine
    # OpenMP's spinning made each step 5-100x slower (35 ms against 0.2-4 s for a 96-unit RNN).
    torch.set_num_threads(1)
    overrides = list(args.overrides) + ([f"--trainer.max_epochs={args.epochs}"] if args.epochs is not None else [])
    started = time.perf_counter()
    runs = {cell: config_args(cell, args.out / cell, args.out.name, overrides) for cell in args.cells}
    prepare()
    phases = {"corpus and features": time.perf_counter() - started}
    results = {}
    for cell, cell_args in runs.items():
        phase_started = time.perf_counter()
        results[cell] = train_one(cell_args, args.out / cell)
        phases[f"{cell}: train and test"] = time.perf_counter() - phase_started
    write_json(args.out / "results.json", results)
    table = markdown_table(results)
    (args.out / "table.md").write_text(table + "\n")
    hop_ms = next(iter(results.values()))["hop_ms"]
    plot = plot_accuracy_by_length({cell: r["test"] for cell, r in results.items()},
                                   args.out / "accuracy_by_length.png", hop_ms=hop_ms,
                                   title="Embedded corpus: test accuracy against length")
    print(f"\n{table}\n")
    for phase, seconds in phases.items():
        epochs = f" ({results[phase.split(':')[0]]['epochs']} epochs)" if ":" in phase else ""
        print(f"{phase:>24}: {seconds:6.1f} s{epochs}")
    print(f"demo finished in {time.perf_counter() - started:.0f} s; results in {args.out}/ "
          f"(results.json, table.md, {plot.name}, W&B group {args.out.name!r})")
    return args.out


if __name__ == "__main__":
    exit_on_user_error(main)
