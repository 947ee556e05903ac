"""``speechrnn tune CKPT``: choose a spotter's operating point on streams and store it in the checkpoint.

The threshold and smoothing with the most keywords detected within the false-alarm target (where
none is within, the fewest false alarms) over a keyword stream and a keyword-free stream
(:func:`speechrnn.streaming.tuning.tune`). The point is written into the checkpoint (atomically),
and ``speechrnn stream CKPT`` uses it from then on. The checkpoint must stream: a
``speechrnn fit`` with ``--model.pooling last`` (see ``configs/experiment/streaming.yaml``).

Streams given (``--keywords`` and ``--keyword-free``, WAVs): the keyword stream's timeline is the
.json beside its WAV, ``{"sample_rate", "duration_s", "events": [{"kind": "keyword", "label",
"start_s", "end_s"}, ...]}`` (other kinds of event are ignored), as ``make streaming`` writes them.
Streams built: the validation split (``--split``) of the checkpoint's own stream data module, or of
``--data`` configs, written on first use under the data module's cache::

    speechrnn tune CKPT [--data-root DIR]                           # the streams it was trained beside
    speechrnn tune CKPT --data configs/data/fsdd_stream.yaml        # another stream data config
    speechrnn tune CKPT --keywords val.wav --keyword-free free.wav  # your own recordings
        [--false-alarms-per-hour 1.0] [--json tuned.json]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from speechrnn.checkpoint import Checkpoint, load_checkpoint, store_operating_point
from speechrnn.corpora.streams import SCORED_SPLITS
from speechrnn.data.frontend import check_streamable
from speechrnn.data.pipeline import build_data_module
from speechrnn.errors import SpeechRNNError
from speechrnn.evaluation import build_datamodule
from speechrnn.files import check_writable, write_json
from speechrnn.streaming.tuning import TARGET_FALSE_ALARMS_PER_HOUR, tune


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="speechrnn tune", description=__doc__.splitlines()[0],
                                     epilog="\n".join(__doc__.splitlines()[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, metavar="CKPT", help="a .ckpt written by `speechrnn fit` with pooling: last")
    parser.add_argument("--keywords", type=Path, metavar="WAV", help="a keyword stream (WAV), its timeline the .json beside it")
    parser.add_argument("--keyword-free", type=Path, metavar="WAV", help="a stream holding no keyword (WAV)")
    parser.add_argument("--data", type=Path, nargs="+", metavar="CONFIG",
                        help="stream data configs, stacked (default: the checkpoint's own data module)")
    parser.add_argument("--data-root", metavar="DIR", help="the folder holding the corpus (default: as the checkpoint was trained)")
    parser.add_argument("--split", choices=SCORED_SPLITS, default="validation",
                        help="the built streams to tune on (keep test for scoring)")
    parser.add_argument("--false-alarms-per-hour", type=float, metavar="RATE", default=TARGET_FALSE_ALARMS_PER_HOUR,
                        help="the target rate of false alarms over both streams")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the point and its figures to this file")
    return parser.parse_args(argv)


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse a bad flag or output path in one line before anything is loaded or read."""
    given = [args.keywords is not None, args.keyword_free is not None]
    if any(given) and not all(given):
        raise SpeechRNNError("give --keywords and --keyword-free together (or neither, to build the streams)")
    if all(given) and (args.data or args.data_root):
        raise SpeechRNNError("--data and --data-root build streams; give them or --keywords/--keyword-free, not both")
    rate = args.false_alarms_per_hour
    if not (math.isfinite(rate) and rate >= 0):
        raise SpeechRNNError(f"--false-alarms-per-hour must be a finite rate >= 0, got {rate}")
    if args.json is not None:
        check_writable(args.json, "--json")
        inputs = [args.checkpoint, args.keywords, args.keyword_free]
        if any(p is not None and p.exists() and p.resolve() == args.json.resolve() for p in inputs):
            raise SpeechRNNError(f"--json {args.json} is an input of this command; choose another file")


def built_streams(ckpt: Checkpoint, args: argparse.Namespace) -> dict[str, Path]:
    """The ``--split`` streams of ``--data`` or of the checkpoint's data module, written if missing."""
    if args.data:
        datamodule = build_data_module(args.data, data_root=args.data_root)
    else:
        datamodule = build_datamodule(ckpt, data_root=args.data_root)
    if not hasattr(datamodule, "stream_files"):
        source = f"--data {' '.join(map(str, args.data))}" if args.data else f"{ckpt.path} was trained on a data module that"
        raise SpeechRNNError(f"{source} writes no streams ({datamodule.name}); pass a stream data config with --data "
                             "(configs/data/fsdd_stream.yaml) or your own --keywords and --keyword-free WAVs")
    if datamodule.labels != ckpt.labels:
        raise SpeechRNNError(f"{datamodule.name} spots {datamodule.labels}, checkpoint {ckpt.path} {ckpt.labels}; "
                             "tune on streams of the checkpoint's keywords")
    datamodule.prepare_data()
    return datamodule.stream_files(args.split)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    check_arguments(args)
    ckpt = load_checkpoint(args.checkpoint)
    source = f"checkpoint {ckpt.path}"
    check_streamable(ckpt.features, source)
    ckpt.model().streaming_step(source)  # refuses a model that cannot stream, before the streams are built
    if args.keywords is not None:
        files = {"keywords": args.keywords, "keyword_free": args.keyword_free}
    else:
        files = built_streams(ckpt, args)
    tuned = tune(ckpt, files, args.false_alarms_per_hour)
    point, figures = tuned["detector"], tuned["validation"]
    store_operating_point(ckpt.path, point)
    report = {"checkpoint": str(ckpt.path), "streams": {name: str(path) for name, path in files.items()},
              "target_false_alarms_per_hour": args.false_alarms_per_hour, "operating_point": point.to_json(),
              "tuning": figures}
    print(json.dumps(report))
    hours = figures["audio_s"] / 3600
    print(f"stored in {ckpt.path}: threshold {point.threshold:g}, smoothing {point.smooth_s:g} s, refractory "
          f"{point.refractory_s:g} s; {100 * figures['detection_rate']:.1f}% of the keywords detected with "
          f"{figures['false_alarms']} false alarms in {hours:.2f} h ({figures['false_alarms'] / hours:.1f} / h, "
          f"target {args.false_alarms_per_hour:g} / h); `speechrnn stream {ckpt.path} FILE` uses it")
    if args.json is not None:
        write_json(args.json, report)
