"""CMU ARCTIC on a tiny tree in the archive's layout: .lab parsing, splits, download, batches."""

import hashlib
import tarfile

import numpy as np
import pytest
import soundfile as sf

from speechrnn.corpora import arctic
from speechrnn.corpora.arctic import PHONES, ArcticDataModule, read_lab, split_of
from speechrnn.errors import SpeechRNNError

DURATION_S = 0.5
# Festival labels: header, "#", then "<end_s> 125 <phone>"; a segment starts at the last end.
LAB = """separator ;
nfields 1
#
    0.100000 125 pau
    0.250000 125 hh
    0.400000 125 ax
    0.500000 125 ssil
"""
SEGMENTS = ((0.0, 0.1, "sil"), (0.1, 0.25, "hh"), (0.25, 0.4, "ax"), (0.4, 0.5, "sil"))
# Frames are centred every 10 ms: 0-9 in pau, 10-24 hh, 25-39 ax, 40-50 ssil (and the edge).
FRAME_PHONES = ["sil"] * 10 + ["hh"] * 15 + ["ax"] * 15 + ["sil"] * 11
# arctic_<set><number>: numbers ending in 0 go to test, in 1 to validation, others to train.
UTTERANCE_IDS = ["arctic_a0001", "arctic_a0002", "arctic_a0010", "arctic_b0003", "arctic_b0011"]


def write_speaker(folder, speaker="slt", utterance_ids=UTTERANCE_IDS):
    """One voice as its archive unpacks: wav/, lab/ and etc/txt.done.data."""
    voice = folder / f"cmu_us_{speaker}_arctic"
    for sub in ("wav", "lab", "etc"):
        (voice / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(16000 * DURATION_S)) / 16000
    for utterance_id in utterance_ids:
        wave = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(voice / "wav" / f"{utterance_id}.wav", wave, 16000, subtype="PCM_16")
        (voice / "lab" / f"{utterance_id}.lab").write_text(LAB)
    (voice / "etc" / "txt.done.data").write_text(
        "".join(f'( {utterance_id} "A sentence, of words." )\n' for utterance_id in utterance_ids)
    )
    return voice


def test_lab_segments_run_from_previous_end_with_silences_folded(tmp_path):
    lab = tmp_path / "x.lab"
    lab.write_text(LAB)
    assert read_lab(lab) == SEGMENTS


def test_lab_with_a_phone_outside_the_set_names_file_and_phone(tmp_path):
    lab = tmp_path / "x.lab"
    lab.write_text(LAB.replace(" ax", " qq"))
    with pytest.raises(SpeechRNNError, match=r"x\.lab.*'qq'"):
        read_lab(lab)


def test_vocabulary_is_forty_phones_and_one_silence():
    assert len(PHONES) == 41 and sorted(PHONES) == PHONES
    assert "sil" in PHONES and not {"pau", "ssil", "h#"} & set(PHONES)


def test_split_goes_by_the_last_digit_of_the_utterance_number():
    assert [split_of(u) for u in UTTERANCE_IDS] == [
        "validation",
        "train",
        "test",
        "train",
        "validation",
    ]


def test_utterances_list_every_speaker_with_the_same_split(tmp_path):
    for speaker in ("slt", "bdl"):
        write_speaker(tmp_path / "arctic", speaker)
    data = ArcticDataModule(speakers=["slt", "bdl"], data_root=str(tmp_path))
    utterances = data.utterances()
    assert [u.key for u in utterances] == sorted(
        f"{s}/{u}" for s in ("bdl", "slt") for u in UTTERANCE_IDS
    )
    by_key = {u.key: u for u in utterances}
    for utterance_id in UTTERANCE_IDS:
        assert by_key[f"slt/{utterance_id}"].split == by_key[f"bdl/{utterance_id}"].split
    first = by_key["slt/arctic_a0002"]
    assert first.speaker == "slt" and first.split == "train"
    assert first.path == tmp_path / "arctic/cmu_us_slt_arctic/wav/arctic_a0002.wav"
    assert first.phones == SEGMENTS


def test_unknown_speaker_is_refused_with_the_known_ones():
    with pytest.raises(SpeechRNNError, match=r"'xyz'.*slt"):
        ArcticDataModule(speakers=["slt", "xyz"])


def test_missing_speaker_folder_names_the_expected_layout(tmp_path):
    data = ArcticDataModule(data_root=str(tmp_path))
    with pytest.raises(SpeechRNNError) as error:
        data.utterances()
    message = str(error.value)
    assert str(tmp_path / "arctic" / "cmu_us_slt_arctic") in message
    assert "lab/*.lab" in message and "cmu_us_slt_arctic.tar.bz2" in message


def test_download_unpacks_an_archive_placed_by_hand_into_the_speaker_folder(tmp_path, monkeypatch):
    """Offline users put the archive where the error names it; it is verified and unpacked."""
    write_speaker(tmp_path / "staging")
    archive = tmp_path / "arctic" / "cmu_us_slt_arctic.tar.bz2"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:bz2") as tar:
        tar.add(tmp_path / "staging" / "cmu_us_slt_arctic", arcname="cmu_us_slt_arctic")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(arctic.SHA256, "slt", digest)
    data = ArcticDataModule(data_root=str(tmp_path))
    data.download()
    voice = tmp_path / "arctic" / "cmu_us_slt_arctic"
    assert sorted(p.name for p in voice.iterdir()) == ["etc", "lab", "wav"]
    assert not archive.exists()
    assert len(data.utterances()) == len(UTTERANCE_IDS)


def test_batches_carry_the_lab_phone_under_each_frame(tmp_path, make_data, first_batch_phones):
    write_speaker(tmp_path / "data" / "arctic")
    data = make_data(ArcticDataModule, prepare=True)
    assert {s: len(f) for s, f in data.splits.items()} == {"train": 2, "validation": 2, "test": 1}
    assert first_batch_phones(data, "train") == [FRAME_PHONES] * 2
