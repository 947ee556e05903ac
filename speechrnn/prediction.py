"""A checkpoint's answer for one audio file: its top labels, or its label per frame (``speechrnn predict``).

The file (any sample rate, any channel count) is decoded, resampled and turned into MFCCs with the
checkpoint's own feature settings; the model normalises them with its stored statistics.
"""

from __future__ import annotations

from pathlib import Path

import torch

from speechrnn.data.audio import load_utterance
from speechrnn.data.corpus import Utterance
from speechrnn.data.features import MFCC
from speechrnn.errors import SpeechRNNError
from speechrnn.models.classifier import SpeechClassifier


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
