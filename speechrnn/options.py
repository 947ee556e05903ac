"""Numeric options checked once, where they are declared: finite, in range, the range in the message.

Python's ``float("inf")``, ``float("nan")`` and ``1e30`` all parse, and a factor of ``inf`` or a
budget of ``-1`` runs on to a wrong number or no end. Every command and pipeline declares its
numbers through :func:`number` (an argparse ``type=``) and parses with :class:`Parser`, whose
errors are one line (a SpeechRNNError, exit 2) rather than a usage dump; a constructor that
LightningCLI fills from YAML or ``--data.x`` flags checks its own with :func:`check`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

from speechrnn.errors import SpeechRNNError


@dataclass(frozen=True)
class Range:
    """The numbers an option accepts: ``low``/``high`` bounds (None: unbounded), each open or closed."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def accepts(self, value: float) -> bool:
        """True when ``value`` is finite, whole if ``integer``, and within the bounds."""
        if not math.isfinite(float(value)) or (self.integer and value != int(value)):
            return False
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return not (too_low or too_high)

    def parser(self) -> Callable[[str], float]:
        """An argparse ``type=``: the text as an int (``integer``) or float in this range."""

        def number(text: str) -> float:  # argparse names the type by its function's name
            try:
                value = int(text) if self.integer else float(text)
                float(value)  # an int too large for a float is no option's value
            except (ValueError, OverflowError):
                value = math.nan
            if not self.accepts(value):
                raise argparse.ArgumentTypeError(f"{text} is not {self}")
            return value

        return number

    def __str__(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            return (f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {self.high:g}"
        return f"a finite {kind.removeprefix('a ')}"


def check(name: str, value: float, accepted: Range) -> float:
    """``value`` if ``accepted``; else SpeechRNNError naming ``name``, the value and the range."""
    if not accepted.accepts(value):
        raise SpeechRNNError(f"{name} is {value}; it must be {accepted}")
    return value


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False, integer: bool = False) -> Callable[[str], float]:
    """An argparse ``type=``: the text as an int (``integer``) or float within the bounds.

    ``number(low=0, low_open=True)`` takes positive finite floats, ``number(1, integer=True)``
    counts from 1, ``number(0, 1)`` a fraction.
    """
    return Range(low, high, low_open, high_open, integer).parser()


class Parser(argparse.ArgumentParser):
    """argparse with each error as one SpeechRNNError line (the CLI exits 2), not a usage dump."""

    def error(self, message: str):
        raise SpeechRNNError(f"{message} (see {self.prog} --help)")
