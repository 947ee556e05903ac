"""Leave-one-speaker-out with an ensemble: each held-out speaker's posteriors averaged over runs.

Several ``make loso`` runs of one cell (other seeds, other voice sources) each hold a best
checkpoint per held-out speaker. For every speaker, each run's checkpoint scores that speaker's
test utterances, and the ensemble's answer is the class with the highest mean posterior. Each
member's accuracy is computed again on the way and must equal its fold's ``results.json``, so the
ensemble is scored on exactly the data and model each run reported. Writes ``results.json`` and
``table.md`` (each member and the ensemble: mean over speakers, 95% interval, each speaker)::

    python -m pipelines.loso_ensemble --out runs/loso-ensemble runs/loso-a runs/loso-b runs/loso-c [--cell gru]

Members may be runs of other cells: ``--cell`` then names one cell per run, in order
(``--cell gru gru transformer``).

``--tta-warps`` (and ``--tta-tempos``) add test-time augmentation (:mod:`speechrnn.tta`): every
member also scores each utterance under those vocal-tract warps and tempos, combined per
``--tta-choice`` into the rows ``<member> tta-<choice>``; ``ensemble tta-<choice>`` combines the
members' mean posteriors of each variant. The agreement check reads the plain posteriors. With
test-time augmentation one run is enough (an ensemble of one)::

    python -m pipelines.loso_ensemble --out runs/loso-tta runs/loso-a --tta-warps 0.9 0.95 1.0 1.05 1.1
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm import tqdm

from pipelines.loso import speaker_table
from speechrnn.checkpoint import load_checkpoint
from speechrnn.cli import exit_on_user_error
from speechrnn.errors import SpeechRNNError
from speechrnn.evaluation import build_datamodule, posteriors
from speechrnn.files import check_folder_writable, same_path, write_json
from speechrnn.options import Parser
from speechrnn.stats import t_interval
from speechrnn.tta import CHOICES, FACTORS, TTASettings, combine

AGREEMENT = 1e-6  # a member's recomputed accuracy against its results.json


def fold_speakers(run: Path, cell: str) -> list[str]:
    """The held-out speakers of a finished run: its fold folders with a ``results.json``."""
    folds = sorted(path.parent.name for path in (run / cell).glob("*/results.json"))
    if not folds:
        raise SpeechRNNError(f"{run / cell} holds no finished fold (<speaker>/results.json); "
                             f"pass the --out folder of a finished `make loso` run of {cell}")
    return folds


def fold_posteriors(fold: Path, data_root: str | None, tta: TTASettings | None
                    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, list[str]]:
    """One fold's best checkpoint on its test split (:func:`speechrnn.evaluation.posteriors`), its
    accuracy checked against the fold's ``results.json``."""
    ckpt = load_checkpoint(fold / "checkpoints" / "best.ckpt")
    probs, variants, targets, keys = posteriors(ckpt, build_datamodule(ckpt, data_root=data_root), tta)
    reported = json.loads((fold / "results.json").read_text())["test"]["accuracy"]
    if abs((score := accuracy(probs, targets)) - reported) > AGREEMENT:
        raise SpeechRNNError(f"{fold}: its best checkpoint scores {score:.4f} on the test split now, its "
                             f"results.json says {reported:.4f}; the data or the checkpoint changed since the run, "
                             "so rerun that fold")
    return probs, variants, targets, keys


def accuracy(probs: torch.Tensor, targets: torch.Tensor) -> float:
    """The share of ``targets`` (N,) that the highest of ``probs`` (N, C) names."""
    return (probs.argmax(-1) == targets).double().mean().item()


def ensemble(runs: list[Path], cells: list[str], data_root: str | None, tta: TTASettings | None = None,
             choices: list[str] = ("mean",)) -> dict[str, dict[str, float]]:
    """Each held-out speaker's accuracy per member run (``runs[i]`` read in its folder ``cells[i]``),
    per member under test-time augmentation ``tta`` combined by each of ``choices``, and for the
    ensemble of two or more runs likewise."""
    speakers = fold_speakers(runs[0], cells[0])
    for run, cell in zip(runs[1:], cells[1:]):
        if (held_out := fold_speakers(run, cell)) != speakers:
            raise SpeechRNNError(f"{run} held out {held_out}, {runs[0]} {speakers}; "
                                 "an ensemble needs the same folds in every run")
    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        raise SpeechRNNError(f"runs {names} share a folder name; the table names each member by it")
    accuracy_of = {}
    progress = tqdm(total=len(speakers) * len(runs), desc="folds scored", unit="fold")
    for speaker in speakers:
        scored = []
        for run, cell in zip(runs, cells):
            scored.append(fold_posteriors(run / cell / speaker, data_root, tta))
            progress.update()
        _, _, targets, keys = scored[0]
        for run, cell, (_, _, other_targets, other_keys) in zip(runs[1:], cells[1:], scored[1:]):
            if other_keys != keys or not torch.equal(other_targets, targets):
                raise SpeechRNNError(f"{run / cell / speaker} tested other utterances than "
                                     f"{runs[0] / cells[0] / speaker}; an ensemble needs the same test split")
        members = {name: (probs, variants) for name, (probs, variants, _, _) in zip(names, scored)}
        if len(runs) > 1:
            members["ensemble"] = (torch.stack([probs for probs, _, _, _ in scored]).mean(0),
                                   None if tta is None else torch.stack([v for _, v, _, _ in scored]).mean(0))
        for name, (probs, variants) in members.items():
            accuracy_of.setdefault(name, {})[speaker] = accuracy(probs, targets)
            for choice in choices if variants is not None else ():
                accuracy_of.setdefault(f"{name} tta-{choice}", {})[speaker] = accuracy(combine(variants, choice), targets)
    progress.close()
    return accuracy_of


def main(argv: list[str] | None = None) -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="the --out folders of finished `make loso` runs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cell", nargs="+", default=["gru"],
                        help="the cell folder of every run, or one per run in order")
    parser.add_argument("--data_root", help="the folder holding the corpus (default: as each run was trained)")
    parser.add_argument("--tta-warps", nargs="+", type=FACTORS.parser(),
                        help="score under these vocal-tract warps too (e.g. 0.9 0.95 1.0 1.05 1.1); default: none")
    parser.add_argument("--tta-tempos", nargs="+", type=FACTORS.parser(),
                        help="and these tempo factors, every pair of warp and tempo (e.g. 0.9 1.0 1.1)")
    parser.add_argument("--tta-choice", nargs="+", choices=list(CHOICES), default=["mean"],
                        help="how the variants are combined, one row each (see speechrnn/tta.py)")
    args = parser.parse_args(argv)
    tta = None
    if args.tta_warps or args.tta_tempos:
        tta = TTASettings(tuple(args.tta_warps or [1.0]), tuple(args.tta_tempos or [1.0]))
    if len(args.runs) < 2 and tta is None:
        raise SpeechRNNError(f"an ensemble needs two or more runs, got {len(args.runs)}; "
                             "one run is rescored only under test-time augmentation (--tta-warps)")
    if len(args.cell) not in (1, len(args.runs)):
        raise SpeechRNNError(f"--cell names {len(args.cell)} cells for {len(args.runs)} runs; "
                             "give one cell for all, or one per run")
    if any(same_path(args.out, run) for run in args.runs):
        raise SpeechRNNError(f"--out {args.out} is one of the runs it reads, whose results it would overwrite; "
                             "pass another --out")
    check_folder_writable(args.out, "--out")
    cells = args.cell * len(args.runs) if len(args.cell) == 1 else args.cell
    accuracy_of = ensemble(args.runs, cells, args.data_root, tta, args.tta_choice)
    summary = {}
    for name, by_speaker in accuracy_of.items():
        mean, low, high = t_interval(list(by_speaker.values()))
        summary[name] = {"mean": mean, "ci95": [low, high], "speakers": by_speaker}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", {"cells": cells, "runs": [str(run) for run in args.runs],
                                           "tta": None if tta is None else {"warps": tta.warps, "tempos": tta.tempos,
                                                                            "choices": args.tta_choice},
                                           "summary": summary})
    table = speaker_table(summary)
    (args.out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    exit_on_user_error(main)
