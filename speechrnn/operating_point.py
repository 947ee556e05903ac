"""The detector's settings: what ``speechrnn tune`` chooses for a spotter and its checkpoint stores.

A value of its own, below both the checkpoint that stores it and the detector that reads it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from speechrnn.errors import SpeechRNNError


@dataclass(frozen=True)
class OperatingPoint:
    """Threshold, smoothing and refractory time of :class:`~speechrnn.streaming.detect.Detector`."""

    threshold: float = 0.5  # smoothed posterior at which a detection starts
    smooth_s: float = 0.1  # the causal moving-average window
    refractory_s: float = 0.3  # dead time after each detection

    def __post_init__(self) -> None:
        """Refuse values that would hang, never fire or always fire, naming the flag."""
        if not (math.isfinite(self.threshold) and 0.0 < self.threshold <= 1.0):
            raise SpeechRNNError(f"--threshold must lie in (0, 1], got {self.threshold}")
        for name in ("smooth_s", "refractory_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise SpeechRNNError(f"--{name.replace('_', '-')} must be a finite number of seconds >= 0, "
                                     f"got {value}")

    def to_json(self) -> dict:
        return asdict(self)


DEFAULT_POINT = OperatingPoint()  # what a checkpoint without a tuned point streams at
