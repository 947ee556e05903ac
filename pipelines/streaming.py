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
keeps the trained runs and the figures of unchanged checkpoints.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from pipelines.configs import CONFIGS, MODELS, recipe_args, trainer_args
from pipelines.fit_settings import fit_once
from speechrnn.checkpoint import load_checkpoint, store_operating_point
from speechrnn.cli import exit_on_user_error
from speechrnn.corpora.streams import SCORED_SPLITS
from speechrnn.corpora.tapes import featurise, read_timeline
from speechrnn.data.chunks import read_chunks
from speechrnn.data.pipeline import build_data_module
from speechrnn.files import write_json
from speechrnn.options import Parser, number
from speechrnn.plots import plot_operating_curves, plot_stream
from speechrnn.streaming.detect import THRESHOLDS, Detector, OperatingPoint, detect, score
from speechrnn.streaming.export import OnnxStep, export_onnx, quantize_onnx
from speechrnn.streaming.mining import mine, write_mined
from speechrnn.streaming.runner import Streamer, StreamResult, spot
from speechrnn.streaming.tuning import TOLERANCE_S, best_within, detection_at, sweep
from speechrnn.training.runlock import RunLock
from speechrnn.training.tracking import default_wandb_mode

CHUNK_S = 0.1  # audio per chunk: a 100 ms reaction budget
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


def run_stream(checkpoint, path: Path, point: OperatingPoint, keep: bool = True) -> tuple[StreamResult, float]:
    """A whole stream file through the spotter, chunk by chunk, and the CPU seconds it took."""
    streamer = Streamer.from_checkpoint(checkpoint)
    spotter = Detector(streamer.labels, checkpoint.features, point)
    started = time.process_time()
    result = spot(streamer, spotter, read_chunks(path, checkpoint.features.sample_rate, CHUNK_S), keep=keep)
    return result, time.process_time() - started


def keywords_of(path: Path) -> list[dict]:
    return [e for e in read_timeline(path)["events"] if e["kind"] == "keyword"]


def tune(checkpoint, files: dict[str, Path]) -> dict:
    """The smoothing and threshold with the most validation detections within the false-alarm target
    (where none is within, the fewest false alarms).

    False alarms are counted over both validation streams (an hour and more of audio).
    """
    runs = [run_stream(checkpoint, files[name], OperatingPoint())[0] for name in ("keywords", "keyword_free")]
    curve = stream_curve(checkpoint, *runs, keywords_of(files["keywords"]))
    best = best_within(curve, TARGET["false_alarms_per_hour"])
    return {"detector": best.point, "validation": {
        "detection_rate": best.detection_rate, "false_alarms": best.false_alarms, "audio_s": round(3600 * best.hours, 1),
        "det_at_1fa": detection_at(curve, 1.0)}}


def stream_curve(checkpoint, spotted: StreamResult, free: StreamResult, truth: list[dict]) -> list:
    """The operating curve (:func:`speechrnn.streaming.tuning.sweep`) of a keyword and a keyword-free run."""
    return sweep(spotted.posteriors, truth, free.posteriors, checkpoint.labels, checkpoint.features)


def evaluate(checkpoint, detector: OperatingPoint, files: dict[str, Path]) -> tuple[dict, StreamResult]:
    """Test figures with the tuned detector; the keyword stream's result, for the figure."""
    spotted, _ = run_stream(checkpoint, files["keywords"], detector)
    truth = keywords_of(files["keywords"])
    words = score(spotted.detections, truth, spotted.duration_s, TOLERANCE_S)
    free, cpu_s = run_stream(checkpoint, files["keyword_free"], detector)
    latencies = sorted(words.latencies_s)
    curve = stream_curve(checkpoint, spotted, free, truth)
    return {
        # the best detector setting on the test streams themselves: what the model allows, not what ships
        "det_at_1fa_best_setting": detection_at(curve, 1.0),
        "detection_rate": words.detection_rate,
        "keywords": words.keywords,
        "hits": words.hits,
        "false_alarms_in_keyword_stream": words.false_alarms,
        "keyword_stream_s": round(words.duration_s, 1),
        "false_alarms_keyword_free": len(free.detections),
        "keyword_free_s": round(free.duration_s, 1),
        "false_alarms_per_hour": len(free.detections) / (free.duration_s / 3600),
        "latency_median_s": statistics.median(latencies) if latencies else None,
        "latency_p90_s": latencies[int(0.9 * (len(latencies) - 1))] if latencies else None,
        "rtf": cpu_s / free.duration_s,
        "cpu_s": round(cpu_s, 1),
        "curve": threshold_curve(curve, detector, free.duration_s),
    }, spotted


def threshold_curve(curve: list, detector: OperatingPoint, free_s: float) -> list:
    """``[threshold, detection rate, keyword-free false alarms per hour]`` at every threshold of the
    grid with the detector's smoothing: the test trade-off, for reading only (the operating point
    is the one tuned on validation)."""
    return [[c.point.threshold, c.detection_rate, c.keyword_free_alarms / (free_s / 3600)]
            for c in curve if c.point == replace(detector, threshold=c.point.threshold)]


def table(results: dict) -> str:
    """One row per cell: the test figures with the tuned detector."""
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


class TorchStep:
    """The model's streaming step with OnnxStep's calling convention:
    ``(feats (T, F), state) -> (posteriors (T, C), state)``."""

    def __init__(self, checkpoint) -> None:
        self.step = checkpoint.model().streaming_step(f"checkpoint {checkpoint.path}")

    def initial_state(self) -> tuple:
        return self.step.initial_state()

    @torch.inference_mode()
    def __call__(self, feats: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        posteriors, *state = self.step(torch.from_numpy(feats)[None], *state)
        return posteriors[0].numpy(), tuple(state)


def onnx_figures(checkpoint, detector: OperatingPoint, files: dict[str, Path], out: Path) -> dict:
    """The exported step (float and int8 weights) in onnxruntime on the test keyword stream, one thread.

    Detection rate, CPU seconds per audio second of the step alone (front end excluded, the
    same frames for all three) and the largest posterior change against PyTorch.
    """
    path = export_onnx(TorchStep(checkpoint).step, checkpoint.features, out / "step.onnx", detector)
    runners = {"pytorch": TorchStep(checkpoint), "onnx": OnnxStep(path),
               "onnx_int8": OnnxStep(quantize_onnx(path, out / "step.int8.onnx"))}
    feats = featurise(sf.read(files["keywords"], dtype="float32")[0], checkpoint.features).numpy()  # (T, F)
    clock = checkpoint.features
    chunk = clock.frames_in(CHUNK_S)  # frames per chunk
    truth, duration_s = keywords_of(files["keywords"]), clock.centre_s(len(feats))
    figures, reference = {}, None
    for name, runner in runners.items():
        state, outputs, started = runner.initial_state(), [], time.process_time()
        for i in range(0, len(feats), chunk):
            posteriors, state = runner(feats[i : i + chunk], state)
            outputs.append(posteriors)
        cpu_s = time.process_time() - started
        posteriors = torch.from_numpy(np.concatenate(outputs))
        reference = posteriors if reference is None else reference
        found = detect(posteriors, checkpoint.labels, clock, detector)
        figures[name] = {"detection_rate": score(found, truth, duration_s, TOLERANCE_S).detection_rate,
                         "step_rtf": cpu_s / duration_s,
                         "max_posterior_change": float((posteriors - reference).abs().max())}
    return figures


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
            if results.get(name, {}).get("streams") != str(streams["test"]["keywords"].parent):
                tuned = tune(checkpoint, streams["validation"])
                store_operating_point(checkpoint.path, tuned["detector"])  # `speechrnn stream` uses it by default
                fit = json.loads((args.out / name / "results.json").read_text())
                results[name] = {**tuned, "detector": tuned["detector"].to_json(),
                                 "test": evaluate(checkpoint, tuned["detector"], streams["test"])[0],
                                 "checkpoint": str(checkpoint.path), "streams": str(streams["test"]["keywords"].parent),
                                 "window_accuracy": fit["test"]["accuracy"], "epochs": fit["epochs"],
                                 "fit_s": fit["train_seconds"], "wall_s": time.perf_counter() - started_fit}
                write_json(summary, {"target": TARGET, "cells": results})
            print(f"{name}: {json.dumps(results[name]['test'])}", flush=True)
    text = table({name: results[name] for name in spotters})
    (args.out / "table.md").write_text(text + "\n")
    plot_operating_curves({name: results[name]["test"]["curve"] for name in spotters}, args.out / "curves.png",
                          target=(TARGET["false_alarms_per_hour"], TARGET["detection_rate"]))
    best = max(spotters, key=lambda c: (results[c]["test"]["detection_rate"], -results[c]["test"]["false_alarms_per_hour"]))
    checkpoint = load_checkpoint(results[best]["checkpoint"])
    detector = OperatingPoint(**results[best]["detector"])
    test_streams = stream_files(args.out / best)["test"]
    spotted, _ = run_stream(checkpoint, test_streams["keywords"], detector)
    envelope, posteriors, detections = excerpt(spotted, checkpoint.features, FIGURE_S)
    truth = [w for w in keywords_of(test_streams["keywords"]) if w["end_s"] < FIGURE_S]
    plot_stream(envelope, posteriors, checkpoint.labels, checkpoint.features.frame_s, detections,
                args.out / "stream.png", threshold=detector.threshold, truth=truth, title=f"{best}: the first {FIGURE_S:g} s of the test stream")
    export = {"cell": best, **onnx_figures(checkpoint, detector, test_streams, args.out / best)}
    write_json(summary, {"target": TARGET, "cells": results, "export": export})
    print(f"\n{text}\n\nexport ({best}): {json.dumps(export)}")
    print(f"streaming pipeline finished in {time.perf_counter() - started:.0f} s; results in {args.out}/")
    return args.out


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
