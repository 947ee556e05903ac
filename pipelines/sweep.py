"""The long-range sweep: encoder x hidden size x delay x seed on the delayed-keyword task.

    python -m pipelines.sweep --grid configs/sweep/default.yaml --out runs/sweep [-- EXTRA CLI ARGS]

Every run is ``speechrnn fit`` with the grid's configs and the same epoch budget; each cell's
learning rate is picked on validation accuracy (first seed, first clip value), the other seeds
reuse it, and the other clip values rerun ``clip_seeds`` to show what clipping saves. All runs
go to one W&B group (offline unless logged in). A run whose ``record.json`` exists is skipped, so
an interrupted sweep resumes. Writes ``results.json``, ``table.md``, ``accuracy_vs_length.png``
and ``gradients.png`` (gradient through time per encoder at the longest delay) to ``--out``.

On a shared CPU run it with ``OMP_NUM_THREADS=1`` (``make sweep`` does): these small recurrent
steps gain nothing from a second thread, and threads spinning against other jobs made each run
about 25 times slower in our measurements.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import statistics
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from speechrnn import tracking
from speechrnn.callbacks import TrainingStability
from speechrnn.cli import run_lightning
from speechrnn.errors import SpeechRNNError
from speechrnn.gradients import (
    decay_factor,
    initialised_copy,
    input_gradient_norms,
    plot_gradient_norms,
)
from speechrnn.jsonio import write_json
from speechrnn.plots import plt, save_figure

CHANCE_LINE = 0.5  # the accuracy whose crossing the table reports


def run_name(encoder: str, hidden: int, delay_s: float, lr: float, clip: float, seed: int) -> str:
    return f"{encoder}-h{hidden}-d{delay_s:g}-lr{lr:g}-clip{clip:g}-s{seed}"


def train_one(grid: dict, out: Path, encoder: str, hidden: int, delay_s: float, lr: float, clip: float,
              seed: int, extra: list[str]) -> dict:
    """Fit and test one run (or read back its record) and measure its gradient through time."""
    name = run_name(encoder, hidden, delay_s, lr, clip, seed)
    run_dir = out / "runs" / name
    record_path = run_dir / "record.json"
    if record_path.is_file():
        return json.loads(record_path.read_text())
    args = ["fit", "--config", grid["trainer_config"], "--config", grid["encoders"][encoder],
            "--config", grid["data_config"],
            "--data.init_args.delays_s", f"[{delay_s}]", "--data.init_args.seed", str(seed),
            "--data.init_args.batch_size", str(grid["batch_size"]), "--seed_everything", str(seed),
            "--model.hidden_size", str(hidden), "--model.num_layers", str(grid["num_layers"]),
            "--model.lr", str(lr), "--trainer.gradient_clip_val", str(clip),
            "--trainer.max_epochs", str(grid["max_epochs"]), "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.logger.init_args.name", name,
            "--trainer.logger.init_args.group", os.environ["WANDB_RUN_GROUP"],
            "--trainer.logger.init_args.tags", json.dumps([encoder, f"delay{delay_s:g}s", f"clip{clip:g}"]),
            "--run_dir", str(run_dir), *extra]
    cli = run_lightning(args)
    model, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    results = json.loads((run_dir / "results.json").read_text())
    score = trainer.checkpoint_callback.best_model_score
    record = {"name": name, "encoder": encoder, "hidden_size": hidden, "delay_s": delay_s,
              "total_frames": datamodule.total_frames[0], "hop_ms": datamodule.features.hop_ms,
              "lr": lr, "clip": clip, "seed": seed,
              "val_acc": float(score) if score is not None and math.isfinite(score) else 0.0,
              "test_acc": results["test"]["accuracy"], "train_seconds": results["train_seconds"],
              "stability": stability_of(trainer), **gradient_curves(model, datamodule, seed)}
    tracking.finish_run()
    write_json(record_path, record)
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


def stability_of(trainer) -> dict:
    return next(c.stability for c in trainer.callbacks if isinstance(c, TrainingStability))


def sweep(grid: dict, out: Path, extra: list[str]) -> list[dict]:
    """Run the grid in three passes, so a partial sweep still holds whole seeds-0 tables."""
    cells = list(itertools.product(grid["encoders"], grid["hidden_sizes"], grid["delays_s"]))
    main_clip, first_seed = grid["clips"][0], grid["seeds"][0]
    passes = len(cells) * (len(grid["learning_rates"]) + len(grid["seeds"]) - 1
                           + len(grid["clips"][1:]) * len(grid["clip_seeds"]))
    records, best_lr = [], {}
    with tqdm(total=passes, unit="run", desc="sweep") as progress:
        def run(cell, lr, clip, seed):
            progress.set_postfix_str(run_name(*cell, lr, clip, seed))
            record = train_one(grid, out, *cell, lr, clip, seed, extra)
            records.append(record)
            progress.update()
            return record

        for cell in cells:
            tried = [run(cell, lr, main_clip, first_seed) for lr in grid["learning_rates"]]
            best_lr[cell] = max(tried, key=lambda r: r["val_acc"])["lr"]  # first of ties
        for cell, seed in itertools.product(cells, grid["seeds"][1:]):
            run(cell, best_lr[cell], main_clip, seed)
        for cell, clip, seed in itertools.product(cells, grid["clips"][1:], grid["clip_seeds"]):
            run(cell, best_lr[cell], clip, seed)
    for record in records:
        cell = (record["encoder"], record["hidden_size"], record["delay_s"])
        record["selected"] = record["lr"] == best_lr[cell]
    return records


def series_name(record: dict, grid: dict) -> str:
    many = len(grid["hidden_sizes"]) > 1
    return f"{record['encoder']} h{record['hidden_size']}" if many else record["encoder"]


def summarise(records: list[dict], grid: dict) -> dict:
    """Per encoder (and hidden size): test accuracy mean and spread over seeds at each length."""
    main = [r for r in records if r["selected"] and r["clip"] == grid["clips"][0]]
    summary = {}
    for r in main:
        line = summary.setdefault(series_name(r, grid), {})
        line.setdefault(r["total_frames"], {"delay_s": r["delay_s"], "lr": r["lr"], "accs": [],
                                            "decay_trained": []})
        line[r["total_frames"]]["accs"].append(r["test_acc"])
        line[r["total_frames"]]["decay_trained"].append(r["decay_trained"])
    for line in summary.values():
        for point in line.values():
            accs = point["accs"]
            point["mean"] = statistics.fmean(accs)
            point["std"] = statistics.stdev(accs) if len(accs) > 1 else 0.0
    return summary


def below_chance_line(line: dict) -> int | None:
    """The shortest total length (frames) whose mean accuracy is under CHANCE_LINE."""
    return next((frames for frames in sorted(line) if line[frames]["mean"] < CHANCE_LINE), None)


def write_table(records: list[dict], summary: dict, grid: dict, path: Path) -> None:
    lengths = sorted({frames for line in summary.values() for frames in line})
    hop_ms = records[0]["hop_ms"]
    delays = {frames: point["delay_s"] for line in summary.values() for frames, point in line.items()}
    lines = ["## Test accuracy (%) against total length, mean ± std over seeds", "",
             "| encoder | " + " | ".join(f"{f} fr ({delays[f]:g} s delay)" for f in lengths)
             + " | first length < 50% |",
             "|---" * (len(lengths) + 2) + "|"]
    for name, line in summary.items():
        cells = [f"{100 * line[f]['mean']:.1f} ± {100 * line[f]['std']:.1f} (n={len(line[f]['accs'])})"
                 if f in line else "-" for f in lengths]
        crossing = below_chance_line(line)
        lines.append(f"| {name} | " + " | ".join(cells) + " | "
                     + (f"{crossing} fr ({crossing * hop_ms / 1000:g} s)" if crossing else
                        f"none up to {max(line)} fr") + " |")
    lines += ["", f"Frames are {hop_ms:g} ms. Chance is 10%. Learning rate per cell: "
              + ", ".join(f"{n} {f} fr {line[f]['lr']:g}" for n, line in summary.items() for f in sorted(line)), "",
              "## Gradient through time: fitted decay per step (trained, first seed; init in brackets)", "",
              "| encoder | " + " | ".join(f"{f} fr" for f in lengths) + " |", "|---" * (len(lengths) + 1) + "|"]
    main = [r for r in records if r["selected"] and r["clip"] == grid["clips"][0]
            and r["seed"] == grid["seeds"][0]]
    for name in summary:
        row = {r["total_frames"]: r for r in main if series_name(r, grid) == name}
        lines.append(f"| {name} | " + " | ".join(
            f"{row[f]['decay_trained']:.3f} ({row[f]['decay_init']:.3f})" if f in row else "-" for f in lengths) + " |")
    lines += ["", "## Clipping: test accuracy (%), gradient-norm spikes / non-finite losses, max grad norm",
              "", "| run | " + " | ".join(f"clip {c:g}" for c in grid["clips"]) + " |",
              "|---" * (len(grid["clips"]) + 1) + "|"]
    by_key = {(r["encoder"], r["hidden_size"], r["delay_s"], r["lr"], r["seed"], r["clip"]): r for r in records}
    for r in records:
        if r["clip"] != grid["clips"][0] or not r["selected"] or r["seed"] not in grid["clip_seeds"]:
            continue
        off = [by_key.get((r["encoder"], r["hidden_size"], r["delay_s"], r["lr"], r["seed"], c))
               for c in grid["clips"][1:]]
        lines.append(f"| {r['encoder']} h{r['hidden_size']} {r['total_frames']} fr s{r['seed']} | "
                     + " | ".join(stability_cell(x) for x in [r, *off]) + " |")
    path.write_text("\n".join(lines) + "\n")


def stability_cell(record: dict | None) -> str:
    if record is None:
        return "not run"
    s = record["stability"]
    return (f"{100 * record['test_acc']:.1f}; {s['grad_spikes']} spikes / {s['nonfinite_losses']} non-finite; "
            f"max {s['max_grad_norm']:.3g}")


def plot_summary(summary: dict, hop_ms: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, line in summary.items():
        lengths = sorted(line)
        ax.errorbar(lengths, [100 * line[f]["mean"] for f in lengths], yerr=[100 * line[f]["std"] for f in lengths],
                    marker="o", capsize=3, label=name)
    ax.axhline(10, color="grey", ls=":", lw=1, label="chance")
    ax.axhline(100 * CHANCE_LINE, color="grey", ls="--", lw=0.8)
    ax.set(xlabel=f"total sequence length (frames of {hop_ms:g} ms)", ylabel="test accuracy (%)",
           title="Delayed FSDD digits: accuracy against length", ylim=(0, 102))
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=Path, default=Path("configs/sweep/default.yaml"))
    parser.add_argument("--out", type=Path, default=Path("runs/sweep"))
    parser.add_argument("extra", nargs="*", help="arguments passed to every `speechrnn fit` (after --)")
    args = parser.parse_args(argv)
    if not args.grid.is_file():
        raise SpeechRNNError(f"sweep grid {args.grid} not found; see configs/sweep/default.yaml")
    grid = yaml.safe_load(args.grid.read_text())
    tracking.default_wandb_mode()
    os.environ.setdefault("WANDB_RUN_GROUP", f"sweep-{args.out.name}")  # one W&B group for all runs
    args.out.mkdir(parents=True, exist_ok=True)
    records = sweep(grid, args.out, args.extra)
    summary = summarise(records, grid)
    write_json(args.out / "results.json",
               {"grid": grid, "summary": {n: {str(f): p for f, p in line.items()} for n, line in summary.items()},
                "first_length_below_50": {n: below_chance_line(line) for n, line in summary.items()},
                "runs": records})
    write_table(records, summary, grid, args.out / "table.md")
    plot_summary(summary, records[0]["hop_ms"], args.out / "accuracy_vs_length.png")
    longest = max(grid["delays_s"])
    curves = {f"{series_name(r, grid)} {tag}": torch.tensor(r[f"grad_{tag}"])
              for r in records if r["selected"] and r["delay_s"] == longest and r["seed"] == grid["seeds"][0]
              and r["clip"] == grid["clips"][0] for tag in ("init", "trained")}
    plot_gradient_norms(curves, args.out / "gradients.png",
                        title=f"Gradient through time at {longest:g} s delay")
    print((args.out / "table.md").read_text())


if __name__ == "__main__":
    try:
        main()
    except SpeechRNNError as err:
        raise SystemExit(f"sweep: error: {err}") from None
