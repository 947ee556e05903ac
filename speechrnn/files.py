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
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from speechrnn.errors import SpeechRNNError


def check_writable(path: str | Path, flag: str, inputs: Iterable[str | Path] = (),
                   suffixes: Collection[str] | None = None) -> Path:
    """``path`` as a Path if a file can be written there; else SpeechRNNError naming ``flag`` and the fix.

    The one check of every output path, called on the arguments before the work, so a long run
    never fails at its last step and never overwrites what it reads: ``path`` is none of
    ``inputs``, not a folder, its folder exists or can be made, and its suffix (lower case, ""
    for none) is one of ``suffixes`` when given.
    """
    path = Path(path)
    if any(same_path(path, source) for source in inputs):
        raise SpeechRNNError(f"{flag} {path} is also an input of this command, which writing it would destroy; "
                             "choose another output path")
    if path.is_dir():
        raise SpeechRNNError(f"{flag} {path} is a folder; give a file name inside it, e.g. {path / 'out'}")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise SpeechRNNError(f"{flag} {path}: cannot write a {path.suffix or 'suffix-less'} file; end it in one of "
                             f"{', '.join(sorted(s for s in suffixes if s))}")
    return can_make(path, flag)


def check_folder_writable(folder: str | Path, flag: str) -> Path:
    """``folder`` if it is, or can be made, a folder to write files into; else SpeechRNNError naming ``flag``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SpeechRNNError(f"{flag} {folder} is a file, not a folder; choose another path")
    return can_make(folder, flag)


def can_make(path: Path, flag: str) -> Path:
    """``path`` if the nearest existing folder above it is a folder we may write into."""
    existing = next((p for p in path.parents if p.exists()), Path("."))
    if not existing.is_dir():
        raise SpeechRNNError(f"{flag} {path} lies under {existing}, which is a file, not a folder; "
                             "choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SpeechRNNError(f"{flag} {path}: cannot write into {existing} (permission denied); "
                             "choose a writable place")
    return path


def same_path(path: Path, other: str | Path) -> bool:
    """True when both name one file (through links and ``..``), existing or not."""
    other = Path(other)
    if path.exists() and other.exists():
        return os.path.samefile(path, other)
    return path.resolve() == other.resolve()


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
    with atomic_write(path) as tmp:
        tmp.write_text(json_text(value, indent) + "\n")
    return Path(path)


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file's bytes: its identity, so a figure computed from it is reused only for it."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def json_text(value, indent: int | None = None) -> str:
    """``value`` as strict JSON text, non-finite floats as null: every JSON speechrnn writes or prints."""
    return json.dumps(finite_or_none(value), indent=indent, allow_nan=False)
