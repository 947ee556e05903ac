"""TIMIT (LDC93S1) with framewise targets over its 61 phones, scored over the folded 39.

TIMIT is licensed by the LDC, so it is never downloaded: put your copy under
``data_root/timit/`` as ``TIMIT/{TRAIN,TEST}/DR1..DR8/<SPEAKER>/<UTT>.{WAV,PHN}``. Lowercase
names and the ``data/`` level that common copies add (``timit/data/train/dr1/...``) are accepted.

The 61 phones keep their TIMIT names except h#, the silence before and after each sentence,
which is called ``sil``; ``scoring_map()`` folds the 61 to Lee & Hon's 39 (q scores as ``sil``).

Splits follow the usual recipe (Kaldi ``egs/timit/s5``): the SA sentences, read by every speaker,
are dropped; train is the TRAIN half; test is the 24-speaker core test set; validation is the
50-speaker development set, drawn from the TEST half. The other 118 TEST speakers are unused.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from speechrnn.data.corpus import SILENCE, PhoneSegment, Utterance
from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.errors import SpeechRNNError

SAMPLE_RATE = 16000  # .PHN boundaries count samples at this rate

EXPECTED_LAYOUT = "TIMIT/{TRAIN,TEST}/DR1..DR8/<SPEAKER>/<UTT>.WAV with <UTT>.PHN beside it"

# The 61 phones of the .PHN transcriptions, with h# (the silence before and after each sentence)
# spelled SILENCE ("sil"), the label the shared code gives frames no segment covers (the edges).
PHN_NAMES = {"h#": SILENCE}
# fmt: off
PHONES = sorted([
    "aa", "ae", "ah", "ao", "aw", "ax", "ax-h", "axr", "ay", "b", "bcl", "ch", "d", "dcl",
    "dh", "dx", "eh", "el", "em", "en", "eng", "epi", "er", "ey", "f", "g", "gcl", "hh", "hv",
    "ih", "ix", "iy", "jh", "k", "kcl", "l", "m", "n", "ng", "nx", "ow", "oy", "p", "pau",
    "pcl", "q", "r", "s", "sh", "t", "tcl", "th", "uh", "uw", "ux", "v", "w", "y", "z", "zh",
    SILENCE,
])

# Lee & Hon (1989) fold 61 phones to 39 for scoring. They delete q (glottal stop); framewise
# scoring needs a class for every frame, so q's frames score as the closure/silence class "sil".
FOLD_TO_39 = {phone: phone for phone in PHONES} | {
    "ao": "aa",
    "ax": "ah",
    "ax-h": "ah",
    "axr": "er",
    "hv": "hh",
    "ix": "ih",
    "el": "l",
    "em": "m",
    "en": "n",
    "nx": "n",
    "eng": "ng",
    "zh": "sh",
    "ux": "uw",
    **dict.fromkeys(("pcl", "tcl", "kcl", "bcl", "dcl", "gcl", "pau", "epi", "q"), SILENCE),
}

# The 24-speaker core test set (2 men, 1 woman from each dialect region).
CORE_TEST_SPEAKERS = frozenset([
    "mdab0", "mwbt0", "felc0", "mtas1", "mwew0", "fpas0", "mjmp0", "mlnt0", "fpkt0", "mlll0",
    "mtls0", "fjlm0", "mbpm0", "mklt0", "fnlp0", "mcmj0", "mjdh0", "fmgd0", "mgrt0", "mnjm0",
    "fdhc0", "mjln0", "mpam0", "fmld0",
])

# The 50-speaker development set, as in Kaldi's egs/timit/s5/conf/dev_spk.list.
DEV_SPEAKERS = frozenset([
    "faks0", "fdac1", "fjem0", "mgwt0", "mjar0", "mmdb1", "mmdm2", "mpdf0", "fcmh0", "fkms0",
    "mbdg0", "mbwm0", "mcsh0", "fadg0", "fdms0", "fedw0", "mgjf0", "mglb0", "mrtk0", "mtaa0",
    "mtdt0", "mthc0", "mwjg0", "fnmr0", "frew0", "fsem0", "mbns0", "mmjr0", "mdls0", "mdlf0",
    "mdvc0", "mers0", "fmah0", "fdrw0", "mrcs0", "mrjm4", "fcal1", "mmwh0", "fjsj0", "majc0",
    "mjsw0", "mreb0", "fgjd0", "fjmg0", "mroa0", "mteb0", "mjfc0", "mrjr0", "fmml0", "mrws1",
])
# fmt: on


class TimitDataModule(SpeechDataModule):
    """TIMIT phone classification: one of 61 phones per frame, scored over 39."""

    name: ClassVar[str] = "timit"
    tasks: ClassVar[tuple[str, ...]] = ("phones",)

    def __init__(self, task: str = "phones", **kwargs) -> None:
        super().__init__(task=task, **kwargs)

    def vocabulary(self) -> list[str]:
        return list(PHONES)

    def scoring_map(self) -> dict[str, str]:
        return dict(FOLD_TO_39)

    def download(self) -> None:
        """Check the local copy is where it should be; TIMIT's licence rules out downloading."""
        self.timit_root()

    def timit_root(self) -> Path:
        """The folder holding TRAIN and TEST, in any of the layouts common copies use."""
        for top in (self.corpus_dir, _child(self.corpus_dir, "timit")):
            for root in (top, _child(top, "data")):
                if _child(root, "train") and _child(root, "test"):
                    return root
        raise SpeechRNNError(
            f"TIMIT not found under {self.corpus_dir}: expected "
            f"{self.corpus_dir}/{EXPECTED_LAYOUT} (lowercase names and a data/ level are fine). "
            "TIMIT is licensed by the LDC (LDC93S1) and cannot be downloaded; copy yours there "
            "or set data_root."
        )

    def utterances(self) -> list[Utterance]:
        root = self.timit_root()
        found = []
        for half in ("train", "test"):
            for region in _subdirs(_child(root, half)):
                for speaker_dir in _subdirs(region):
                    speaker = speaker_dir.name.lower()
                    split = _split(half, speaker)
                    if split is None:
                        continue
                    for phn in sorted(speaker_dir.iterdir()):
                        if phn.suffix.lower() != ".phn" or phn.stem.lower().startswith("sa"):
                            continue
                        found.append(_utterance(phn, half, region.name, speaker, split))
        if not found:
            raise SpeechRNNError(
                f"no .PHN transcriptions found under {root}: expected {EXPECTED_LAYOUT}"
            )
        return sorted(found, key=lambda utterance: utterance.key)


def _split(half: str, speaker: str) -> str | None:
    """Which split a speaker's recordings go to; None for TEST speakers outside core and dev."""
    if half == "train":
        return "train"
    if speaker in CORE_TEST_SPEAKERS:
        return "test"
    if speaker in DEV_SPEAKERS:
        return "validation"
    return None


def _utterance(phn: Path, half: str, region: str, speaker: str, split: str) -> Utterance:
    wav = _child(phn.parent, phn.stem + ".wav")
    if wav is None:
        raise SpeechRNNError(f"{phn} has no {phn.stem}.WAV beside it: expected {EXPECTED_LAYOUT}")
    return Utterance(
        key=f"{half}/{region}/{speaker}/{phn.stem}".lower(),
        path=wav,
        split=split,
        speaker=speaker,
        phones=read_phn(phn),
    )


def read_phn(path: Path) -> tuple[PhoneSegment, ...]:
    """Phone segments of a ``.PHN`` file (``start_sample end_sample phone`` lines), in seconds."""
    segments = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        start, end, phone = line.split()
        phone = PHN_NAMES.get(phone, phone)
        if phone not in FOLD_TO_39:
            raise SpeechRNNError(f"{path} has phone {phone!r}, not one of TIMIT's 61 phones")
        segments.append((int(start) / SAMPLE_RATE, int(end) / SAMPLE_RATE, phone))
    return tuple(segments)


def _child(folder: Path | None, name: str) -> Path | None:
    """``folder/name`` matched case-insensitively (copies of TIMIT differ in case), or None."""
    if folder is None or not folder.is_dir():
        return None
    matches = sorted(child for child in folder.iterdir() if child.name.lower() == name.lower())
    return matches[0] if matches else None


def _subdirs(folder: Path) -> list[Path]:
    return sorted(child for child in folder.iterdir() if child.is_dir())
