"""Decoding one recording into a mono float32 signal at the feature sample rate."""

from __future__ import annotations

import soundfile as sf
import torch
import torchaudio.functional as AF

from speechrnn.data.corpus import Utterance
from speechrnn.errors import SpeechRNNError


def read_audio(path, sample_rate: int, start_s: float = 0.0, duration_s: float | None = None):
    """Decode ``path`` (any rate, any channel count) to a mono float32 tensor at ``sample_rate``.

    Raises SpeechRNNError naming the file when it is unreadable, empty, silent, or holds NaN or
    infinite samples (a float WAV can; one such sample turns every feature of the clip into NaN).
    """
    try:
        with sf.SoundFile(str(path)) as audio:  # opened once: header and samples in one go
            file_rate = audio.samplerate
            if start_s:
                audio.seek(round(start_s * file_rate))
            frames = -1 if duration_s is None else round(duration_s * file_rate)
            samples = audio.read(frames, dtype="float32", always_2d=True)  # (S, channels)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise SpeechRNNError(f"cannot decode audio file {path}: {err}; replace or remove it") from err
    if samples.size == 0:
        raise SpeechRNNError(f"audio file {path} is empty; replace or remove it")
    mono = torch.from_numpy(samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1))
    if not mono.isfinite().all():
        bad = int((~mono.isfinite()).sum())
        raise SpeechRNNError(f"audio file {path} holds {bad} NaN or infinite samples; replace or remove it")
    if not mono.any():
        raise SpeechRNNError(f"audio file {path} is silent (all zeros); replace or remove it")
    if file_rate != sample_rate:
        mono = AF.resample(mono, file_rate, sample_rate)
    return mono


def load_utterance(utt: Utterance, sample_rate: int, min_samples: int = 1) -> tuple[torch.Tensor, int]:
    """The utterance's signal, zero-padded to ``utt.pad_to_s``, and its true length in samples.

    A clip shorter than ``min_samples`` (at ``sample_rate``; see ``FeatureSettings.min_samples``)
    is a SpeechRNNError naming the file.
    """
    wave = read_audio(utt.path, sample_rate, utt.start_s, utt.duration_s)
    speech_samples = len(wave)
    if speech_samples < min_samples:
        raise SpeechRNNError(
            f"audio file {utt.path} is too short: {speech_samples} samples at {sample_rate} Hz, fewer than "
            f"one {min_samples}-sample analysis window; replace or remove it"
        )
    if utt.pad_to_s is not None:
        target = round(utt.pad_to_s * sample_rate)
        if target > len(wave):
            wave = torch.nn.functional.pad(wave, (0, target - len(wave)))
    return wave, speech_samples
