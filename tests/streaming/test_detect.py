import pytest
import torch

from speechrnn.data.corpus import BACKGROUND
from speechrnn.data.features import FeatureSettings
from speechrnn.errors import SpeechRNNError
from speechrnn.operating_point import OperatingPoint
from speechrnn.streaming.detect import Detection, Detector, detect, score

LABELS = ["yes", "no", BACKGROUND]
CLOCK = FeatureSettings(sample_rate=8000, hop_ms=20)  # 20 ms frames; a 256-sample FFT reads 16 ms ahead


def posteriors(bumps: list[tuple[int, int, int]], frames: int = 300) -> torch.Tensor:
    """``(frames, 3)``: background everywhere except ``(label id, first, last)`` spans at 0.9."""
    probs = torch.zeros(frames, 3)
    probs[:, 2] = 1.0
    for label, first, last in bumps:
        probs[first : last + 1] = torch.tensor([0.05, 0.05, 0.0])
        probs[first : last + 1, label] = 0.9
    return probs


def test_each_keyword_is_detected_once_with_its_label_and_times():
    found = detect(posteriors([(0, 50, 60), (1, 200, 209)]), LABELS, CLOCK, OperatingPoint(threshold=0.5, smooth_s=0.02))
    assert [(d.label, d.start_s, d.end_s) for d in found] == [("yes", 1.0, 1.2), ("no", 4.0, 4.18)]
    assert all(d.score == pytest.approx(0.9) for d in found)


def test_background_and_short_spikes_are_not_detected():
    probs = posteriors([(0, 100, 100)])  # one frame: the 100 ms average stays at 0.18
    assert detect(probs, LABELS, CLOCK, OperatingPoint(threshold=0.5, smooth_s=0.1)) == []
    assert detect(posteriors([]), LABELS, CLOCK, OperatingPoint(threshold=0.5)) == []


def test_refractory_time_suppresses_a_second_detection_right_after_the_first():
    probs = posteriors([(0, 50, 60), (0, 65, 75), (1, 120, 130)])
    found = detect(probs, LABELS, CLOCK, OperatingPoint(threshold=0.5, smooth_s=0.02, refractory_s=0.2))
    assert [(d.label, d.start_s) for d in found] == [("yes", 1.0), ("no", 2.4)]


def test_chunked_posteriors_give_the_same_detections_as_the_whole_stream():
    probs = posteriors([(0, 50, 60), (1, 90, 97), (0, 200, 230)]) + 0.02 * torch.rand(300, 3)
    whole = detect(probs, LABELS, CLOCK, OperatingPoint(threshold=0.6, smooth_s=0.1))
    detector = Detector(LABELS, CLOCK, OperatingPoint(threshold=0.6, smooth_s=0.1))
    chunked = [d for i in range(0, 300, 7) for d in detector.push(probs[i : i + 7])] + detector.finish()
    assert chunked == whole and len(whole) == 3
    assert whole[0].fired_s == pytest.approx(whole[0].start_s + 0.016)


@pytest.mark.parametrize("sizes", [[1], [3], [0, 1, 5], [0, 2, 3, 5]])
def test_chunks_shorter_than_the_smoothing_window_give_the_whole_streams_detections(sizes):
    # a front end with deltas hands over 0 or 1 frames first, then a chunk's worth: a 0.2 s smoothing
    # window (10 frames) is longer than a 0.1 s chunk (5 frames)
    probs = posteriors([(0, 50, 70), (1, 150, 175)])
    point = OperatingPoint(threshold=0.85, smooth_s=0.2)
    detector, chunked, start = Detector(LABELS, CLOCK, point), [], 0
    while start < len(probs):
        size = sizes[min(len(chunked), len(sizes) - 1)]
        chunked.append(detector.push(probs[start : start + size]))
        start += size
    found = [d for ds in chunked for d in ds] + detector.finish()
    assert found == detect(probs, LABELS, CLOCK, point) and len(found) == 2


def test_with_deltas_a_detection_fires_once_the_frames_its_deltas_read_have_arrived():
    probs = posteriors([(0, 50, 60)])
    plain = detect(probs, LABELS, CLOCK)[0]
    delayed = detect(probs, LABELS, FeatureSettings(sample_rate=8000, hop_ms=20, deltas=True))[0]
    assert plain.start_s == delayed.start_s
    assert delayed.fired_s - plain.fired_s == pytest.approx(4 * 0.02)  # deltas of deltas reach 4 frames ahead


@pytest.mark.parametrize(("flags", "message"), [
    ({"threshold": float("nan")}, r"--threshold is nan; it must be a number in \(0, 1\]"),
    ({"threshold": 0.0}, r"--threshold is 0.0; it must be a number in \(0, 1\]"),
    ({"smooth_s": float("nan")}, "--smooth-s is nan; it must be a number >= 0"),
    ({"refractory_s": float("inf")}, "--refractory-s is inf; it must be a number >= 0"),
    ({"refractory_s": -1.0}, "--refractory-s is -1.0; it must be a number >= 0"),
])
def test_an_operating_point_that_would_hang_or_never_fire_is_refused_naming_the_flag(flags, message):
    with pytest.raises(SpeechRNNError, match=message):
        OperatingPoint(**flags)


def test_score_counts_hits_false_alarms_and_latency():
    keywords = [{"label": "yes", "start_s": 1.0, "end_s": 1.5}, {"label": "no", "start_s": 3.0, "end_s": 3.4}]
    found = [Detection("yes", 1.6, 1.7, 0.9, 1.62),  # hit, 120 ms after the word's end
             Detection("yes", 3.5, 3.6, 0.9, 3.52),  # wrong label near "no": a false alarm and a miss
             Detection("no", 9.0, 9.1, 0.9, 9.02)]  # far from any keyword
    result = score(found, keywords, duration_s=36.0, tolerance_s=0.5)
    assert (result.hits, result.false_alarms, result.detection_rate) == (1, 2, 0.5)
    assert result.latencies_s == pytest.approx((0.12,))
    assert result.false_alarms_per_hour == pytest.approx(200.0)


def test_labels_without_a_keyword_are_refused():
    with pytest.raises(SpeechRNNError, match="no keyword"):
        Detector([BACKGROUND], CLOCK)
