import json

import numpy as np
import pytest
import soundfile as sf
import torch
from memory import AWKWARD_RATE, peak_rss_mb
from test_evaluate import run  # noqa: F401 (the fitted tone run, shared)

from speechrnn.cli import main
from speechrnn.data.audio import resample
from tones import SAMPLE_RATE


def tone(path, label: int, sample_rate: int, channels: int, seconds: float = 0.4) -> None:
    """A tone of class ``label`` made as tones.write_tones makes them, stored at any rate and channels.

    It is made at the corpus's 8 kHz and resampled, so its noise stays below 4 kHz as in training.
    """
    rng = np.random.default_rng(label)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = 0.5 * np.sin(2 * np.pi * 300 * (label + 1) * t) + 0.05 * rng.standard_normal(len(t))
    wave = resample(wave.astype(np.float32), SAMPLE_RATE, sample_rate)
    sf.write(path, np.repeat(wave[:, None], channels, axis=1), sample_rate)


def fails(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(["predict", *map(str, args)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("speechrnn: error: ") and "Traceback" not in err
    return err


def test_predict_labels_recordings_at_any_rate_and_channel_count(run, tmp_path, capsys):  # noqa: F811
    files, expected = [], []
    for rate in (8000, 16000, 44100):
        for channels in (1, 2):
            for label in range(3):
                files.append(tmp_path / f"{label}_{rate}_{channels}ch.wav")
                tone(files[-1], label, rate, channels)
                expected.append(str(label))
    main(["predict", str(run / "checkpoints/best.ckpt"), *map(str, files), "--top-k", "2",
          "--json", str(tmp_path / "predictions.json")])
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert [p["file"] for p in predictions] == list(map(str, files))
    assert [p["top"][0][0] for p in predictions] == expected
    assert all(len(p["top"]) == 2 and p["top"][0][1] >= p["top"][1][1] for p in predictions)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{files[0]}: 0 ")


def test_a_corpus_that_pads_its_clips_pads_them_in_predict_too(run, tmp_path):  # noqa: F811
    """A checkpoint whose corpus zero-pads clips to 0.6 s scores a short clip as if it ended in silence."""
    raw = torch.load(run / "checkpoints/best.ckpt", weights_only=True)
    assert raw["ToneDataModule"]["speechrnn_pipeline"]["pad_to_s"] is None  # the tone corpus pads nothing
    raw["ToneDataModule"]["speechrnn_pipeline"]["pad_to_s"] = 0.6
    torch.save(raw, tmp_path / "padding.ckpt")
    tone(tmp_path / "short.wav", 2, 16000, 1, seconds=0.15)
    wave, rate = sf.read(tmp_path / "short.wav", dtype="float32")
    sf.write(tmp_path / "padded.wav", np.concatenate([wave, np.zeros(int(0.45 * rate), np.float32)]), rate)
    main(["predict", str(tmp_path / "padding.ckpt"), str(tmp_path / "short.wav"), "--json", str(tmp_path / "short.json")])
    main(["predict", str(run / "checkpoints/best.ckpt"), str(tmp_path / "padded.wav"),
          "--json", str(tmp_path / "padded.json")])
    short, padded = (json.loads((tmp_path / f"{name}.json").read_text())[0]["top"] for name in ("short", "padded"))
    assert [label for label, _ in short] == [label for label, _ in padded]
    assert [p for _, p in short] == pytest.approx([p for _, p in padded], abs=1e-5)
    main(["predict", str(run / "checkpoints/best.ckpt"), str(tmp_path / "short.wav"),
          "--json", str(tmp_path / "unpadded.json")])
    unpadded = json.loads((tmp_path / "unpadded.json").read_text())[0]["top"]
    assert [p for _, p in unpadded] != pytest.approx([p for _, p in padded], abs=1e-3)


def test_predict_scores_the_good_files_and_exits_2_naming_the_bad(run, tmp_path, capsys):  # noqa: F811
    tone(tmp_path / "good.wav", 1, 8000, 1)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(run / "checkpoints/best.ckpt"), str(tmp_path / "corrupt.wav"), str(tmp_path / "good.wav"),
              "--json", str(tmp_path / "out.json")])
    assert exit_.value.code == 2
    assert [p["file"] for p in json.loads((tmp_path / "out.json").read_text())] == [str(tmp_path / "good.wav")]
    captured = capsys.readouterr()
    assert f"cannot decode audio file {tmp_path / 'corrupt.wav'}" in captured.err
    assert "1 of 2 files could not be scored" in captured.err
    assert captured.out.startswith(f"{tmp_path / 'good.wav'}: 1 ")


def test_an_empty_recording_is_named(run, tmp_path, capsys):  # noqa: F811
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    err = fails(capsys, run / "checkpoints/best.ckpt", tmp_path / "empty.wav")
    assert f"audio file {tmp_path / 'empty.wav'} is empty" in err


def test_a_corrupt_recording_is_named(run, tmp_path, capsys):  # noqa: F811
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage")
    err = fails(capsys, run / "checkpoints/best.ckpt", tmp_path / "corrupt.wav")
    assert f"cannot decode audio file {tmp_path / 'corrupt.wav'}" in err


def test_a_silent_recording_is_named(run, tmp_path, capsys):  # noqa: F811
    sf.write(tmp_path / "silent.wav", np.zeros(8000, np.float32), 16000)
    err = fails(capsys, run / "checkpoints/best.ckpt", tmp_path / "silent.wav")
    assert f"audio file {tmp_path / 'silent.wav'} is silent" in err


def test_a_missing_recording_is_named(run, tmp_path, capsys):  # noqa: F811
    err = fails(capsys, run / "checkpoints/best.ckpt", tmp_path / "nope.wav")
    assert f"audio file {tmp_path / 'nope.wav'} not found" in err


def test_predict_at_an_awkward_rate_stays_under_1_gb(run, tmp_path):  # noqa: F811
    tone(tmp_path / "odd.wav", 1, AWKWARD_RATE, 1, seconds=2.0)
    used = peak_rss_mb(f"from speechrnn.cli import main\nmain(['predict', {str(run / 'checkpoints/best.ckpt')!r}, "
                       f"{str(tmp_path / 'odd.wav')!r}])")
    assert used < 1024  # torchaudio's resampling kernel for 44,101 -> 8,000 Hz alone took 1.4 GB
