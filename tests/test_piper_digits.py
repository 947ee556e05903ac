"""The Piper digit generator with a stand-in voice: layout, cut, seed and resumption."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import soundfile as sf

from speechrnn.corpora import piper as piper_digits
from speechrnn.corpora.fsdd import SPEECH_MARGIN_S
from speechrnn.errors import SpeechRNNError

RATE = 16000


def tone_voice():
    """A stand-in for Piper: 0.3 s of silence, a tone whose pitch names the word, 0.3 s of silence."""
    calls = []

    def synthesise(word, length_scale, noise_scale, noise_w_scale):
        calls.append(word)
        t = np.arange(round(0.2 * length_scale * RATE)) / RATE
        tone = 0.5 * np.sin(2 * np.pi * (300 + 30 * len(word)) * t)
        silence = np.zeros(round(0.3 * RATE))
        return np.concatenate([silence, tone, silence]).astype(np.float32), RATE

    synthesise.calls = calls
    return synthesise


def test_clips_lie_by_digit_cut_to_their_speech_and_a_margin(tmp_path):
    assert piper_digits.write_digits(tmp_path, per_digit=2, seed=0, voice=tone_voice) == 20
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    clips = [f"{d}/{n:04d}.wav" for d in range(10) for n in range(2)]
    assert files == sorted([str(d) for d in range(10)] + clips + [piper_digits.MANIFEST])
    for path in tmp_path.rglob("*.wav"):
        audio, rate = sf.read(path)
        # the tone lasts 0.16-0.26 s at length_scale 0.8-1.3 and a shift of 0.9-1.1; the 0.6 s of silence is gone
        assert rate == RATE and 0.14 + 2 * SPEECH_MARGIN_S <= len(audio) / rate <= 0.3 + 2 * SPEECH_MARGIN_S
        assert np.abs(audio).max() <= 1


def test_clips_are_a_function_of_the_seed_and_a_rerun_keeps_them(tmp_path):
    piper_digits.write_digits(tmp_path / "a", per_digit=1, seed=0, voice=tone_voice)
    piper_digits.write_digits(tmp_path / "b", per_digit=1, seed=0, voice=tone_voice)
    piper_digits.write_digits(tmp_path / "c", per_digit=1, seed=1, voice=tone_voice)
    read = {name: [(tmp_path / name / str(d) / "0000.wav").read_bytes() for d in range(10)] for name in "abc"}
    assert read["a"] == read["b"]
    assert all(x != y for x, y in zip(read["a"], read["c"]))

    def no_voice():
        raise AssertionError("the voice is loaded only when clips are missing")

    assert piper_digits.write_digits(tmp_path / "a", per_digit=1, seed=0, voice=no_voice) == 0
    (tmp_path / "a" / "7" / "0000.wav").unlink()
    voice = tone_voice()
    assert piper_digits.write_digits(tmp_path / "a", per_digit=1, seed=0, voice=lambda: voice) == 1
    assert voice.calls == ["seven"]
    assert (tmp_path / "a" / "7" / "0000.wav").read_bytes() == read["b"][7]


def test_without_the_piper_extra_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "piper", None)  # import piper raises ImportError
    with pytest.raises(SpeechRNNError, match=r"pip install -e '\.\[piper\]'"):
        piper_digits.piper_voice()


def test_clips_of_another_seed_or_voice_are_never_kept(tmp_path):
    assert piper_digits.write_digits(tmp_path, per_digit=1, seed=0, voice=tone_voice) == 10
    for other in ({"seed": 1}, {"seed": 0, "voice_name": "another-voice"}):
        with pytest.raises(SpeechRNNError, match="holds clips made with .*'seed': 0"):
            piper_digits.write_digits(tmp_path, per_digit=1, voice=tone_voice, **({"seed": 0} | other))
    (tmp_path / piper_digits.MANIFEST).unlink()  # clips of an unknown seed
    with pytest.raises(SpeechRNNError, match="without a record"):
        piper_digits.write_digits(tmp_path, per_digit=1, seed=0, voice=tone_voice)
