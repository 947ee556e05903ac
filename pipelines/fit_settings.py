"""What a pipeline's fit was trained under, so a rerun reuses a finished fit only under the same.

A LOSO fold, a sweep run or a spotter whose results exist is skipped, so an interrupted pipeline
resumes. A rerun with another hidden size or epoch budget must not pick those results up as its
own: each fit records :func:`fit_settings` beside its results, and :func:`check_reusable`
compares. :func:`is_finished` and :func:`fit_recorded` do both for a fit in its own run folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from speechrnn.cli import SpeechCLI, run_lightning
from speechrnn.errors import SpeechRNNError
from speechrnn.files import write_json

NAMING = "--trainer.logger.init_args."  # the W&B run's name, group and tags: they change no number


def fit_settings(args: list[str]) -> dict:
    """``{"args", "configs"}``: the ``speechrnn fit`` arguments (W&B naming left out) and a hash of
    each ``--config`` file's text, so an edited config file counts as other settings too."""
    kept, configs = [], {}
    tokens = iter(args)
    for token in tokens:
        if token.startswith(NAMING):
            if "=" not in token:
                next(tokens, None)  # its value
            continue
        kept.append(token)
        if token == "--config":
            path = next(tokens)
            kept.append(path)
        elif token.startswith("--config="):
            path = token.partition("=")[2]
        else:
            continue
        configs[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"args": kept, "configs": configs}


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
    edited = sorted(path for path, digest in wanted["configs"].items() if recorded["configs"].get(path) != digest)
    parts = [f"now {' '.join(now)}" if now else "", f"then {' '.join(then)}" if then else "",
             f"edited since: {', '.join(edited)}" if edited else ""]
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


def fit_recorded(run_dir: Path, args: list[str]) -> SpeechCLI:
    """``speechrnn fit args`` into ``run_dir``, its settings recorded first (an interrupted fit starts again).

    Returns the finished LightningCLI (its trainer holds what ``results.json`` leaves out).
    """
    shutil.rmtree(run_dir, ignore_errors=True)
    write_json(run_dir / "settings.json", fit_settings(args))  # before the fit: results imply settings
    return run_lightning(args)
