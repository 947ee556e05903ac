"""A tiny generated corpus for tests: each class is a tone at its own pitch, lengths vary widely."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import soundfile as sf

from speechrnn.data.corpus import Utterance
from speechrnn.data.datamodule import SpeechDataModule

SAMPLE_RATE = 8000  # Hz


def write_tones(directory, per_class: int = 12, num_classes: int = 3, seed: int = 0,
                background: bool = False) -> None:
    """``directory/<class>_<i>.wav``: a tone of 300 * (class + 1) Hz, 0.1-0.6 s, with noise.

    With ``background``, clips are cut as a spotter reads a stream: each tone follows 0-0.5 s of
    a faint noise floor, and ``background_<i>.wav`` holds the floor alone or a tone that ended
    0.4-0.8 s before the clip does (the word is over: nothing to report).
    """
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)

    def tone(label: int, seconds: float) -> np.ndarray:
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        return 0.5 * np.sin(2 * np.pi * 300 * (label + 1) * t) + 0.05 * rng.standard_normal(len(t))

    def floor(seconds: float) -> np.ndarray:
        return 1e-3 * rng.standard_normal(int(seconds * SAMPLE_RATE))

    for label in range(num_classes):
        for i in range(per_class):
            wave = tone(label, rng.uniform(0.1, 0.6))
            if background:
                wave = np.concatenate([floor(rng.uniform(0.0, 0.5)), wave])
            sf.write(directory / f"{label}_{i:02d}.wav", wave.astype(np.float32), SAMPLE_RATE)
    for i in range(2 * per_class if background else 0):
        if i % 2:
            wave = np.concatenate([tone(int(rng.integers(num_classes)), 0.3), floor(rng.uniform(0.4, 0.8))])
        else:
            wave = floor(rng.uniform(0.2, 1.2))
        sf.write(directory / f"background_{i:02d}.wav", wave.astype(np.float32), SAMPLE_RATE)


def write_fsdd_recordings(folder: Path, speakers: tuple[str, ...], indices: range = range(12)) -> None:
    """``folder/{digit}_{speaker}_{index}.wav`` as FSDD names them: a tone of 300 + 50 * digit Hz, 0.2-0.5 s."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for digit in range(10):
        for speaker in speakers:
            for index in indices:
                t = np.arange(int(rng.uniform(0.2, 0.5) * SAMPLE_RATE)) / SAMPLE_RATE
                wave = 0.3 * np.sin(2 * np.pi * (300 + 50 * digit) * t)
                wave += 0.01 * rng.standard_normal(len(t))
                sf.write(folder / f"{digit}_{speaker}_{index}.wav", wave, SAMPLE_RATE, subtype="PCM_16")


class ToneDataModule(SpeechDataModule):
    """Three tone classes; item index decides the split (0-7 train, 8-9 validation, 10+ test).

    With ``background``, a fourth class of noise floor and finished tones, clips cut as a spotter
    reads a stream (see :func:`write_tones`), and the split ``index % 6`` (0-3 train, 4
    validation, 5 test)."""

    name = "tones"

    def __init__(self, num_classes: int = 3, per_class: int = 12, background: bool = False, **kwargs) -> None:
        self.num_tone_classes = num_classes
        self.per_class = per_class
        self.background = background
        kwargs.setdefault("sample_rate", SAMPLE_RATE)
        kwargs.setdefault("n_mfcc", 13)
        kwargs.setdefault("n_mels", 23)
        kwargs.setdefault("batch_size", 8)
        kwargs.setdefault("length_buckets", [20, 40])
        super().__init__(**kwargs)
        self.arguments.update(num_classes=num_classes, per_class=per_class)

    def vocabulary(self) -> list[str]:
        return [str(c) for c in range(self.num_tone_classes)] + (["background"] if self.background else [])

    def download(self) -> None:
        if not self.corpus_dir.exists():
            write_tones(self.corpus_dir, self.per_class, self.num_tone_classes, background=self.background)

    def utterances(self) -> list[Utterance]:
        utterances = []
        for path in sorted(self.corpus_dir.glob("*.wav")):
            label, index = path.stem.split("_")
            if self.background:  # the spotter's corpus: two in three clips train it
                split = ("train", "train", "train", "train", "validation", "test")[int(index) % 6]
            else:
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


SPEAKERS = ["ann", "bob", "cyd"]  # the voices of write_digits


def write_digits(root: Path, per_digit: int = 7) -> None:
    """``root/fsdd/recordings/{digit}_{speaker}_{index}.wav``: digits 0-2 as tones, each voice a pitch shift.

    FSDD's splits go by index: of 7 per digit, 0-4 train and 5-6 validate the voices a speakers
    split keeps; its conventional split takes 0-4 for test and 5-9 for validation, so it needs 12
    to train on two.
    """
    rng = np.random.default_rng(0)
    folder = root / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    for s, speaker in enumerate(SPEAKERS):
        for digit in range(3):
            for index in range(per_digit):
                t = np.arange(int(rng.uniform(0.1, 0.3) * SAMPLE_RATE)) / SAMPLE_RATE
                wave = 0.4 * np.sin(2 * np.pi * 400 * (digit + 1) * (1 + 0.05 * s) * t)
                sf.write(folder / f"{digit}_{speaker}_{index}.wav", wave.astype(np.float32), SAMPLE_RATE)


def tone_stream_config(root: Path) -> dict:
    """A spotter's data config: tones 0-2 as keywords among tones 3-4 as fillers (corpora under ``root``),
    a 20 s keyword-free stream per split."""
    return {"data": {"class_path": "speechrnn.corpora.streams.StreamDataModule", "init_args": {
        "keywords": {"class_path": "tones.ToneDataModule", "init_args": {
            "data_root": str(root / "keywords"), "cache_dir": str(root / "cache")}},
        "fillers": {"class_path": "tones.ToneDataModule", "init_args": {
            "num_classes": 5, "data_root": str(root / "fillers")}},
        "filler_words": ["3", "4"], "window_s": [0.5, 1.0], "keyword_free_s": 20.0, "batch_size": 8}}}
