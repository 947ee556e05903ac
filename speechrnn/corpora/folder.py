"""Your own labelled recordings: ``<path>/<label>/*.{wav,flac,ogg}``, one label per utterance.

Files may have any sample rate and channel count (they are resampled and mixed to mono). The
labels are the subfolder names, sorted.

Training needs at least two labels. A label whose recordings are all unusable (corrupt, silent,
too short) is an error, not dropped: dropping it would renumber the classes that the model and
its checkpoint were built with, and a class without examples would silently never be learnt.

Split: each file goes to test, validation or train by a hash of its path relative to ``path``
(or, with ``speaker_pattern``, of its speaker, so that no speaker is in two splits). The hash does
not depend on the machine or on which other files exist, so adding files never moves old ones.
``use_all_for="test"`` puts every file in the test split, to evaluate a trained model on a folder.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import ClassVar

from speechrnn.data.corpus import SPLITS, Utterance
from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.errors import SpeechRNNError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
EXPECTED_LAYOUT = "<path>/<label>/<file>.wav (or .flac, .ogg), one subfolder per label"


class FolderDataModule(SpeechDataModule):
    """Keyword classification over a folder of labelled recordings.

    Args:
        path: the folder holding one subfolder of recordings per label.
        validation_fraction, test_fraction: shares of files (or speakers) held out.
        speaker_pattern: a regular expression whose first group finds the speaker in a file name,
            e.g. ``^([^_]+)_`` for ``<speaker>_<n>.wav``; the split then keeps speakers apart.
        use_all_for: put every file in this split (``test`` to evaluate on the whole folder).
    """

    name: ClassVar[str] = "folder"
    tasks: ClassVar[tuple[str, ...]] = ("keyword",)

    def __init__(
        self,
        path: str,
        validation_fraction: float = 0.1,
        test_fraction: float = 0.1,
        speaker_pattern: str | None = None,
        use_all_for: str | None = None,
        task: str = "keyword",
        **kwargs,
    ) -> None:
        if min(validation_fraction, test_fraction) < 0 or validation_fraction + test_fraction > 1:
            raise SpeechRNNError(
                f"validation_fraction {validation_fraction} and test_fraction {test_fraction} "
                "must be at least 0 and sum to at most 1"
            )
        if use_all_for is not None and use_all_for not in SPLITS:
            raise SpeechRNNError(f"use_all_for is {use_all_for!r}; choose one of {list(SPLITS)}")
        self.path = Path(path).expanduser()
        self.validation_fraction = validation_fraction
        self.test_fraction = test_fraction
        try:
            self.speaker_pattern = re.compile(speaker_pattern) if speaker_pattern else None
        except re.error as err:
            raise SpeechRNNError(
                f"speaker_pattern {speaker_pattern!r} is not a regex: {err}"
            ) from err
        self.use_all_for = use_all_for
        super().__init__(task=task, **kwargs)
        self.arguments.update(path=path, validation_fraction=validation_fraction, test_fraction=test_fraction,
                              speaker_pattern=speaker_pattern, use_all_for=use_all_for)

    def vocabulary(self) -> list[str]:
        """The label subfolders, sorted; each must hold at least one recording, and training two labels."""
        if self.path.exists() and not self.path.is_dir():
            raise SpeechRNNError(f"audio folder {self.path} is a file, not a folder: expected {EXPECTED_LAYOUT}")
        if not self.path.is_dir():
            raise SpeechRNNError(f"audio folder {self.path} not found: expected {EXPECTED_LAYOUT}")
        label_dirs = sorted(
            d for d in self.path.iterdir() if d.is_dir() and not d.name.startswith(".")
        )
        if not label_dirs:
            raise SpeechRNNError(
                f"audio folder {self.path} has no label subfolders: expected {EXPECTED_LAYOUT}"
            )
        for label_dir in label_dirs:
            if _recordings(label_dir):
                continue
            if any(d.is_dir() for d in label_dir.iterdir()):
                raise SpeechRNNError(
                    f"label folder {label_dir} holds subfolders but no recordings: the layout is one "
                    f"level deep, {EXPECTED_LAYOUT}; point path at the folder that holds the label "
                    "subfolders"
                )
            raise SpeechRNNError(
                f"label folder {label_dir} holds no {'/'.join(AUDIO_SUFFIXES)} files: "
                f"add recordings or remove it (expected {EXPECTED_LAYOUT})"
            )
        if len(label_dirs) < 2 and self.use_all_for is None:
            raise SpeechRNNError(
                f"audio folder {self.path} has one label, {label_dirs[0].name!r}: a classifier needs at "
                f"least two label subfolders ({EXPECTED_LAYOUT}); add another, or pass use_all_for "
                "to score a trained model on this folder"
            )
        return [label_dir.name for label_dir in label_dirs]

    def download(self) -> None:
        """Nothing to fetch: the folder is the user's, checked when the labels were listed."""

    def check_corpus_present(self) -> None:
        """The folder was checked when the labels were listed."""

    def utterances(self) -> list[Utterance]:
        found = []
        # a checkpoint's vocabulary (evaluate) may name labels this folder lacks
        for label in (label for label in self.labels if (self.path / label).is_dir()):
            for recording in _recordings(self.path / label):
                relative = recording.relative_to(self.path).as_posix()
                speaker = self._speaker(recording)
                found.append(
                    Utterance(
                        key=relative,
                        path=recording,
                        split=self.use_all_for or self._split(speaker or relative),
                        label=label,
                        speaker=speaker,
                    )
                )
        return sorted(found, key=lambda utterance: utterance.key)

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        self._check_every_label_usable()

    def _check_every_label_usable(self) -> None:
        """Raise when a label folder's recordings were all skipped by the feature cache."""
        kept = {self.labels[t] for split in self.splits.values() for t in split.targets.unique().tolist()}
        listed = {utterance.label for utterance in self.utterances()}
        unusable = sorted(listed - kept)
        if unusable:
            skipped = self.cache.manifest()["skipped"]
            reasons = [s["reason"] for s in skipped if Path(s["path"]).parent.name in unusable][:3]
            raise SpeechRNNError(
                f"label folders {[str(self.path / label) for label in unusable]} hold no usable recording "
                f"(e.g. {'; '.join(reasons)}); replace those files or remove the folders"
            )

    def _speaker(self, recording: Path) -> str:
        if self.speaker_pattern is None:
            return ""
        match = self.speaker_pattern.search(recording.name)
        if match is None or not match.groups():
            raise SpeechRNNError(
                f"speaker_pattern {self.speaker_pattern.pattern!r} finds no speaker group in "
                f"{recording}; fix the pattern or rename the file"
            )
        return match[1]

    def _split(self, name: str) -> str:
        """test, validation or train from a stable hash of ``name`` mapped into [0, 1)."""
        position = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 16**8
        if position < self.test_fraction:
            return "test"
        if position < self.test_fraction + self.validation_fraction:
            return "validation"
        return "train"


def _recordings(label_dir: Path) -> list[Path]:
    return sorted(
        f for f in label_dir.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES
    )
