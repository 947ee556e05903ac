"""Folder datasets laid out wrongly, or with unusable labels, are named with the layout they need."""

from pathlib import Path

import pytest

from speechrnn.corpora.folder import FolderDataModule
from speechrnn.errors import SpeechRNNError
from tones import SAMPLE_RATE, write_tones


def folder(root: Path, labels: dict[str, int]) -> Path:
    for seed, (label, count) in enumerate(labels.items()):
        write_tones(root / label, per_class=count, num_classes=1, seed=seed)
    return root


def test_a_folder_with_one_label_cannot_train_but_can_be_scored(tmp_path):
    root = folder(tmp_path / "clips", {"yes": 2})
    with pytest.raises(SpeechRNNError, match=r"one label, 'yes': a classifier needs at least two"):
        FolderDataModule(path=str(root))
    assert FolderDataModule(path=str(root), use_all_for="test").labels == ["yes"]


def test_a_label_whose_recordings_are_all_unusable_is_an_error_naming_its_folder(tmp_path):
    root = folder(tmp_path / "clips", {"no": 6, "yes": 2})
    for wav in (root / "yes").glob("*.wav"):
        wav.write_bytes(b"RIFF broken")
    dm = FolderDataModule(path=str(root), cache_dir=str(tmp_path / "cache"), sample_rate=SAMPLE_RATE)
    dm.prepare_data()
    with pytest.raises(SpeechRNNError, match=rf"\['{root / 'yes'}'\] hold no usable recording .*cannot decode"):
        dm.setup("fit")


@pytest.mark.parametrize("make, message", [
    (lambda root: folder(root / "inner", {"a": 1, "b": 1}), "holds subfolders but no recordings"),
    (lambda root: root.write_text("x"), "is a file, not a folder"),
    (lambda root: None, "not found"),
], ids=["nested", "file", "missing"])
def test_a_wrong_folder_layout_names_the_path_and_the_layout(tmp_path, make, message):
    root = tmp_path / "clips"
    make(root)
    with pytest.raises(SpeechRNNError, match=message) as error:
        FolderDataModule(path=str(root))
    assert str(root) in str(error.value) and "<path>/<label>/<file>.wav" in str(error.value)


def test_scoring_a_folder_that_lacks_some_of_a_checkpoints_labels_lists_the_rest(tmp_path):
    dm = FolderDataModule(path=str(folder(tmp_path / "clips", {"yes": 2})), use_all_for="test")
    dm.labels = ["no", "yes"]  # the checkpoint's vocabulary, as evaluate adopts it
    assert [u.label for u in dm.utterances()] == ["yes", "yes"]
