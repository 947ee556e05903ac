"""int8 weights for the audio graph, kept only where the spotter's figures hold.

The int8 graph must detect as many keywords on a keyword stream as the float graph, to within
``MAX_DETECTION_LOSS``, and raise no more false alarms on a keyword-free stream than the upper
end of the float count's 95% Poisson interval; else it is refused with the measured loss. Each
stream is a WAV with its timeline (the .json beside it, as the stream corpus writes it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from speechrnn.data.chunks import read_chunks
from speechrnn.errors import SpeechRNNError
from speechrnn.files import atomic_write
from speechrnn.operating_point import OperatingPoint
from speechrnn.stats import poisson_interval
from speechrnn.streaming.detect import detect, score
from speechrnn.streaming.export import OnnxAudioGraph, quantize_onnx
from speechrnn.streaming.tuning import TOLERANCE_S

MAX_DETECTION_LOSS = 0.005  # half a point of detection rate
CHUNK_S = 0.1  # as `speechrnn stream` reads


@dataclass(frozen=True)
class StreamFigures:
    """A graph's detections on a keyword stream and its false alarms on a keyword-free one."""

    hits: int
    keywords: int
    false_alarms: int
    keyword_free_s: float

    @property
    def detection_rate(self) -> float:
        return self.hits / self.keywords

    def per_hour(self, count: float) -> float:
        return count / (self.keyword_free_s / 3600)

    def describe(self) -> str:
        return (f"detection {100 * self.detection_rate:.1f}% ({self.hits}/{self.keywords}), "
                f"{self.per_hour(self.false_alarms):.1f} false alarms/h ({self.false_alarms} in "
                f"{self.keyword_free_s / 3600:.2f} h)")


def keywords_in(stream: Path) -> list[dict]:
    """The keywords of a stream's timeline (the .json beside its WAV)."""
    timeline = Path(stream).with_suffix(".json")
    if not timeline.is_file():
        raise SpeechRNNError(f"--streams {stream} has no timeline {timeline}; give streams the stream corpus "
                             "wrote (its test.wav and test-keyword-free.wav)")
    return [e for e in json.loads(timeline.read_text())["events"] if e["kind"] == "keyword"]


def stream_figures(graph: OnnxAudioGraph, keyword_stream: Path, keyword_free: Path,
                   point: OperatingPoint) -> StreamFigures:
    clock = graph.features

    def detections(path: Path) -> tuple[list, float]:
        chunks = [c.numpy() for c in read_chunks(path, clock.sample_rate, CHUNK_S, notify=lambda _: None)]
        posteriors = torch.from_numpy(graph.stream(chunks))
        return detect(posteriors, graph.labels, clock, point), sum(map(len, chunks)) / clock.sample_rate

    found, duration_s = detections(keyword_stream)
    words = score(found, keywords_in(keyword_stream), duration_s, TOLERANCE_S)
    alarms, free_s = detections(keyword_free)
    return StreamFigures(words.hits, words.keywords, len(alarms), free_s)


def check_quantised(exact: StreamFigures, int8: StreamFigures, source: str) -> str:
    """A line saying int8 holds against float; SpeechRNNError with the measured loss when it does not."""
    _, most_alarms = poisson_interval(exact.false_alarms)
    loss = exact.detection_rate - int8.detection_rate
    verdict = f"int8 weights: {int8.describe()}; float: {exact.describe()}"
    if loss > MAX_DETECTION_LOSS or int8.false_alarms > most_alarms:
        raise SpeechRNNError(f"{verdict}: int8 loses {100 * loss:.1f} points of detection (at most "
                             f"{100 * MAX_DETECTION_LOSS:.1f} allowed) or raises false alarms past "
                             f"{exact.per_hour(most_alarms):.1f}/h (the float count's 95% Poisson interval), so "
                             f"{source} is not quantised; ship the float graph")
    return f"{verdict}: within {100 * MAX_DETECTION_LOSS:.1f} point and the 95% Poisson interval of false alarms"


def quantize_checked(path: Path, out: Path, streams: tuple[Path, Path], point: OperatingPoint, source: str) -> str:
    """Write ``path`` with int8 weights to ``out`` if it holds on ``streams`` (keywords, keyword-free) at ``point``.

    Returns the line that says so; raises SpeechRNNError with the measured loss, writing nothing, if not.
    """
    with atomic_write(out) as tmp:
        quantize_onnx(path, tmp)
        figures = [stream_figures(OnnxAudioGraph(graph), *streams, point) for graph in (path, tmp)]
        return check_quantised(*figures, source)
