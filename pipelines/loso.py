"""Leave-one-speaker-out: accuracy on voices the model never heard, with a confidence interval.

Every speaker of the corpus is the test speaker in turn, for each encoder; each fold is one run of
the same ``speechrnn fit`` a user types (the data config and its corpus's experiment file,
``configs/model/<cell>.yaml``, ``configs/trainer/base.yaml`` and ``cpu.yaml``) with ``test_speakers:
[<speaker>]`` (and FSDD's ``split: speakers``). One held-out speaker is one sample of the population
of voices, so the summary is the mean over speakers with a 95% interval (Student's t over speakers,
clipped to 0-100%).
A corpus with thousands of speakers (Speech Commands) is held out in ``--folds K`` groups of
speakers instead. The run directory gets:

- ``<cell>/<speaker or fold>/``: each fold's run (config.yaml, checkpoints/, results.json);
- ``results.json``: per encoder the mean, the interval, each speaker's accuracy, and the test
  utterances of all folds pooled into accuracy per length bucket;
- ``table.md``, ``speakers.png`` (accuracy per speaker) and ``accuracy_by_length.png``.

A fold whose ``results.json`` exists is not run again, so an interrupted run resumes where it
stopped; each fold records what it was trained under (``settings.json``), and a rerun with other
settings (another hidden size, epoch budget, edited config file or retrained teacher) into the same
``--out`` is refused before any fold trains, and a second run on an ``--out`` in use is refused
naming the first (each fold is checked, trained and recorded under its folder's lock). Extra arguments go to every fold's ``speechrnn fit``::

    python -m pipelines.loso --out runs/loso [--cells rnn gru lstm] [--data configs/data/fsdd.yaml]
        [--data_root ROOT] [--epochs N] [--folds K] [--model.normalisation=utterance ...]
    python -m pipelines.loso --data configs/data/speech_commands.yaml --folds 5 --out runs/loso-sc

Two experiments per fold: ``--train_speakers K`` trains each fold on only K of the other speakers
(what each real voice buys; FSDD), and ``--teachers RUN [RUN ...]`` distils each fold's model
from those finished runs' best checkpoints of the same fold (``--distill_weight``,
``--distill_temperature``; :mod:`speechrnn.training.distillation`).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import time
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from pipelines.configs import CONFIGS, MODELS, recipe_args, trainer_args
from pipelines.fit_settings import fit_once, is_finished
from speechrnn.cli import exit_on_user_error
from speechrnn.data.pipeline import build_data_module, data_module_class
from speechrnn.errors import SpeechRNNError
from speechrnn.files import write_json
from speechrnn.options import Parser, number
from speechrnn.plots import plot_accuracy_by_length, plot_speaker_accuracy
from speechrnn.reports import markdown_table, percent
from speechrnn.stats import t_interval
from speechrnn.training.runlock import RunLock
from speechrnn.training.tracking import default_wandb_mode


def speaker_data_class(data_config: Path) -> type:
    """The data module class ``data_config`` builds; refused unless it can hold speakers out."""
    data = yaml.safe_load(data_config.read_text())["data"]
    data_class = data_module_class(data["class_path"], str(data_config))
    if "test_speakers" not in inspect.signature(data_class).parameters:
        raise SpeechRNNError(f"{data_class.__name__} ({data_config}) has no test_speakers argument, so no "
                             "speaker can be held out; use a corpus with speaker ids, such as fsdd or speech_commands")
    return data_class


def corpus_speakers(data_config: Path, data_root: str | None) -> list[str]:
    """The speakers of the corpus ``data_config`` builds, from its data module's utterance list."""
    speaker_data_class(data_config)  # refuses a corpus without speakers
    module = build_data_module(data_config, data_root=data_root)
    module.download()
    return sorted({utterance.speaker for utterance in module.utterances() if utterance.speaker})


def speaker_folds(speakers: list[str], folds: int | None) -> dict[str, list[str]]:
    """Fold name -> the speakers it holds out: one speaker per fold, or ``folds`` groups.

    Groups are dealt round-robin from the speakers ordered by a hash of their id, so every fold
    has a share of the speakers that does not depend on how the ids sort (a corpus with thousands
    of speakers, such as Speech Commands, needs groups). Fewer than two speakers leave no
    spread over voices to measure, so they are refused before any fold trains.
    """
    if len(set(speakers)) < len(speakers):
        raise SpeechRNNError(f"--speakers {' '.join(speakers)} names a speaker twice; name each once")
    if len(speakers) < 2:
        raise SpeechRNNError(f"leaving speakers out needs two or more speakers, got {len(speakers)} "
                             f"({', '.join(speakers) or 'none'}): there is no spread over voices to measure; "
                             "pass more --speakers, or a corpus with speaker ids")
    if folds is None:
        return {speaker: [speaker] for speaker in speakers}
    if not 2 <= folds <= len(speakers):
        raise SpeechRNNError(f"--folds {folds} must be between 2 and the number of speakers ({len(speakers)})")
    ordered = sorted(speakers, key=lambda speaker: hashlib.sha1(speaker.encode()).hexdigest())
    return {f"fold{k + 1}": sorted(ordered[k::folds]) for k in range(folds)}


def training_voices(speakers: list[str], held_out: str, count: int) -> list[str]:
    """The ``count`` speakers after ``held_out`` in ``speakers``' sorted order, wrapping round: each
    fold trains on as few real voices as asked, and every speaker trains in some folds."""
    ordered = sorted(speakers)
    if held_out not in ordered:
        raise SpeechRNNError(f"--speakers {held_out} is not a speaker of the corpus; its speakers are {ordered}")
    if not 1 <= count < len(ordered):
        raise SpeechRNNError(f"--train_speakers {count} must be between 1 and {len(ordered) - 1} (the speakers "
                             f"left when one of {ordered} is held out)")
    start = ordered.index(held_out)
    return [ordered[(start + k) % len(ordered)] for k in range(1, count + 1)]


def distillation_args(teacher_runs: list[Path], cell: str, fold: str, weight: float, temperature: float) -> list[str]:
    """The fit arguments that add :class:`~speechrnn.training.distillation.Distillation` with each
    teacher run's best checkpoint of the same cell and fold; a missing one is refused before any fit."""
    paths = [run / cell / fold / "checkpoints" / "best.ckpt" for run in teacher_runs]
    if missing := [str(path) for path in paths if not path.is_file()]:
        raise SpeechRNNError(f"--teachers: no best checkpoint at {', '.join(missing)}; pass the --out folders of "
                             f"finished `make loso` runs of {cell} over the same speakers")
    callback = {"class_path": "speechrnn.training.distillation.Distillation",
                "init_args": {"teachers": [str(path) for path in paths], "weight": weight, "temperature": temperature}}
    return [f"--trainer.callbacks+={json.dumps(callback)}"]


def fold_args(cell: str, fold: str, held_out: list[str], run_dir: Path, data_config: Path, group: str,
              overrides: list[str]) -> list[str]:
    """The ``speechrnn fit`` arguments of one fold.

    ``overrides`` hold what every fold shares (``main`` adds FSDD's ``split: speakers`` there).
    """
    return ["fit",
            *recipe_args(data_config),
            "--config", str(CONFIGS / f"model/{cell}.yaml"),
            *trainer_args(CONFIGS / "trainer/cpu.yaml"),
            f"--data.init_args.test_speakers={json.dumps(held_out)}",
            "--trainer.enable_progress_bar=false",
            "--trainer.logger.init_args.group", group,
            "--trainer.logger.init_args.name", f"loso-{cell}-{fold}",
            "--run_dir", str(run_dir),
            *overrides]


def pooled_test(folds: list[dict]) -> dict:
    """Every fold's test utterances together: overall and per length bucket (same edges in all)."""
    buckets = []
    for rows in zip(*(fold["test"]["buckets"] for fold in folds)):
        count = sum(row[1] for row in rows)
        correct = sum(row[1] * row[2] for row in rows if row[1])
        buckets.append([rows[0][0], count, correct / count if count else float("nan")])
    total = sum(row[1] for row in buckets)
    return {"accuracy": sum(row[1] * row[2] for row in buckets if row[1]) / total,
            "edges": folds[0]["test"]["edges"], "buckets": buckets}


def summarise(folds: dict[str, dict[str, dict]]) -> dict:
    """Per cell: mean and interval over speakers, each speaker's accuracy, the pooled test split."""
    summary = {}
    for cell, by_speaker in folds.items():
        accuracies = {speaker: fold["test"]["accuracy"] for speaker, fold in by_speaker.items()}
        runs = list(by_speaker.values())
        mean, low, high = t_interval(list(accuracies.values()))
        summary[cell] = {"cell": cell, "dataset": runs[0]["dataset"], "hop_ms": runs[0]["hop_ms"],
                         "mean": mean, "ci95": [low, high], "speakers": accuracies,
                         "test": pooled_test(runs), "parameters": runs[0]["parameters"],
                         "train_seconds": sum(run["train_seconds"] or 0 for run in runs)}
    return summary


def speaker_table(summary: dict) -> str:
    """Markdown: one row per encoder with the mean, the 95% interval and each held-out speaker."""
    speakers = list(next(iter(summary.values()))["speakers"])
    head = ["encoder", "mean", "95% CI (clipped to 0-100%)", *speakers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell, result in summary.items():
        low, high = result["ci95"]
        cells = [cell, percent(result["mean"]), f"{percent(low)} - {percent(high)}",
                 *(percent(result["speakers"][speaker]) for speaker in speakers)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(out: Path, summary: dict, overrides: list[str]) -> str:
    write_json(out / "results.json", {"overrides": overrides, "cells": summary})  # an empty bucket's NaN: null
    table = (f"{speaker_table(summary)}\n\nAll held-out utterances pooled, by length (frames):\n\n"
             f"{markdown_table(summary)}")
    (out / "table.md").write_text(table + "\n")
    plot_speaker_accuracy({cell: r["speakers"] for cell, r in summary.items()},
                          {cell: r["ci95"] for cell, r in summary.items()}, out / "speakers.png")
    hop_ms = next(iter(summary.values()))["hop_ms"]
    plot_accuracy_by_length({cell: r["test"] for cell, r in summary.items()}, out / "accuracy_by_length.png",
                            hop_ms=hop_ms, title="Held-out speakers: accuracy against length")
    return table


def main(argv: list[str] | None = None) -> Path:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs") / time.strftime("loso-%Y%m%d-%H%M%S"))
    parser.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm"], choices=MODELS)
    parser.add_argument("--data", type=Path, default=CONFIGS / "data/fsdd.yaml", help="the data config")
    parser.add_argument("--data_root", help="the folder holding the corpus (default $SPEECHRNN_DATA_ROOT)")
    parser.add_argument("--speakers", nargs="+", help="hold out only these (default: every speaker)")
    parser.add_argument("--folds", type=number(2, integer=True), help="hold out this many groups of speakers in "
                        "turn instead of one speaker at a time (for corpora with many speakers)")
    parser.add_argument("--epochs", type=number(1, integer=True), help="override the trainer's epoch budget")
    parser.add_argument("--teachers", type=Path, nargs="+", help="distil each fold from these finished runs' "
                        "best checkpoints of the same fold (speechrnn.training.distillation)")
    parser.add_argument("--distill_weight", type=number(0, 1, low_open=True), default=0.5,
                        help="the teachers' share of the loss")
    parser.add_argument("--distill_temperature", type=number(0, 100, low_open=True), default=2.0,
                        help="softens both posteriors")
    parser.add_argument("--train_speakers", type=number(1, integer=True), help="train each fold on only this many "
                        "of the other speakers (the next ones in sorted order): what each real voice buys")
    args, overrides = parser.parse_known_args(argv)  # the rest is checked by `speechrnn fit`
    if not args.data.is_file():
        raise SpeechRNNError(f"--data {args.data} not found; pass a data config, e.g. {CONFIGS / 'data/fsdd.yaml'}")
    if args.speakers is not None:
        speaker_folds(args.speakers, args.folds)  # refuses a bad --speakers or --folds before any work
    if args.train_speakers is not None and (
            args.folds is not None or "train_speakers" not in inspect.signature(speaker_data_class(args.data)).parameters):
        raise SpeechRNNError(f"--train_speakers needs one held-out speaker per fold (no --folds) and a corpus with a "
                             f"train_speakers argument (FSDD); got {args.data} with --folds {args.folds}")
    with RunLock(args.out, flag="--out"):  # a second run on this --out is refused, naming this one
        return run(args, overrides)


def run(args: argparse.Namespace, overrides: list[str]) -> Path:
    """Every fold of every cell (those finished under the same settings reused), then the report."""
    default_wandb_mode()
    # One thread: small recurrent layers gain nothing from more, and spin-waiting OpenMP threads
    # slow every run on a shared CPU (see pipelines/demo.py).
    torch.set_num_threads(1)
    overrides += [f"--data.init_args.data_root={args.data_root}"] if args.data_root else []
    overrides += [f"--trainer.max_epochs={args.epochs}"] if args.epochs is not None else []
    # A corpus with a ``split`` argument (FSDD) switches to its speakers split; the others (Speech
    # Commands) hold out ``test_speakers`` by that argument alone. Refuses a corpus without speakers.
    if "split" in inspect.signature(speaker_data_class(args.data)).parameters:
        overrides = ["--data.init_args.split=speakers", *overrides]
    held_out = speaker_folds(args.speakers or corpus_speakers(args.data, args.data_root), args.folds)
    speakers = corpus_speakers(args.data, args.data_root) if args.train_speakers is not None else []

    def fold_overrides(cell: str, fold: str) -> list[str]:
        """What every fold shares, and this fold's own voices to train on and teachers."""
        extra = [] if args.train_speakers is None else [
            f"--data.init_args.train_speakers={json.dumps(training_voices(speakers, fold, args.train_speakers))}"]
        if args.teachers:
            extra += distillation_args(args.teachers, cell, fold, args.distill_weight, args.distill_temperature)
        return [*overrides, *extra]

    started = time.perf_counter()
    plan = {(cell, fold): fold_args(cell, fold, held_out[fold], args.out / cell / fold, args.data, args.out.name,
                                    fold_overrides(cell, fold)) for cell in args.cells for fold in held_out}
    # every fold's arguments are built (an unknown speaker refused) and every finished fold checked before any trains
    todo = [(cell, fold) for (cell, fold), fit in plan.items() if not is_finished(args.out / cell / fold, fit, args.out)]
    with tqdm(todo, unit="fold", desc="leave speakers out") as progress:
        for cell, fold in progress:
            progress.set_postfix_str(f"{cell}, test {fold}")
            fit_once(args.out / cell / fold, plan[cell, fold], args.out)
    folds = {cell: {fold: json.loads((args.out / cell / fold / "results.json").read_text()) for fold in held_out}
             for cell in args.cells}
    table = write_report(args.out, summarise(folds), overrides)
    print(f"\n{table}\n")
    print(f"leave-one-speaker-out finished in {time.perf_counter() - started:.0f} s; results in {args.out}/ "
          f"(results.json, table.md, speakers.png, accuracy_by_length.png, W&B group {args.out.name!r})")
    return args.out


if __name__ == "__main__":
    exit_on_user_error(main)
