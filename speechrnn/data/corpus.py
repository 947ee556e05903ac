"""What a corpus module hands to the feature cache: a sorted list of labelled recordings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "validation", "test")
SILENCE = "sil"  # the label of frames or clips without speech, in every corpus
BACKGROUND = "background"  # a spotter's class of everything that is not a keyword: fillers, noise, silence

# A phone segment: (start_s, end_s, phone label).
PhoneSegment = tuple[float, float, str]


@dataclass(frozen=True)
class Utterance:
    """One labelled recording, or a window of one (Speech Commands silence clips).

    ``key`` is unique and stable across runs: it orders the corpus and seeds per-item randomness.
    """

    key: str
    path: Path
    split: str  # one of SPLITS
    label: str = ""  # utterance label; "" for corpora with phone labels only
    speaker: str = ""
    phones: tuple[PhoneSegment, ...] = ()  # framewise targets for the phones task
    start_s: float = 0.0  # window into the file
    duration_s: float | None = None  # None: to the end of the file
    pad_to_s: float | None = None  # zero-pad shorter clips to this length (the true length is kept)
    noise_snr_db: float | None = None  # white noise added at this SNR to the clip (seeded by the key)


def key_seed(key: str) -> int:
    """A 64-bit seed from an utterance's ``key``: per-item randomness that no run order changes."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
