"""The one confidence interval of the summaries over speakers (LOSO) and seeds (sweep)."""

import math

import pytest

from speechrnn.stats import t_interval


def test_interval_is_students_t_of_the_mean():
    mean, low, high = t_interval([0.8, 0.9, 1.0])
    half = 4.3027 * 0.1 / 3**0.5  # t(0.975, 2 degrees of freedom) * sd / sqrt(n), from a t table
    assert mean == pytest.approx(0.9) and low == pytest.approx(0.9 - half, abs=1e-4) and high == 1.0


def test_an_accuracy_interval_is_clipped_to_0_and_1():
    mean, low, high = t_interval([0.1, 0.9])  # t(0.975, 1) = 12.706: the raw interval is -4.58 to 5.58
    assert (mean, low, high) == (pytest.approx(0.5), 0.0, 1.0)
    assert t_interval([0.4, 0.5, 0.6]) == pytest.approx((0.5, 0.5 - 4.3027 * 0.1 / 3**0.5, 0.5 + 4.3027 * 0.1 / 3**0.5),
                                                        abs=1e-4)


def test_one_value_has_no_interval():
    mean, low, high = t_interval([0.7])
    assert mean == 0.7 and math.isnan(low) and math.isnan(high)
