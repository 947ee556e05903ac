"""``speechrnn export CKPT --format onnx|torchscript --out F``: the model's streaming step as a file.

See :mod:`speechrnn.streaming.export` for what the graph takes and returns and what is stored
with it. The output path is checked before anything is loaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speechrnn.checkpoint import Checkpoint, load_checkpoint
from speechrnn.errors import SpeechRNNError
from speechrnn.files import check_writable
from speechrnn.options import Parser
from speechrnn.streaming.export import export_onnx, export_torchscript, quantize_onnx
from speechrnn.streaming.frontend import check_streamable

FORMATS = ("onnx", "torchscript")


def export_checkpoint(ckpt: Checkpoint, fmt: str, out: Path) -> Path:
    """Export a checkpoint's streaming step in ``fmt``; refuses models that cannot stream."""
    check_streamable(ckpt.features, f"checkpoint {ckpt.path}")
    step = ckpt.model().streaming_step(f"checkpoint {ckpt.path}").eval()
    writer = export_onnx if fmt == "onnx" else export_torchscript
    return writer(step, ckpt.features, out, ckpt.operating_point)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="speechrnn export", description=__doc__.splitlines()[0],
                                     epilog="The MFCC front end stays in Python (speechrnn.streaming.frontend.FrameStream).")
    parser.add_argument("checkpoint", help="a .ckpt file written by `speechrnn fit` (pooling: last)")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--out", type=Path, required=True, help="the file to write (.onnx or .pt)")
    parser.add_argument("--quantize", action="store_true",
                        help="onnx only: also write <out>.int8.onnx with int8 weights")
    return parser.parse_args(argv)


def quantized_path(out: Path) -> Path:
    return out.with_suffix(".int8.onnx")


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse a flag that does not fit or an output path that cannot be written, before any work."""
    if args.quantize and args.format != "onnx":
        raise SpeechRNNError("--quantize works on ONNX graphs; add --format onnx")
    check_writable(args.out, "--out", [args.checkpoint])
    if args.quantize:
        check_writable(quantized_path(args.out), "--quantize (writes)", [args.checkpoint, args.out])


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    check_arguments(args)
    ckpt = load_checkpoint(args.checkpoint)
    path = export_checkpoint(ckpt, args.format, args.out)
    print(f"wrote {path} (front end not included: run speechrnn.streaming.frontend.FrameStream before it)")
    if args.quantize:
        print(f"wrote {quantize_onnx(path, quantized_path(path))}")
