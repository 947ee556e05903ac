"""A tiny generated corpus for tests: each class is a tone at its own pitch, lengths vary widely."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import soundfile as sf

from speechrnn.data.corpus import Utterance
from speechrnn.data.datamodule import SpeechDataModule

SAMPLE_RATE = 8000  # Hz


def write_tones(directory, per_class: int = 12, num_classes: int = 3, seed: int = 0) -> None:
    """``directory/<class>_<i>.wav``: a tone of 300 * (class + 1) Hz, 0.1-0.6 s, with noise."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for label in range(num_classes):
        for i in range(per_class):
            seconds = rng.uniform(0.1, 0.6)
            t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
            wave = 0.5 * np.sin(2 * np.pi * 300 * (label + 1) * t) + 0.05 * rng.standard_normal(len(t))
            sf.write(directory / f"{label}_{i:02d}.wav", wave.astype(np.float32), SAMPLE_RATE)


class ToneDataModule(SpeechDataModule):
    """Three tone classes; item index decides the split (0-7 train, 8-9 validation, 10+ test)."""

    name = "tones"

    def __init__(self, num_classes: int = 3, per_class: int = 12, **kwargs) -> None:
        self.num_tone_classes = num_classes
        self.per_class = per_class
        kwargs.setdefault("sample_rate", SAMPLE_RATE)
        kwargs.setdefault("n_mfcc", 13)
        kwargs.setdefault("n_mels", 23)
        kwargs.setdefault("batch_size", 8)
        kwargs.setdefault("length_buckets", [20, 40])
        super().__init__(**kwargs)
        self.arguments.update(num_classes=num_classes, per_class=per_class)

    def vocabulary(self) -> list[str]:
        return [str(c) for c in range(self.num_tone_classes)]

    def download(self) -> None:
        if not self.corpus_dir.exists():
            write_tones(self.corpus_dir, self.per_class, self.num_tone_classes)

    def utterances(self) -> list[Utterance]:
        utterances = []
        for path in sorted(self.corpus_dir.glob("*.wav")):
            label, index = path.stem.split("_")
            split = "train" if int(index) < 8 else "validation" if int(index) < 10 else "test"
            utterances.append(Utterance(key=path.stem, path=path, split=split, label=label))
        return utterances


class EpochLog(L.Callback):
    """Appends each started epoch to a file and raises KeyboardInterrupt (Ctrl+C) at ``stop_at``."""

    def __init__(self, path: str, stop_at: int = -1) -> None:
        self.path = Path(path)
        self.stop_at = stop_at

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.stop_at:
            raise KeyboardInterrupt
        with self.path.open("a") as log:
            log.write(f"{trainer.current_epoch}\n")
