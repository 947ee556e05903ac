"""The detector's settings: what ``speechrnn tune`` chooses for a spotter and its checkpoint stores.

A value of its own, below both the checkpoint that stores it and the detector that reads it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from speechrnn.options import Range, check

THRESHOLDS = Range(0.0, 1.0, low_open=True)  # 0 would always fire
SECONDS = Range(0.0)


@dataclass(frozen=True)
class OperatingPoint:
    """Threshold, smoothing and refractory time of :class:`~speechrnn.streaming.detect.Detector`."""

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


DEFAULT_POINT = OperatingPoint()  # what a checkpoint without a tuned point streams at
