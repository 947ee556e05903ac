"""``speechrnn predict CKPT FILE...``: the top labels of each recording, or its label per frame.

Each file (any sample rate, any channel count) is decoded, resampled and turned into MFCCs with
the checkpoint's own feature settings; the model normalises them with its stored statistics.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from speechrnn.checkpoint import load_checkpoint
from speechrnn.data.audio import load_utterance
from speechrnn.data.corpus import Utterance
from speechrnn.data.features import MFCC
from speechrnn.errors import SpeechRNNError
from speechrnn.files import check_writable, write_json
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.options import Parser, number


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="speechrnn predict", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .ckpt file written by `speechrnn fit`")
    parser.add_argument("files", nargs="+", type=Path, help="audio files (.wav, .flac, .ogg)")
    parser.add_argument("--top-k", type=number(1, integer=True), default=3, help="labels listed per file (keyword tasks)")
    parser.add_argument("--json", type=Path, help="also write the predictions to this file")
    args = parser.parse_args(argv)
    if args.json is not None:
        check_writable(args.json, "--json", [args.checkpoint, *args.files])
    return args


@torch.inference_mode()
def predict_file(model: SpeechClassifier, mfcc: MFCC, path: Path, top_k: int,
                 pad_to_s: float | None) -> dict:
    """``{"file", "top": [[label, probability], ...]}``, or ``{"file", "frames": [label, ...]}``.

    ``pad_to_s`` is the training corpus's clip padding (the checkpoint's pipeline says it).
    """
    if not path.is_file():
        raise SpeechRNNError(f"audio file {path} not found; check the path")
    utterance = Utterance(key=path.name, path=path, split="test", pad_to_s=pad_to_s)
    wave, _ = load_utterance(utterance, mfcc.settings.sample_rate, mfcc.settings.min_samples)
    feats = mfcc(wave[None], torch.tensor([len(wave)]))[0]  # (T, F)
    logits = model(feats[None], torch.tensor([len(feats)]))[0]  # (C,) or (T, C)
    if model.hparams.task == "phones":
        return {"file": str(path), "frames": [model.labels[i] for i in logits.argmax(-1).tolist()]}
    probs, ids = logits.softmax(-1).topk(min(top_k, len(model.labels)))
    return {"file": str(path), "top": [[model.labels[i], p] for i, p in zip(ids.tolist(), probs.tolist())]}


def segments(frames: list[str], hop_s: float) -> list[tuple[float, float, str]]:
    """Runs of one label as ``(start_s, end_s, label)``; frame t is centred at ``t * hop_s``."""
    runs, start = [], 0
    for t in range(1, len(frames) + 1):
        if t == len(frames) or frames[t] != frames[start]:
            runs.append((start * hop_s, t * hop_s, frames[start]))
            start = t
    return runs


def main(argv: list[str]) -> None:
    """Score every file it can; report each bad one on stderr, and exit 2 if any failed."""
    args = parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.model()
    mfcc = MFCC(ckpt.features)
    predictions, failures = [], []
    for path in args.files:
        try:
            prediction = predict_file(model, mfcc, path, args.top_k, ckpt.pipeline.pad_to_s)
        except SpeechRNNError as err:
            failures.append(str(err))
            print(f"speechrnn: error: {err}", file=sys.stderr)
            continue
        predictions.append(prediction)
        if "top" in prediction:
            print(f"{path}: " + ", ".join(f"{label} {p:.3f}" for label, p in prediction["top"]))
        else:
            runs = segments(prediction["frames"], ckpt.features.frame_s)
            print(f"{path}: " + " ".join(f"{label}[{a:.2f}-{b:.2f}]" for a, b, label in runs))
    if args.json:
        write_json(args.json, predictions)
    if failures:
        raise SpeechRNNError(f"{len(failures)} of {len(args.files)} files could not be scored (listed above); "
                             "the others were")
