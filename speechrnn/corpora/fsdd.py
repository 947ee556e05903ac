"""Free Spoken Digit Dataset (FSDD) v1.0.10: the digits 0-9 spoken in English, 8 kHz.

After preparation the recordings lie in ``data_root/fsdd/recordings/{digit}_{speaker}_{index}.wav``
(index 0-49 for each digit and speaker; v1.0.10 has six speakers and 3,000 recordings). An
existing ``recordings/`` folder is used as it is, read-only, and never downloaded over.

Splits, both deterministic:

- ``conventional`` (the dataset's README): index 0-4 is test; of the rest, index 5-9 is
  validation and 10-49 train. Every speaker is in every split.
- ``speakers``: every recording of ``test_speakers`` is test; the other speakers' index 5-9 is
  validation and the rest train, so test measures unseen voices. With ``validation_speakers``,
  every recording of those is validation instead and the others' are all train, so whatever is
  tuned or selected on validation is chosen on unheard voices too.

``espeak_per_digit`` adds that many eSpeak NG utterances of each digit ("zero" .. "nine") to the
training split only: the embedded corpus's generator (:mod:`speechrnn.corpora.synth`) with all of
eSpeak's voice variants, random rate, pitch and noise, written into the cache folder and cut to the
speech plus ``SPEECH_MARGIN_S`` either side, as FSDD's recordings are. They have no speaker, so
no split or held-out speaker ever holds them.

``extra_train_dir`` adds recordings from a folder of ``<digit>/*.wav`` to the training split
only, the same way: another synthesiser's digits (``pipelines/piper_digits.py`` writes Piper's),
or a user's own recordings.

The archive is GitHub's zip of the tag (16,419,872 bytes). The dataset publishes no checksum;
the SHA-256 below is the one on public record for that zip (none is on record for the tar.gz).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path
from typing import ClassVar

from speechrnn.corpora import synth
from speechrnn.data.corpus import SILENCE, Utterance, key_seed
from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.data.download import download_and_extract
from speechrnn.errors import SpeechRNNError
from speechrnn.options import Range, check

URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip"
SHA256 = "c680098f5d2355ba7cc4bd8b0ca9e0a24c00ebe3b4c552208889a4d28d4fbc2b"
ARCHIVE_TOP = "free-spoken-digit-dataset-1.0.10"
DIGITS = [str(d) for d in range(10)]
RECORDING = re.compile(r"(?P<digit>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)")
TEST_INDICES = range(5)
SNRS_DB = Range(-50.0, 100.0)  # the noisy copies' SNRs: beyond these, all noise or none
VALIDATION_INDICES = range(5, 10)
SPLITS = ("conventional", "speakers")
SPEECH_MARGIN_S = 0.05  # silence kept around a synthetic digit's speech: FSDD's clips hold little; eSpeak leaves 0.05-0.6 s


class FSDDDataModule(SpeechDataModule):
    """Spoken digit classification: one of the labels ``"0"`` .. ``"9"`` per recording.

    Args:
        split: ``conventional`` (by recording index) or ``speakers`` (held-out speakers).
        test_speakers: the held-out speakers of the ``speakers`` split.
        validation_speakers: speakers held out for validation in the ``speakers`` split (none:
            validation is the other speakers' index 5-9).
        train_speakers: in the ``speakers`` split, the only speakers that train (and validate);
            the others that are not held out are left out (none: every speaker not held out).
            What each real voice buys: the same test speaker with fewer training voices.
        sample_rate: the recordings are 8 kHz; resampling them higher adds nothing.
        length_buckets: clips run 0.14-2.3 s (14-230 frames); edges where most of them lie.
        espeak_per_digit: synthetic training utterances of each digit (0: none); see the module
            docstring.
        espeak_seed: seeds the synthetic utterances (voices, rates, pitches, noise).
        extra_train_dir: a folder of ``<digit>/*.wav`` added to the training split only.
        noisy_copies: copies of each training recording with white noise added (0: none), each
            at an SNR drawn from ``noisy_snr_db`` (dB) by its key; they keep the recording's
            speaker and split, so a held-out voice never trains through them.
    """

    name: ClassVar[str] = "fsdd"

    def __init__(
        self,
        split: str = "conventional",
        test_speakers: list[str] = [],  # noqa: B006 (jsonargparse reads the default)
        validation_speakers: list[str] = [],  # noqa: B006
        train_speakers: list[str] = [],  # noqa: B006
        sample_rate: int = 8000,
        length_buckets: list[int] = [30, 40, 50, 60, 80],  # noqa: B006
        espeak_per_digit: int = 0,
        espeak_seed: int = 0,
        extra_train_dir: str | None = None,
        noisy_copies: int = 0,
        noisy_snr_db: tuple[float, float] = (5.0, 20.0),
        **kwargs,
    ) -> None:
        if split not in SPLITS:
            raise SpeechRNNError(f"FSDD split {split!r} is unknown; choose one of {list(SPLITS)}")
        if (split == "speakers") != bool(test_speakers):
            raise SpeechRNNError(
                "FSDD test_speakers goes with split: speakers, and that split needs at least one; "
                f"got split={split!r}, test_speakers={list(test_speakers)}"
            )
        if validation_speakers and (split != "speakers" or set(validation_speakers) & set(test_speakers)):
            raise SpeechRNNError(
                "FSDD validation_speakers goes with split: speakers and must not name a test speaker; "
                f"got split={split!r}, validation_speakers={list(validation_speakers)}, "
                f"test_speakers={list(test_speakers)}"
            )
        if train_speakers and (split != "speakers" or set(train_speakers) & set(test_speakers + validation_speakers)):
            raise SpeechRNNError(
                "FSDD train_speakers goes with split: speakers and must not name a held-out speaker; "
                f"got split={split!r}, train_speakers={list(train_speakers)}, test_speakers={list(test_speakers)}, "
                f"validation_speakers={list(validation_speakers)}"
            )
        for snr_db in noisy_snr_db:
            check("FSDD noisy_snr_db", snr_db, SNRS_DB)
        if noisy_copies < 0 or not noisy_snr_db[0] <= noisy_snr_db[1]:
            raise SpeechRNNError(f"FSDD noisy_copies={noisy_copies}, noisy_snr_db={list(noisy_snr_db)}: use 0 copies "
                                 "or more, and an SNR range [low, high] in dB with low <= high, e.g. [5, 20]")
        if espeak_per_digit < 0:
            raise SpeechRNNError(
                f"FSDD espeak_per_digit={espeak_per_digit}; use 0 (no synthetic voices) or more"
            )
        self.split = split
        self.test_speakers = sorted(set(test_speakers))
        self.validation_speakers = sorted(set(validation_speakers))
        self.train_speakers = sorted(set(train_speakers))
        self.espeak_per_digit = espeak_per_digit
        self.espeak_seed = espeak_seed
        self.extra_train_dir = None if extra_train_dir is None else Path(extra_train_dir)
        self.noisy_copies, self.noisy_snr_db = noisy_copies, tuple(noisy_snr_db)
        super().__init__(sample_rate=sample_rate, length_buckets=length_buckets, **kwargs)
        self.arguments.update(split=split, test_speakers=test_speakers, validation_speakers=validation_speakers,
                              train_speakers=train_speakers, espeak_per_digit=espeak_per_digit, espeak_seed=espeak_seed,
                              extra_train_dir=extra_train_dir, noisy_copies=noisy_copies,
                              noisy_snr_db=list(noisy_snr_db))

    @property
    def recordings_dir(self) -> Path:
        return self.corpus_dir / "recordings"

    @property
    def espeak_path(self) -> Path:
        """Generated from a seed like features, so it goes with the caches, not the data root."""
        name = synth.corpus_name(self.espeak_seed, self.espeak_per_digit, synth.SNR_DB)
        return self.cache_dir / f"{self.name}-espeak" / name

    def vocabulary(self) -> list[str]:
        return list(DIGITS)

    def download(self) -> None:
        if self.espeak_per_digit:
            synth.generate_corpus(self.espeak_path, self.espeak_seed, self.espeak_per_digit,
                                  words=synth.DIGITS, held_out=False)
        if self.recordings_dir.is_dir():
            return
        # The archive holds the whole repository under one top folder; keep only recordings/.
        unpacked = download_and_extract(URL, SHA256, self.corpus_dir / ".v1.0.10.unpacked")
        os.replace(unpacked / ARCHIVE_TOP / "recordings", self.recordings_dir)
        shutil.rmtree(unpacked)

    def utterances(self) -> list[Utterance]:
        if not self.recordings_dir.is_dir():
            raise SpeechRNNError(
                f"{self.recordings_dir} not found; run `fit` to download FSDD, or put the "
                f"recordings/ folder of {URL} there"
            )
        found, speakers = [], set()
        # with train_speakers, the voices this run reads: the others neither train nor are tested
        voices = {*self.train_speakers, *self.test_speakers, *self.validation_speakers} if self.train_speakers else None
        for path in sorted(self.recordings_dir.glob("*.wav")):
            match = RECORDING.fullmatch(path.stem)
            if match is None:
                raise SpeechRNNError(
                    f"{path} is not named {{digit}}_{{speaker}}_{{index}}.wav; rename or remove it"
                )
            speaker, index = match["speaker"], int(match["index"])
            speakers.add(speaker)
            if voices is not None and speaker not in voices:
                continue
            found.append(
                Utterance(
                    key=path.stem,
                    path=path,
                    split=self._split_of(speaker, index),
                    label=match["digit"],
                    speaker=speaker,
                )
            )
        self._check_speakers(speakers)
        extra = self._noisy_copies(found) + self._espeak_utterances() + self._extra_utterances()
        return sorted(found + extra, key=lambda utterance: utterance.key)

    def _noisy_copies(self, recordings: list[Utterance]) -> list[Utterance]:
        """``noisy_copies`` of each training recording, each with white noise at its own SNR."""
        low, high = self.noisy_snr_db
        copies = []
        for utterance in (u for u in recordings if u.split == "train"):
            for copy in range(self.noisy_copies):
                key = f"{utterance.key}-noisy{copy}"
                position = key_seed(key) / 2**64  # in [0, 1)
                copies.append(dataclasses.replace(utterance, key=key, noise_snr_db=low + (high - low) * position))
        return copies

    def _espeak_utterances(self) -> list[Utterance]:
        """The synthetic digits, all training data, each cut to its speech and a margin."""
        if not self.espeak_per_digit:
            return []
        found = []
        for spoken in synth.read_corpus(self.espeak_path):
            speech = [(start, end) for start, end, phone in spoken.phones if phone != SILENCE]
            start_s = max(0.0, speech[0][0] - SPEECH_MARGIN_S)
            found.append(
                Utterance(
                    key=f"espeak-{spoken.key}",
                    path=spoken.path,
                    split="train",
                    label=str(synth.DIGITS.index(spoken.label)),
                    start_s=start_s,
                    duration_s=speech[-1][1] + SPEECH_MARGIN_S - start_s,
                )
            )
        return found

    def _extra_utterances(self) -> list[Utterance]:
        """``extra_train_dir/<digit>/*.wav``, all training data, with no speaker."""
        if self.extra_train_dir is None:
            return []
        folder = self.extra_train_dir
        if not folder.is_dir():
            raise SpeechRNNError(f"FSDD extra_train_dir {folder} is not a folder; pass a folder of <digit>/*.wav "
                                 "(python -m pipelines.piper_digits writes one)")
        found = []
        for label_dir in sorted(path for path in folder.iterdir() if path.is_dir()):
            if label_dir.name not in DIGITS:
                raise SpeechRNNError(f"{label_dir} is not a digit's folder: extra_train_dir holds only 0/ .. 9/")
            found += [Utterance(key=f"extra-{label_dir.name}-{path.stem}", path=path, split="train",
                                label=label_dir.name) for path in sorted(label_dir.glob("*.wav"))]
        if not found:
            raise SpeechRNNError(f"no recordings in {folder}/<digit>/*.wav; generate them first "
                                 f"(python -m pipelines.piper_digits --out {folder}) or drop extra_train_dir")
        return found

    def _split_of(self, speaker: str, index: int) -> str:
        if self.split == "speakers" and speaker in self.test_speakers:
            return "test"
        if self.split == "conventional" and index in TEST_INDICES:
            return "test"
        if self.validation_speakers:
            return "validation" if speaker in self.validation_speakers else "train"
        return "validation" if index in VALIDATION_INDICES else "train"

    def _check_speakers(self, speakers: set[str]) -> None:
        held_out = set(self.test_speakers) | set(self.validation_speakers)
        if absent := sorted(set(self.train_speakers) - speakers):
            raise SpeechRNNError(f"FSDD train_speakers {absent} are not in {self.recordings_dir}: {sorted(speakers)}")
        absent = sorted(held_out - speakers)
        if absent or (held_out and speakers <= held_out):
            raise SpeechRNNError(
                f"FSDD test_speakers {self.test_speakers} and validation_speakers {self.validation_speakers} "
                f"must name some, not all, of the speakers in {self.recordings_dir}: {sorted(speakers)}"
            )
