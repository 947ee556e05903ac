"""A tape: one long recording composed of words, noise and silence, with the timeline of what is where.

:class:`Composer` lays every keyword (or, for a keyword-free tape, unknown and filler words) after
a gap of one to three items drawn from silence, noise bursts and filler words, each over a faint
noise floor (see :mod:`speechrnn.corpora.streams`, which cuts training windows from the tapes and
writes the scored ones); :func:`featurise` computes its frames as the streaming front end does;
a timeline JSON (``{"sample_rate", "duration_s", "events"}``) says where each item lies.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from speechrnn.data.audio import read_audio
from speechrnn.data.corpus import Utterance
from speechrnn.data.features import FeatureSettings
from speechrnn.errors import SpeechRNNError
from speechrnn.files import write_json
from speechrnn.streaming.frontend import FrameStream

GAP_ITEMS = (1, 3)  # items between two keywords
GAP_SHARES = (0.35, 0.2, 0.45)  # of silences, noise bursts and filler words among them
SILENCE_S = (0.2, 1.0)
NOISE_S = (0.3, 1.0)
NOISE_DBFS = (-45.0, -20.0)  # RMS of noise bursts
FLOOR_DBFS = (-65.0, -40.0)  # RMS of the noise floor under every item
SPACING_S = (0.15, 0.4)  # quiet between any two items
PEAK = (0.2, 0.9)  # peak amplitude of a word
FEATURE_CHUNK_S = 10.0  # audio per front-end call when featurising a tape


class Composer:
    """Builds one split's tapes from its utterances; every draw comes from ``rng``.

    A word is ``(kind, utterance, audio or None)``: the fillers, few and drawn again and again,
    are read once; keywords and unknown words, as many as the corpus has, when spoken.
    """

    def __init__(self, sample_rate: int, fillers: list[Utterance], unknowns: list[Utterance],
                 rng: np.random.Generator) -> None:
        if not fillers:
            raise SpeechRNNError("a split has no filler utterances; generate a larger filler corpus")
        self.sample_rate = sample_rate
        self.rng = rng
        self.fillers = [("filler", u, self._read(u)) for u in fillers]
        self.unknowns = [("unknown", u, None) for u in unknowns]

    def keyword_tape(self, keywords: list[Utterance]) -> tuple[np.ndarray, list[dict]]:
        """Every keyword and unknown word once, in random order, each after a gap of fillers, noise and silence."""
        spoken = [("keyword", u, None) for u in keywords] + self.unknowns
        items = []
        for index in self.rng.permutation(len(spoken)):
            items += [self._gap_item(self.fillers) for _ in range(self.rng.integers(GAP_ITEMS[0], GAP_ITEMS[1] + 1))]
            items.append(self._spoken(*spoken[index]))
        items.append(self._silence())
        return self._join(items)

    def keyword_free_tape(self, seconds: float) -> tuple[np.ndarray, list[dict]]:
        """Fillers, unknown words (drawn alike), noise and silence, cut to exactly ``seconds``."""
        items, total, words = [], 0.0, self.fillers + self.unknowns
        while total < seconds:
            items.append(self._gap_item(words))
            total += len(items[-1][-1]) / self.sample_rate + SPACING_S[0]
        wave, events = self._join(items)
        return wave[: round(seconds * self.sample_rate)], [
            e | {"end_s": min(e["end_s"], seconds)} for e in events if e["start_s"] < seconds]

    def _gap_item(self, words: list[tuple]) -> tuple:
        """A silence, a noise burst or one of ``words``, in GAP_SHARES."""
        maker = self.rng.choice(len(GAP_SHARES), p=GAP_SHARES)
        if maker == 2:
            return self._spoken(*words[self.rng.integers(len(words))])
        return (self._silence, self._noise)[maker]()

    def _seconds(self, span: tuple[float, float]) -> int:
        return round(self.rng.uniform(*span) * self.sample_rate)

    def _silence(self) -> tuple:
        return ("silence", "", "", "", np.zeros(self._seconds(SILENCE_S), np.float32))

    def _noise(self) -> tuple:
        white = self.rng.standard_normal(self._seconds(NOISE_S))
        colour = "brown" if self.rng.random() < 0.5 else "white"
        noise = np.cumsum(white) if colour == "brown" else white
        noise = noise - noise.mean()
        rms = 10 ** (self.rng.uniform(*NOISE_DBFS) / 20)
        return ("noise", colour, "", "", (noise * rms / (noise.std() + 1e-12)).astype(np.float32))

    def _spoken(self, kind: str, utt: Utterance, wave: np.ndarray | None) -> tuple:
        """An item of one utterance, scaled to a random peak."""
        wave = self._read(utt) if wave is None else wave
        peak = self.rng.uniform(*PEAK) / max(np.abs(wave).max(), 1e-6)
        return (kind, utt.label, utt.key, utt.speaker, (wave * peak).astype(np.float32))

    def _read(self, utt: Utterance) -> np.ndarray:
        """The utterance's stretch of its file (eSpeak digits are cut to their speech)."""
        return read_audio(utt.path, self.sample_rate, utt.start_s, utt.duration_s).numpy()

    def _join(self, items: list[tuple]) -> tuple[np.ndarray, list[dict]]:
        pieces, events, at = [], [], 0
        for kind, label, source, speaker, wave in items:
            spacing = np.zeros(self._seconds(SPACING_S), np.float32)
            floor = self.rng.standard_normal(len(spacing) + len(wave)) * 10 ** (self.rng.uniform(*FLOOR_DBFS) / 20)
            pieces.append(np.concatenate([spacing, wave]) + floor.astype(np.float32))
            start = at + len(spacing)
            at += len(pieces[-1])
            events.append({"kind": kind, "label": label, "source": source, "speaker": speaker,
                           "start_s": start / self.sample_rate, "end_s": at / self.sample_rate})
        return np.clip(np.concatenate(pieces), -1.0, 1.0), events


def featurise(wave: np.ndarray, settings: FeatureSettings) -> torch.Tensor:
    """MFCC frames ``(T, F)`` of a long signal, computed as the streaming front end computes them."""
    stream = FrameStream(settings, "this stream corpus")
    step = round(FEATURE_CHUNK_S * settings.sample_rate)
    with torch.inference_mode():
        frames = [stream.push(torch.from_numpy(wave[i : i + step])) for i in range(0, len(wave), step)]
        return torch.cat([*frames, stream.finish()])


def write_timeline(path: Path, events: list[dict], samples: int, sample_rate: int) -> None:
    rounded = [e | {"start_s": round(e["start_s"], 4), "end_s": round(e["end_s"], 4)} for e in events]
    write_json(path, {"sample_rate": sample_rate, "duration_s": samples / sample_rate, "events": rounded}, indent=0)


def read_timeline(path: Path) -> dict:
    """``{"sample_rate", "duration_s", "events"}`` of a stream (the .json beside its WAV)."""
    path = Path(path).with_suffix(".json")
    if not path.is_file():
        raise SpeechRNNError(f"no timeline {path}; streams are written by StreamDataModule.prepare_data()")
    return json.loads(path.read_text())
