"""Google Speech Commands v0.01 / v0.02: one-second keyword clips, classified one label each.

The archive unpacks to ``data_root/speech_commands/speech_commands_v0.0<version>/`` holding
``<word>/<speaker>_nohash_<n>.wav``, ``validation_list.txt``, ``testing_list.txt`` (the official
splits; every other clip is train) and ``_background_noise_/*.wav``. The URLs and SHA-256
checksums are those torchaudio's ``SPEECHCOMMANDS`` uses.

Label sets:

- ``all``: every word, 30 (v0.01) or 35 (v0.02) classes.
- ``core12``: the standard task of the TensorFlow ``speech_commands`` recipe: ten words, plus
  ``_unknown_`` (the other words) and ``sil`` (the recipe's ``_silence_``). As in that recipe each split gets
  ``ceil(unknown_percent%)`` and ``ceil(silence_percent%)`` of its ten-word clip count as extra
  unknown and silence items; unknown clips are drawn at random (seeded by ``seed``) from the
  split's other words. Silence items are one-second windows of the ``_background_noise_``
  recordings; each recording's first 80% feeds train, the next 10% validation and the last
  10% test, so no noise is shared between splits.

Clips shorter than one second are zero-padded to it (the cache keeps their true length).

Training-only augmentation, all off by default, acts on MFCC batches on the device: background
noise mixed at a random SNR and a random time shift, then what every corpus offers (tempo, gain,
SpecAugment masks); all live in :mod:`speechrnn.data.augment`.
"""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import ClassVar

import soundfile as sf

from speechrnn.batch import Batch, padding_mask
from speechrnn.data.augment import NoiseMixer, time_shift
from speechrnn.data.corpus import SILENCE, Utterance
from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.data.download import download_and_extract
from speechrnn.data.features import MFCC
from speechrnn.errors import SpeechRNNError

URL = "http://download.tensorflow.org/data/speech_commands_v0.0{version}.tar.gz"
SHA256 = {
    1: "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
    2: "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
}
WORDS_V1 = [
    "bed",
    "bird",
    "cat",
    "dog",
    "down",
    "eight",
    "five",
    "four",
    "go",
    "happy",
    "house",
    "left",
    "marvin",
    "nine",
    "no",
    "off",
    "on",
    "one",
    "right",
    "seven",
    "sheila",
    "six",
    "stop",
    "three",
    "tree",
    "two",
    "up",
    "wow",
    "yes",
    "zero",
]
WORDS = {1: WORDS_V1, 2: sorted(WORDS_V1 + ["backward", "follow", "forward", "learn", "visual"])}
CORE_WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
UNKNOWN = "_unknown_"
BACKGROUND_DIR = "_background_noise_"
CLIP_S = 1.0
# Share of each background recording (by time) that each split draws noise from.
NOISE_SPAN = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "test": (0.9, 1.0)}
LABEL_SETS = ("all", "core12")


class SpeechCommandsDataModule(SpeechDataModule):
    """Google Speech Commands keyword classification (see the module docstring).

    Args:
        version: 2 (v0.02, 105,829 clips, about 2.3 GB) or 1 (v0.01, 64,727 clips, 1.4 GB).
        label_set: ``all`` (every word) or ``core12`` (ten words, ``_unknown_``, ``sil``).
        unknown_percent, silence_percent: ``core12`` only: extra unknown and silence items per
            split, in percent of its ten-word clips (the TensorFlow recipe uses 10 each).
        noise_probability: chance that a training clip gets background noise mixed in; needs
            ``n_mfcc == n_mels`` and no deltas (the mixing inverts the DCT).
        noise_snr_db: range of the signal-to-noise ratio, in dB, drawn uniformly per clip.
        time_shift_ms: largest random shift of a training clip, either way.
        test_speakers: speaker ids (the part of a file name before ``_nohash_``) whose clips are
            the test split, every word of them; the other speakers' official test clips then join
            training. For speaker folds (``pipelines/loso.py --folds``); empty: the official split.
    """

    name: ClassVar[str] = "speech_commands"
    pad_to_s: ClassVar[float] = CLIP_S

    def __init__(
        self,
        version: int = 2,
        label_set: str = "all",
        unknown_percent: float = 10.0,
        silence_percent: float = 10.0,
        noise_probability: float = 0.0,
        noise_snr_db: tuple[float, float] = (0.0, 20.0),
        time_shift_ms: float = 0.0,
        test_speakers: list[str] = [],  # noqa: B006 (jsonargparse reads the default)
        **kwargs,
    ) -> None:
        if version not in SHA256:
            raise SpeechRNNError(f"Speech Commands version {version} does not exist; choose 1 or 2")
        if label_set not in LABEL_SETS:
            raise SpeechRNNError(
                f"Speech Commands label_set {label_set!r} is unknown; choose one of {list(LABEL_SETS)}"
            )
        self.version = version
        self.label_set = label_set
        self.unknown_percent = unknown_percent
        self.silence_percent = silence_percent
        self.noise_probability = noise_probability
        self.noise_snr_db = tuple(noise_snr_db)
        self.time_shift_ms = time_shift_ms
        self.test_speakers = sorted(set(test_speakers))
        super().__init__(**kwargs)
        self.arguments.update(version=version, label_set=label_set, unknown_percent=unknown_percent,
                              silence_percent=silence_percent, noise_probability=noise_probability,
                              noise_snr_db=noise_snr_db, time_shift_ms=time_shift_ms, test_speakers=test_speakers)
        settings = self.features
        if noise_probability > 0 and (settings.n_mfcc != settings.n_mels or settings.deltas):
            raise SpeechRNNError(
                "Speech Commands noise mixing needs n_mfcc == n_mels and deltas off (it inverts "
                f"the DCT), got n_mfcc={settings.n_mfcc}, n_mels={settings.n_mels}, "
                f"deltas={settings.deltas}; change those or set noise_probability: 0"
            )
        self.noise_mixer: NoiseMixer | None = None

    @property
    def tree_dir(self) -> Path:
        return self.corpus_dir / f"speech_commands_v0.0{self.version}"

    def vocabulary(self) -> list[str]:
        if self.label_set == "core12":
            return [SILENCE, UNKNOWN, *CORE_WORDS]
        return list(WORDS[self.version])

    def download(self) -> None:
        download_and_extract(URL.format(version=self.version), SHA256[self.version], self.tree_dir)

    def utterances(self) -> list[Utterance]:
        clips = self._word_clips()
        if self.label_set == "all":
            found = clips
        else:
            found = []
            for split in ("train", "validation", "test"):
                found += self._core12_split(split, [u for u in clips if u.split == split])
        return sorted(found, key=lambda utterance: utterance.key)

    def _word_clips(self) -> list[Utterance]:
        """Every word clip, labelled with its word, in its official split."""
        missing = [
            f
            for f in ("validation_list.txt", "testing_list.txt")
            if not (self.tree_dir / f).is_file()
        ]
        missing += [w for w in WORDS[self.version] if not (self.tree_dir / w).is_dir()]
        if missing:
            raise SpeechRNNError(
                f"{self.tree_dir} lacks {missing}; delete it and run `fit` to download it again, or "
                f"unpack {URL.format(version=self.version)} into it"
            )
        split_of = {name: "validation" for name in self._read_list("validation_list.txt")}
        split_of |= {name: "test" for name in self._read_list("testing_list.txt")}
        held_out = set(self.test_speakers)
        clips = []
        for word in WORDS[self.version]:
            for path in sorted((self.tree_dir / word).glob("*.wav")):
                relative = f"{word}/{path.name}"
                speaker = path.name.split("_nohash_")[0]
                split = split_of.get(relative, "train")
                if held_out:
                    split = "test" if speaker in held_out else ("train" if split == "test" else split)
                clips.append(Utterance(key=relative, path=path, split=split, label=word, speaker=speaker,
                                       pad_to_s=self.pad_to_s))
        absent = held_out - {clip.speaker for clip in clips}
        if absent:
            raise SpeechRNNError(f"Speech Commands test_speakers {sorted(absent)} have no clips in {self.tree_dir}; "
                                 "name speaker ids as they start the file names (<id>_nohash_<n>.wav)")
        return clips

    def _read_list(self, filename: str) -> list[str]:
        return (self.tree_dir / filename).read_text().split()

    def _core12_split(self, split: str, clips: list[Utterance]) -> list[Utterance]:
        """One split of the ``core12`` task: core words, sampled unknowns, silence windows."""
        core = [u for u in clips if u.label in CORE_WORDS]
        others = [u for u in clips if u.label not in CORE_WORDS]
        rng = random.Random(f"{self.seed}/{split}")
        unknown_count = math.ceil(len(core) * self.unknown_percent / 100)
        unknowns = rng.sample(others, min(unknown_count, len(others)))
        silence_count = math.ceil(len(core) * self.silence_percent / 100)
        return (
            core
            + [dataclasses.replace(u, label=UNKNOWN) for u in unknowns]
            + self._silence_windows(split, silence_count, rng)
        )

    def background_files(self) -> list[Path]:
        return sorted((self.tree_dir / BACKGROUND_DIR).glob("*.wav"))

    def _silence_windows(self, split: str, count: int, rng: random.Random) -> list[Utterance]:
        """``count`` one-second windows from this split's share of the background recordings."""
        spans = []  # (path, first start_s, last start_s)
        for path in self.background_files():
            duration_s = sf.info(str(path)).duration
            low, high = NOISE_SPAN[split]
            if (high - low) * duration_s >= CLIP_S:
                spans.append((path, low * duration_s, high * duration_s - CLIP_S))
        if count and not spans:
            raise SpeechRNNError(
                f"no background recording in {self.tree_dir / BACKGROUND_DIR} is long enough for "
                f"{split} silence clips; restore that folder or use label_set: all"
            )
        windows = []
        for i in range(count):
            path, first_s, last_s = rng.choice(spans)
            windows.append(
                Utterance(
                    key=f"{SILENCE}/{split}/{i:05d}",
                    path=path,
                    split=split,
                    label=SILENCE,
                    start_s=round(rng.uniform(first_s, last_s), 3),
                    duration_s=CLIP_S,
                )
            )
        return windows

    # ----- augmentation ---------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.noise_probability > 0 and self.noise_mixer is None:
            if not self.background_files():
                raise SpeechRNNError(
                    f"noise mixing needs background recordings and found none in {self.tree_dir / BACKGROUND_DIR}/; "
                    "restore that folder or set noise_probability: 0"
                )
            self.noise_mixer = NoiseMixer.from_files(self.background_files(), MFCC(self.features), NOISE_SPAN["train"])

    def augment(self, batch: Batch) -> Batch:
        if self.noise_mixer is not None:
            mean, std = self.mean.to(batch.feats.device), self.std.to(batch.feats.device)
            feats = (batch.feats - mean) / std  # (B, T, F), normalised as the mixer takes them
            feats = self.noise_mixer(feats, batch.lengths, mean, std, self.noise_probability, self.noise_snr_db)
            valid = padding_mask(batch.lengths, feats.shape[1])[..., None]
            batch = batch._replace(feats=(feats * std + mean) * valid)
        if self.time_shift_ms > 0:
            max_frames = round(self.time_shift_ms / self.features.hop_ms)
            batch = batch._replace(feats=time_shift(batch.feats, batch.lengths, max_frames))
        return super().augment(batch)

