"""A user's folder of labelled recordings: label discovery, layout errors, splits, batches."""

from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from speechrnn.corpora.folder import FolderDataModule
from speechrnn.errors import SpeechRNNError


def write_clip(path, sample_rate=16000, channels=1, duration_s=0.3, freq_hz=440.0):
    t = np.arange(int(sample_rate * duration_s)) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * freq_hz * t)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([tone] * channels, axis=1), sample_rate)


def touch(path):
    """A placeholder recording: listing and splitting never decode audio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def test_labels_are_the_sorted_subfolders_with_recordings(tmp_path):
    for label in ("yes", "no", "up"):
        touch(tmp_path / label / "a.wav")
    touch(tmp_path / ".hidden" / "a.wav")
    touch(tmp_path / "notes.txt")
    assert FolderDataModule(path=str(tmp_path)).labels == ["no", "up", "yes"]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: None, "not found"),
        (lambda root: touch(root / "loose.wav"), "no label subfolders"),
        (lambda root: (touch(root / "yes" / "a.wav"), (root / "no").mkdir()), "holds no"),
        (lambda root: touch(root / "yes" / "a.mp3"), "holds no"),
    ],
    ids=["missing", "no-subfolders", "empty-label", "no-supported-files"],
)
def test_bad_layout_names_the_folder_and_the_expected_layout(tmp_path, make, expected):
    root = tmp_path / "clips"
    make(root)
    with pytest.raises(SpeechRNNError) as error:
        FolderDataModule(path=str(root))
    message = str(error.value)
    assert expected in message and str(root) in message
    assert "<path>/<label>/<file>.wav" in message


def test_split_is_a_stable_hash_of_the_path_with_the_given_fractions(tmp_path):
    for i in range(400):
        touch(tmp_path / ("a" if i % 2 else "b") / f"clip{i}.flac")
    data = FolderDataModule(path=str(tmp_path), validation_fraction=0.2, test_fraction=0.1)
    splits = {u.key: u.split for u in data.utterances()}
    counts = Counter(splits.values())
    assert counts["train"] + counts["validation"] + counts["test"] == 400
    assert 50 <= counts["validation"] <= 110 and 20 <= counts["test"] <= 60
    touch(tmp_path / "a" / "new.ogg")  # adding a file moves no other file
    again = FolderDataModule(path=str(tmp_path), validation_fraction=0.2, test_fraction=0.1)
    assert {u.key: u.split for u in again.utterances() if u.key in splits} == splits


def test_speaker_pattern_keeps_each_speaker_in_one_split(tmp_path):
    for speaker in range(30):
        for label in ("on", "off"):
            for take in range(3):
                touch(tmp_path / label / f"spk{speaker}_{take}.wav")
    data = FolderDataModule(path=str(tmp_path), speaker_pattern=r"^([^_]+)_")
    splits_of = {}
    for utterance in data.utterances():
        splits_of.setdefault(utterance.speaker, set()).add(utterance.split)
    assert len(splits_of) == 30 and all(len(s) == 1 for s in splits_of.values())


def test_speaker_pattern_that_misses_a_file_names_it(tmp_path):
    touch(tmp_path / "on" / "nounderscore.wav")
    touch(tmp_path / "off" / "spk1_1.wav")
    data = FolderDataModule(path=str(tmp_path), speaker_pattern=r"^([^_]+)_")
    with pytest.raises(SpeechRNNError, match="nounderscore.wav"):
        data.utterances()


def test_use_all_for_puts_every_file_in_that_split(tmp_path):
    for i in range(20):
        touch(tmp_path / "yes" / f"{i}.wav")
    data = FolderDataModule(path=str(tmp_path), use_all_for="test")
    assert {u.split for u in data.utterances()} == {"test"}
    with pytest.raises(SpeechRNNError, match="'eval'"):
        FolderDataModule(path=str(tmp_path), use_all_for="eval")


def test_mixed_rates_and_channels_become_batches_labelled_by_folder(tmp_path):
    clips = tmp_path / "clips"
    write_clip(clips / "high" / "a.wav", sample_rate=44100, channels=2, freq_hz=2000)
    write_clip(clips / "high" / "b.flac", sample_rate=8000, freq_hz=2000)
    write_clip(clips / "low" / "c.ogg", sample_rate=22050, freq_hz=200)
    data = FolderDataModule(
        path=str(clips), use_all_for="test", cache_dir=str(tmp_path / "cache"), batch_size=8
    )
    data.prepare_data()
    data.setup("test")
    split = data.splits["test"]
    batch = next(iter(data.test_dataloader()))
    labels = {
        split.keys[i]: data.labels[t] for i, t in zip(batch.indices, batch.targets, strict=True)
    }
    assert labels == {"high/a.wav": "high", "high/b.flac": "high", "low/c.ogg": "low"}
    assert batch.feats.shape[-1] == data.feature_dim and set(batch.lengths.tolist()) == {31}


def test_speaker_pattern_that_is_not_a_regex_is_refused(tmp_path):
    touch(tmp_path / "on" / "a_1.wav")
    with pytest.raises(SpeechRNNError, match=r"'\(' is not a regex"):
        FolderDataModule(path=str(tmp_path), speaker_pattern="(")
