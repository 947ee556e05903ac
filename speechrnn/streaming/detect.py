"""Per-frame posteriors -> keyword detections, and detections scored against a known timeline.

A detection is a run of frames where the best keyword's smoothed posterior stays at or above
the threshold. Smoothing is a causal moving average (each frame averages itself and the frames
before it), so a detection never waits for audio beyond what the model has read; after a
detection ends, the detector ignores the stream for ``refractory_s``, and a new detection needs
the score to rise across the threshold after that (a long bump does not fire twice).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from speechrnn.data.features import FeatureSettings
from speechrnn.errors import SpeechRNNError
from speechrnn.options import Range, check

BACKGROUND = "background"  # the class of everything that is not a keyword: fillers, noise, silence
THRESHOLDS = Range(0.0, 1.0, low_open=True)  # 0 would always fire
SECONDS = Range(0.0)


@dataclass(frozen=True)
class OperatingPoint:
    """The detector's settings; ``make streaming`` tunes them and stores them in the checkpoint."""

    threshold: float = 0.5  # smoothed posterior at which a detection starts
    smooth_s: float = 0.1  # the causal moving-average window
    refractory_s: float = 0.3  # dead time after each detection

    def __post_init__(self) -> None:
        """Refuse values that would hang, never fire or always fire, naming the flag."""
        check("--threshold", self.threshold, THRESHOLDS)
        for name in ("smooth_s", "refractory_s"):
            check(f"--{name.replace('_', '-')}", getattr(self, name), SECONDS)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Detection:
    """One keyword found in a stream; times in seconds from the start of the stream.

    ``start_s``/``end_s`` are the centres of the first and last frames above the threshold;
    ``fired_s`` is when the detector knew: when the first frame could be computed, its
    front end's look-ahead (window and deltas) included.
    """

    label: str
    start_s: float
    end_s: float
    score: float  # the peak smoothed posterior
    fired_s: float

    def to_json(self) -> dict:
        return {key: round(value, 4) if isinstance(value, float) else value
                for key, value in asdict(self).items()}


class Detector:
    """Posteriors ``(T, C)`` in chunks -> the detections that ended in each chunk.

    Args:
        labels: the model's classes; those in ``background`` are never detected.
        clock: the feature settings, which say where each frame lies in time.
        point: threshold, smoothing and refractory time.
    """

    def __init__(self, labels: list[str], clock: FeatureSettings, point: OperatingPoint = OperatingPoint(),
                 background: tuple[str, ...] = (BACKGROUND,)) -> None:
        self.keyword_ids = torch.tensor([i for i, label in enumerate(labels) if label not in background])
        if len(self.keyword_ids) == 0:
            raise SpeechRNNError(f"the labels {labels} hold no keyword: all are background {background}")
        self.labels = list(labels)
        self.clock = clock
        self.threshold = point.threshold
        self.window = max(1, clock.frames_in(point.smooth_s))  # frames averaged
        self.refractory_frames = clock.frames_in(point.refractory_s)
        self.history = torch.zeros(0, len(self.keyword_ids))  # the last window - 1 frames
        self.frame = 0  # index of the next frame
        self.event: list | None = None  # [start, last, peak score, label id] of the open detection
        self.quiet_until = 0  # first frame a new detection may start at
        self.was_below = True  # a detection starts where the score crosses the threshold upwards

    def push(self, posteriors: Tensor) -> list[Detection]:
        """Detections that ended within these frames."""
        scores = torch.cat([self.history, posteriors[:, self.keyword_ids]])  # (window - 1 + T, K)
        count = len(posteriors)
        sums = torch.cat([torch.zeros(1, scores.shape[1]), scores.cumsum(0, dtype=torch.float64)])
        lows = (torch.arange(count) + len(scores) - count + 1 - self.window).clamp_min(0)
        highs = torch.arange(count) + len(scores) - count + 1
        smoothed = (sums[highs] - sums[lows]) / self.window  # (T, K): frames before the first count as 0
        # the last window - 1 frames; fewer while the stream is younger (a negative start would drop some)
        self.history = scores[max(0, len(scores) - (self.window - 1)):]
        best, best_id = smoothed.max(1)  # (T,) each: the leading keyword per frame
        done = []
        if count == 0:
            return done
        above = best >= self.threshold
        # runs of frames at or above the threshold: one Python step per run, not per frame
        edges = torch.diff(above.int(), prepend=torch.zeros(1, dtype=torch.int), append=torch.zeros(1, dtype=torch.int))
        runs = zip((edges == 1).nonzero()[:, 0].tolist(), ((edges == -1).nonzero()[:, 0] - 1).tolist())
        if self.event is not None and not above[0]:
            done.append(self._close())
        for first, last in runs:
            continuing = self.event is not None  # a run from the previous chunk, so first == 0
            rising = (self.was_below or first > 0) and self.frame + first >= self.quiet_until
            if not (continuing or rising):
                continue  # it crossed the threshold during the refractory time
            peak = first + int(best[first : last + 1].argmax())
            score, keyword = float(best[peak]), int(best_id[peak])
            if not continuing:
                self.event = [self.frame + first, self.frame + last, score, keyword]
            elif score > self.event[2]:
                self.event[1:] = [self.frame + last, score, keyword]
            else:
                self.event[1] = self.frame + last
            if last < count - 1:
                done.append(self._close())
        self.was_below = not bool(above[-1])
        self.frame += count
        return done

    def finish(self) -> list[Detection]:
        """The detection still open at the end of the stream, if any."""
        return [self._close()] if self.event is not None else []

    def _close(self) -> Detection:
        start, last, score, keyword = self.event
        self.event = None
        self.quiet_until = last + 1 + self.refractory_frames
        label = self.labels[int(self.keyword_ids[keyword])]
        return Detection(label, self.clock.centre_s(start), self.clock.centre_s(last), score,
                         self.clock.ready_s(start))


def detect(posteriors: Tensor, labels: list[str], clock: FeatureSettings,
           point: OperatingPoint = OperatingPoint()) -> list[Detection]:
    """Every detection in a whole stream's posteriors ``(T, C)``, as :class:`Detector` finds them."""
    detector = Detector(labels, clock, point)
    return detector.push(posteriors) + detector.finish()


@dataclass(frozen=True)
class Score:
    """How detections compare with the keywords a stream is known to hold."""

    keywords: int
    hits: int
    false_alarms: int  # detections matching no keyword (wrong label, or nowhere near one)
    latencies_s: tuple[float, ...]  # per hit: fired_s minus the keyword's end
    duration_s: float

    @property
    def detection_rate(self) -> float:
        return self.hits / self.keywords if self.keywords else float("nan")

    @property
    def false_alarms_per_hour(self) -> float:
        return self.false_alarms / (self.duration_s / 3600)


def score(detections: list[Detection], keywords: list[dict], duration_s: float,
          tolerance_s: float = 0.5) -> Score:
    """Match each detection to at most one keyword ``{"label", "start_s", "end_s"}`` of the same label.

    A hit fires between the keyword's start and ``tolerance_s`` after its end; every detection
    left unmatched is a false alarm.
    """
    unmatched = list(range(len(keywords)))
    hits, latencies = 0, []
    for det in sorted(detections, key=lambda d: d.fired_s):
        match = next((i for i in unmatched if keywords[i]["label"] == det.label
                      and keywords[i]["start_s"] <= det.fired_s <= keywords[i]["end_s"] + tolerance_s), None)
        if match is not None:
            unmatched.remove(match)
            hits += 1
            latencies.append(det.fired_s - keywords[match]["end_s"])
    return Score(len(keywords), hits, len(detections) - hits, tuple(latencies), duration_s)
