"""CMU ARCTIC with framewise phone targets from its festival ``.lab`` alignments.

Each speaker's archive unpacks to ``data_root/arctic/cmu_us_<speaker>_arctic/`` holding
``wav/<id>.wav``, ``lab/<id>.lab`` and ``etc/txt.done.data`` (the utterance list). The archives
and their SHA-256 checksums are those torchaudio's ``CMUARCTIC`` uses.

Silence: the labels mark pauses ``pau`` (and, in some voices, ``ssil`` or ``h#``); all of them
become the one class ``sil``, so the vocabulary is the 40 phones of festival's CMU lexicon
(radio phone names) plus ``sil``.

Split: by the number in the utterance id (``arctic_a0123`` is 123), the same for every speaker,
so a sentence is in one split only: numbers ending in 0 are test, ending in 1 validation, the
rest train. Every voice reads the same sentences, so each voice is in every split while the
test sentences are never heard in training.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import ClassVar

from speechrnn.data.corpus import SILENCE, PhoneSegment, Utterance
from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.data.download import download_and_extract
from speechrnn.errors import SpeechRNNError

URL = "http://festvox.org/cmu_arctic/packed/cmu_us_{speaker}_arctic.tar.bz2"
SHA256 = {
    "aew": "645cb33c0f0b2ce41384fdd8d3db2c3f5fc15c1e688baeb74d2e08cab18ab406",
    "ahw": "024664adeb892809d646a3efd043625b46b5bfa3e6189b3500b2d0d59dfab06c",
    "aup": "2c55bc3050caa996758869126ad10cf42e1441212111db034b3a45189c18b6fc",
    "awb": "d74a950c9739a65f7bfc4dfa6187f2730fa03de5b8eb3f2da97a51b74df64d3c",
    "axb": "dd65c3d2907d1ee52f86e44f578319159e60f4bf722a9142be01161d84e330ff",
    "bdl": "26b91aaf48b2799b2956792b4632c2f926cd0542f402b5452d5adecb60942904",
    "clb": "3f16dc3f3b97955ea22623efb33b444341013fc660677b2e170efdcc959fa7c6",
    "eey": "8a0ee4e5acbd4b2f61a4fb947c1730ab3adcc9dc50b195981d99391d29928e8a",
    "fem": "3fcff629412b57233589cdb058f730594a62c4f3a75c20de14afe06621ef45e2",
    "gka": "dc82e7967cbd5eddbed33074b0699128dbd4482b41711916d58103707e38c67f",
    "jmk": "3a37c0e1dfc91e734fdbc88b562d9e2ebca621772402cdc693bbc9b09b211d73",
    "ksp": "8029cafce8296f9bed3022c44ef1e7953332b6bf6943c14b929f468122532717",
    "ljm": "b23993765cbf2b9e7bbc3c85b6c56eaf292ac81ee4bb887b638a24d104f921a0",
    "lnh": "4faf34d71aa7112813252fb20c5433e2fdd9a9de55a00701ffcbf05f24a5991a",
    "rms": "c6dc11235629c58441c071a7ba8a2d067903dfefbaabc4056d87da35b72ecda4",
    "rxr": "1fa4271c393e5998d200e56c102ff46fcfea169aaa2148ad9e9469616fbfdd9b",
    "slp": "54345ed55e45c23d419e9a823eef427f1cc93c83a710735ec667d068c916abf1",
    "slt": "7c173297916acf3cc7fcab2713be4c60b27312316765a90934651d367226b4ea",
}

SILENCE_MARKS = frozenset({"pau", "ssil", "h#"})

# The CMU lexicon's phones in festival's radio names (CMUdict's 39, plus ax for reduced vowels).
# fmt: off
PHONES = sorted([
    "aa", "ae", "ah", "ao", "aw", "ax", "ay", "b", "ch", "d", "dh", "eh", "er", "ey", "f", "g",
    "hh", "ih", "iy", "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t",
    "th", "uh", "uw", "v", "w", "y", "z", "zh",
    SILENCE,
])
# fmt: on

UTTERANCE_ID = re.compile(r"\(\s*(\S+)\s")  # `( arctic_a0001 "Author of the ..." )`


class ArcticDataModule(SpeechDataModule):
    """CMU ARCTIC phone classification: one of 41 labels (40 phones and ``sil``) per frame.

    Args:
        speakers: voices to use (``slt``, ``bdl``, ...: the keys of ``SHA256``); each is
            about 100 MB to download.
    """

    name: ClassVar[str] = "arctic"
    tasks: ClassVar[tuple[str, ...]] = ("phones",)

    def __init__(
        self,
        speakers: list[str] = ["slt"],  # noqa: B006 (jsonargparse reads the default)
        task: str = "phones",
        **kwargs,
    ) -> None:
        unknown = sorted(set(speakers) - set(SHA256))
        if not speakers or unknown:
            raise SpeechRNNError(
                f"ARCTIC speakers {list(speakers)} include unknown {unknown} or none; "
                f"choose one or more of {sorted(SHA256)}"
            )
        self.speakers = sorted(set(speakers))
        super().__init__(task=task, **kwargs)
        self.arguments.update(speakers=speakers)

    def vocabulary(self) -> list[str]:
        return list(PHONES)

    def download(self) -> None:
        for speaker in self.speakers:
            speaker_dir = self.speaker_dir(speaker)
            if speaker_dir.is_dir():
                continue
            # The archive's single top folder is the speaker folder: unpack beside it, then move.
            unpacked = download_and_extract(
                URL.format(speaker=speaker),
                SHA256[speaker],
                self.corpus_dir / f".{speaker_dir.name}.unpacked",
            )
            os.replace(unpacked / speaker_dir.name, speaker_dir)
            shutil.rmtree(unpacked)

    def speaker_dir(self, speaker: str) -> Path:
        return self.corpus_dir / f"cmu_us_{speaker}_arctic"

    def utterances(self) -> list[Utterance]:
        found = []
        for speaker in self.speakers:
            speaker_dir = self.speaker_dir(speaker)
            listing = speaker_dir / "etc" / "txt.done.data"
            if not listing.is_file():
                raise SpeechRNNError(
                    f"{listing} not found: expected {speaker_dir}/{{wav/*.wav, lab/*.lab, "
                    "etc/txt.done.data}; run `fit` to download it, or unpack "
                    f"{URL.format(speaker=speaker)} into {self.corpus_dir}"
                )
            for utterance_id in read_utterance_ids(listing):
                found.append(
                    Utterance(
                        key=f"{speaker}/{utterance_id}",
                        path=speaker_dir / "wav" / f"{utterance_id}.wav",
                        split=split_of(utterance_id),
                        speaker=speaker,
                        phones=read_lab(speaker_dir / "lab" / f"{utterance_id}.lab"),
                    )
                )
        return sorted(found, key=lambda utterance: utterance.key)


def split_of(utterance_id: str) -> str:
    """The split of ``arctic_a0123``, from the last digit of its number (see module docstring)."""
    last_digit = int(utterance_id[-1])
    return {0: "test", 1: "validation"}.get(last_digit, "train")


def read_utterance_ids(listing: Path) -> list[str]:
    """The utterance ids in ``etc/txt.done.data``, one ``( <id> "<text>" )`` line each."""
    matches = (UTTERANCE_ID.match(line) for line in listing.read_text().splitlines())
    return [match[1] for match in matches if match]


def read_lab(path: Path) -> tuple[PhoneSegment, ...]:
    """Phone segments of a festival ``.lab`` file, silence marks folded to ``sil``.

    After a header ending in a ``#`` line, each line is ``<end_s> <colour> <phone>``; a segment
    runs from the previous line's end (0 for the first) to its own. Empty segments are dropped.
    """
    if not path.is_file():
        raise SpeechRNNError(f"{path} not found: each wav/<id>.wav needs its lab/<id>.lab")
    lines = path.read_text().splitlines()
    if "#" not in (line.strip() for line in lines):
        raise SpeechRNNError(f"{path} has no '#' line ending the header; it is not a .lab file")
    body = lines[[line.strip() for line in lines].index("#") + 1 :]
    segments = []
    start_s = 0.0
    for line in body:
        if not line.strip():
            continue
        fields = line.split()  # end_s, colour, phone (and optional ; features)
        if len(fields) < 3:
            raise SpeechRNNError(f"{path}: line {line!r} is not '<end_s> <colour> <phone>'")
        end_s, phone = fields[0], fields[2]
        phone = SILENCE if phone in SILENCE_MARKS else phone
        if phone not in PHONES:
            raise SpeechRNNError(f"{path} has phone {phone!r}, not in the ARCTIC set {PHONES}")
        if float(end_s) > start_s:
            segments.append((start_s, float(end_s), phone))
        start_s = max(start_s, float(end_s))
    return tuple(segments)
