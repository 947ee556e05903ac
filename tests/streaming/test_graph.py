"""The whole spotter as one ONNX graph: audio in, posteriors out, as `speechrnn stream` computes them."""

import json

import numpy as np
import pytest
import soundfile as sf
from test_export import write_stream
from test_stream_parity import MATRIX, TOLERANCE
from test_streaming import model, speechlike, streamed

from speechrnn.checkpoint import load_checkpoint, store_operating_point
from speechrnn.cli import main
from speechrnn.data.features import FeatureSettings
from speechrnn.errors import SpeechRNNError
from speechrnn.operating_point import OperatingPoint
from speechrnn.streaming.export import OnnxAudioGraph, OnnxStep, export_audio_onnx
from speechrnn.streaming.graph import AudioGraph
from speechrnn.streaming.runner import Streamer
from speechrnn.streaming.web import MODEL_FILE, PAGE_FILES, RUNTIME_ENV, RUNTIME_FILES

GRAPH_CHUNK_MS = [10, 37, 100, 1000]  # 37 ms is not a whole number of hops


def chunked(wave, chunk: int):
    return (np.asarray(wave[i : i + chunk], np.float32) for i in range(0, len(wave), chunk))


def exported(classifier, settings: FeatureSettings, path) -> OnnxAudioGraph:
    return OnnxAudioGraph(export_audio_onnx(AudioGraph(classifier.streaming_step().eval(), settings).eval(), path))


@pytest.mark.parametrize(("cell", "normalisation", "deltas", "layers"), MATRIX)
def test_the_audio_graph_gives_every_frame_the_stream_gives_in_any_chunk_size(cell, normalisation, deltas, layers,
                                                                               tmp_path):
    settings = FeatureSettings(sample_rate=8000, n_mfcc=13, n_mels=23, deltas=deltas)
    classifier = model(cell, settings, hidden_size=8, num_layers=layers, normalisation=normalisation,
                       norm_prior_frames=5, norm_window_frames=40)
    wave = speechlike(1.3, seed=MATRIX.index((cell, normalisation, deltas, layers)))
    reference = streamed(Streamer(classifier, settings), wave, 800).numpy()  # `stream`'s chunks of 0.1 s
    graph = exported(classifier, settings, tmp_path / "kws.onnx")
    for chunk_ms in GRAPH_CHUNK_MS:
        ours = graph.stream(chunked(wave, round(chunk_ms * 8)))
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, rtol=0, atol=TOLERANCE, err_msg=f"chunks of {chunk_ms} ms")


@pytest.mark.parametrize("samples", [1, 90, 128, 129, 200, 1001])
def test_streams_shorter_than_a_window_and_chunks_of_a_few_samples_match(samples, tmp_path):
    settings = FeatureSettings(sample_rate=8000, n_mfcc=13, n_mels=23, deltas=True)
    classifier = model("gru", settings, normalisation="causal")
    wave = speechlike(0.2)[:samples]
    reference = streamed(Streamer(classifier, settings), wave, 7).numpy()
    ours = exported(classifier, settings, tmp_path / "kws.onnx").stream(chunked(wave, 7))
    np.testing.assert_allclose(ours, reference, rtol=0, atol=TOLERANCE)


def test_a_chunk_that_completes_no_frame_returns_none_and_leaves_the_model_state(tmp_path):
    settings = FeatureSettings(sample_rate=8000, n_mfcc=13, n_mels=23)
    graph = exported(model("lstm", settings, normalisation="causal"), settings, tmp_path / "kws.onnx")
    posteriors, state = graph(np.ones(100, np.float32), graph.initial_state())  # frame 0 needs 129 samples
    assert posteriors.shape == (0, 3) and int(state[1][0]) == 100
    for ours, start in zip(state[2:], graph.initial_state()[2:]):
        np.testing.assert_array_equal(ours, start)


def test_export_command_writes_one_graph_that_matches_the_stream_command(checkpoint, tmp_path, capsys):
    write_stream(tmp_path / "tones.wav")
    main(["stream", str(checkpoint), str(tmp_path / "tones.wav"), "--posteriors", str(tmp_path / "post.jsonl")])
    lines = [json.loads(line) for line in (tmp_path / "post.jsonl").read_text().splitlines()]
    reference = np.array([list(line["posteriors"].values()) for line in lines])
    main(["export", str(checkpoint), "--format", "onnx", "--out", str(tmp_path / "kws.onnx")])
    assert "audio in at 8000 Hz" in capsys.readouterr().out
    graph = OnnxAudioGraph(tmp_path / "kws.onnx")
    wave, _ = sf.read(tmp_path / "tones.wav", dtype="float32")
    for chunk_ms in GRAPH_CHUNK_MS:
        np.testing.assert_allclose(graph.stream(chunked(wave, round(chunk_ms * 8))), reference, rtol=0, atol=TOLERANCE)


def test_the_graph_carries_what_a_runtime_needs(checkpoint, tmp_path):
    tuned = tmp_path / "tuned.ckpt"
    tuned.write_bytes(checkpoint.read_bytes())
    store_operating_point(tuned, OperatingPoint(threshold=0.7, smooth_s=0.2, refractory_s=0.5))
    main(["export", str(tuned), "--format", "onnx", "--out", str(tmp_path / "kws.onnx")])
    description = OnnxAudioGraph(tmp_path / "kws.onnx").description
    features = load_checkpoint(checkpoint).features
    assert description["labels"] == ["0", "1", "2", "background"] and description["background"] == ["background"]
    assert (description["sample_rate"], description["hop_length"]) == (features.sample_rate, features.hop_length)
    assert description["lookahead_s"] == features.lookahead_s
    assert description["operating_point"] == {"threshold": 0.7, "smooth_s": 0.2, "refractory_s": 0.5, "tuned": True,
                                              "window_frames": 20, "refractory_frames": 50}
    assert [(s["name"], s["shape"], s["dtype"]) for s in description["state"]] == [
        ("samples", [features.n_fft], "float32"), ("received", [1], "int64"),
        ("step_0", [1, features.feature_dim], "float32"), ("step_1", [1, features.feature_dim], "float32"), ("step_2", [1, 1], "float32"),
        ("step_3", [1, 16], "float32")]  # causal normalisation's mean, mean square, count; the GRU's h


def test_a_step_graph_is_not_taken_for_an_audio_graph(checkpoint, tmp_path, capsys):
    main(["export", str(checkpoint), "--format", "onnx-step", "--out", str(tmp_path / "step.onnx")])
    with pytest.raises(SpeechRNNError, match="takes MFCC frames, not audio"):
        OnnxAudioGraph(tmp_path / "step.onnx")
    assert OnnxStep(tmp_path / "step.onnx").labels == ["0", "1", "2", "background"]


def test_the_web_export_writes_the_page_beside_the_graph_and_its_description(checkpoint, tmp_path, monkeypatch):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for name in RUNTIME_FILES:
        (runtime / name).write_text(f"// {name}")
    monkeypatch.setenv(RUNTIME_ENV, str(runtime))
    main(["export", str(checkpoint), "--format", "web", "--out", str(tmp_path / "site")])
    site = tmp_path / "site"
    assert sorted(p.name for p in site.iterdir()) == sorted([*PAGE_FILES, *RUNTIME_FILES, MODEL_FILE, "model.json"])
    assert json.loads((site / "model.json").read_text()) == OnnxAudioGraph(site / MODEL_FILE).description
    main(["export", str(checkpoint), "--format", "web", "--out", str(site)])  # an earlier page is replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runtime", "site"]


def user_error(capsys, argv: list) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    assert exit_.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


def test_the_web_export_refuses_a_folder_of_other_files_and_a_missing_runtime(checkpoint, tmp_path, capsys,
                                                                               monkeypatch):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes/todo.txt").write_text("keep me")
    assert "holds other files" in user_error(capsys, ["export", checkpoint, "--format", "web", "--out",
                                                      tmp_path / "notes"])
    monkeypatch.setenv(RUNTIME_ENV, str(tmp_path / "nowhere"))
    err = user_error(capsys, ["export", checkpoint, "--format", "web", "--out", tmp_path / "site"])
    assert "run `make web`" in err and "ort.wasm.min.js" in err and not (tmp_path / "site").exists()
    assert (tmp_path / "notes/todo.txt").read_text() == "keep me"
