"""The confidence intervals the summaries print: a mean over speakers or seeds, a count of events."""

from __future__ import annotations

import math
import statistics

from scipy.stats import t as student_t  # scipy comes with librosa


def t_interval(values: list[float], confidence: float = 0.95,
               bounds: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float, float]:
    """``(mean, low, high)``: the Student-t interval of the mean (n - 1 degrees of freedom), clipped to ``bounds``.

    An accuracy lies in [0, 1], so an interval reaching past it (few, spread values: 0.1 and 0.9
    give -4.6 to 5.6) is clipped there rather than printed as "-38%". One value gives no
    interval: ``low`` and ``high`` are NaN.
    """
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = student_t.ppf((1 + confidence) / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, max(bounds[0], mean - half), min(bounds[1], mean + half)


def poisson_interval(count: int, confidence: float = 0.95) -> tuple[float, float]:
    """``(low, high)``: the exact (Garwood) interval of a Poisson mean from one observed ``count``."""
    from scipy.stats import chi2

    alpha = 1 - confidence
    low = 0.0 if count == 0 else chi2.ppf(alpha / 2, 2 * count) / 2
    return float(low), float(chi2.ppf(1 - alpha / 2, 2 * count + 2) / 2)
