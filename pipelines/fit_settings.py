"""What a pipeline's fit was trained under, so a rerun reuses a finished fit only under the same.

A LOSO fold, a sweep run or a spotter whose results exist is skipped, so an interrupted pipeline
resumes. A rerun with another hidden size or epoch budget must not pick those results up as its
own: each fit records :func:`fit_settings` beside its results, and :func:`check_reusable`
compares. The settings are everything that made the result: the arguments (overrides and seeds
among them) and the content of every file they name (config files however given, a teacher's or
a starting checkpoint, mined windows), so a retrained input means a refit. :func:`fit_once` does
it all for a fit in its own run folder, under that folder's lock: two pipelines on one ``--out``
never check, delete or train one folder at once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from speechrnn.cli import SpeechCLI, run_lightning
from speechrnn.errors import SpeechRNNError
from speechrnn.files import same_path, write_json
from speechrnn.training.runlock import RunLock

NAMING = "--trainer.logger.init_args."  # the W&B run's name, group and tags: they change no number


def fit_settings(args: list[str]) -> dict:
    """``{"args", "files"}``: the ``speechrnn fit`` arguments (W&B naming left out) and a hash of each
    file they name (``--config F``, ``-c F``, ``--config=F``, ``--x.y=F`` or a path inside a JSON
    value), so an edited config file or a retrained checkpoint counts as other settings too."""
    kept = []
    tokens = iter(args)
    for token in tokens:
        if token.startswith(NAMING):
            if "=" not in token:
                next(tokens, None)  # its value
            continue
        kept.append(token)
    return {"args": kept, "files": {path: hashlib.sha256(Path(path).read_bytes()).hexdigest()
                                    for path in named_files(kept)}}


def named_files(args: list[str]) -> list[str]:
    """Every existing file an argument names: whole, after its ``=``, or as a string in its JSON."""
    names = []
    for token in args:
        value = token.partition("=")[2] if token.startswith("-") else token
        try:
            parsed = json.loads(value) if value[:1] in ("[", "{") else value
        except ValueError:
            parsed = value
        names += [text for text in strings(parsed) if text not in names and Path(text).is_file()]
    return names


def strings(value) -> list[str]:
    """The strings in a parsed JSON value."""
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [text for item in items for text in strings(item)]


def flags(args: list[str]) -> list[str]:
    """``args`` with each flag and its value joined (``--model.lr 0.1``), so a changed value names its flag."""
    joined = []
    for arg in args:
        if joined and joined[-1].startswith("--") and not {"=", " "} & set(joined[-1]) and not arg.startswith("--"):
            joined[-1] += f" {arg}"
        else:
            joined.append(arg)
    return joined


def difference(recorded: dict | None, wanted: dict) -> str:
    """The arguments and config files that differ, in words."""
    if recorded is None:
        return "settings it does not record"
    now = [arg for arg in flags(wanted["args"]) if arg not in flags(recorded["args"])]
    then = [arg for arg in flags(recorded["args"]) if arg not in flags(wanted["args"])]
    edited = sorted(path for path, digest in wanted["files"].items() if recorded.get("files", {}).get(path) != digest)
    parts = [f"now {' '.join(now)}" if now else "", f"then {' '.join(then)}" if then else "",
             f"files new or changed since: {', '.join(edited)}" if edited else ""]
    return "; ".join(part for part in parts if part) or "the same arguments in another order"


def check_reusable(folder: Path, recorded: dict | None, wanted: dict, out: Path) -> None:
    """Raise SpeechRNNError unless the finished fit in ``folder`` was trained under ``wanted``.

    Refused rather than retrained: ``out`` holds another experiment's results (hours of training,
    perhaps), and a rerun that quietly deleted them because a flag changed would surprise more
    than one that says so; results of two settings mixed in one summary would be wrong.
    """
    if recorded != wanted:
        raise SpeechRNNError(f"{folder} was trained under other settings ({difference(recorded, wanted)}); "
                             f"pass another --out for these settings, or remove {out} to train them there")


def is_finished(run_dir: Path, args: list[str], out: Path) -> bool:
    """True when the fit in ``run_dir`` has its results, trained under ``args``; refused when under others."""
    if not (run_dir / "results.json").is_file():
        return False
    settings = run_dir / "settings.json"
    recorded = json.loads(settings.read_text()) if settings.is_file() else None
    check_reusable(run_dir, recorded, fit_settings(args), out)
    return True


def fit_once(run_dir: Path, args: list[str], out: Path) -> SpeechCLI | None:
    """Under ``run_dir``'s lock: the finished fit there reused if trained under ``args`` (refused if
    under others), else ``speechrnn fit args`` into it. Returns the finished LightningCLI of a new fit.

    A second pipeline on the same folder is refused naming the first before it reads or deletes anything.
    """
    with RunLock(run_dir, flag="--out") as lock:
        if is_finished(run_dir, args, out):
            return None
        return fit_recorded(run_dir, args, lock)


def fit_recorded(run_dir: Path, args: list[str], lock: RunLock) -> SpeechCLI:
    """``speechrnn fit args`` into ``run_dir``, emptied first (all but the held ``lock``'s file) and its
    settings recorded first (an interrupted fit starts again).

    Returns the finished LightningCLI (its trainer holds what ``results.json`` leaves out).
    """
    if lock.fd is None or not same_path(lock.run_dir, run_dir):
        raise ValueError(f"fit_recorded needs the lock of {run_dir}, got one of {lock.run_dir}")  # a bug
    for path in run_dir.iterdir():
        if path != lock.path:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    write_json(run_dir / "settings.json", fit_settings(args))  # before the fit: results imply settings
    return run_lightning(args, run_lock=lock)
