"""The standard baseline data path: read the WAV and compute its MFCC per item, 2 loader workers.

This is how a tutorial trains on audio (``torchaudio.transforms.MFCC`` in ``__getitem__``, a
``DataLoader`` with workers and a padding collate, random batches), kept to the same model, batch
size and feature settings as speechrnn, so a throughput ratio measures the data path alone.
"""

from __future__ import annotations

import torch
import torchaudio.transforms as T
from torch.utils.data import DataLoader, Dataset

from speechrnn.batch import Batch
from speechrnn.data.audio import load_utterance
from speechrnn.data.corpus import Utterance
from speechrnn.data.features import FeatureSettings

WORKERS = 2


class WavMFCCDataset(Dataset):
    """Item ``i``: the MFCC frames ``(T, F)`` of utterance ``i``, decoded now, and its class id."""

    def __init__(self, utterances: list[Utterance], settings: FeatureSettings, labels: list[str]) -> None:
        self.utterances = utterances
        self.sample_rate = settings.sample_rate
        self.label_ids = {label: i for i, label in enumerate(labels)}
        self.mfcc = T.MFCC(settings.sample_rate, settings.n_mfcc, log_mels=False, melkwargs={
            "n_fft": settings.n_fft, "win_length": settings.win_length,
            "hop_length": settings.hop_length, "n_mels": settings.n_mels})

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        wave, _ = load_utterance(self.utterances[i], self.sample_rate)
        return self.mfcc(wave).T, self.label_ids[self.utterances[i].label]  # (T, F)


def pad_collate(items: list[tuple[torch.Tensor, int]]) -> Batch:
    lengths = torch.tensor([len(feats) for feats, _ in items])
    feats = torch.nn.utils.rnn.pad_sequence([feats for feats, _ in items], batch_first=True)
    targets = torch.tensor([target for _, target in items])
    return Batch(feats, lengths, targets, lengths, torch.arange(len(items)))


def baseline_loader(utterances: list[Utterance], settings: FeatureSettings, labels: list[str],
                    batch_size: int, workers: int = WORKERS, pin_memory: bool = False) -> DataLoader:
    """``pin_memory`` for a loop that copies each batch to a GPU, as a tutorial for one does."""
    return DataLoader(WavMFCCDataset(utterances, settings, labels), batch_size=batch_size,
                      shuffle=True, num_workers=workers, collate_fn=pad_collate, pin_memory=pin_memory)
