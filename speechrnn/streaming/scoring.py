"""A spotter scored on a pair of streams at its operating point: detection rate, false alarms per
hour, latency, real-time factor, and its exported step against PyTorch.

The streams are those a spotter is tuned on (:mod:`speechrnn.streaming.tuning`), from another
split: ``{"keywords": WAV with its timeline beside it, "keyword_free": WAV}``. Everything runs
chunk by chunk with the state carried, as ``speechrnn stream`` runs, on the threads torch is given
(``make streaming`` quotes one).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speechrnn.data.frontend import featurise
from speechrnn.operating_point import OperatingPoint
from speechrnn.streaming.detect import detect, score
from speechrnn.streaming.export import OnnxStep, export_onnx, quantize_onnx
from speechrnn.streaming.runner import CHUNK_S, StreamResult, run_file
from speechrnn.streaming.tuning import (
    TOLERANCE_S,
    CurvePoint,
    detection_at,
    known_keywords,
    stream_curve,
)


def evaluate(checkpoint, detector: OperatingPoint, files: dict[str, Path]) -> tuple[dict, StreamResult]:
    """Figures with the ``detector`` tuned elsewhere; the keyword stream's result, for a figure."""
    truth = known_keywords(files["keywords"], checkpoint.labels)
    spotted, _ = run_file(checkpoint, files["keywords"], detector)
    words = score(spotted.detections, truth, spotted.duration_s, TOLERANCE_S)
    free, cpu_s = run_file(checkpoint, files["keyword_free"], detector)
    latencies = sorted(words.latencies_s)
    curve = stream_curve(checkpoint, spotted, free, truth)
    return {
        # the best detector setting on these streams themselves: what the model allows, not what ships
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


def threshold_curve(curve: list[CurvePoint], detector: OperatingPoint, free_s: float) -> list:
    """``[threshold, detection rate, keyword-free false alarms per hour]`` at every threshold of the
    grid with the detector's smoothing: the trade-off, for reading only (the operating point is
    the one tuned on validation)."""
    return [[c.point.threshold, c.detection_rate, c.keyword_free_alarms / (free_s / 3600)]
            for c in curve if c.point == replace(detector, threshold=c.point.threshold)]


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
    """The exported step (float and int8 weights, written into ``out``) in onnxruntime on the keyword
    stream: per runner, detection rate, CPU seconds per audio second of the step alone (front end
    excluded, the same frames for all three) and the largest posterior change against PyTorch."""
    path = export_onnx(TorchStep(checkpoint).step, checkpoint.features, out / "step.onnx", detector)
    runners = {"pytorch": TorchStep(checkpoint), "onnx": OnnxStep(path),
               "onnx_int8": OnnxStep(quantize_onnx(path, out / "step.int8.onnx"))}
    clock = checkpoint.features
    wave = sf.read(files["keywords"], dtype="float32")[0]
    feats = featurise(wave, clock, str(files["keywords"])).numpy()  # (T, F)
    chunk = clock.frames_in(CHUNK_S)  # frames per chunk
    truth, duration_s = known_keywords(files["keywords"], checkpoint.labels), clock.centre_s(len(feats))
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
