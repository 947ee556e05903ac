import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from matplotlib.image import imread
from test_stream_parity import run_graph
from test_streaming import SETTINGS, model, speechlike, streamed

from speechrnn.checkpoint import load_checkpoint, store_operating_point
from speechrnn.cli import main
from speechrnn.commands.export import export_checkpoint
from speechrnn.errors import SpeechRNNError
from speechrnn.operating_point import OperatingPoint
from speechrnn.plots import plot_stream
from speechrnn.streaming.detect import Detector
from speechrnn.streaming.export import OnnxStep, export_onnx, export_torchscript
from speechrnn.streaming.runner import Streamer, spot
from tones import SAMPLE_RATE

TONES = [(0.6, 1.0), (1.6, 2.0), (2.6, 3.0)]  # seconds of each class's tone in the test stream


@pytest.mark.parametrize(("cell", "normalisation"), [("gru", "global"), ("lstm", "causal"), ("mingru", "causal")])
def test_onnx_step_matches_pytorch_over_a_long_stream_chunk_by_chunk(cell, normalisation, tmp_path):
    classifier = model(cell, normalisation=normalisation)
    path = export_onnx(classifier.streaming_step().eval(), SETTINGS, tmp_path / "step.onnx")
    wave = speechlike(20.0, seed=2)
    reference = streamed(Streamer(classifier, SETTINGS), wave, 1601)
    ours = run_graph(OnnxStep(path), SETTINGS, wave, 1601)
    assert ours.shape == reference.shape == (SETTINGS.num_frames(len(wave)), 3)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-4)


@pytest.mark.parametrize("cell", ["lstm", "mingru", "minlstm"])
def test_every_exported_step_takes_the_state_in_and_out(cell, tmp_path):
    import onnx

    step = model(cell, normalisation="causal").streaming_step().eval()
    path = export_onnx(step, SETTINGS, tmp_path / "step.onnx")
    graph = onnx.load(str(path)).graph
    count = len(step.initial_state())
    assert count == 3 + (4 if cell == "lstm" else 2)  # the normaliser's three, then h (and c) per layer
    assert [i.name for i in graph.input] == ["feats"] + [f"state_{i}" for i in range(count)]
    assert [o.name for o in graph.output] == ["posteriors"] + [f"next_state_{i}" for i in range(count)]
    path = export_torchscript(step, SETTINGS, tmp_path / "step.pt")
    extra = {"speechrnn.json": ""}
    loaded = torch.jit.load(str(path), _extra_files=extra)
    description = json.loads(extra["speechrnn.json"])
    assert description["cell"] == cell and description["normalisation"]["mode"] == "causal"
    assert [s["fill"] for s in description["state"][:3]] == [0.0, 1.0, 0.0]  # prior mean, mean square, count
    feats = torch.randn(1, 30, SETTINGS.feature_dim) * 10
    state, ours, reference = step.initial_state(), [], step(feats, *step.initial_state())[0]
    for lo, hi in [(0, 1), (1, 13), (13, 30)]:
        posteriors, *state = loaded(feats[:, lo:hi], *state)
        ours.append(posteriors)
    torch.testing.assert_close(torch.cat(ours, 1), reference, rtol=1e-5, atol=1e-6)


def write_stream(path, channels: int = 1, sample_rate: int = SAMPLE_RATE) -> None:
    """Tones of the corpus's classes with pauses between them, over a faint noise floor: 3 s."""
    t = np.arange(int(0.4 * SAMPLE_RATE)) / SAMPLE_RATE
    pause = np.zeros(int(0.6 * SAMPLE_RATE))
    wave = np.concatenate([np.concatenate([pause, 0.5 * np.sin(2 * np.pi * 300 * (c + 1) * t)]) for c in range(3)])
    wave += 1e-3 * np.random.default_rng(0).standard_normal(len(wave))
    if sample_rate != SAMPLE_RATE:
        wave = np.interp(np.arange(int(len(wave) * sample_rate / SAMPLE_RATE)) * SAMPLE_RATE / sample_rate,
                         np.arange(len(wave)), wave)
    sf.write(path, np.repeat(wave[:, None], channels, 1).astype(np.float32), sample_rate)


def stream_command(capsys, *args) -> tuple[list[dict], str]:
    main(["stream", *map(str, args)])
    captured = capsys.readouterr()
    return [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_stream_command_finds_each_tone_once_where_it_sounds(checkpoint, tmp_path, capsys):
    write_stream(tmp_path / "long.wav")
    detections, err = stream_command(capsys, checkpoint, tmp_path / "long.wav")
    assert "holds no tuned operating point" in err and "threshold 0.5" in err  # it says what it fell back to
    assert [d["label"] for d in detections] == ["0", "1", "2"]
    for det, (start_s, end_s) in zip(detections, TONES):
        assert start_s - 0.05 <= det["start_s"] <= det["end_s"] <= end_s + 0.3 and det["score"] >= 0.5
        assert det["fired_s"] == pytest.approx(det["start_s"] + load_checkpoint(checkpoint).features.lookahead_s,
                                               abs=1e-3)


def test_the_stream_plot_draws_the_detections(checkpoint, tmp_path, capsys):
    write_stream(tmp_path / "long.wav")
    stream_command(capsys, checkpoint, tmp_path / "long.wav", "--plot", tmp_path / "stream.png")
    streamer = Streamer.from_checkpoint(load_checkpoint(checkpoint))
    result = spot(streamer, Detector(streamer.labels, streamer.settings),
                  (torch.from_numpy(c) for c in [sf.read(tmp_path / "long.wav", dtype="float32")[0]]))
    plot_stream(result.envelope, result.posteriors, streamer.labels, streamer.settings.frame_s, [],
                tmp_path / "bare.png", threshold=0.5, title=str(tmp_path / "long.wav"))
    drawn, bare = imread(tmp_path / "stream.png"), imread(tmp_path / "bare.png")
    assert drawn.shape == bare.shape and drawn.shape[0] > 300  # the same figure ...
    assert (np.abs(drawn - bare).sum(-1) > 0.1).mean() > 0.005  # ... but for the detections drawn on it


def test_a_tuned_operating_point_in_the_checkpoint_is_used_and_flags_override_it(checkpoint, tmp_path, capsys):
    write_stream(tmp_path / "long.wav")
    tuned = tmp_path / "tuned.ckpt"
    tuned.write_bytes(checkpoint.read_bytes())
    store_operating_point(tuned, OperatingPoint(threshold=1.0, smooth_s=0.5, refractory_s=0.3))
    assert load_checkpoint(tuned).operating_point.threshold == 1.0
    detections, err = stream_command(capsys, tuned, tmp_path / "long.wav")
    assert detections == [] and "no tuned operating point" not in err  # nothing reaches 1.0 averaged over 0.5 s
    detections, _ = stream_command(capsys, tuned, tmp_path / "long.wav", "--threshold", "0.5", "--smooth-s", "0.1")
    assert [d["label"] for d in detections] == ["0", "1", "2"]


def test_streamed_posteriors_of_a_clip_end_on_what_predict_gives_it(checkpoint, tmp_path, capsys):
    ckpt = load_checkpoint(checkpoint)
    for clip in sorted((checkpoint.parents[2] / "data/tones").glob("*_1[01].wav")):  # test clips
        stream_command(capsys, checkpoint, clip, "--posteriors", tmp_path / "post.jsonl")
        lines = [json.loads(line) for line in (tmp_path / "post.jsonl").read_text().splitlines()]
        main(["predict", str(checkpoint), str(clip), "--top-k", str(len(ckpt.labels)), "--json",
              str(tmp_path / "pred.json")])
        capsys.readouterr()
        offline = dict(json.loads((tmp_path / "pred.json").read_text())[0]["top"])
        assert lines[-1]["posteriors"].keys() == offline.keys()
        assert max(abs(lines[-1]["posteriors"][k] - offline[k]) for k in offline) < 1e-4
        frames = ckpt.features.num_frames(len(sf.read(clip)[0]))
        assert len(lines) == frames and lines[-1]["t_s"] == pytest.approx(ckpt.features.ready_s(frames - 1))


@pytest.mark.parametrize("seconds", [120, pytest.param(3600, marks=pytest.mark.slow)])
def test_an_hour_of_silence_streams_in_bounded_memory_without_detections(checkpoint, seconds):
    streamer = Streamer.from_checkpoint(load_checkpoint(checkpoint))
    detector = Detector(streamer.labels, streamer.settings)
    result = spot(streamer, detector, (torch.zeros(SAMPLE_RATE) for _ in range(seconds)), keep=False)
    assert result.detections == [] and result.duration_s == seconds
    assert len(streamer.frames.buffer) < SETTINGS.n_fft + SAMPLE_RATE and len(detector.history) < 10
    assert detector.frame == streamer.settings.num_frames(seconds * SAMPLE_RATE)


def test_a_model_without_a_background_class_is_warned_about_once(checkpoint_without_background, tmp_path, capsys):
    write_stream(tmp_path / "long.wav")
    _, err = stream_command(capsys, checkpoint_without_background, tmp_path / "long.wav")
    assert err.count("hold no background class") == 1 and "will fire on them" in err


def test_stream_command_resamples_and_mixes_down_and_says_so(checkpoint, tmp_path, capsys):
    model_rate = load_checkpoint(checkpoint).features.sample_rate
    write_stream(tmp_path / "stereo.wav", channels=2, sample_rate=44100)
    detections, err = stream_command(capsys, checkpoint, tmp_path / "stereo.wav")
    assert "2 channels mixed down to mono" in err and f"resampled from 44100 Hz to the model's {model_rate} Hz" in err
    assert [d["label"] for d in detections] == ["0", "1", "2"]


def user_error(capsys, argv: list) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    err = capsys.readouterr().err.splitlines()
    errors = [line for line in err if line.startswith("speechrnn: error:")]
    assert exit_.value.code == 2 and errors == err[-1:], err  # one line, and nothing after it
    return errors[0]


def test_stream_command_refuses_a_truncated_file_in_one_line(checkpoint, tmp_path, capsys):
    write_stream(tmp_path / "long.wav")
    data = (tmp_path / "long.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    assert "cut.wav is truncated" in user_error(capsys, ["stream", checkpoint, tmp_path / "cut.wav"])


def test_nan_samples_in_a_stream_are_refused_naming_where(checkpoint, tmp_path, capsys):
    wave = np.zeros(6 * SAMPLE_RATE, np.float32)
    wave[5 * SAMPLE_RATE : 5 * SAMPLE_RATE + 100] = np.nan
    sf.write(tmp_path / "nan.wav", wave, SAMPLE_RATE, subtype="FLOAT")
    err = user_error(capsys, ["stream", checkpoint, tmp_path / "nan.wav"])
    assert "nan.wav holds samples that are NaN, infinite or beyond" in err and "at 5.000 s" in err


@pytest.mark.parametrize("seconds", [0.0, 0.01])
def test_empty_or_too_short_audio_is_refused(checkpoint, tmp_path, capsys, seconds):
    sf.write(tmp_path / "short.wav", np.zeros(int(seconds * SAMPLE_RATE), np.float32), SAMPLE_RATE)
    assert "less than one analysis window" in user_error(capsys, ["stream", checkpoint, tmp_path / "short.wav"])


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--chunk-s", "0", "--chunk-s: 0 is not a number in (0, 60]"),
    ("--chunk-s", "-1", "--chunk-s: -1 is not a number in (0, 60]"),
    ("--chunk-s", "nan", "--chunk-s: nan is not a number in (0, 60]"),
    ("--smooth-s", "nan", "--smooth-s: nan is not a number >= 0"),
    ("--refractory-s", "inf", "--refractory-s: inf is not a number >= 0"),
    ("--threshold", "1.5", "--threshold: 1.5 is not a number in (0, 1]"),
])
def test_bad_stream_flags_are_refused_before_any_work(checkpoint, tmp_path, capsys, flag, value, message):
    write_stream(tmp_path / "long.wav")
    err = user_error(capsys, ["stream", checkpoint, tmp_path / "long.wav", flag, value])
    assert message in err


def test_output_paths_are_checked_before_any_work(checkpoint, tmp_path, capsys):
    write_stream(tmp_path / "long.wav")
    (tmp_path / "a_file").write_text("")
    cases = [
        (["stream", checkpoint, tmp_path / "long.wav", "--plot", tmp_path], "is a folder"),
        (["stream", checkpoint, tmp_path / "long.wav", "--posteriors", tmp_path / "a_file/x.jsonl"], "which is a file"),
        (["export", checkpoint, "--out", tmp_path], "is a folder"),
        (["export", checkpoint, "--out", tmp_path / "a_file/kws.onnx"], "which is a file"),
    ]
    for argv, message in cases:
        assert message in user_error(capsys, argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "long.wav"]  # nothing written


def test_a_failed_export_leaves_nothing_and_replaces_nothing(checkpoint, tmp_path, capsys, monkeypatch):
    out = tmp_path / "kws.pt"
    out.write_bytes(b"a good export")

    def broken(*args, **kwargs):
        raise RuntimeError("tracing failed")

    monkeypatch.setattr(torch.jit, "trace", broken)
    with pytest.raises(RuntimeError, match="tracing failed"):
        main(["export", str(checkpoint), "--format", "torchscript", "--out", str(out)])
    assert out.read_bytes() == b"a good export" and [p.name for p in tmp_path.iterdir()] == ["kws.pt"]


def test_export_command_writes_a_step_that_onnxruntime_runs(checkpoint, tmp_path, capsys):
    main(["export", str(checkpoint), "--format", "onnx-step", "--out", str(tmp_path / "kws.onnx")])
    assert "MFCC frames in" in capsys.readouterr().out
    step = OnnxStep(tmp_path / "kws.onnx")
    ckpt = load_checkpoint(checkpoint)
    assert step.labels == ["0", "1", "2", "background"] and step.features == ckpt.features
    assert step.description["normalisation"]["mode"] == "causal" and step.description["operating_point"] is None
    wave = speechlike(3.0)
    exact = run_graph(step, step.features, wave, 800)
    torch.testing.assert_close(exact, streamed(Streamer.from_checkpoint(ckpt), wave, 800), rtol=0, atol=1e-4)


def test_a_checkpoint_whose_features_need_the_whole_clip_is_refused_for_export(checkpoint, tmp_path):
    ckpt = load_checkpoint(checkpoint)
    floored = dataclasses.replace(ckpt, pipeline=dataclasses.replace(
        ckpt.pipeline, features=dataclasses.replace(ckpt.features, floor_db=40.0)))
    with pytest.raises(SpeechRNNError, match="data.floor_db") as err:
        export_checkpoint(floored, "onnx", tmp_path / "kws.onnx")
    assert str(checkpoint) in str(err.value) and not (tmp_path / "kws.onnx").exists()
