"""``speechrnn stream CKPT FILE``: keywords spotted in a long recording (or the microphone), as JSON lines.

The file is read, featurised and classified chunk by chunk with the model's state carried along
(:mod:`speechrnn.streaming.runner`), so an hour costs the memory of a chunk; each detection is printed
as it ends: ``{"label", "start_s", "end_s", "score", "fired_s"}``. The detector's operating point
is the one ``speechrnn tune`` (or ``make streaming``) stored in the checkpoint, else the defaults (it says
which); ``--threshold``, ``--smooth-s`` and ``--refractory-s`` override it. ``--posteriors``
writes what the detector saw, one JSON line per frame. ``--mic`` listens live (needs the
optional ``sounddevice`` package: ``pip install 'speechrnn[live]'``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from speechrnn.checkpoint import Checkpoint, load_checkpoint
from speechrnn.data.chunks import microphone_chunks, read_chunks
from speechrnn.data.corpus import BACKGROUND
from speechrnn.errors import SpeechRNNError
from speechrnn.files import atomic_write, check_writable, json_text
from speechrnn.operating_point import DEFAULT_POINT, SECONDS, THRESHOLDS, OperatingPoint
from speechrnn.options import Parser, number
from speechrnn.streaming.detect import Detector
from speechrnn.streaming.runner import CHUNK_S, PosteriorWriter, Streamer, spot


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="speechrnn stream", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .ckpt written by `speechrnn fit` with pooling: last")
    parser.add_argument("file", nargs="?", type=Path, help="an audio file (any rate and channel count)")
    parser.add_argument("--mic", action="store_true", help="listen to the default microphone instead")
    parser.add_argument("--seconds", type=number(0, low_open=True), help="with --mic: stop after this long (default: Ctrl+C)")
    defaults = DEFAULT_POINT
    parser.add_argument("--threshold", type=THRESHOLDS.parser(),
                        help=f"smoothed posterior that fires (default: the checkpoint's tuned one, else {defaults.threshold})")
    parser.add_argument("--smooth-s", type=SECONDS.parser(),
                        help=f"moving-average window, seconds (default: tuned, else {defaults.smooth_s})")
    parser.add_argument("--refractory-s", type=SECONDS.parser(),
                        help=f"dead time after a detection (default: tuned, else {defaults.refractory_s})")
    parser.add_argument("--chunk-s", type=number(0, 60, low_open=True), default=CHUNK_S, help="audio per chunk, seconds")
    parser.add_argument("--background", nargs="*", default=[BACKGROUND],
                        help="classes that are never reported (the model's non-keyword class)")
    parser.add_argument("--plot", type=Path, help="draw waveform, posteriors and detections to this PNG")
    parser.add_argument("--posteriors", type=Path, help="write each frame's posteriors to this JSON-lines file")
    args = parser.parse_args(argv)
    if (args.file is None) == (not args.mic):
        parser.error("give an audio file or --mic, not both")
    return args


def operating_point(ckpt: Checkpoint, args: argparse.Namespace, note: Callable[[str], None]) -> OperatingPoint:
    """The checkpoint's tuned point (or the defaults, said so), with any flag given replacing its value."""
    point = ckpt.operating_point
    if point is None:
        point = DEFAULT_POINT
        note(f"{ckpt.path} holds no tuned operating point (`speechrnn tune` stores one); using the defaults "
             f"threshold {point.threshold}, smoothing {point.smooth_s} s, refractory {point.refractory_s} s")
    return replace(point, **given_point_flags(args))


def given_point_flags(args: argparse.Namespace) -> dict:
    flags = {"threshold": args.threshold, "smooth_s": args.smooth_s, "refractory_s": args.refractory_s}
    return {name: value for name, value in flags.items() if value is not None}


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse a bad output path in one line before anything is loaded or read."""
    inputs = [args.checkpoint, *([args.file] if args.file else [])]
    if args.plot is not None:
        from speechrnn.plots import FIGURE_SUFFIXES  # matplotlib only when drawing

        check_writable(args.plot, "--plot", inputs, FIGURE_SUFFIXES)
    if args.posteriors is not None:
        check_writable(args.posteriors, "--posteriors", [*inputs, *([args.plot] if args.plot else [])])


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    check_arguments(args)
    note = lambda text: print(f"speechrnn: {text}", file=sys.stderr)
    ckpt = load_checkpoint(args.checkpoint)
    streamer = Streamer.from_checkpoint(ckpt)
    settings = ckpt.features
    if round(args.chunk_s * settings.sample_rate) < 1:
        raise SpeechRNNError(f"--chunk-s {args.chunk_s} is less than one sample at {settings.sample_rate} Hz; raise it")
    point = operating_point(ckpt, args, note)
    if not set(args.background) & set(streamer.labels):
        note(f"the model's labels {streamer.labels} hold no background class {args.background}: it has no "
             "answer for silence or other words, so it will fire on them (train with background audio, "
             "or name its non-keyword class with --background)")
    detector = Detector(streamer.labels, settings, point, tuple(args.background))
    if args.mic:
        chunks = microphone_chunks(settings.sample_rate, args.chunk_s, args.seconds)
    else:
        chunks = read_chunks(args.file, settings.sample_rate, args.chunk_s, notify=note)
    source = str(args.file) if args.file else "the microphone"
    with ExitStack() as outputs:  # the posteriors file is renamed into place once the stream is done
        writer = None
        if args.posteriors is not None:
            file = outputs.enter_context(outputs.enter_context(atomic_write(args.posteriors)).open("w"))
            writer = PosteriorWriter(file, streamer.labels, streamer)
        result = spot(streamer, detector, chunks, keep=args.plot is not None, on_posteriors=writer, source=source,
                      on_detection=lambda det: print(json_text(det.to_json()), flush=True))
    if args.posteriors is not None:
        note(f"posteriors written to {args.posteriors}")
    if args.plot:
        from speechrnn.plots import plot_stream

        plot_stream(result.envelope, result.posteriors, streamer.labels, settings.frame_s, result.detections,
                    args.plot, threshold=point.threshold, title=source)
        note(f"figure written to {args.plot}")
