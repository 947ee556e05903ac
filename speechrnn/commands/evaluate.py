"""``speechrnn evaluate CKPT``: accuracy overall, macro and per length bucket, from a checkpoint.

A thin layer over :mod:`speechrnn.evaluation`, which rebuilds the data module and scores it.
"""

from __future__ import annotations

import argparse
from itertools import pairwise
from pathlib import Path

from speechrnn.checkpoint import load_checkpoint
from speechrnn.evaluation import build_datamodule, evaluate, format_report
from speechrnn.files import check_writable, write_json
from speechrnn.options import Parser, number
from speechrnn.plots import FIGURE_SUFFIXES, plot_accuracy_by_length, plot_confusion


def bucket_edges(text: str) -> list[int]:
    """``--buckets 50,100,150``: increasing positive edges in frames."""
    try:
        edges = [int(edge) for edge in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of frame counts") from None
    if not edges or edges[0] <= 0 or any(b <= a for a, b in pairwise(edges)):
        raise argparse.ArgumentTypeError(f"bucket edges {text!r} must be positive and increasing")
    return edges


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="speechrnn evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .ckpt file written by `speechrnn fit`")
    parser.add_argument("--split", choices=["test", "validation"], default="test")
    parser.add_argument("--dataset", help="a dataset config name (configs/data/<NAME>.yaml), or `folder` for "
                        "--data-root DIR/<label>/*.wav (every file scored); default: the checkpoint's")
    parser.add_argument("--data-root", help="where the dataset lies (for `folder`, the folder itself)")
    parser.add_argument("--cache-dir", help="where feature caches go; default: the checkpoint's")
    parser.add_argument("--buckets", type=bucket_edges, help="length-bucket edges in frames, e.g. 50,100,150")
    parser.add_argument("--batch-size", type=number(1, integer=True), help="utterances per batch; default: the checkpoint's")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--json", type=Path, help="also write the report to this file")
    parser.add_argument("--plot", type=Path, help="write a PNG of accuracy against length")
    parser.add_argument("--confusion", type=Path, help="write a PNG of the confusion matrix")
    args = parser.parse_args(argv)
    written = [args.checkpoint]  # each output is checked against the input and the outputs before it
    for flag, suffixes in (("json", None), ("plot", FIGURE_SUFFIXES), ("confusion", FIGURE_SUFFIXES)):
        if getattr(args, flag) is not None:
            written.append(check_writable(getattr(args, flag), f"--{flag}", written, suffixes))
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    datamodule = build_datamodule(ckpt, args.dataset, args.data_root, args.cache_dir, args.batch_size,
                                  args.buckets, args.split)
    report = evaluate(ckpt, datamodule, args.split, args.device)
    print(format_report(report))
    scores = report[report["split"]]
    if args.json:
        write_json(args.json, report)
    if args.plot:
        title = f"{report['cell']} on {report['dataset']} ({report['split']})"
        plot_accuracy_by_length({report["cell"]: scores}, args.plot, report["hop_ms"], title=title)
    if args.confusion:
        plot_confusion(scores["confusion"], report["labels"], args.confusion,
                       title=f"{report['cell']} on {report['dataset']} ({report['split']})")
