"""``speechrnn compare RUN...``: one table and one plot of accuracy against length, a line per run.

A RUN is a run directory holding ``results.json`` (written after ``speechrnn fit``) or a results
file itself (that, or an ``evaluate --json`` report). No W&B account needed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechrnn.errors import SpeechRNNError
from speechrnn.files import check_writable
from speechrnn.options import Parser
from speechrnn.plots import FIGURE_SUFFIXES, plot_accuracy_by_length
from speechrnn.reports import percent, scored

PLOT_NAME = "compare.png"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="speechrnn compare", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories or results .json files")
    parser.add_argument("--plot", type=Path, default=Path(PLOT_NAME),
                        help=f"the PNG to write; a folder gets {PLOT_NAME} inside it")
    args = parser.parse_args(argv)
    args.plot = args.plot / PLOT_NAME if args.plot.is_dir() else args.plot
    check_writable(args.plot, "--plot", [*args.runs, *(run / "results.json" for run in args.runs)], FIGURE_SUFFIXES)
    return args


def read_results(path: Path) -> tuple[str, dict]:
    """A run's name (its folder, or the file's stem) and its scored split from ``path``."""
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise SpeechRNNError(f"{file} not found; pass run directories holding results.json "
                             "(written by `speechrnn fit`) or results .json files")
    try:
        results = json.loads(file.read_text())
        missing = {"accuracy", "edges", "buckets"} - scored(results).keys()
        if missing:
            raise KeyError(sorted(missing))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise SpeechRNNError(f"{file} is not a speechrnn results file ({err!r}); pass the results.json "
                             "of `speechrnn fit` or the --json of `speechrnn evaluate`") from err
    name = file.parent.name if file.name == "results.json" else file.stem
    return name, results


def unique_names(named: list[tuple[str, dict]]) -> dict[str, dict]:
    """Runs by name; a repeated name gets ``-2``, ``-3``, ... so no line hides another."""
    runs: dict[str, dict] = {}
    for name, results in named:
        key, n = name, 1
        while key in runs:
            n += 1
            key = f"{name}-{n}"
        runs[key] = results
    return runs


def format_table(runs: dict[str, dict]) -> str:
    """Rows: overall accuracy, then each length bucket (frames) in order; columns: runs."""
    scores = {name: scored(results) for name, results in runs.items()}
    names = sorted({row[0] for s in scores.values() for row in s["buckets"]},
                   key=lambda bucket: [float(bound) for bound in bucket.split("-")])
    width = max(10, *(len(name) for name in runs))
    lines = [f"{'':<16}" + "".join(f"{name:>{width + 2}}" for name in runs),
             f"{'':<16}" + "".join(f"{r.get('cell', '?') + ' ' + r.get('dataset', '?'):>{width + 2}}"
                                   for r in runs.values()),
             f"{'accuracy':<16}" + "".join(f"{percent(s['accuracy']):>{width + 2}}" for s in scores.values())]
    for bucket in names:
        cells = []
        for s in scores.values():
            row = next((row for row in s["buckets"] if row[0] == bucket), None)
            cells.append("" if row is None else f"{percent(row[2])} ({row[1]})")
        lines.append(f"{'len ' + bucket:<16}" + "".join(f"{cell:>{width + 2}}" for cell in cells))
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    runs = unique_names([read_results(path) for path in args.runs])
    print(format_table(runs))
    print("(bucket rows: accuracy (count); lengths in frames)")
    hops = {results.get("hop_ms") for results in runs.values()}
    written = plot_accuracy_by_length({name: scored(results) for name, results in runs.items()}, args.plot,
                                      hops.pop() if len(hops) == 1 else None)
    print(f"plot: {written}")
