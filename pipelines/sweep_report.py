"""Tables and figures of the long-range sweep, from its run records (see pipelines/sweep.py).

Writes ``results.json``, ``table.md`` (all tables), ``accuracy_vs_length.png``,
``capacity.png`` and ``gradients.png``. Intervals are 95% t-intervals over seeds, clipped to
0-100% (see :func:`speechrnn.stats.t_interval`).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path

import torch

from speechrnn.files import write_json
from speechrnn.plots import plot_gradient_norms, plt, save_figure
from speechrnn.stats import t_interval

CHANCE_LINE = 0.5  # the accuracy whose crossing the table reports
CAP_MARK = "*"  # a cell where at least one seed used every epoch of the cap


def summarise(records: list[dict], lrs: dict[str, float]) -> dict[tuple[str, int, float], dict]:
    """Per (variant, hidden size, delay) at the variant's selected rate: accuracy over seeds and budget.

    Diverged runs (non-finite loss) are counted, not averaged: the mean is over the seeds that
    trained, and None when none did.
    """
    seeds = defaultdict(list)
    parameters = {(r["variant"], r["hidden_size"]): r["parameters"] for r in records if not r.get("diverged")}
    for r in records:
        if r["lr"] == lrs[r["variant"]]:
            seeds[(r["variant"], r["hidden_size"], r["delay_s"])].append(r)
    summary = {}
    for key, runs in sorted(seeds.items()):
        runs.sort(key=lambda r: r["seed"])
        trained = [r for r in runs if not r.get("diverged")]
        mean, low, high = t_interval([r["test_acc"] for r in trained]) if trained else (None, math.nan, math.nan)
        summary[key] = {"mean": mean, "ci95": [low, high], "n": len(runs), "accs": [r["test_acc"] for r in runs],
                        "diverged": len(runs) - len(trained), "hit_cap": any(r["hit_cap"] for r in runs),
                        "epochs": [r["epochs"] for r in trained], "best_epochs": [r["best_epoch"] for r in trained],
                        "total_frames": runs[0]["total_frames"], "parameters": parameters.get(key[:2]),
                        "chrono_frames": trained[0]["chrono_frames"] if trained else None,
                        "first_seed": trained[0] if trained else None}
    return summary


def frame_hop_ms(records: list[dict]) -> float:
    """The frame hop, from a run that trained (a diverged run's record has no data settings)."""
    return next(r["hop_ms"] for r in records if not r.get("diverged"))


def accuracy_cell(point: dict | None) -> str:
    if point is None:
        return "-"
    if point["mean"] is None:
        return f"diverged ({point['diverged']}/{point['n']})"
    low, high = point["ci95"]
    interval = "" if math.isnan(low) else f" ({100 * low:.1f}-{100 * high:.1f})"
    diverged = f" ({point['diverged']} of {point['n']} diverged)" if point["diverged"] else ""
    return f"{100 * point['mean']:.1f}{interval}{CAP_MARK if point['hit_cap'] else ''}{diverged}"


def first_delay_below(summary: dict, variant: str, hidden: int, delays: list[float]) -> float | None:
    """The shortest delay whose mean accuracy is under CHANCE_LINE (or where every seed diverged)."""
    return next((d for d in delays if (p := summary.get((variant, hidden, d)))
                 and (p["mean"] is None or p["mean"] < CHANCE_LINE)), None)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows), ""]


def tables(records: list[dict], summary: dict, lrs: dict[str, float], grid: dict) -> list[str]:
    """Every table of ``table.md``, as markdown lines."""
    return [*accuracy_table(records, summary, grid), *epochs_table(summary, grid),
            *selection_table(records, lrs, grid), *capacity_table(summary, grid), *gradient_table(summary, grid)]


def by_variant_and_delay(summary: dict, grid: dict, cell) -> list[list[str]]:
    """Rows of ``cell(point)`` (or "-") per variant, at the main hidden size, one column per delay."""
    return [[v, *(cell(p) if (p := summary.get((v, grid["hidden_size"], d))) else "-"
                  for d in sorted(grid["delays_s"]))] for v in grid["variants"]]


def accuracy_table(records: list[dict], summary: dict, grid: dict) -> list[str]:
    hidden, delays = grid["hidden_size"], sorted(grid["delays_s"])
    frames = {d: p["total_frames"] for (_, _, d), p in summary.items()}
    rows = by_variant_and_delay(summary, grid, accuracy_cell)
    for row in rows:
        crossing = first_delay_below(summary, row[0], hidden, delays)
        row.append(f"{crossing:g} s" if crossing is not None else f"none up to {max(delays):g} s")
    chrono = {d: p["chrono_frames"] for (_, _, d), p in summary.items() if p["chrono_frames"]}
    t_max = ", ".join(f"{d:g} s: {t} fr" for d, t in sorted(chrono.items())) or "no chrono variant"
    note = (f"Frames of {frame_hop_ms(records):g} ms; chance is 10%. The interval is mean ± t(0.975, n-1) s / "
            f"sqrt(n), clipped to 0-100%. {CAP_MARK} marks a cell where a seed used all {grid['max_epochs']} epochs (the cap) "
            f"instead of stopping early (patience {grid['patience']}): it might still have been learning. "
            f"Chrono T_max is the run's total length: {t_max}.")
    return [(f"## Test accuracy (%) against delay, hidden {hidden}: mean (95% interval) over "
            f"{len(grid['seeds'])} seeds"), "",
            *table(["variant", *(f"{d:g} s ({frames.get(d, '?')} fr)" for d in delays), "first delay < 50%"], rows),
            note, ""]


def epochs_table(summary: dict, grid: dict) -> list[str]:
    rows = by_variant_and_delay(summary, grid, lambda p: f"{statistics.fmean(p['epochs']):.1f} "
                                f"({statistics.fmean(p['best_epochs']):.1f})" if p["epochs"] else "diverged")
    return [f"## Epochs used (mean over seeds; best epoch in brackets), cap {grid['max_epochs']}", "",
            *table(["variant", *(f"{d:g} s" for d in sorted(grid["delays_s"]))], rows)]


def selection_table(records: list[dict], lrs: dict[str, float], grid: dict) -> list[str]:
    selection = grid["lr_selection"]
    tried = {(r["variant"], r["lr"]): r["val_acc"] for r in records if r["delay_s"] == selection["delay_s"]
             and r["seed"] == selection["seed"] and r["hidden_size"] == grid["hidden_size"]}

    def score(v: str, lr: float) -> str:
        if (v, lr) not in tried:
            return "-"
        text = "diverged" if tried[(v, lr)] is None else f"{100 * tried[(v, lr)]:.1f}"
        return f"**{text}**" if lr == lrs[v] else text

    rates = selection["learning_rates"]
    if not rates:
        return []  # every variant's rate was fixed by the grid
    return [(f"## Learning-rate selection: validation accuracy (%) at {selection['delay_s']:g} s, seed "
            f"{selection['seed']}; the best (bold) is used for every run of the variant"), "",
            *table(["variant", *(f"lr {lr:g}" for lr in rates)],
                   [[v, *(score(v, lr) for lr in rates)] for v in grid["variants"]])]


def gradient_table(summary: dict, grid: dict) -> list[str]:
    rows = by_variant_and_delay(summary, grid, lambda p: f"{p['first_seed']['decay_trained']:.3f} "
                                f"({p['first_seed']['decay_init']:.3f})" if p["first_seed"] else "diverged")
    return [("## Gradient through time: fitted decay per step, trained (at initialisation), "
            "first seed that trained"), "", *table(["variant", *(f"{d:g} s" for d in sorted(grid["delays_s"]))], rows)]


def capacity_table(summary: dict, grid: dict) -> list[str]:
    capacity = grid.get("capacity")
    if not capacity:
        return []
    hiddens = sorted({*capacity["hidden_sizes"], grid["hidden_size"]})
    delays = sorted(capacity["delays_s"])
    rows = [[v, str(h), f"{p['parameters']:,}",
             *(accuracy_cell(summary.get((v, h, d))) for d in delays)]
            for v in capacity["variants"] for h in hiddens if (p := next(
                (summary[(v, h, d)] for d in delays if (v, h, d) in summary), None))]
    rows.sort(key=lambda row: int(row[2].replace(",", "")))
    note = ("At equal hidden size a GRU has 3/4 of an LSTM's weights (3 gate blocks against 4); "
            "compare rows of equal parameter count, not equal hidden size.")
    return ["## Memory capacity: test accuracy (%) by hidden size, sorted by parameter count", "",
            *table(["variant", "hidden", "parameters", *(f"{d:g} s" for d in delays)], rows), note, ""]


def error_bars(points: list[dict]) -> list[list[float]]:
    """Matplotlib's ``yerr`` in percent: below and above each mean, to its clipped interval (0 without one)."""
    gaps = [(0.0, 0.0) if math.isnan(p["ci95"][0]) else (p["mean"] - p["ci95"][0], p["ci95"][1] - p["mean"])
            for p in points]
    return [[100 * below for below, _ in gaps], [100 * above for _, above in gaps]]


def plot_accuracy(summary: dict, grid: dict, hop_ms: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for v in grid["variants"]:
        points = sorted(((p["total_frames"], p) for (name, h, _), p in summary.items()
                         if name == v and h == grid["hidden_size"] and p["mean"] is not None), key=lambda x: x[0])
        if points:
            ax.errorbar([f for f, _ in points], [100 * p["mean"] for _, p in points],
                        yerr=error_bars([p for _, p in points]),
                        marker="o", capsize=3, label=v)
    ax.axhline(10, color="grey", ls=":", lw=1, label="chance")
    ax.axhline(100 * CHANCE_LINE, color="grey", ls="--", lw=0.8)
    ax.set(xlabel=f"total sequence length (frames of {hop_ms:g} ms, log scale)",
           ylabel="test accuracy (%), 95% interval", title="Delayed FSDD digits: accuracy against length",
           ylim=(0, 102), xscale="log")
    lengths = sorted({p["total_frames"] for (_, h, _), p in summary.items() if h == grid["hidden_size"]})
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=110)


def plot_capacity(summary: dict, grid: dict, path: Path) -> None:
    capacity = grid["capacity"]
    delays = sorted(capacity["delays_s"])
    fig, axes = plt.subplots(1, len(delays), figsize=(5 * len(delays), 4), sharey=True, squeeze=False)
    for ax, d in zip(axes[0], delays):
        for v in capacity["variants"]:
            points = sorted(((p["parameters"], p) for (name, _, delay), p in summary.items()
                             if name == v and delay == d and p["mean"] is not None), key=lambda x: x[0])
            ax.errorbar([n for n, _ in points], [100 * p["mean"] for _, p in points],
                        yerr=error_bars([p for _, p in points]),
                        marker="o", capsize=3, label=v)
        ax.set(xscale="log", xlabel="parameters", title=f"{d:g} s delay", ylim=(0, 102))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][0].legend(fontsize=8)
    save_figure(fig, path, dpi=110)


def write_report(records: list[dict], lrs: dict[str, float], grid: dict, out: Path) -> None:
    summary = summarise(records, lrs)
    hidden, delays = grid["hidden_size"], sorted(grid["delays_s"])
    write_json(out / "results.json", {
        "grid": grid, "learning_rates": lrs,
        "summary": [{"variant": v, "hidden_size": h, "delay_s": d,
                     **{k: x for k, x in p.items() if k != "first_seed"}} for (v, h, d), p in summary.items()],
        "first_delay_below_50": {v: first_delay_below(summary, v, hidden, delays) for v in grid["variants"]},
        "runs": records})
    (out / "table.md").write_text("\n".join(tables(records, summary, lrs, grid)))
    plot_accuracy(summary, grid, frame_hop_ms(records), out / "accuracy_vs_length.png")
    if grid.get("capacity"):
        plot_capacity(summary, grid, out / "capacity.png")
    longest = max(delays)
    curves = {f"{v} {tag}": torch.tensor(p["first_seed"][f"grad_{tag}"])
              for (v, h, d), p in summary.items() if h == hidden and d == longest and p["first_seed"]
              for tag in ("init", "trained")}
    plot_gradient_norms(curves, out / "gradients.png", title=f"Gradient through time at {longest:g} s delay")
