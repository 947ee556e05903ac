"""Speech Commands on a tiny tree in the archive's layout: splits, label sets, download, augmentation."""

from __future__ import annotations

import functools
import hashlib
import io
import socket
import tarfile
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import torch

from speechrnn.corpora import speech_commands as sc
from speechrnn.corpora.speech_commands import (
    CORE_WORDS,
    SILENCE,
    UNKNOWN,
    SpeechCommandsDataModule,
)
from speechrnn.errors import SpeechRNNError

RATE = 16000
CLIPS_PER_WORD = 6  # speaker s<i>: i == 4 is in validation_list.txt, i == 5 in testing_list.txt
NOISE_S = 12.0


def write_tree(corpus_dir, version=2):
    """``speech_commands_v0.0<version>/``: every word with short tones, lists, background noise."""
    tree = corpus_dir / f"speech_commands_v0.0{version}"
    rng = np.random.default_rng(0)
    validation, testing = [], []
    for w, word in enumerate(sc.WORDS[version]):
        (tree / word).mkdir(parents=True)
        for i in range(CLIPS_PER_WORD):
            seconds = 0.5 if i % 2 else 1.0  # odd speakers are short clips
            t = np.arange(int(seconds * RATE)) / RATE
            wave = 0.3 * np.sin(2 * np.pi * (200 + 40 * w) * t) + 0.01 * rng.standard_normal(len(t))
            name = f"s{i}_nohash_0.wav"
            sf.write(tree / word / name, wave.astype(np.float32), RATE, subtype="PCM_16")
            {4: validation, 5: testing}.get(i, []).append(f"{word}/{name}")
    (tree / "validation_list.txt").write_text("\n".join(validation) + "\n")
    (tree / "testing_list.txt").write_text("\n".join(testing) + "\n")
    (tree / sc.BACKGROUND_DIR).mkdir()
    for name in ("white_noise", "pink_noise"):
        noise = 0.1 * rng.standard_normal(int(NOISE_S * RATE))
        sf.write(tree / sc.BACKGROUND_DIR / f"{name}.wav", noise.astype(np.float32), RATE)
    return tree


@pytest.fixture
def commands(make_data):
    """``commands(**kwargs)``: a Speech Commands data module under the test's tmp_path."""
    return functools.partial(make_data, SpeechCommandsDataModule)


@pytest.fixture
def tree(tmp_path):
    return write_tree(tmp_path / "data" / "speech_commands")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_vocabulary_is_known_without_any_data(commands):
    assert len(commands(version=2).vocabulary()) == 35
    assert len(commands(version=1).vocabulary()) == 30
    core = commands(label_set="core12").vocabulary()
    assert len(core) == 12 and {SILENCE, UNKNOWN} <= set(core) and set(CORE_WORDS) <= set(core)


def test_unknown_version_or_label_set_is_a_user_error(commands):
    with pytest.raises(SpeechRNNError, match="choose 1 or 2"):
        commands(version=3)
    with pytest.raises(SpeechRNNError, match="core12"):
        commands(label_set="core10")


def test_official_lists_decide_validation_and_test(tree, commands):
    utterances = commands().utterances()
    assert len(utterances) == 35 * CLIPS_PER_WORD
    assert [u.key for u in utterances] == sorted(u.key for u in utterances)
    by_split = {s: {u.key for u in utterances if u.split == s} for s in ("validation", "test")}
    assert by_split["validation"] == set((tree / "validation_list.txt").read_text().split())
    assert by_split["test"] == set((tree / "testing_list.txt").read_text().split())
    assert Counter(u.split for u in utterances)["train"] == 35 * 4
    assert {u.speaker for u in utterances} == {f"s{i}" for i in range(CLIPS_PER_WORD)}


def test_an_empty_split_is_refused_before_training(tree, commands):
    dm = commands(test_speakers=["s4"], prepare=True)  # s4 is the tree's only validation speaker
    with pytest.raises(SpeechRNNError, match="validation split is empty"):
        dm.val_dataloader()


def test_held_out_speakers_are_the_test_split_and_the_official_test_clips_train(tree, commands):
    utterances = commands(test_speakers=["s1"]).utterances()
    by_split = {split: {u.speaker for u in utterances if u.split == split} for split in ("train", "validation", "test")}
    assert by_split == {"test": {"s1"}, "validation": {"s4"}, "train": {"s0", "s2", "s3", "s5"}}
    assert Counter(u.split for u in utterances) == {"train": 35 * 4, "validation": 35, "test": 35}
    with pytest.raises(SpeechRNNError, match=r"test_speakers \['nobody'\].*_nohash_"):
        commands(test_speakers=["nobody"]).utterances()


def test_speaker_folds_run_on_speech_commands(tree, tmp_path, monkeypatch):
    """``pipelines/loso.py --folds 2``: five speakers held out in two groups, through the CLI.

    s4, the one validation speaker of the tree, is not held out, so validation is never empty.
    """
    import json
    from pathlib import Path

    import yaml

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    from pipelines import loso

    config = tmp_path / "commands.yaml"
    config.write_text(yaml.safe_dump({"data": {"class_path": "speechrnn.corpora.speech_commands.SpeechCommandsDataModule",
                                               "init_args": {"data_root": str(tmp_path / "data"),
                                                             "cache_dir": str(tmp_path / "cache"),
                                                             "n_mfcc": 13, "n_mels": 20}}}))
    out = tmp_path / "loso"
    speakers = ["s0", "s1", "s2", "s3", "s5"]
    loso.main(["--data", str(config), "--speakers", *speakers, "--folds", "2", "--cells", "gru", "--out", str(out),
               "--epochs", "1",
               "--data.init_args.batch_size=32", "--model.hidden_size=8", "--model.num_layers=1"])
    held_out = [yaml.safe_load((out / "gru" / fold / "config.yaml").read_text())["data"]["init_args"]["test_speakers"]
                for fold in ("fold1", "fold2")]
    assert sorted(held_out[0] + held_out[1]) == speakers
    assert sorted(len(group) for group in held_out) == [2, 3]
    results = json.loads((out / "results.json").read_text())["cells"]["gru"]
    assert list(results["speakers"]) == ["fold1", "fold2"]
    assert sum(count for _, count, _ in results["test"]["buckets"]) == 35 * len(speakers)  # each clip tested once


def test_word_clips_are_padded_to_one_second(tree, commands):
    utterances = commands().utterances()
    short = [u for u in utterances if sf.info(str(u.path)).duration < 1.0]
    assert short and all(u.pad_to_s == 1.0 for u in utterances)


def test_version_1_tree_has_30_words(tmp_path, commands):
    write_tree(tmp_path / "data" / "speech_commands", version=1)
    utterances = commands(version=1).utterances()
    assert len({u.label for u in utterances}) == 30


def test_core12_adds_unknown_and_silence_in_the_recipes_proportions(tree, commands):
    utterances = commands(label_set="core12", unknown_percent=25.0).utterances()
    counts = Counter((u.split, u.label) for u in utterances)
    # train has 10 core words x 4 clips: 25% -> 10 unknown, 10% -> 4 silence.
    assert counts["train", UNKNOWN] == 10 and counts["train", SILENCE] == 4
    assert counts["validation", UNKNOWN] == 3 and counts["validation", SILENCE] == 1
    assert all(counts["train", word] == 4 for word in CORE_WORDS)
    assert {u.label for u in utterances} == set(commands(label_set="core12").vocabulary())
    unknown_words = {u.path.parent.name for u in utterances if u.label == UNKNOWN}
    assert unknown_words and not unknown_words & set(CORE_WORDS)


def test_core12_sampling_is_deterministic_by_seed(tree, commands):
    def picks(seed):
        return [
            (u.key, u.path, u.start_s)
            for u in commands(label_set="core12", seed=seed).utterances()
            if u.label in (UNKNOWN, SILENCE)
        ]

    assert picks(0) == picks(0)
    assert picks(0) != picks(1)


def test_silence_windows_are_one_second_from_each_splits_share_of_the_noise(tree, commands):
    utterances = commands(label_set="core12").utterances()
    silences = [u for u in utterances if u.label == SILENCE]
    assert {u.split for u in silences} == {"train", "validation", "test"}
    for u in silences:
        low, high = sc.NOISE_SPAN[u.split]
        assert u.duration_s == 1.0 and u.path.parent.name == sc.BACKGROUND_DIR
        assert low * NOISE_S <= u.start_s <= high * NOISE_S - 1.0 + 1e-3


def test_present_tree_never_touches_the_network(tree, commands, monkeypatch):
    monkeypatch.setattr(sc, "URL", f"http://127.0.0.1:{_closed_port()}/sc_v0.0{{version}}.tar.gz")
    commands().download()
    assert sorted(p.name for p in tree.parent.iterdir()) == [tree.name]


def test_no_network_names_the_url_and_the_archive_path(tmp_path, monkeypatch, commands):
    url = f"http://127.0.0.1:{_closed_port()}/speech_commands_v0.0{{version}}.tar.gz"
    monkeypatch.setattr(sc, "URL", url)
    with pytest.raises(SpeechRNNError) as err:
        commands().download()
    archive = tmp_path / "data" / "speech_commands" / "speech_commands_v0.02.tar.gz"
    assert url.format(version=2) in str(err.value) and str(archive) in str(err.value)


def test_download_unpacks_the_archive_into_the_version_folder(
    tmp_path, monkeypatch, commands, server
):
    source = write_tree(tmp_path / "source")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:  # the archive has no top folder
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=f"./{path.relative_to(source)}", recursive=False)
    archive = buffer.getvalue()
    server.files["speech_commands_v0.02.tar.gz"] = archive
    monkeypatch.setattr(sc, "URL", f"{server.url}/speech_commands_v0.0{{version}}.tar.gz")
    monkeypatch.setitem(sc.SHA256, 2, hashlib.sha256(archive).hexdigest())
    dm = commands()
    dm.download()
    assert len(dm.utterances()) == 35 * CLIPS_PER_WORD
    assert sorted(p.name for p in dm.corpus_dir.iterdir()) == ["speech_commands_v0.02"]


def test_incomplete_tree_names_what_is_missing(tree, commands):
    (tree / "testing_list.txt").unlink()
    with pytest.raises(SpeechRNNError, match="testing_list.txt"):
        commands().utterances()


def test_noise_mixing_needs_an_invertible_dct(commands):
    with pytest.raises(SpeechRNNError, match="n_mfcc == n_mels"):
        commands(noise_probability=0.5, n_mfcc=13)


def test_noise_mixing_without_background_recordings_names_their_folder(tree, commands):
    for path in (tree / sc.BACKGROUND_DIR).glob("*.wav"):
        path.unlink()
    with pytest.raises(SpeechRNNError, match=f"found none in .*{sc.BACKGROUND_DIR}"):
        commands(prepare=True, noise_probability=0.5)


# ----- augmentation ---------------------------------------------------------------------------


def test_prepare_and_setup_give_core12_batches_and_augment_keeps_their_shape(tree, commands):
    dm = commands(
        prepare=True,
        label_set="core12",
        batch_size=48,
        noise_probability=1.0,
        time_shift_ms=50.0,
        time_masks=1,
        coeff_masks=1,
    )
    assert len(dm.splits["train"]) == 10 * 4 + 4 + 4
    assert dm.noise_mixer is not None
    batch = next(iter(dm.train_dataloader()))
    assert batch.feats.shape[0] == 48 and batch.feats.shape[2] == dm.feature_dim
    assert torch.all(batch.lengths == 101)  # every clip padded (or cut) to one second
    assert torch.all(batch.speech_lengths <= batch.lengths) and torch.any(
        batch.speech_lengths < 101
    )
    augmented = dm.augment(batch)
    assert augmented.feats.shape == batch.feats.shape and torch.isfinite(augmented.feats).all()
    assert not torch.equal(augmented.feats, batch.feats)
    assert torch.equal(augmented.targets, batch.targets)
