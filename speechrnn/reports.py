"""Tables of results for the README and the pipelines' ``table.md``: markdown rows and percentages.

They read the JSON the project writes (``results.json`` of ``speechrnn fit``, an ``evaluate
--json`` report, the streaming pipeline's figures), never a model.
"""

from __future__ import annotations

import math


def percent(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def scored(results: dict) -> dict:
    """The split a results file scored: ``test`` after fit, ``split`` in an evaluate report."""
    return results[results.get("split", "test")]


def markdown_table(runs: dict[str, dict]) -> str:
    """Markdown, one row per run: test accuracy, accuracy per length bucket, parameters, train time.

    ``runs`` maps a name to a ``results.json`` of ``speechrnn fit``, all with the same buckets.
    """
    first = scored(next(iter(runs.values())))
    head = ["run", "test acc", *[f"len {name} (n={count})" for name, count, _ in first["buckets"]],
            "params", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, result in runs.items():
        test = scored(result)
        seconds = result.get("train_seconds")
        cells = [name, percent(test["accuracy"]), *[percent(acc) for _, _, acc in test["buckets"]],
                 f"{result.get('parameters', 0):,}", "-" if seconds is None else f"{seconds:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spotter_table(results: dict[str, dict]) -> str:
    """Markdown, one row per spotter: its figures (:func:`speechrnn.streaming.scoring.evaluate`, under
    ``test``) at its tuned operating point (``detector``)."""
    header = ("| cell | detection | false alarms / h (keyword-free) | false alarms in keyword stream | "
              "latency median / p90 (s) | RTF (1 thread) | threshold / smoothing |")
    rows = [header, "| --- | --- | --- | --- | --- | --- | --- |"]
    for cell, r in results.items():
        t, d = r["test"], r["detector"]
        latency = "-" if t["latency_median_s"] is None else f"{t['latency_median_s']:.2f} / {t['latency_p90_s']:.2f}"
        rows.append(f"| {cell} | {100 * t['detection_rate']:.1f}% ({t['hits']}/{t['keywords']}) | "
                    f"{t['false_alarms_per_hour']:.1f} ({t['false_alarms_keyword_free']} in "
                    f"{t['keyword_free_s'] / 3600:.2f} h) | {t['false_alarms_in_keyword_stream']} in "
                    f"{t['keyword_stream_s'] / 60:.0f} min | {latency} | {t['rtf']:.4f} | "
                    f"{d['threshold']:g} / {d['smooth_s']:g} s |")
    return "\n".join(rows)
