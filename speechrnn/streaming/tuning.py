"""A spotter's operating curve (detection rate against false alarms per hour over a grid of detector
settings), and the operating point tuned on it.

Both the validation-time metric (detection at 1 false alarm per hour, the checkpoint monitor of
the spotter recipe) and the tuning of the shipped operating point (:func:`tune`, which ``speechrnn
tune`` and ``make streaming`` call) read this one curve, so the point a model was selected for is
the point it is tuned for.

A spotter is tuned on a pair of streams, ``{"keywords": WAV, "keyword_free": WAV}``: the first with
its timeline beside it (:mod:`speechrnn.data.timeline`), the second holding no keyword.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from speechrnn.data.features import FeatureSettings
from speechrnn.data.timeline import keywords_of
from speechrnn.errors import SpeechRNNError
from speechrnn.operating_point import DEFAULT_POINT, OperatingPoint
from speechrnn.streaming.detect import detect, score
from speechrnn.streaming.runner import StreamResult, run_file

TOLERANCE_S = 0.5  # a hit fires between the keyword's start and this long after its end
# fine steps near 1, where a spotter tuned for no false alarm ends up
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99, 0.995,
              0.998, 0.999)
SMOOTHING_S = (0.04, 0.1, 0.2)
REFRACTORY_S = 0.3
TARGET_FALSE_ALARMS_PER_HOUR = 1.0  # the spotter recipe's target


@dataclass(frozen=True)
class CurvePoint:
    """One detector setting's figures over a keyword stream and a keyword-free stream together."""

    point: OperatingPoint
    detection_rate: float  # keywords of the keyword stream detected with their label
    false_alarms: int  # unmatched detections in the keyword stream plus every keyword-free detection
    hours: float  # audio of both streams
    keyword_free_alarms: int  # the keyword-free stream's share of ``false_alarms``

    @property
    def false_alarms_per_hour(self) -> float:
        return self.false_alarms / self.hours


def sweep(keyword_posteriors: Tensor, keywords: list[dict], free_posteriors: Tensor, labels: list[str],
          clock: FeatureSettings, thresholds=THRESHOLDS, smoothing_s=SMOOTHING_S) -> list[CurvePoint]:
    """Every (smoothing, threshold) of the grid scored on posteriors ``(T, C)`` of both streams.

    ``keywords`` is the keyword stream's timeline (``{"label", "start_s", "end_s"}`` per keyword).
    """
    durations_s = [clock.centre_s(len(p)) for p in (keyword_posteriors, free_posteriors)]
    hours = sum(durations_s) / 3600
    curve = []
    for smooth_s in smoothing_s:
        for threshold in thresholds:
            point = OperatingPoint(threshold, smooth_s, REFRACTORY_S)
            words = score(detect(keyword_posteriors, labels, clock, point), keywords, durations_s[0], TOLERANCE_S)
            free_alarms = len(detect(free_posteriors, labels, clock, point))
            curve.append(CurvePoint(point, words.detection_rate, words.false_alarms + free_alarms, hours, free_alarms))
    return curve


def detection_at(curve: list[CurvePoint], false_alarms_per_hour: float) -> float:
    """The best detection rate among settings within ``false_alarms_per_hour``; 0 where none is."""
    return max((c.detection_rate for c in curve if c.false_alarms_per_hour <= false_alarms_per_hour), default=0.0)


def best_within(curve: list[CurvePoint], false_alarms_per_hour: float) -> CurvePoint:
    """The most detections within the false-alarm rate; where no setting is within, the fewest false alarms.

    Ties go to the higher threshold (the safer setting).
    """
    def key(c: CurvePoint) -> tuple:
        within = c.false_alarms_per_hour <= false_alarms_per_hour
        return (within, c.detection_rate if within else -c.false_alarms, c.detection_rate, c.point.threshold)
    return max(curve, key=key)


def known_keywords(path: Path, labels: list[str]) -> list[dict]:
    """The keywords of the stream at ``path`` (its timeline), refused unless some exist and the model
    knows each label (``labels``)."""
    keywords = keywords_of(path)
    if not keywords:
        raise SpeechRNNError(f"the timeline of {path} holds no keyword event: nothing to detect; give a stream "
                             "that holds keywords")
    unknown = sorted({k["label"] for k in keywords} - set(labels))
    if unknown:
        raise SpeechRNNError(f"the timeline of {path} names keywords {unknown} that the model does not know "
                             f"(its labels: {labels}); give a stream of its keywords")
    return keywords


def stream_curve(checkpoint, spotted: StreamResult, free: StreamResult, keywords: list[dict]) -> list[CurvePoint]:
    """The operating curve (:func:`sweep`) of a keyword run and a keyword-free run of ``checkpoint``."""
    return sweep(spotted.posteriors, keywords, free.posteriors, checkpoint.labels, checkpoint.features)


def tune(checkpoint, files: dict[str, Path], false_alarms_per_hour: float = TARGET_FALSE_ALARMS_PER_HOUR) -> dict:
    """``{"detector": OperatingPoint, "validation": figures}``: the smoothing and threshold with the most
    detections on ``files`` within ``false_alarms_per_hour`` (where none is within, the fewest false alarms).

    False alarms are counted over both streams (the keyword stream's unmatched detections too).
    """
    keywords = known_keywords(files["keywords"], checkpoint.labels)
    runs = [run_file(checkpoint, files[name], DEFAULT_POINT)[0] for name in ("keywords", "keyword_free")]
    curve = stream_curve(checkpoint, *runs, keywords)
    best = best_within(curve, false_alarms_per_hour)
    return {"detector": best.point, "validation": {
        "detection_rate": best.detection_rate, "false_alarms": best.false_alarms, "audio_s": round(3600 * best.hours, 1),
        "det_at_1fa": detection_at(curve, 1.0)}}
