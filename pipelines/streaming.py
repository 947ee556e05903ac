"""Streaming keyword spotting: train vanilla RNN, GRU and LSTM on windows of continuous audio, then
run each as a spotter over long held-out streams.

Each encoder is trained through the CLI (``--data`` and its experiment file + the cell's model
config + ``configs/trainer/base.yaml`` and ``cpu.yaml`` + ``configs/experiment/streaming.yaml``),
keeping the epoch that detects the most validation keywords at 1 false alarm per hour. The default,
``configs/data/fsdd_stream_heldout.yaml``, is the honest test: digits 0-4 are the keywords among real
people saying 5-9, and the test streams hold a speaker the model never heard.
``--data configs/data/fsdd_stream.yaml`` is the flattering setting of earlier versions: every
keyword a real voice, every other word eSpeak, test voices the training speakers'. With
``--mining-rounds N``, each round then runs the last model over the training split's keyword-free
tape, adds the windows where it fired as background examples and fine-tunes it on them
(:mod:`speechrnn.streaming.mining`): spotter ``<cell>+mined<r>``. The detector's threshold and
smoothing are tuned on the validation streams (keywords, and an hour of keyword-free audio): the
most detections within the target rate of false alarms there. Then on the test streams, chunk by
chunk with the state carried, one CPU thread:

- detection rate: keywords detected with their label between their start and ``TOLERANCE_S``
  after their end; false alarms on the keyword stream are detections matching no keyword;
- false alarms per hour on the keyword-free test stream (``keyword_free_s``, an hour by default);
- latency: from the keyword's end to the detection (the front end's look-ahead included);
- real-time factor: CPU seconds per second of audio over the keyword-free stream (file reading,
  front end, encoder and detector).

    python -m pipelines.streaming --out runs/streaming [--cells rnn gru lstm] [--epochs N]
        [--data configs/data/fsdd_stream_heldout.yaml] [--data-root DIR_WITH_fsdd] [--mining-rounds N]

Writes ``results.json``, ``table.md``, ``curves.png`` (test detection against false alarms per
hour, one line per spotter) and ``stream.png`` (the first seconds of the test stream for the best
spotter) into ``--out``; the best cell is also exported to ONNX (float and int8
weights) and run in onnxruntime on the test keyword stream. A rerun with the same ``--out``
keeps the trained runs, and the figures of each checkpoint whose bytes have not changed since it was
tuned (a retrained spotter is tuned and scored again). Tuning and scoring are the library's
(:func:`speechrnn.streaming.tuning.tune`, :mod:`speechrnn.streaming.scoring`), as ``speechrnn tune``
runs them; this script trains, calls them and draws.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pipelines.configs import CONFIGS, MODELS, recipe_args, trainer_args
from pipelines.fit_settings import fit_once
from speechrnn.checkpoint import load_checkpoint, store_operating_point
from speechrnn.cli import exit_on_user_error
from speechrnn.corpora.streams import SCORED_SPLITS
from speechrnn.data.pipeline import build_data_module
from speechrnn.data.timeline import keywords_of
from speechrnn.files import file_digest, write_json
from speechrnn.operating_point import THRESHOLDS, OperatingPoint
from speechrnn.options import Parser, number
from speechrnn.plots import plot_operating_curves, plot_stream
from speechrnn.reports import spotter_table
from speechrnn.streaming.mining import mine, write_mined
from speechrnn.streaming.runner import StreamResult, run_file
from speechrnn.streaming.scoring import evaluate, onnx_figures
from speechrnn.streaming.tuning import tune
from speechrnn.training.runlock import RunLock
from speechrnn.training.tracking import default_wandb_mode

TARGET = {"detection_rate": 0.95, "false_alarms_per_hour": 1.0, "rtf": 0.05}
FIGURE_S = 40.0
DATA = CONFIGS / "data/fsdd_stream_heldout.yaml"  # the honest test: unheard voice, real-voice non-keywords


def train_one(cell: str, out: Path, data_config: Path, data_args: list[str], overrides: list[str],
              name: str | None = None) -> Path:
    """Fit one encoder through the CLI into ``out / name`` (the cell's name by default; unless it
    finished there under the same settings; refused if under others); its best checkpoint."""
    name = name or cell
    run_dir = out / name
    args = ["fit",
            *recipe_args(data_config),
            "--config", str(CONFIGS / f"model/{cell}.yaml"),
            *trainer_args(CONFIGS / "trainer/cpu.yaml"),
            "--config", str(CONFIGS / "experiment/streaming.yaml"),
            "--run_dir", str(run_dir),
            "--trainer.logger.init_args.name", f"stream-{name}",
            "--trainer.enable_progress_bar", "false",
            *data_args, *overrides]
    fit_once(run_dir, args, out)
    return Path(json.loads((run_dir / "results.json").read_text())["checkpoint"])


def excerpt(result: StreamResult, clock, seconds: float) -> tuple:
    frames = clock.frames_in(seconds)
    return result.envelope[:frames], result.posteriors[:frames], [d for d in result.detections if d.end_s < seconds]


def main(argv: list[str] | None = None) -> Path:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs") / time.strftime("streaming-%Y%m%d-%H%M%S"))
    parser.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm"], choices=MODELS)
    parser.add_argument("--epochs", type=number(1, integer=True), help="override the experiment's epoch cap")
    parser.add_argument("--data", type=Path, default=DATA,
                        help="the stream data config (configs/data/fsdd_stream.yaml: voices it trained on)")
    parser.add_argument("--data-root", help="the folder holding fsdd/ (default: $SPEECHRNN_DATA_ROOT or data/)")
    parser.add_argument("--mining-rounds", type=number(0, integer=True), default=0,
                        help="rounds of fine-tuning on the windows where the spotter fired on keyword-free training audio")
    parser.add_argument("--mining-threshold", type=THRESHOLDS.parser(), default=0.5,
                        help="the detector threshold for mining (below the shipped one: more hard negatives)")
    parser.add_argument("overrides", nargs="*", help="extra CLI overrides, e.g. --model.hidden_size=64")
    args = parser.parse_args(argv)
    with RunLock(args.out, flag="--out"):  # a second run on this --out is refused, naming this one
        return run(args)


def run(args: argparse.Namespace) -> Path:
    """Train, tune and score each spotter (finished fits reused), then the table, figures and export."""
    mining_point = OperatingPoint(args.mining_threshold, smooth_s=0.04)
    default_wandb_mode()
    torch.set_num_threads(1)  # the real-time factor is quoted for one thread; training is as fast
    data_args = [f"--data.init_args.keywords.init_args.data_root={args.data_root}"] if args.data_root else []
    overrides = list(args.overrides) + ([f"--trainer.max_epochs={args.epochs}"] if args.epochs is not None else [])
    started = time.perf_counter()
    summary = args.out / "results.json"
    results = json.loads(summary.read_text())["cells"] if summary.is_file() else {}  # a rerun keeps them
    spotters = []
    for cell in args.cells:
        for round_ in range(args.mining_rounds + 1):
            name = f"{cell}+mined{round_}" if round_ else cell
            started_fit = time.perf_counter()
            extra = mining_args(args.out, spotters[-1], round_, mining_point) if round_ else []
            checkpoint = load_checkpoint(train_one(cell, args.out, args.data, data_args + extra, overrides, name))
            spotters.append(name)
            streams = stream_files(args.out / name)
            if not figures_hold(results.get(name), checkpoint.path, streams):
                tuned = tune(checkpoint, streams["validation"], TARGET["false_alarms_per_hour"])
                store_operating_point(checkpoint.path, tuned["detector"])  # `speechrnn stream` uses it by default
                fit = json.loads((args.out / name / "results.json").read_text())
                results[name] = {**tuned, "detector": tuned["detector"].to_json(),
                                 "test": evaluate(checkpoint, tuned["detector"], streams["test"])[0],
                                 "checkpoint": str(checkpoint.path), "checkpoint_sha256": file_digest(checkpoint.path),
                                 "streams": str(streams["test"]["keywords"].parent),
                                 "window_accuracy": fit["test"]["accuracy"], "epochs": fit["epochs"],
                                 "fit_s": fit["train_seconds"], "wall_s": time.perf_counter() - started_fit}
                write_json(summary, {"target": TARGET, "cells": results})
            print(f"{name}: {json.dumps(results[name]['test'])}", flush=True)
    text = spotter_table({name: results[name] for name in spotters})
    (args.out / "table.md").write_text(text + "\n")
    plot_operating_curves({name: results[name]["test"]["curve"] for name in spotters}, args.out / "curves.png",
                          target=(TARGET["false_alarms_per_hour"], TARGET["detection_rate"]))
    best = max(spotters, key=lambda c: (results[c]["test"]["detection_rate"], -results[c]["test"]["false_alarms_per_hour"]))
    checkpoint = load_checkpoint(results[best]["checkpoint"])
    detector = OperatingPoint(**results[best]["detector"])
    test_streams = stream_files(args.out / best)["test"]
    spotted, _ = run_file(checkpoint, test_streams["keywords"], detector)
    envelope, posteriors, detections = excerpt(spotted, checkpoint.features, FIGURE_S)
    truth = [w for w in keywords_of(test_streams["keywords"]) if w["end_s"] < FIGURE_S]
    plot_stream(envelope, posteriors, checkpoint.labels, checkpoint.features.frame_s, detections,
                args.out / "stream.png", threshold=detector.threshold, truth=truth, title=f"{best}: the first {FIGURE_S:g} s of the test stream")
    export = {"cell": best, **onnx_figures(checkpoint, detector, test_streams, args.out / best)}
    write_json(summary, {"target": TARGET, "cells": results, "export": export})
    print(f"\n{text}\n\nexport ({best}): {json.dumps(export)}")
    print(f"streaming pipeline finished in {time.perf_counter() - started:.0f} s; results in {args.out}/")
    return args.out


def figures_hold(recorded: dict | None, checkpoint: Path, streams: dict[str, dict[str, Path]]) -> bool:
    """Whether ``recorded`` figures were measured on these test streams for the checkpoint as it is now
    (its bytes, tuned point included): a retrained or retuned spotter is tuned and scored again."""
    return (recorded is not None and recorded.get("streams") == str(streams["test"]["keywords"].parent)
            and recorded.get("checkpoint_sha256") == file_digest(checkpoint))


def mining_args(out: Path, previous: str, round_: int, point: OperatingPoint) -> list[str]:
    """Fit arguments of mining round ``round_``: the windows where ``previous``'s best model fired on the
    training keyword-free tape (mined once, into ``out/mined/``), and its weights to start from."""
    checkpoint = json.loads((out / previous / "results.json").read_text())["checkpoint"]
    path = out / "mined" / f"{previous}-round{round_}.json"
    if not path.is_file():
        datamodule = build_data_module(out / previous / "config.yaml")
        datamodule.prepare_data()
        windows, detections = mine(load_checkpoint(checkpoint).model(), datamodule, point)
        write_mined(path, datamodule.directory.name, windows, point, len(detections))
        print(f"{previous}: {len(detections)} detections on the training keyword-free tape, {len(windows)} "
              f"windows mined into {path}", flush=True)
    initial = {"class_path": "speechrnn.training.callbacks.InitialWeights", "init_args": {"checkpoint": checkpoint}}
    return [f"--data.init_args.mined_windows={path}", f"--trainer.callbacks+={json.dumps(initial)}"]


def stream_files(run_dir: Path) -> dict[str, dict[str, Path]]:
    """The validation and test streams of a run's data module, rebuilt from ``run_dir/config.yaml``."""
    datamodule = build_data_module(run_dir / "config.yaml")
    datamodule.prepare_data()  # nothing to do unless the streams were deleted
    return {split: datamodule.stream_files(split) for split in SCORED_SPLITS}


if __name__ == "__main__":
    exit_on_user_error(main)
