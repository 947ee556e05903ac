"""``speechrnn export CKPT --format onnx|web|onnx-step|torchscript --out PATH``: the spotter as a file or a page.

``onnx`` writes the whole spotter as one graph: audio samples and the state in, posteriors and
the next state out (:mod:`speechrnn.streaming.graph`). ``web`` writes a folder with that graph
and a page that runs it in a browser (:mod:`speechrnn.streaming.web`): serve it with
``python -m http.server -d SITE --bind 127.0.0.1``. ``onnx-step`` and ``torchscript`` write the
model's step alone, MFCC frames in (:mod:`speechrnn.streaming.export`). What each file needs
at run time travels in it. The output path is checked before anything is loaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechrnn.checkpoint import Checkpoint, load_checkpoint
from speechrnn.data.frontend import check_streamable
from speechrnn.errors import SpeechRNNError
from speechrnn.files import check_writable
from speechrnn.operating_point import DEFAULT_POINT
from speechrnn.options import Parser
from speechrnn.streaming.export import export_audio_onnx, export_onnx, export_torchscript
from speechrnn.streaming.graph import AudioGraph
from speechrnn.streaming.quantization import keywords_in, quantize_checked
from speechrnn.streaming.web import build_site, check_site_folder, runtime_folder

FORMATS = ("onnx", "web", "onnx-step", "torchscript")


def export_checkpoint(ckpt: Checkpoint, fmt: str, out: Path) -> Path:
    """Export a checkpoint in ``fmt``; refuses models that cannot stream."""
    source = f"checkpoint {ckpt.path}"
    check_streamable(ckpt.features, source)
    step = ckpt.model().streaming_step(source).eval()
    if fmt in ("onnx", "web"):
        graph = AudioGraph(step, ckpt.features).eval()
        writer = export_audio_onnx if fmt == "onnx" else build_site
        return writer(graph, out, ckpt.operating_point)
    writer = export_onnx if fmt == "onnx-step" else export_torchscript
    return writer(step, ckpt.features, out, ckpt.operating_point)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="speechrnn export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .ckpt file written by `speechrnn fit` (pooling: last)")
    parser.add_argument("--format", choices=FORMATS, default="onnx",
                        help="onnx: audio in, posteriors out; web: that graph and a page (a folder); "
                             "onnx-step, torchscript: MFCC frames in")
    parser.add_argument("--out", type=Path, required=True, help="the file to write (.onnx, .pt), or the page's folder")
    parser.add_argument("--quantize", action="store_true",
                        help="onnx: also write <out>.int8.onnx with int8 weights, if they hold on --streams")
    parser.add_argument("--streams", nargs=2, type=Path, metavar=("KEYWORDS_WAV", "KEYWORD_FREE_WAV"),
                        help="with --quantize: the test streams (each with its timeline .json) on which int8 must "
                             "keep the detection rate within 0.5 point and the false alarms within their Poisson interval")
    return parser.parse_args(argv)


def check_quantize_flags(args: argparse.Namespace) -> None:
    if args.format != "onnx":
        raise SpeechRNNError("--quantize is checked on the whole graph; use --format onnx")
    if args.streams is None:
        raise SpeechRNNError("--quantize needs --streams KEYWORDS_WAV KEYWORD_FREE_WAV: the test streams int8 "
                             "weights must keep the spotter's figures on")
    for stream in args.streams:
        if not stream.is_file():
            raise SpeechRNNError(f"--streams {stream} does not exist; give the stream corpus's test WAVs")
        keywords_in(stream)


def quantized_path(out: Path) -> Path:
    return out.with_suffix(".int8.onnx")


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse a flag that does not fit or an output path that cannot be written, before any work."""
    if args.format == "web":
        check_site_folder(args.out)
        runtime_folder()
    else:
        check_writable(args.out, "--out", [args.checkpoint])
    if args.quantize:
        check_writable(quantized_path(args.out), "--quantize (writes)", [args.checkpoint, args.out])
        check_quantize_flags(args)
    elif args.streams is not None:
        raise SpeechRNNError("--streams checks int8 weights; add --quantize, or leave --streams out")


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    check_arguments(args)
    ckpt = load_checkpoint(args.checkpoint)
    path = export_checkpoint(ckpt, args.format, args.out)
    if args.format == "web":
        print(f"wrote {path}/: serve it with `python -m http.server -d {path} --bind 127.0.0.1` "
              "and open http://127.0.0.1:8000")
    elif args.format in ("onnx-step", "torchscript"):
        print(f"wrote {path} (MFCC frames in: run speechrnn.data.frontend.FrameStream before it)")
    else:
        print(f"wrote {path} (audio in at {ckpt.features.sample_rate} Hz, posteriors out)")
    if args.quantize:
        point = ckpt.operating_point or DEFAULT_POINT
        if ckpt.operating_point is None:
            print(f"speechrnn: {ckpt.path} holds no tuned operating point (make streaming tunes one); int8 is "
                  f"checked at the defaults {point.to_json()}", file=sys.stderr)
        out = quantized_path(path)
        print(quantize_checked(path, out, tuple(args.streams), point, f"checkpoint {ckpt.path}"))
        print(f"wrote {out}")
