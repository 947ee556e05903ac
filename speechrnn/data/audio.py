"""Decoding one recording into a mono float32 signal at the feature sample rate."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import soxr
import torch

from speechrnn.data.corpus import Utterance, key_seed
from speechrnn.errors import SpeechRNNError

# soxr's high quality: flat to 91% of the lower rate's Nyquist frequency, images below -120 dB.
# Its filter is sized by that quality alone, so memory does not depend on how the two rates
# relate; torchaudio's polyphase kernel has one row per output phase, (new rate / gcd) rows,
# and took 12 GB for 2 s at 44,101 Hz.
RESAMPLE_QUALITY = "HQ"
# Full scale is 1.0; a float file can hold any value, and beyond about 1e18 the front end's float32
# power spectrum overflows to inf, then NaN in every feature. 1e6 (120 dB above full scale) is no
# recording and leaves that many orders of magnitude to spare.
LOUDEST_SAMPLE = 1e6
UNUSABLE = f"NaN, infinite or beyond ±{LOUDEST_SAMPLE:g} (which would overflow the features)"


def unusable(wave) -> np.ndarray | torch.Tensor:
    """Mask of the samples of ``wave`` (array or tensor) that are NaN, infinite or too loud to featurise."""
    return ~(abs(wave) <= LOUDEST_SAMPLE)  # `not <=` also catches NaN


def resample(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """``wave`` ``(S,)`` float32 at ``orig_rate`` -> float32 at ``new_rate``, in memory that any rate bounds."""
    return soxr.resample(wave, orig_rate, new_rate, quality=RESAMPLE_QUALITY)


def resample_stream(orig_rate: int, new_rate: int) -> soxr.ResampleStream:
    """A stateful :func:`resample` for a signal that arrives in chunks: its output, chunk after chunk
    (``resample_chunk(chunk, last=False)``, then ``last=True``), is what one call on the whole gives."""
    return soxr.ResampleStream(orig_rate, new_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)


def read_audio(path, sample_rate: int, start_s: float = 0.0, duration_s: float | None = None):
    """Decode ``path`` (any rate, any channel count) to a mono float32 tensor at ``sample_rate``.

    Raises SpeechRNNError naming the file when it is unreadable, empty, silent, or holds NaN,
    infinite or overflowing samples (a float WAV can; one such sample turns every feature of the
    clip into NaN).
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
    mono = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1)
    if bad := int(unusable(mono).sum()):
        raise SpeechRNNError(f"audio file {path} holds {bad} samples that are {UNUSABLE}; replace or remove it")
    if not mono.any():
        raise SpeechRNNError(f"audio file {path} is silent (all zeros); replace or remove it")
    if file_rate != sample_rate:
        mono = resample(mono, file_rate, sample_rate)
    return torch.from_numpy(np.ascontiguousarray(mono))


def with_white_noise(wave: torch.Tensor, snr_db: float, seed_key: str) -> torch.Tensor:
    """``wave`` plus white noise ``snr_db`` below its mean power; the noise is a function of
    ``seed_key``, so a cached clip's features can always be made again bit for bit."""
    generator = torch.Generator().manual_seed(key_seed(seed_key))
    noise = torch.randn(len(wave), generator=generator, dtype=wave.dtype)
    return wave + noise * (wave.square().mean() / 10 ** (snr_db / 10)).sqrt()


def load_utterance(utt: Utterance, sample_rate: int, min_samples: int = 1) -> tuple[torch.Tensor, int]:
    """The utterance's signal, zero-padded to ``utt.pad_to_s``, and its true length in samples.

    A clip shorter than ``min_samples`` (at ``sample_rate``; see ``FeatureSettings.min_samples``)
    is a SpeechRNNError naming the file.
    """
    wave = read_audio(utt.path, sample_rate, utt.start_s, utt.duration_s)
    if utt.noise_snr_db is not None:
        wave = with_white_noise(wave, utt.noise_snr_db, utt.key)
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
