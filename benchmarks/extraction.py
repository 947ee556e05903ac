"""Feature preparation: building the cache (decode + batched MFCC + write) against librosa per file."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import torch

from speechrnn.data.audio import load_utterance
from speechrnn.data.cache import FeatureCache
from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.data.features import MFCC


def build_cache_s(dm: SpeechDataModule, scratch: Path) -> float:
    """Seconds to build the whole feature cache of ``dm`` into an empty folder."""
    cache = FeatureCache(Path(tempfile.mkdtemp(dir=scratch)) / "cache")
    start = time.perf_counter()
    cache.build(dm.utterances(), dm.features, dm.task, dm.labels, dm.name, "bench")
    seconds = time.perf_counter() - start
    shutil.rmtree(cache.directory.parent)
    return seconds


def librosa_mfcc(wave: np.ndarray, dm: SpeechDataModule) -> np.ndarray:
    """The same recipe as ``speechrnn.data.features.MFCC`` (HTK mel, power dB without clamp)."""
    s = dm.features
    mel = librosa.feature.melspectrogram(y=wave, sr=s.sample_rate, n_fft=s.n_fft, win_length=s.win_length,
                                         hop_length=s.hop_length, n_mels=s.n_mels, htk=True, norm=None)
    return librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=s.n_mfcc).T  # (T, F)


def librosa_per_file_s(dm: SpeechDataModule) -> float:
    """Seconds to decode every file and compute its MFCC with librosa, one file at a time, warm."""
    utterances = dm.utterances()
    librosa_mfcc(load_utterance(utterances[0], dm.features.sample_rate)[0].numpy(), dm)  # warm-up
    start = time.perf_counter()
    for utt in utterances:
        librosa_mfcc(load_utterance(utt, dm.features.sample_rate)[0].numpy(), dm)
    return time.perf_counter() - start


def torchaudio_per_file_s(dm: SpeechDataModule) -> float:
    """Seconds for our MFCC on one file at a time (no batching), decoding included, warm."""
    utterances = dm.utterances()
    mfcc = MFCC(dm.features)
    with torch.inference_mode():
        wave = load_utterance(utterances[0], dm.features.sample_rate)[0]
        mfcc(wave[None], torch.tensor([len(wave)]))
        start = time.perf_counter()
        for utt in utterances:
            wave = load_utterance(utt, dm.features.sample_rate)[0]
            mfcc(wave[None], torch.tensor([len(wave)]))
    return time.perf_counter() - start
