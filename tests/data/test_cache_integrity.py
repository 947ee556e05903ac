"""The feature cache: it follows the audio, skips unusable clips, survives full disks and killed
builds, and refuses settings that would build a meaningless one."""

import errno
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from dead_process import dead_pid

from speechrnn.errors import SpeechRNNError
from speechrnn.processes import HOST
from tones import SAMPLE_RATE, ToneDataModule


def tones(tmp_path, **kwargs) -> ToneDataModule:
    return ToneDataModule(data_root=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"), **kwargs)


def prepared(tmp_path, **kwargs) -> ToneDataModule:
    dm = tones(tmp_path, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_audio_rewritten_in_place_with_the_same_size_and_time_gets_new_features(tmp_path):
    old = prepared(tmp_path).splits["train"].feats
    rng = np.random.default_rng(1)
    for wav in sorted((tmp_path / "data" / "tones").glob("*.wav")):
        info, stat = sf.info(wav), wav.stat()
        sf.write(wav, 0.5 * rng.standard_normal(info.frames), SAMPLE_RATE, subtype=info.subtype)
        assert wav.stat().st_size == stat.st_size
        os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `cp -p` or `rsync -t` would leave it
    new = prepared(tmp_path).splits["train"].feats
    shutil.copytree(tmp_path / "data", tmp_path / "copy" / "data")
    fresh = prepared(tmp_path / "copy").splits["train"].feats  # the noise, through an empty cache
    assert not torch.allclose(new, old)
    torch.testing.assert_close(new, fresh)


def test_nan_infinite_and_too_short_clips_are_skipped_and_the_statistics_stay_finite(tmp_path):
    dm = tones(tmp_path)
    dm.download()
    corpus = tmp_path / "data" / "tones"
    nan = np.full(2000, 0.1, dtype=np.float32)
    nan[10] = np.nan
    sf.write(corpus / "0_00.wav", nan, SAMPLE_RATE, subtype="FLOAT")
    sf.write(corpus / "0_01.wav", np.full(2000, np.inf, dtype=np.float32), SAMPLE_RATE, subtype="FLOAT")
    sf.write(corpus / "1_00.wav", np.array([0.5]), SAMPLE_RATE)  # one sample
    sf.write(corpus / "1_01.wav", 0.5 * np.ones(SAMPLE_RATE // 100), SAMPLE_RATE)  # 10 ms < a 25 ms window
    dm.prepare_data()
    dm.setup("fit")
    reasons = {s["key"]: s["reason"] for s in dm.feature_cache().manifest()["skipped"]}
    assert sorted(reasons) == ["0_00", "0_01", "1_00", "1_01"]
    assert "NaN, infinite" in reasons["0_00"] and "NaN, infinite" in reasons["0_01"]
    assert "too short: 1 samples" in reasons["1_00"] and "200-sample analysis window" in reasons["1_01"]
    assert dm.mean.isfinite().all() and dm.std.isfinite().all()
    assert len(dm.splits["train"]) == 3 * 8 - 4


def test_non_finite_cached_features_stop_setup_naming_the_dataset(tmp_path):
    cache = prepared(tmp_path).feature_cache().directory
    feats = np.load(cache / "train.feats.npy")
    feats[3, 2] = np.nan
    np.save(cache / "train.feats.npy", feats)  # same size: the cache still looks complete
    with pytest.raises(SpeechRNNError, match=r"tones's \d+ training frames are not finite.*cache_dir"):
        prepared(tmp_path)


def test_a_full_disk_is_named_with_the_cache_folder_and_leaves_no_staging(tmp_path, monkeypatch):
    dm = tones(tmp_path)
    dm.download()

    def disk_full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(SpeechRNNError, match=f"no room left to write the feature cache in {tmp_path / 'cache'}"):
        dm.prepare_data()
    monkeypatch.undo()
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_build_stopped_by_any_error_leaves_no_staging_folder(tmp_path):
    dm = tones(tmp_path)
    dm.labels = ["0", "1"]  # the corpus also holds label 2
    with pytest.raises(SpeechRNNError, match="label '2' is not in the vocabulary"):
        dm.prepare_data()
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_cache_dir_that_is_a_file_is_named(tmp_path):
    (tmp_path / "cache").write_text("not a folder")
    with pytest.raises(SpeechRNNError, match=f"feature cache folder {tmp_path / 'cache'} is a file"):
        tones(tmp_path).prepare_data()


def test_staging_folders_of_killed_builds_are_removed_and_live_ones_kept(tmp_path):
    cache = tmp_path / "cache"
    dead, legacy, live = (cache / f"tones-keyword-0123.tmp-{HOST}-{dead_pid()}", cache / f"x.tmp-{dead_pid()}",
                          cache / f"tones-keyword-4567.tmp-{HOST}-{os.getppid()}")
    for folder in (dead, legacy, live):
        folder.mkdir(parents=True)
    tones(tmp_path).prepare_data()
    assert not dead.exists() and not legacy.exists() and live.exists()


@pytest.mark.parametrize("setting, message", [
    ({"hop_ms": 0}, "hop_ms is 0"), ({"hop_ms": -5}, "hop_ms is -5"), ({"win_ms": 0}, "win_ms is 0"),
    ({"n_mfcc": 0}, "n_mfcc is 0"), ({"sample_rate": 0}, "sample_rate is 0"),
    ({"n_mfcc": 40, "n_mels": 20}, "n_mfcc 40 is more than n_mels 20"), ({"hop_ms": 0.01}, "less than one sample"),
    ({"batch_size": 0}, "batch_size is 0"), ({"length_buckets": [40, 20]}, "increasing order"),
    ({"length_buckets": [20, 20]}, "increasing order"), ({"length_buckets": [0, 20]}, "at least 1"),
])
def test_invalid_data_settings_are_refused_at_construction_leaving_no_files(tmp_path, setting, message):
    with pytest.raises(SpeechRNNError, match=message):
        tones(tmp_path, **setting)
    assert not (tmp_path / "cache").exists()
