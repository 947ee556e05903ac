"""TIMIT on a tiny tree in the LDC layout, with NIST SPHERE .WAV files and .PHN transcriptions."""

import numpy as np
import pytest

from speechrnn.corpora.timit import (
    CORE_TEST_SPEAKERS,
    DEV_SPEAKERS,
    FOLD_TO_39,
    PHONES,
    TimitDataModule,
    read_phn,
)
from speechrnn.errors import SpeechRNNError

NUM_SAMPLES = 8000  # 0.5 s at 16 kHz
PHN = "0 1600 h#\n1600 4000 sh\n4000 6400 iy\n6400 8000 h#\n"
SEGMENTS = ((0.0, 0.1, "sil"), (0.1, 0.25, "sh"), (0.25, 0.4, "iy"), (0.4, 0.5, "sil"))
# Frames are centred every 10 ms: 0-9 in h#, 10-24 sh, 25-39 iy, 40-50 h# (and the edge).
FRAME_PHONES = ["sil"] * 10 + ["sh"] * 15 + ["iy"] * 15 + ["sil"] * 11
# (half, region, speaker): a training speaker, a core-test speaker, a development speaker and a
# TEST speaker in neither list (unused, as in the standard recipe).
SPEAKERS = [
    ("TRAIN", "DR1", "FCJF0"),
    ("TEST", "DR1", "FELC0"),
    ("TEST", "DR1", "FAKS0"),
    ("TEST", "DR2", "MZZZ0"),
]
SENTENCES = ["SA1", "SA2", "SI1027", "SX37"]


def write_sphere(path, samples):
    """A 16-bit PCM NIST SPHERE file with a header like TIMIT's own."""
    header = (
        "NIST_1A\n   1024\ndatabase_id -s5 TIMIT\ndatabase_version -s3 1.0\n"
        f"channel_count -i 1\nsample_count -i {len(samples)}\nsample_rate -i 16000\n"
        "sample_n_bytes -i 2\nsample_byte_format -s2 01\nsample_sig_bits -i 16\nend_head\n"
    )
    path.write_bytes(header.encode().ljust(1024, b" ") + samples.astype("<i2").tobytes())


def write_timit(root, lowercase=False):
    """The tree under ``root`` (``.../TIMIT``): <half>/<region>/<speaker>/<utt>.{WAV,PHN}."""
    case = str.lower if lowercase else str
    rng = np.random.default_rng(0)
    for half, region, speaker in SPEAKERS:
        folder = root / case(half) / case(region) / case(speaker)
        folder.mkdir(parents=True)
        for sentence in SENTENCES:
            samples = 3000 * np.sin(np.arange(NUM_SAMPLES) * 0.2) + 30 * rng.standard_normal(
                NUM_SAMPLES
            )
            write_sphere(folder / case(f"{sentence}.WAV"), samples)
            (folder / case(f"{sentence}.PHN")).write_text(PHN)


def test_fixture_speakers_are_in_the_standard_lists():
    assert len(CORE_TEST_SPEAKERS) == 24 and len(DEV_SPEAKERS) == 50
    assert not CORE_TEST_SPEAKERS & DEV_SPEAKERS
    assert "felc0" in CORE_TEST_SPEAKERS and "faks0" in DEV_SPEAKERS


def test_vocabulary_is_the_61_phones_folding_to_39():
    assert len(PHONES) == 61 and sorted(PHONES) == PHONES
    assert set(FOLD_TO_39) == set(PHONES)
    assert len(set(FOLD_TO_39.values())) == 39
    assert FOLD_TO_39["q"] == FOLD_TO_39["pau"] == FOLD_TO_39["bcl"] == "sil"
    assert FOLD_TO_39["ix"] == "ih" and FOLD_TO_39["zh"] == "sh" and FOLD_TO_39["ao"] == "aa"
    assert TimitDataModule().scoring_map() == FOLD_TO_39


def test_phn_sample_boundaries_become_seconds_with_h_sharp_as_sil(tmp_path):
    phn = tmp_path / "SX37.PHN"
    phn.write_text(PHN)
    assert read_phn(phn) == SEGMENTS


def test_splits_are_train_core_test_and_dev_without_sa_sentences(tmp_path):
    write_timit(tmp_path / "timit" / "TIMIT")
    utterances = TimitDataModule(data_root=str(tmp_path)).utterances()
    assert [(u.key, u.split) for u in utterances] == [
        ("test/dr1/faks0/si1027", "validation"),
        ("test/dr1/faks0/sx37", "validation"),
        ("test/dr1/felc0/si1027", "test"),
        ("test/dr1/felc0/sx37", "test"),
        ("train/dr1/fcjf0/si1027", "train"),
        ("train/dr1/fcjf0/sx37", "train"),
    ]
    first = utterances[0]
    assert first.path == tmp_path / "timit/TIMIT/TEST/DR1/FAKS0/SI1027.WAV"
    assert first.speaker == "faks0" and first.phones == SEGMENTS


def test_lowercase_copy_under_a_data_folder_is_found(tmp_path):
    write_timit(tmp_path / "timit" / "timit" / "data", lowercase=True)
    data = TimitDataModule(data_root=str(tmp_path))
    data.download()
    assert len(data.utterances()) == 6


def test_missing_copy_names_the_path_and_the_expected_layout(tmp_path):
    (tmp_path / "timit" / "TIMIT" / "TRAIN").mkdir(parents=True)  # TEST is missing
    with pytest.raises(SpeechRNNError) as error:
        TimitDataModule(data_root=str(tmp_path)).download()
    message = str(error.value)
    assert str(tmp_path / "timit") in message
    assert "TIMIT/{TRAIN,TEST}/DR1..DR8/<SPEAKER>/<UTT>.WAV" in message and "LDC" in message


def test_batches_carry_the_phn_phone_under_each_frame(tmp_path, make_data, first_batch_phones):
    write_timit(tmp_path / "data" / "timit" / "TIMIT")
    data = make_data(TimitDataModule, prepare=True)
    assert {s: len(f) for s, f in data.splits.items()} == {"train": 2, "validation": 2, "test": 2}
    assert first_batch_phones(data, "test") == [FRAME_PHONES] * 2
