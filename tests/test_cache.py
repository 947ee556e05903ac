import json

import numpy as np
import pytest

from speechrnn.errors import SpeechRNNError
from tones import ToneDataModule


def cache_dirs(tmp_path):
    return sorted(p for p in (tmp_path / "cache").iterdir() if p.is_dir())


def test_cache_is_built_once_and_reused(make_data):
    dm = make_data(ToneDataModule)
    dm.prepare_data()
    manifest = dm.feature_cache().manifest_path
    stamp = manifest.stat().st_mtime_ns
    make_data(ToneDataModule).prepare_data()
    assert manifest.stat().st_mtime_ns == stamp
    assert json.loads(manifest.read_text())["splits"]["train"]["utterances"] == 3 * 8


def test_changed_feature_settings_rebuild_the_cache(tmp_path, make_data):
    make_data(ToneDataModule).prepare_data()
    dm = make_data(ToneDataModule, n_mfcc=20)
    dm.prepare_data()
    dm.setup("fit")
    assert len(cache_dirs(tmp_path)) == 2
    assert dm.splits["train"].feats.shape[1] == 20


def test_truncated_cache_is_detected_and_rebuilt(make_data):
    dm = make_data(ToneDataModule)
    dm.prepare_data()
    feats_file = dm.feature_cache().directory / "train.feats.npy"
    intact = np.load(feats_file)
    feats_file.write_bytes(feats_file.read_bytes()[:1000])
    assert not dm.feature_cache().is_complete()
    with pytest.raises(SpeechRNNError, match="incomplete"):
        make_data(ToneDataModule).setup("fit")
    dm.prepare_data()
    np.testing.assert_array_equal(np.load(feats_file), intact)


def test_corrupt_and_empty_files_are_skipped_and_listed(make_data):
    dm = make_data(ToneDataModule)
    dm.download()
    (dm.corpus_dir / "0_00.wav").write_bytes(b"RIFF not really a wave file")
    (dm.corpus_dir / "1_00.wav").write_bytes(b"")
    dm.prepare_data()
    dm.setup("fit")
    manifest = dm.feature_cache().manifest()
    assert sorted(s["key"] for s in manifest["skipped"]) == ["0_00", "1_00"]
    assert len(dm.splits["train"]) == 3 * 8 - 2


def test_a_corpus_without_usable_audio_is_an_error(make_data):
    dm = make_data(ToneDataModule)
    dm.download()
    for wav in dm.corpus_dir.glob("*.wav"):
        wav.write_bytes(b"")
    with pytest.raises(SpeechRNNError, match="no usable audio"):
        dm.prepare_data()


def test_cached_frames_and_targets_line_up(tone_data):
    train = tone_data.splits["train"]
    assert train.offsets[-1] == len(train.feats)
    assert train.keys == sorted(train.keys)
    assert [tone_data.labels[t] for t in train.targets.tolist()] == [k.split("_")[0] for k in train.keys]
    assert np.all(train.speech_lengths.numpy() == train.lengths.numpy())
