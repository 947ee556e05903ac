"""``speechrnn predict CKPT FILE...``: the top labels of each recording, or its label per frame.

Each file is scored by :func:`speechrnn.prediction.predict_file` with the checkpoint's own
feature settings; this module reads the arguments and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechrnn.checkpoint import load_checkpoint
from speechrnn.data.features import MFCC
from speechrnn.errors import SpeechRNNError
from speechrnn.files import check_writable, write_json
from speechrnn.options import Parser, number
from speechrnn.prediction import predict_file


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="speechrnn predict", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .ckpt file written by `speechrnn fit`")
    parser.add_argument("files", nargs="+", type=Path, help="audio files (.wav, .flac, .ogg)")
    parser.add_argument("--top-k", type=number(1, integer=True), default=3, help="labels listed per file (keyword tasks)")
    parser.add_argument("--json", type=Path, help="also write the predictions to this file")
    args = parser.parse_args(argv)
    if args.json is not None:
        check_writable(args.json, "--json", [args.checkpoint, *args.files])
    return args


def segments(frames: list[str], hop_s: float) -> list[tuple[float, float, str]]:
    """Runs of one label as ``(start_s, end_s, label)``; frame t is centred at ``t * hop_s``."""
    runs, start = [], 0
    for t in range(1, len(frames) + 1):
        if t == len(frames) or frames[t] != frames[start]:
            runs.append((start * hop_s, t * hop_s, frames[start]))
            start = t
    return runs


def main(argv: list[str]) -> None:
    """Score every file it can; report each bad one on stderr, and exit 2 if any failed."""
    args = parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.model()
    mfcc = MFCC(ckpt.features)
    predictions, failures = [], []
    for path in args.files:
        try:
            prediction = predict_file(model, mfcc, path, args.top_k, ckpt.pipeline.pad_to_s)
        except SpeechRNNError as err:
            failures.append(str(err))
            print(f"speechrnn: error: {err}", file=sys.stderr)
            continue
        predictions.append(prediction)
        if "top" in prediction:
            print(f"{path}: " + ", ".join(f"{label} {p:.3f}" for label, p in prediction["top"]))
        else:
            runs = segments(prediction["frames"], ckpt.features.frame_s)
            print(f"{path}: " + " ".join(f"{label}[{a:.2f}-{b:.2f}]" for a, b, label in runs))
    if args.json:
        write_json(args.json, predictions)
    if failures:
        raise SpeechRNNError(f"{len(failures)} of {len(args.files)} files could not be scored (listed above); "
                             "the others were")
