"""Strict JSON files: what speechrnn writes, any JSON parser reads back.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which are not JSON: strict parsers
(JavaScript, jq, most non-Python readers) reject the whole file. An empty length bucket has no
accuracy, so every non-finite float is written as ``null`` instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from speechrnn.output_files import atomic_write


def finite_or_none(value):
    """``value`` with every NaN or infinite float (in dicts, lists and tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def write_json(path: str | Path, value, indent: int | None = 1) -> Path:
    """Write ``value`` as strict JSON (non-finite floats as null) to ``path``, atomically.

    The text goes to ``<path>.tmp-<pid>`` and is renamed over ``path``, so a reader (or a run
    killed mid-write) sees the old file or the new one, never half of one.
    """
    text = json.dumps(finite_or_none(value), indent=indent, allow_nan=False)
    with atomic_write(path) as tmp:
        tmp.write_text(text + "\n")
    return Path(path)
