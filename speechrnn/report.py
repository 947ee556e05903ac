"""Markdown tables of results: overall and per-length-bucket accuracy, one row per run."""

from __future__ import annotations

import math


def _percent(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def results_table(runs: dict[str, dict]) -> str:
    """One row per run: test accuracy, accuracy per length bucket (count in the header), size, time.

    ``runs`` maps a name to a ``results.json`` dict (``test.accuracy``, ``test.edges``,
    ``test.buckets`` rows ``[name, count, accuracy]``, ``parameters``, ``train_seconds``).
    """
    first = next(iter(runs.values()))["test"]
    bucket_heads = [f"{name} (n={count})" for name, count, _ in first["buckets"]]
    head = ["run", "test acc %", *[f"len {h}" for h in bucket_heads], "params", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, result in runs.items():
        test = result["test"]
        buckets = [_percent(acc) for _, _, acc in test["buckets"]]
        seconds = result.get("train_seconds")
        cells = [name, _percent(test["accuracy"]), *buckets, f"{result.get('parameters', 0):,}",
                 "-" if seconds is None else f"{seconds:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
