import torch

from speechrnn.data.corpus import BACKGROUND
from speechrnn.data.features import FeatureSettings
from speechrnn.streaming.tuning import best_within, detection_at, sweep

LABELS = ["yes", "no", BACKGROUND]
CLOCK = FeatureSettings(sample_rate=8000, hop_ms=20)
HOUR = 180_000  # frames of 20 ms


def bumps(frames: int, spans: list[tuple[int, int, float]]) -> torch.Tensor:
    """``(frames, 3)``: background everywhere but ``(first, last, score)`` spans of "yes"."""
    probs = torch.zeros(frames, 3)
    probs[:, 2] = 1.0
    for first, last, value in spans:
        probs[first : last + 1] = torch.tensor([value, 0.0, 1.0 - value])
    return probs


def keyword(first: int, last: int) -> dict:
    return {"label": "yes", "start_s": CLOCK.centre_s(first) - 0.1, "end_s": CLOCK.centre_s(last)}


def test_detection_at_one_false_alarm_per_hour_takes_the_best_threshold_within_the_rate():
    # four keywords: two found at 0.95, one at 0.75, one never; a false alarm at 0.8 in the keyword
    # stream and two at 0.6 in the keyword-free hour (the streams last 1.0033 h together)
    truth = [keyword(50, 60), keyword(150, 160), keyword(250, 260), keyword(350, 360)]
    spoken = bumps(600, [(52, 58, 0.95), (152, 158, 0.95), (252, 258, 0.75), (480, 486, 0.8)])
    free = bumps(HOUR, [(10_000, 10_006, 0.6), (90_000, 90_006, 0.6)])
    curve = sweep(spoken, truth, free, LABELS, CLOCK, thresholds=(0.5, 0.7, 0.8, 0.9), smoothing_s=(0.02,))
    figures = {c.point.threshold: (c.detection_rate, c.false_alarms) for c in curve}
    assert figures == {0.5: (0.75, 3), 0.7: (0.75, 1), 0.8: (0.5, 1), 0.9: (0.5, 0)}
    assert detection_at(curve, 1.0) == 0.75  # one false alarm in 1.0033 h is within 1 per hour
    assert detection_at(curve, 0.0) == 0.5
    assert detection_at([c for c in curve if c.false_alarms], 0.5) == 0.0  # nothing within: none detected
    assert best_within(curve, 1.0).point.threshold == 0.7
    assert best_within(curve, 0.0).point.threshold == 0.9
