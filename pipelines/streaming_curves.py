"""Operating curves of spotters from several ``make streaming`` runs on one figure (what each step bought).

    python -m pipelines.streaming_curves --out curves.png "baseline=runs/a/results.json:gru" \\
        "mined=runs/b/results.json:gru+mined1"

Each ``NAME=RESULTS:SPOTTER`` is one line: the spotter's test curve (detection rate against false
alarms per hour on the keyword-free hour, at its tuned smoothing) from that run's ``results.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechrnn.cli import exit_on_user_error
from speechrnn.errors import SpeechRNNError
from speechrnn.options import Parser, number
from speechrnn.plots import plot_operating_curves


def read_curve(spec: str) -> tuple[str, list]:
    """``NAME=RESULTS:SPOTTER`` -> (NAME, the spotter's test curve)."""
    name, _, source = spec.partition("=")
    path, _, spotter = source.rpartition(":")
    if not (name and path and spotter):
        raise SpeechRNNError(f"{spec!r} is not NAME=RESULTS_JSON:SPOTTER, e.g. es=runs/x/results.json:gru")
    cells = json.loads(Path(path).read_text())["cells"]
    if spotter not in cells:
        raise SpeechRNNError(f"{path} holds no spotter {spotter!r}; it holds {sorted(cells)}")
    return name, cells[spotter]["test"]["curve"]


def main(argv: list[str] | None = None) -> Path:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--target", type=number(0), nargs=2, default=(1.0, 0.95),
                        metavar=("FALSE_ALARMS_PER_HOUR", "DETECTION_RATE"))
    parser.add_argument("spotters", nargs="+", help="NAME=RESULTS_JSON:SPOTTER, one per line of the figure")
    args = parser.parse_args(argv)
    curves = dict(read_curve(spec) for spec in args.spotters)
    return plot_operating_curves(curves, args.out, target=tuple(args.target),
                                 title="Test keywords detected against false alarms (george, held out)")


if __name__ == "__main__":
    exit_on_user_error(main)
