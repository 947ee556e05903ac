"""The embedded corpus: twenty words spoken by eSpeak NG voices, generated offline from a seed.

The ten digits and the ten Speech Commands core words are each spoken ``per_word`` times by
``en-us`` with one of eSpeak's voice variants, a random speaking rate and pitch, random silence
before and after, and white noise at a random SNR, so lengths vary naturally (0.4 to 1.8 s).
Voice variants are held out: validation and test utterances come from variants that train never
hears. Every draw comes from a NumPy generator seeded by ``(seed, word, repetition)``, and eSpeak
is made deterministic (see ``espeak.py``), so a seed gives byte-identical WAVs.

Layout of ``<directory>``: ``wav/<key>.wav`` (16 kHz mono PCM) and ``metadata.json`` listing per
utterance its key, wav path, word, voice, split, settings and phone segments ``[start_s, end_s,
phone]`` covering the whole file. Phones are eSpeak's names without stress marks; its pauses and
the added silence are ``sil``. The corpus is written into ``<directory>.partial`` and renamed
into place, so an existing ``<directory>`` is always complete.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np
import soundfile as sf
from tqdm import tqdm

from speechrnn.corpora import espeak
from speechrnn.corpora.speech_commands import CORE_WORDS
from speechrnn.data.audio import resample
from speechrnn.data.corpus import SILENCE, PhoneSegment, Utterance
from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.errors import SpeechRNNError
from speechrnn.files import write_json

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
WORDS = (*DIGITS, *CORE_WORDS)  # the keyword task's labels, in this order
LANGUAGE = "en-us"  # one phoneme inventory for every variant
SAMPLE_RATE = 16000  # Hz, of the written WAVs
METADATA = "metadata.json"
HELD_OUT_SHARE = 0.1  # of the variants, and of each word's utterances, for validation and for test
MIN_PER_WORD = 3  # one utterance per split
RATE_WPM = (110, 260)  # eSpeak's default is 175
PITCH = (20, 80)  # eSpeak's 0..99 scale, 50 is the variant's own
EDGE_SILENCE_S = (0.05, 0.6)  # before and after the word, each
PEAK = (0.25, 0.9)  # peak amplitude of the speech before noise
SNR_DB = (10.0, 30.0)  # the default range
STRESS_MARKS = "',%="


def phone_label(espeak_name: str) -> str:
    """eSpeak's phoneme name without stress marks; its pauses (``_``, ``_:``) become ``sil``."""
    return SILENCE if espeak_name.startswith("_") else espeak_name.lstrip(STRESS_MARKS)


@lru_cache(maxsize=1)
def phone_set() -> tuple[str, ...]:
    """The sorted phones of the twenty words, ``sil`` included, from a short synthesis.

    The phones depend on the language only, not on the variant, rate or pitch.
    """
    names = {name for word in WORDS for _, _, name in espeak.synthesize(word, LANGUAGE).phones}
    return tuple(sorted({phone_label(name) for name in names} | {SILENCE}))


def corpus_name(seed: int, per_word: int, snr_db: tuple[float, float]) -> str:
    """The folder name that keys a corpus by its generation settings."""
    return f"seed{seed}-n{per_word}-snr{snr_db[0]:g}-{snr_db[1]:g}"


def check_settings(per_word: int, snr_db: tuple[float, float], held_out: bool = True) -> None:
    """Raise SpeechRNNError for settings that cannot make a usable corpus."""
    least = MIN_PER_WORD if held_out else 1
    if per_word < least:
        raise SpeechRNNError(f"per_word={per_word} leaves a split without some word; use {least} or more")
    if snr_db[0] > snr_db[1]:
        raise SpeechRNNError(f"snr_db={list(snr_db)} must be [low, high]")


def _held_out(n: int) -> int:
    return max(1, round(n * HELD_OUT_SHARE))


def voice_splits(seed: int) -> dict[str, tuple[str, ...]]:
    """Split -> the voice variants it draws from; disjoint, about 80/10/10."""
    shuffled = np.random.default_rng(seed).permutation(espeak.variants()).tolist()
    n = _held_out(len(shuffled))
    return {
        "validation": tuple(sorted(shuffled[:n])),
        "test": tuple(sorted(shuffled[n : 2 * n])),
        "train": tuple(sorted(shuffled[2 * n :])),
    }


def _split_of_repetition(repetition: int, per_word: int) -> str:
    n = _held_out(per_word)
    return "validation" if repetition < n else "test" if repetition < 2 * n else "train"


@dataclass(frozen=True)
class _Recipe:
    """Everything one utterance is made from, drawn from its own generator."""

    key: str
    word: str
    split: str
    voice: str
    rate_wpm: int
    pitch: int
    lead_s: float
    trail_s: float
    peak: float
    snr_db: float
    noise_seed: int


def _recipe(rng: np.random.Generator, word: str, repetition: int, split: str,
            voices: tuple[str, ...], snr_db: tuple[float, float]) -> _Recipe:
    return _Recipe(
        key=f"{word}-{repetition:04d}",
        word=word,
        split=split,
        voice=str(rng.choice(voices)),
        rate_wpm=int(rng.integers(RATE_WPM[0], RATE_WPM[1], endpoint=True)),
        pitch=int(rng.integers(PITCH[0], PITCH[1], endpoint=True)),
        lead_s=round(float(rng.uniform(*EDGE_SILENCE_S)) * SAMPLE_RATE) / SAMPLE_RATE,
        trail_s=round(float(rng.uniform(*EDGE_SILENCE_S)) * SAMPLE_RATE) / SAMPLE_RATE,
        peak=float(rng.uniform(*PEAK)),
        snr_db=float(rng.uniform(*snr_db)),
        noise_seed=int(rng.integers(2**31)),
    )


def _render(recipe: _Recipe, rng: np.random.Generator) -> tuple[np.ndarray, list[PhoneSegment]]:
    """The noisy 16 kHz waveform ``(T,)`` and its phone segments."""
    spoken = espeak.synthesize(
        recipe.word, f"{LANGUAGE}+{recipe.voice}", recipe.rate_wpm, recipe.pitch, recipe.noise_seed
    )
    speech = resample(spoken.samples, spoken.sample_rate, SAMPLE_RATE)
    speech *= recipe.peak / np.abs(speech).max()
    lead, trail = round(recipe.lead_s * SAMPLE_RATE), round(recipe.trail_s * SAMPLE_RATE)
    wave = np.pad(speech, (lead, trail))  # (T,)
    noise_rms = np.sqrt(np.mean(speech**2) / 10 ** (recipe.snr_db / 10))
    wave += (noise_rms * rng.standard_normal(len(wave))).astype(np.float32)
    wave = np.clip(wave, -1.0, 1.0)
    return wave, _phone_segments(spoken.phones, recipe.lead_s, len(wave) / SAMPLE_RATE)


def _phone_segments(spoken: list[PhoneSegment], lead_s: float,
                    duration_s: float) -> list[PhoneSegment]:
    """eSpeak's contiguous phones shifted by ``lead_s``, with ``sil`` up to both file ends."""
    bounds = [0.0] + [lead_s + start for start, _, _ in spoken] + [lead_s + spoken[-1][1], duration_s]
    labels = [SILENCE] + [phone_label(name) for _, _, name in spoken] + [SILENCE]
    segments: list[PhoneSegment] = []
    for start, end, label in zip(bounds, bounds[1:], labels):
        if segments and segments[-1][2] == label == SILENCE:
            segments[-1] = (segments[-1][0], end, label)
        else:
            segments.append((start, end, label))
    # Each bound is rounded the same way wherever it appears, so segments stay contiguous.
    return [(round(start, 6), round(end, 6), label) for start, end, label in segments]


def generate_corpus(directory: Path, seed: int, per_word: int = 100,
                    snr_db: tuple[float, float] = SNR_DB, words: tuple[str, ...] = WORDS,
                    held_out: bool = True) -> Path:
    """Generate the corpus into ``directory`` unless it is already there; returns ``directory``.

    ``held_out=False`` makes every utterance training data, from any of the variants (extra voices
    for another corpus's training split). Same arguments, same bytes. About 6 ms of CPU time per
    utterance.
    """
    directory = Path(directory)
    if directory.is_dir():
        return directory
    check_settings(per_word, snr_db, held_out)
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted run
    (partial / "wav").mkdir(parents=True)
    voices = voice_splits(seed) if held_out else {"train": espeak.variants()}
    jobs = [(word_ix, word, rep) for word_ix, word in enumerate(words) for rep in range(per_word)]
    entries = []
    for word_ix, word, rep in tqdm(jobs, desc=f"synthesizing {directory.name}", unit="utt"):
        rng = np.random.default_rng([seed, word_ix, rep])
        split = _split_of_repetition(rep, per_word) if held_out else "train"
        recipe = _recipe(rng, word, rep, split, voices[split], snr_db)
        wave, phones = _render(recipe, rng)
        wav_path = f"wav/{recipe.key}.wav"
        sf.write(partial / wav_path, wave, SAMPLE_RATE, subtype="PCM_16")
        entries.append({**asdict(recipe), "wav": wav_path, "phones": phones})
    metadata = {"sample_rate": SAMPLE_RATE, "seed": seed, "per_word": per_word,
                "snr_db": list(snr_db), "utterances": entries}
    write_json(partial / METADATA, metadata)
    partial.rename(directory)
    return directory


def read_corpus(directory: Path) -> list[Utterance]:
    """The utterances of a generated corpus, sorted by key."""
    metadata_path = Path(directory) / METADATA
    if not metadata_path.is_file():
        raise SpeechRNNError(
            f"no generated corpus in {directory}; run prepare_data() (the Trainer does) to make it"
        )
    entries = json.loads(metadata_path.read_text())["utterances"]
    return sorted(
        (
            Utterance(
                key=e["key"],
                path=Path(directory) / e["wav"],
                split=e["split"],
                label=e["word"],
                speaker=e["voice"],
                phones=tuple((start, end, phone) for start, end, phone in e["phones"]),
            )
            for e in entries
        ),
        key=lambda utt: utt.key,
    )


class SynthDataModule(SpeechDataModule):
    """The corpus of this module's docstring, generated on first use (no network needed).

    Args:
        per_word: utterances per word (at least 3); 100 gives 2000 utterances.
        corpus_seed: seeds the corpus (voices, rates, pitches, silences, noise, voice splits).
        snr_db: range of the signal-to-noise ratio, in dB, drawn uniformly per utterance.
        **kwargs: the shared settings of :class:`SpeechDataModule`.
    """

    name: ClassVar[str] = "synth"
    tasks: ClassVar[tuple[str, ...]] = ("keyword", "phones")

    def __init__(self, per_word: int = 100, corpus_seed: int = 0,
                 snr_db: tuple[float, float] = SNR_DB, **kwargs) -> None:
        check_settings(per_word, snr_db)
        self.per_word = per_word
        self.corpus_seed = corpus_seed
        self.snr_db = tuple(snr_db)
        super().__init__(**kwargs)
        self.arguments.update(per_word=per_word, corpus_seed=corpus_seed, snr_db=snr_db)

    @property
    def corpus_dir(self) -> Path:
        """``<cache_dir>/synth``: generated audio is derived from a seed, like features, so it goes
        with the caches, and the data root (shared, perhaps read-only) is only ever read."""
        return self.cache_dir / self.name

    @property
    def corpus_path(self) -> Path:
        return self.corpus_dir / corpus_name(self.corpus_seed, self.per_word, self.snr_db)

    def check_corpus_present(self) -> None:
        """Nothing to check: the corpus is generated into the cache when it is missing."""

    def vocabulary(self) -> list[str]:
        return list(WORDS) if self.task == "keyword" else list(phone_set())

    def download(self) -> None:
        generate_corpus(self.corpus_path, self.corpus_seed, self.per_word, self.snr_db)

    def utterances(self) -> list[Utterance]:
        return read_corpus(self.corpus_path)

