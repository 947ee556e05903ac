import json

import numpy as np
import pytest
import soundfile as sf
import torch
from test_streaming import SETTINGS, model, speechlike, streamed

from pipelines.configs import trainer_args
from speechrnn.checkpoint import load_checkpoint
from speechrnn.cli import main
from speechrnn.detect import Detector
from speechrnn.export import OnnxStep, export_onnx, export_torchscript
from speechrnn.stream import spot
from speechrnn.streaming import FrameStream, Streamer, StreamStep
from tones import SAMPLE_RATE

CONFIGS = "configs"


def needs_onnx() -> None:
    for package in ("onnx", "onnxruntime"):
        pytest.importorskip(package, reason="onnx and onnxruntime are dependencies: pip install -e .")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A one-layer GRU with pooling: last, fitted for a few epochs on the tone corpus."""
    root = tmp_path_factory.mktemp("stream")
    main(["fit", *trainer_args(f"{CONFIGS}/trainer/cpu.yaml"), "--config", f"{CONFIGS}/model/gru.yaml",
          "--data", "tones.ToneDataModule", "--data.data_root", str(root / "data"),
          "--data.cache_dir", str(root / "cache"), "--run_dir", str(root / "run"), "--trainer.max_epochs", "3",
          "--trainer.logger", "false", "--trainer.enable_progress_bar", "false", "--test_after_fit", "false",
          "--model.hidden_size", "16", "--model.num_layers", "1", "--model.pooling", "last"])
    return root / "run/checkpoints/best.ckpt"


def onnx_posteriors(path, wave: torch.Tensor, chunk: int) -> np.ndarray:
    """The exported step in onnxruntime behind the Python front end, chunk by chunk."""
    step = OnnxStep(path)
    frames, state, out = FrameStream(step.features), step.initial_state(), []
    for i in range(0, len(wave) + chunk, chunk):
        feats = frames.push(wave[i : i + chunk]) if i < len(wave) else frames.finish()
        if len(feats):
            posteriors, state = step(feats.numpy(), state)
            out.append(posteriors)
    return np.concatenate(out)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_onnx_step_matches_pytorch_over_a_long_stream_chunk_by_chunk(cell, tmp_path):
    needs_onnx()
    classifier = model(cell)
    path = export_onnx(StreamStep(classifier).eval(), SETTINGS, tmp_path / "step.onnx")
    wave = speechlike(20.0, seed=2)
    reference = streamed(Streamer(classifier, SETTINGS), wave, 1601)
    ours = onnx_posteriors(path, wave, 1601)
    assert ours.shape == tuple(reference.shape) == (SETTINGS.num_frames(len(wave)), 3)
    np.testing.assert_allclose(ours, reference.numpy(), atol=1e-4)


def test_torchscript_step_takes_any_chunk_length_and_carries_the_state(tmp_path):
    classifier = model("lstm")
    path = export_torchscript(StreamStep(classifier).eval(), SETTINGS, tmp_path / "step.pt")
    extra = {"speechrnn.json": ""}
    loaded = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["speechrnn.json"])["state"] == {"tensors": 4, "size": 16, "cell": "lstm"}
    feats = torch.randn(1, 30, SETTINGS.feature_dim) * 10
    step = StreamStep(classifier)
    state, ours, reference = step.initial_state(), [], step(feats, *step.initial_state())[0]
    for lo, hi in [(0, 1), (1, 13), (13, 30)]:
        posteriors, *state = loaded(feats[:, lo:hi], *state)
        ours.append(posteriors)
    torch.testing.assert_close(torch.cat(ours, 1), reference, rtol=1e-5, atol=1e-6)


def write_stream(path, channels: int = 1, sample_rate: int = SAMPLE_RATE) -> None:
    """Tones of the corpus's classes with pauses between them: 3 s."""
    t = np.arange(int(0.4 * SAMPLE_RATE)) / SAMPLE_RATE
    pause = np.zeros(int(0.6 * SAMPLE_RATE))
    wave = np.concatenate([np.concatenate([pause, 0.5 * np.sin(2 * np.pi * 300 * (c + 1) * t)]) for c in range(3)])
    if sample_rate != SAMPLE_RATE:
        wave = np.interp(np.arange(int(len(wave) * sample_rate / SAMPLE_RATE)) * SAMPLE_RATE / sample_rate,
                         np.arange(len(wave)), wave)
    sf.write(path, np.repeat(wave[:, None], channels, 1).astype(np.float32), sample_rate)


def test_stream_command_prints_detections_as_json_lines_and_draws_them(checkpoint, tmp_path, capsys):
    write_stream(tmp_path / "long.wav")
    main(["stream", str(checkpoint), str(tmp_path / "long.wav"), "--threshold", "0.4",
          "--plot", str(tmp_path / "stream.png")])
    captured = capsys.readouterr()
    detections = [json.loads(line) for line in captured.out.splitlines()]
    assert detections, "three tones and a threshold of 0.4: something fires"
    for det in detections:
        assert det["label"] in {"0", "1", "2"} and 0 <= det["start_s"] <= det["end_s"] <= 3.0
        assert 0.4 <= det["score"] <= 1.0
    assert (tmp_path / "stream.png").stat().st_size > 10_000


def test_stream_command_resamples_and_mixes_down_and_says_so(checkpoint, tmp_path, capsys):
    model_rate = load_checkpoint(checkpoint).features.sample_rate
    write_stream(tmp_path / "stereo.wav", channels=2, sample_rate=44100)
    main(["stream", str(checkpoint), str(tmp_path / "stereo.wav"), "--threshold", "0.4"])
    err = capsys.readouterr().err
    assert "2 channels mixed down to mono" in err and f"resampled from 44100 Hz to the model's {model_rate} Hz" in err


def test_stream_command_refuses_a_truncated_file_in_one_line(checkpoint, tmp_path, capsys):
    write_stream(tmp_path / "long.wav")
    data = (tmp_path / "long.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(SystemExit) as exit_:
        main(["stream", str(checkpoint), str(tmp_path / "cut.wav")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "cut.wav is truncated" in err


def test_export_command_writes_a_graph_that_onnxruntime_runs(checkpoint, tmp_path, capsys):
    needs_onnx()
    main(["export", str(checkpoint), "--format", "onnx", "--out", str(tmp_path / "kws.onnx"), "--quantize"])
    assert "front end not included" in capsys.readouterr().out
    step = OnnxStep(tmp_path / "kws.onnx")
    assert step.labels == ["0", "1", "2"] and step.features == load_checkpoint(checkpoint).features
    wave = speechlike(3.0)
    exact = onnx_posteriors(tmp_path / "kws.onnx", wave, 800)
    int8 = onnx_posteriors(tmp_path / "kws.int8.onnx", wave, 800)
    assert exact.shape == int8.shape and np.abs(exact - int8).max() < 0.2  # int8 weights: close, not equal


@pytest.mark.parametrize("seconds", [120, pytest.param(3600, marks=pytest.mark.slow)])
def test_an_hour_of_silence_streams_in_bounded_memory_without_detections(seconds):
    classifier = model("gru")
    with torch.no_grad():
        classifier.head.out.bias[2] = 8.0  # a spotter that has learnt silence is background
    streamer = Streamer(classifier, SETTINGS)
    detector = Detector(streamer.labels, streamer.hop_s, threshold=0.5)
    result = spot(streamer, detector, (torch.zeros(SAMPLE_RATE) for _ in range(seconds)), keep=False)
    assert result.detections == [] and result.duration_s == seconds
    assert len(streamer.frames.buffer) < SETTINGS.n_fft + SAMPLE_RATE and len(detector.history) < 10
    assert detector.frame == SETTINGS.num_frames(seconds * SAMPLE_RATE)
