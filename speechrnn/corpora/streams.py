"""Keyword spotting in continuous audio: keywords among other words, noise and silence, with known times.

Per split, one long recording ("tape") is composed from that split's utterances only: every
utterance of the keyword corpus (FSDD digits) once, those of ``keyword_labels`` as keywords and
the others as unknown words (real people saying words that are not keywords, as Speech
Commands' "unknown"), each preceded by a gap of one to three items drawn from silence, noise
bursts (white or brown) and filler words (words of another corpus that are not keywords: the
eSpeak corpus's Speech Commands words), every item over a faint noise floor::

    [silence][filler "left"][noise]["3"][silence][unknown "7"][filler "go"][silence]["0"] ...

Unknown words keep a spotter honest: with synthetic fillers only, "is this a real voice" would
separate keywords from the rest, and the spotter would fire on any real word.

Training and validation examples are windows cut from the tape's frames, labelled by where
they end, so a model reads the state at every frame as it will in a stream:

- a keyword's label when the window ends between 50 ms before and 250 ms after the keyword;
- ``background`` when it ends inside a keyword (before its last 250 ms; the word is not over),
  away from every keyword (more than 600 ms after its end), or just after a filler or unknown
  word (as a keyword's positives do: the hard negatives); other ends are not used.

For scoring a spotter, the validation and test tapes are also written as WAV files beside a
timeline JSON (``{"sample_rate", "duration_s", "events": [{"kind", "label", "start_s",
"end_s", "source", "speaker"}]}``; ``kind`` is keyword, unknown, filler, noise or silence,
``source`` the utterance's key), and so is a keyword-free stream per split (unknown words,
fillers, noise and silence only, ``keyword_free_s`` long; its words repeat, as the held-out ones
are few). The training split has a keyword-free tape too (frames only): a trained spotter's false
alarms there are the hard negatives that ``mined_windows`` adds to training
(:mod:`speechrnn.streaming.mining`).

Layout of ``<cache_dir>/<name>-<key>/``: ``<split>.tape.npy`` (frames ``(T, F)``),
``<split>.json`` (the tape's timeline), ``<split>.wav`` (validation and test), and
``<split>-keyword-free.tape.npy`` / ``.json`` (every split) / ``.wav`` (validation and test). The key hashes both corpora's listings, the feature
settings and the composition settings; the folder is written under a temporary name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import ClassVar

import numpy as np
import soundfile as sf
import torch

from speechrnn.corpora.speech_commands import CORE_WORDS
from speechrnn.corpora.tapes import Composer
from speechrnn.data.cache import SplitFeatures, cache_key
from speechrnn.data.corpus import BACKGROUND, SPLITS, Utterance
from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.data.features import FeatureSettings
from speechrnn.data.frontend import featurise
from speechrnn.data.timeline import read_timeline, write_timeline
from speechrnn.errors import SpeechRNNError

STREAM_FORMAT = 6  # words cut to their utterance's start_s and duration_s (eSpeak digits)
SCORED_SPLITS = ("validation", "test")  # the splits written as audio for scoring a spotter
POSITIVE_S = (-0.05, 0.25)  # window ends, relative to a keyword's end, labelled with the keyword
INSIDE_MARGIN_S = 0.25  # windows ending inside a keyword stop this long before its end
CLEAR_S = 0.6  # background windows end at least this long after a keyword's end


class StreamDataModule(SpeechDataModule):
    """Windows of continuous audio for training; long streams with timelines for scoring.

    Labels are ``keyword_labels`` plus ``background``; features and training augmentation are the
    keyword module's. With
    FSDD's ``split: speakers`` as the keyword corpus, the test tapes hold only voices the model
    never trained on; validation (the other speakers' index 5-9) holds the training speakers'
    other recordings, so the detector is tuned on voices the model has heard. Training-only
    utterances of the keyword corpus (FSDD's ``espeak_per_digit``) are spoken in the training
    tapes only, keywords and unknown words alike.

    Args:
        keywords: the keyword corpus (``class_path``/``init_args`` in a config), e.g. FSDD.
        fillers: a corpus whose ``filler_words`` are spoken as non-keywords (the eSpeak corpus).
        filler_words: the fillers' labels used; none may be a keyword label.
        keyword_labels: the keyword corpus's labels that are keywords (None: all of them); its
            other labels' utterances are unknown words, real speech a spotter must not fire on.
        window_s: shortest and longest training window, seconds.
        positives: windows per keyword labelled with it.
        negatives: background windows per keyword (one of them inside the keyword when it is long).
        filler_negatives: background windows per filler or unknown word, ending where a keyword's
            positive windows would: just after the word, where a spotter is tempted to fire.
        keyword_free_s: length of each split's keyword-free stream: long enough to tune and
            measure a rate of false alarms per hour.
        mined_windows: a JSON file of background windows of the training keyword-free tape
            (``{"streams", "windows": [[first, last], ...]}`` in frames, written by
            :func:`speechrnn.streaming.mining.write_mined`), added to the training windows.
        batch_size: windows per batch.
        seed: decides the composition of every tape and the windows.
    """

    name: ClassVar[str] = "stream"  # an instance says its corpus too: ``fsdd-stream``

    def __init__(
        self,
        keywords: SpeechDataModule,
        fillers: SpeechDataModule,
        filler_words: tuple[str, ...] = tuple(CORE_WORDS),
        keyword_labels: list[str] | None = None,
        window_s: tuple[float, float] = (0.8, 2.5),
        positives: int = 2,
        negatives: int = 4,
        filler_negatives: int = 1,
        keyword_free_s: float = 3600.0,
        mined_windows: str | None = None,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        self.keyword_labels = chosen_keywords(keywords, keyword_labels)
        clash = sorted(set(filler_words) & set(self.keyword_labels))
        if clash or not filler_words:
            raise SpeechRNNError(f"filler_words must name non-keywords; {clash or 'none'} given as fillers")
        if not 0 < window_s[0] <= window_s[1]:
            raise SpeechRNNError(f"window_s must be [shortest, longest] seconds, got {list(window_s)}")
        self.keywords, self.fillers = keywords, fillers
        self.filler_words = list(filler_words)
        self.window_s = tuple(window_s)
        self.positives, self.negatives, self.filler_negatives = positives, negatives, filler_negatives
        self.keyword_free_s = keyword_free_s
        self.mined_windows = mined_windows
        # the features, the corpus's location and the labels come from the keyword module
        super().__init__(task="keyword", data_root=str(keywords.data_root), cache_dir=str(keywords.cache_dir),
                         **asdict(keywords.features), batch_size=batch_size,
                         length_buckets=self.window_buckets(keywords.features), seed=seed,
                         feature_device=keywords.feature_device)
        self.arguments.update(keywords=keywords, fillers=fillers, filler_words=filler_words,
                              keyword_labels=keyword_labels, window_s=window_s,
                              positives=positives, negatives=negatives, filler_negatives=filler_negatives,
                              keyword_free_s=keyword_free_s, mined_windows=mined_windows)
        self.save_hyperparameters(ignore=["keywords", "fillers"])
        self.name = f"{keywords.name}-stream"
        # the keyword corpus's training augmentation (VTLP, tempo, masks: its ``init_args``) acts on the
        # windows too: a spotter meets unheard voices as the corpus's classifier does
        self.augmentation = keywords.augmentation

    def vocabulary(self) -> list[str]:
        return [*self.keyword_labels, BACKGROUND]

    @property
    def corpus_dir(self) -> Path:
        return self.keywords.corpus_dir

    def window_buckets(self, features: FeatureSettings) -> list[int]:
        """Length-bucket edges in frames: the window range in quarters."""
        low, high = self.window_s
        return [features.frames_in(low + (high - low) * q) for q in (0.25, 0.5, 0.75)]

    # ----- composing the tapes -------------------------------------------------------------------

    def _listings(self) -> tuple[list[Utterance], list[Utterance], list[Utterance]]:
        """The keyword corpus's utterances, keywords then unknown words; the fillers'."""
        spoken = [u for u in self.keywords.utterances() if u.label in self.keywords.labels]
        keywords = [u for u in spoken if u.label in self.keyword_labels]
        unknowns = [u for u in spoken if u.label not in self.keyword_labels]
        fillers = [u for u in self.fillers.utterances() if u.label in self.filler_words]
        return keywords, unknowns, fillers

    @property
    def directory(self) -> Path:
        keywords, unknowns, fillers = self._listings()
        params = {"format": STREAM_FORMAT, "fillers": cache_key(fillers, self.features, "filler", self.filler_words),
                  "keywords": cache_key(keywords + unknowns, self.features, "keyword", self.keyword_labels),
                  "keyword_free_s": self.keyword_free_s, "seed": self.seed}
        key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
        return self.cache_dir / f"{self.name}-{key}"

    def stream_files(self, split: str) -> dict[str, Path]:
        """The scored split's WAVs, ``keywords`` and ``keyword_free``; each timeline is the .json beside it."""
        if split not in SCORED_SPLITS:
            raise SpeechRNNError(f"streams are written for {list(SCORED_SPLITS)}, not {split!r}")
        return {"keywords": self.directory / f"{split}.wav",
                "keyword_free": self.directory / f"{split}-keyword-free.wav"}

    def tape(self, split: str, keyword_free: bool = False) -> tuple[torch.Tensor, dict]:
        """A split's tape: its frames ``(T, F)`` and its timeline."""
        stem = self.directory / (f"{split}-keyword-free" if keyword_free else split)
        return torch.from_numpy(np.load(stem.with_suffix(".tape.npy"))), read_timeline(stem.with_suffix(".json"))

    def prepare_data(self) -> None:
        self.keywords.download()
        self.fillers.download()
        directory = self.directory
        if directory.is_dir():
            return
        staging = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        keywords, unknowns, fillers = self._listings()
        for index, split in enumerate(SPLITS):
            rng = np.random.default_rng([self.seed, index])
            composer = Composer(self.features.sample_rate, in_split(fillers, split), in_split(unknowns, split), rng)
            wave, events = composer.keyword_tape(in_split(keywords, split))
            np.save(staging / f"{split}.tape.npy", featurise(wave, self.features, "this stream corpus").numpy())
            write_timeline(staging / f"{split}.json", events, len(wave), self.features.sample_rate)
            free, free_events = composer.keyword_free_tape(self.keyword_free_s)
            np.save(staging / f"{split}-keyword-free.tape.npy", featurise(free, self.features, "this stream corpus").numpy())
            write_timeline(staging / f"{split}-keyword-free.json", free_events, len(free), self.features.sample_rate)
            if split in SCORED_SPLITS:
                sf.write(staging / f"{split}.wav", wave, self.features.sample_rate, subtype="PCM_16")
                sf.write(staging / f"{split}-keyword-free.wav", free, self.features.sample_rate, subtype="PCM_16")
        staging.rename(directory)

    # ----- windows ---------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        directory = self.directory
        if not directory.is_dir():
            raise SpeechRNNError(f"the streams in {directory} are missing; run prepare_data() first (the Trainer does)")
        for index, split in enumerate(SPLITS):
            tape, timeline = self.tape(split)
            generator = torch.Generator().manual_seed(self.seed * len(SPLITS) + index)
            self.splits[split] = self.windows(tape, timeline["events"], generator)
        if self.mined_windows:
            self.splits["train"] = join_splits(self.splits["train"], self.mined())
        self._fit_normalisation()

    def mined(self) -> SplitFeatures:
        """The ``mined_windows`` of the training keyword-free tape, labelled background."""
        path = Path(self.mined_windows)
        if not path.is_file():
            raise SpeechRNNError(f"mined_windows {path} does not exist; mine them with `python -m pipelines.streaming "
                                 "--mining-rounds 1`, or leave mined_windows unset")
        mined = json.loads(path.read_text())
        if mined["streams"] != self.directory.name:
            raise SpeechRNNError(f"mined_windows {path} were mined from the streams {mined['streams']}, not "
                                 f"{self.directory.name} of this data config; mine them again for these streams")
        tape, _ = self.tape("train", keyword_free=True)
        rows = [torch.arange(first, last + 1) for first, last in mined["windows"]]
        return as_split(tape, rows, [self.labels.index(BACKGROUND)] * len(rows), "mined")

    def windows(self, tape: torch.Tensor, events: list[dict], generator: torch.Generator) -> SplitFeatures:
        """Labelled windows of ``tape`` ``(T, F)`` (see the module docstring), as a split batching reads."""
        frames, count = self.features.frames_in, len(tape)
        label_ids = {label: i for i, label in enumerate(self.labels)}
        words = [e for e in events if e["kind"] == "keyword"]

        def uniform(low: float, high: float) -> float:
            return low + (high - low) * float(torch.rand(1, generator=generator))

        clear = torch.ones(count, dtype=torch.bool)  # frames a background window may end at
        for word in words:
            clear[frames(word["start_s"]) : frames(word["end_s"] + CLEAR_S)] = False
        clear_frames = clear.nonzero()[:, 0]
        ends = []  # (last frame, first frame it must include, label id)
        background = label_ids[BACKGROUND]
        for word in words:
            start = frames(word["start_s"])
            for _ in range(self.positives):
                ends.append((frames(word["end_s"] + uniform(*POSITIVE_S)), start, label_ids[word["label"]]))
            inside = word["end_s"] - INSIDE_MARGIN_S - word["start_s"]
            if inside > 0.1 and self.negatives:
                last = frames(uniform(word["start_s"] + 0.1, word["start_s"] + inside))
                ends.append((last, last, background))
            picks = torch.randint(len(clear_frames), (self.negatives - (inside > 0.1),), generator=generator)
            ends += [(int(clear_frames[p]), int(clear_frames[p]), background) for p in picks]
        for other in (e for e in events if e["kind"] in ("filler", "unknown")):
            for _ in range(self.filler_negatives):
                ends.append((frames(other["end_s"] + uniform(*POSITIVE_S)), frames(other["start_s"]),
                             background))
        rows, targets = [], []
        for last, must_start, target in ends:
            last = min(last, count - 1)
            first = max(0, min(last + 1 - frames(uniform(*self.window_s)), must_start - 2))
            rows.append(torch.arange(first, last + 1))
            targets.append(target)
        return as_split(tape, rows, targets, "window")


def as_split(tape: torch.Tensor, rows: list[torch.Tensor], targets: list[int], name: str) -> SplitFeatures:
    """Windows of ``tape`` ``(T, F)``, each the frame indices in ``rows``, as a split batching reads."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    feats = tape[torch.cat(rows)] if rows else tape[:0]
    return SplitFeatures(feats, offsets, torch.tensor(targets, dtype=torch.long), lengths,
                         [f"{name}-{i}" for i in range(len(rows))])


def join_splits(first: SplitFeatures, second: SplitFeatures) -> SplitFeatures:
    """The windows of ``first`` followed by those of ``second``."""
    return SplitFeatures(torch.cat([first.feats, second.feats]),
                         torch.cat([first.offsets, second.offsets[1:] + first.offsets[-1]]),
                         torch.cat([first.targets, second.targets]),
                         torch.cat([first.speech_lengths, second.speech_lengths]),
                         [*first.keys, *second.keys])


def chosen_keywords(keywords: SpeechDataModule, keyword_labels: list[str] | None) -> list[str]:
    """``keyword_labels`` in the keyword corpus's order, once each is found among its labels."""
    if keyword_labels is None:
        return list(keywords.labels)
    unknown = [label for label in keyword_labels if label not in keywords.labels]
    if unknown:
        raise SpeechRNNError(f"keyword_labels {unknown} are not labels of {keywords.name} {keywords.labels}; "
                             "name keywords among them, or give null for all")
    if not keyword_labels:
        raise SpeechRNNError(f"keyword_labels is empty; name at least one of {keywords.name}'s labels "
                             f"{keywords.labels}, or give null for all")
    return [label for label in keywords.labels if label in keyword_labels]


def in_split(utterances: list[Utterance], split: str) -> list[Utterance]:
    return [u for u in utterances if u.split == split]
