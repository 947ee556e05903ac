"""Files speechrnn writes: output paths checked before any work, written whole or not at all, JSON strict.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which are not JSON: strict parsers
(JavaScript, jq, most non-Python readers) reject the whole file. An empty length bucket has no
accuracy, so every non-finite float is written as ``null`` instead.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from speechrnn.errors import SpeechRNNError


def check_writable(path: str | Path, flag: str) -> Path:
    """``path`` as a Path if a file can be written there; else SpeechRNNError naming ``flag`` and the fix.

    Called on the arguments before the work, so a long run never fails at its last step.
    """
    path = Path(path)
    if path.is_dir():
        raise SpeechRNNError(f"{flag} {path} is a folder; give a file name inside it, e.g. {path / 'out'}")
    parent = path.parent
    existing = next((p for p in [parent, *parent.parents] if p.exists()), Path("."))
    if not existing.is_dir():
        raise SpeechRNNError(f"{flag} {path} lies under {existing}, which is a file, not a folder; "
                             "choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SpeechRNNError(f"{flag} {path}: cannot write into {existing} (permission denied); "
                             "choose a writable place")
    return path


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``, on failure removed.

    A reader (or a run killed mid-write) sees the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file's bytes: its identity, so a figure computed from it is reused only for it."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
