"""FSDD on a tiny recordings/ tree, on a served archive, and on the real read-only shared copy."""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechrnn.corpora import fsdd, synth
from speechrnn.corpora.fsdd import FSDDDataModule
from speechrnn.data.audio import load_utterance
from speechrnn.errors import SpeechRNNError
from tones import write_fsdd_recordings

SPEAKERS = ("alice", "bob", "carol")
INDICES = range(12)  # 0-4 test, 5-9 validation, 10-11 train in the conventional split
SHARED_ROOT = Path("/work/shared/data")


@pytest.fixture
def recordings(tmp_path):
    folder = tmp_path / "data" / "fsdd" / "recordings"
    write_fsdd_recordings(folder, SPEAKERS, INDICES)
    return folder


def test_defaults_are_8_khz_and_the_ten_digits(make_data):
    dm = make_data(FSDDDataModule)
    assert dm.features.sample_rate == 8000
    assert dm.vocabulary() == [str(d) for d in range(10)]


def test_conventional_split_is_by_recording_index(recordings, make_data):
    utterances = make_data(FSDDDataModule).utterances()
    assert len(utterances) == 10 * len(SPEAKERS) * len(INDICES)
    assert [u.key for u in utterances] == sorted(u.key for u in utterances)
    for u in utterances:
        index = int(u.key.split("_")[2])
        expected = "test" if index < 5 else "validation" if index < 10 else "train"
        assert u.split == expected and u.label == u.key[0] and u.speaker in SPEAKERS


def test_speaker_split_holds_out_every_recording_of_the_test_speakers(recordings, make_data):
    utterances = make_data(FSDDDataModule, split="speakers", test_speakers=["bob"]).utterances()
    assert {u.speaker for u in utterances if u.split == "test"} == {"bob"}
    assert all(u.split == "test" for u in utterances if u.speaker == "bob")
    others = [u for u in utterances if u.speaker != "bob"]
    assert Counter(u.split for u in others) == {"validation": 2 * 10 * 5, "train": 2 * 10 * 7}


def test_validation_speakers_are_the_whole_validation_split_and_the_others_all_train(recordings, make_data):
    utterances = make_data(FSDDDataModule, split="speakers", test_speakers=["bob"],
                           validation_speakers=["carol"]).utterances()
    splits = {speaker: {u.split for u in utterances if u.speaker == speaker} for speaker in SPEAKERS}
    assert splits == {"alice": {"train"}, "bob": {"test"}, "carol": {"validation"}}


def test_train_speakers_are_the_only_voices_that_train_and_the_rest_are_left_out(recordings, make_data):
    utterances = make_data(FSDDDataModule, split="speakers", test_speakers=["bob"],
                           train_speakers=["carol"]).utterances()
    assert {u.speaker for u in utterances} == {"bob", "carol"}
    assert Counter(u.split for u in utterances if u.speaker == "carol") == {"validation": 10 * 5, "train": 10 * 7}
    assert all(u.split == "test" for u in utterances if u.speaker == "bob")


def test_noisy_copies_are_training_recordings_of_the_same_speaker_at_snrs_in_the_range(recordings, make_data):
    utterances = make_data(FSDDDataModule, split="speakers", test_speakers=["bob"], noisy_copies=2,
                           noisy_snr_db=[5.0, 20.0]).utterances()
    copies = [u for u in utterances if u.noise_snr_db is not None]
    originals = {u.key: u for u in utterances if u.noise_snr_db is None}
    assert len(copies) == 2 * 2 * 10 * 7  # two per training recording of alice and carol; none of bob's
    for copy in copies:
        source = originals[copy.key.rsplit("-noisy", 1)[0]]
        assert (copy.path, copy.label, copy.speaker, copy.split) == (source.path, source.label, source.speaker, "train")
        assert 5.0 <= copy.noise_snr_db <= 20.0
    assert len({copy.noise_snr_db for copy in copies}) == len(copies)
    clean, _ = load_utterance(originals[copies[0].key.rsplit("-noisy", 1)[0]], 8000)
    noisy, _ = load_utterance(copies[0], 8000)
    snr = 10 * torch.log10(clean.square().mean() / (noisy - clean).square().mean())
    assert abs(snr.item() - copies[0].noise_snr_db) < 1.0  # what the cache extracts is the noisy clip


def test_an_unknown_train_speaker_names_the_speakers_present(recordings, make_data):
    with pytest.raises(SpeechRNNError, match=r"train_speakers \['lucas'\].*'alice', 'bob', 'carol'"):
        make_data(FSDDDataModule, split="speakers", test_speakers=["bob"], train_speakers=["lucas"]).utterances()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"split": "speakers"},
        {"split": "conventional", "train_speakers": ["bob"]},
        {"noisy_copies": -1},
        {"noisy_copies": 1, "noisy_snr_db": [20.0, 5.0]},
        {"noisy_copies": 1, "noisy_snr_db": [5.0, float("inf")]},
        {"split": "speakers", "test_speakers": ["bob"], "train_speakers": ["bob"]},
        {"split": "conventional", "test_speakers": ["bob"]},
        {"split": "random"},
        {"split": "conventional", "validation_speakers": ["bob"]},
        {"split": "speakers", "test_speakers": ["bob"], "validation_speakers": ["bob"]},
    ],
)
def test_inconsistent_split_arguments_are_user_errors(make_data, kwargs):
    with pytest.raises(SpeechRNNError, match="FSDD"):
        make_data(FSDDDataModule, **kwargs)


def test_unknown_test_speaker_names_the_speakers_present(recordings, make_data):
    with pytest.raises(SpeechRNNError, match="'alice', 'bob', 'carol'"):
        make_data(FSDDDataModule, split="speakers", test_speakers=["lucas"]).utterances()


def test_badly_named_recording_is_reported(recordings, make_data):
    (recordings / "seven.wav").write_bytes(b"")
    with pytest.raises(SpeechRNNError, match="seven.wav"):
        make_data(FSDDDataModule).utterances()


def test_download_keeps_only_the_recordings_of_the_served_archive(
    tmp_path, monkeypatch, make_data, server
):
    source = tmp_path / "src"
    write_fsdd_recordings(source / "recordings", ("alice",), INDICES)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr(f"{fsdd.ARCHIVE_TOP}/README.md", "FSDD")
        for path in sorted((source / "recordings").iterdir()):
            zipped.write(path, f"{fsdd.ARCHIVE_TOP}/recordings/{path.name}")
    archive = buffer.getvalue()
    server.files["v1.0.10.zip"] = archive
    monkeypatch.setattr(fsdd, "URL", f"{server.url}/v1.0.10.zip")
    monkeypatch.setattr(fsdd, "SHA256", hashlib.sha256(archive).hexdigest())
    dm = make_data(FSDDDataModule)
    dm.download()
    assert sorted(p.name for p in dm.corpus_dir.iterdir()) == ["recordings"]
    assert len(dm.utterances()) == 10 * len(INDICES)


def test_missing_recordings_say_how_to_get_them(make_data):
    with pytest.raises(SpeechRNNError, match="recordings not found"):
        make_data(FSDDDataModule).utterances()


def test_shared_read_only_copy_lists_2500_recordings_with_250_in_test(make_data):
    dm = make_data(FSDDDataModule, data_root=str(SHARED_ROOT))
    dm.download()  # present: must not write or fetch anything
    utterances = dm.utterances()
    assert len(utterances) == 2500
    assert Counter(u.split for u in utterances) == {"train": 2000, "validation": 250, "test": 250}


def test_prepare_and_setup_give_batches_of_8_khz_features(recordings, make_data):
    dm = make_data(FSDDDataModule, prepare=True, batch_size=16)
    assert {split: len(dm.splits[split]) for split in dm.splits} == {
        "train": 60,
        "validation": 150,
        "test": 150,
    }
    batches = list(dm.train_dataloader())
    assert sum(len(b.lengths) for b in batches) == 60
    assert all(b.feats.shape[2] == dm.feature_dim for b in batches)
    assert max(int(b.lengths.max()) for b in batches) <= 51  # 0.5 s at a 10 ms hop


@pytest.mark.parametrize("split_args", [{}, {"split": "speakers", "test_speakers": ["bob"]}])
def test_espeak_digits_reach_only_training_with_the_label_they_speak(recordings, make_data, split_args):
    plain = make_data(FSDDDataModule, prepare=True, **split_args)
    voiced = make_data(FSDDDataModule, prepare=True, espeak_per_digit=1, cache_dir=str(plain.cache_dir / "voiced"),
                       **split_args)
    spoken = [u for u in voiced.utterances() if u.key.startswith("espeak-")]
    assert sorted(u.label for u in spoken) == fsdd.DIGITS
    for u in spoken:  # the generator names each file after the word it speaks: zero-0000.wav
        assert (u.split, u.speaker) == ("train", "")
        assert str(synth.DIGITS.index(u.path.stem.split("-")[0])) == u.label
    for split in ("validation", "test"):
        assert voiced.splits[split].keys == plain.splits[split].keys
    added = [key for key in voiced.splits["train"].keys if key not in plain.splits["train"].keys]
    assert sorted(added) == sorted(u.key for u in spoken)
    targets = dict(zip(voiced.splits["train"].keys, voiced.splits["train"].targets.tolist(), strict=True))
    assert all(voiced.labels[targets[u.key]] == u.label for u in spoken)


def test_espeak_digits_are_fixed_by_the_seed(recordings, make_data):
    def clips(seed):
        dm = make_data(FSDDDataModule, espeak_per_digit=1, espeak_seed=seed)
        dm.download()
        return dm, {u.key: (u.start_s, u.duration_s, u.path.read_bytes())
                    for u in dm.utterances() if u.key.startswith("espeak-")}

    dm, first = clips(0)
    shutil.rmtree(dm.espeak_path)  # synthesised again from nothing
    assert clips(0)[1] == first
    other = clips(1)[1]
    assert all(other[key][2] != first[key][2] for key in first)


def test_espeak_digits_are_cut_to_their_speech_and_a_margin(recordings, make_data):
    dm = make_data(FSDDDataModule, espeak_per_digit=1)
    dm.download()
    clips = {u.path: u for u in dm.utterances() if u.key.startswith("espeak-")}
    for spoken in synth.read_corpus(dm.espeak_path):
        speech = [(start, end) for start, end, phone in spoken.phones if phone != synth.SILENCE]
        clip = clips[spoken.path]
        assert clip.start_s == pytest.approx(speech[0][0] - fsdd.SPEECH_MARGIN_S)
        assert clip.start_s + clip.duration_s == pytest.approx(speech[-1][1] + fsdd.SPEECH_MARGIN_S)


def test_negative_espeak_count_is_a_user_error(make_data):
    with pytest.raises(SpeechRNNError, match="espeak_per_digit=-1"):
        make_data(FSDDDataModule, espeak_per_digit=-1)


def write_extra(folder: Path, digits=range(10), per_digit: int = 2) -> None:
    """``folder/<digit>/<n>.wav``: a tone per digit, as another synthesiser's digits would lie."""
    for digit in digits:
        (folder / str(digit)).mkdir(parents=True)
        for n in range(per_digit):
            t = np.arange(2400) / 8000
            sf.write(folder / str(digit) / f"{n:04d}.wav", 0.3 * np.sin(2 * np.pi * (500 + 40 * digit) * t), 8000)


def test_extra_recordings_reach_only_training_with_their_folders_label(recordings, make_data, tmp_path):
    write_extra(tmp_path / "extra")
    held_out = {"split": "speakers", "test_speakers": ["bob"]}
    plain = make_data(FSDDDataModule, prepare=True, **held_out)
    extended = make_data(FSDDDataModule, prepare=True, extra_train_dir=str(tmp_path / "extra"),
                         cache_dir=str(plain.cache_dir / "extended"), **held_out)
    extra = [u for u in extended.utterances() if u.key.startswith("extra-")]
    assert sorted(u.label for u in extra) == sorted(fsdd.DIGITS * 2)
    assert all((u.split, u.speaker, u.path.parent.name) == ("train", "", u.label) for u in extra)
    for split in ("validation", "test"):
        assert extended.splits[split].keys == plain.splits[split].keys
    added = [key for key in extended.splits["train"].keys if key not in plain.splits["train"].keys]
    assert sorted(added) == sorted(u.key for u in extra)


@pytest.mark.parametrize("layout, message", [
    (None, "is not a folder"),
    ("eleven", "is not a digit's folder"),
    ("empty", "no recordings in"),
])
def test_a_bad_extra_folder_is_a_user_error_naming_it(recordings, make_data, tmp_path, layout, message):
    folder = tmp_path / "extra"
    if layout == "eleven":
        write_extra(folder, digits=[3])
        (folder / "11").mkdir()
    elif layout == "empty":
        (folder / "3").mkdir(parents=True)
    with pytest.raises(SpeechRNNError, match=message) as caught:
        make_data(FSDDDataModule, extra_train_dir=str(folder)).utterances()
    assert str(folder) in str(caught.value)
