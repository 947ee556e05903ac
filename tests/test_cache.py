import json
import os

import numpy as np
import pytest
import soundfile as sf

from speechrnn.errors import SpeechRNNError
from tones import SAMPLE_RATE, ToneDataModule


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


def utterance_feats(dm, key: str):
    split = dm.splits["train"]
    i = split.keys.index(key)
    return split.feats[split.offsets[i] : split.offsets[i + 1]]


def test_samples_edited_in_the_middle_with_size_and_time_restored_get_new_features(tmp_path, make_data):
    dm = make_data(ToneDataModule)
    dm.download()
    wav = tmp_path / "data" / "tones" / "0_00.wav"
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE  # 2 s, 32 KB: its middle is far from either end
    sf.write(wav, 0.5 * np.sin(2 * np.pi * 300 * t), SAMPLE_RATE, subtype="PCM_16")
    dm.prepare_data()
    dm.setup("fit")
    old = utterance_feats(dm, "0_00")
    stat = wav.stat()
    with open(wav, "r+b") as file:  # one second in, a quarter second of other samples
        file.seek(stat.st_size // 2)
        file.write(np.random.default_rng(0).integers(-8000, 8000, SAMPLE_RATE // 4, dtype=np.int16).tobytes())
    os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `cp -p`, `rsync -t` or an editor may leave it
    assert (wav.stat().st_size, wav.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    new = utterance_feats(make_data(ToneDataModule, prepare=True), "0_00")
    assert old.shape == new.shape and not np.allclose(old, new)
    assert len(cache_dirs(tmp_path)) == 2


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
