"""int8 weights on the audio graph: written where the spotter's figures hold, refused with the loss where not."""

import json

import numpy as np
import pytest
import soundfile as sf
from test_export import TONES, write_stream

from speechrnn.cli import main
from speechrnn.errors import SpeechRNNError
from speechrnn.stats import poisson_interval
from speechrnn.streaming.export import OnnxAudioGraph
from speechrnn.streaming.quantization import StreamFigures, check_quantised
from tones import SAMPLE_RATE


def write_streams(folder) -> tuple:
    """The tone stream with its timeline, and 20 s of faint noise with an empty one."""
    write_stream(folder / "test.wav")
    events = [{"kind": "keyword", "label": str(c), "start_s": a, "end_s": b} for c, (a, b) in enumerate(TONES)]
    (folder / "test.json").write_text(json.dumps({"events": events}))
    noise = 1e-3 * np.random.default_rng(1).standard_normal(20 * SAMPLE_RATE)
    sf.write(folder / "free.wav", noise.astype(np.float32), SAMPLE_RATE)
    (folder / "free.json").write_text(json.dumps({"events": []}))
    return folder / "test.wav", folder / "free.wav"


def test_int8_weights_that_keep_the_figures_are_written_beside_the_graph(checkpoint, tmp_path, capsys):
    keywords, free = write_streams(tmp_path)
    main(["export", str(checkpoint), "--out", str(tmp_path / "kws.onnx"), "--quantize", "--streams", str(keywords),
          str(free)])
    out, err = capsys.readouterr()
    assert "int8 weights: detection 100.0% (3/3)" in out and "within 0.5 point" in out
    assert "int8 is checked at the defaults" in err
    exact, int8 = (OnnxAudioGraph(tmp_path / name) for name in ("kws.onnx", "kws.int8.onnx"))
    wave, _ = sf.read(keywords, dtype="float32")
    assert np.abs(exact.stream([wave]) - int8.stream([wave])).max() < 0.2  # close, not equal
    assert int8.description == exact.description


@pytest.mark.parametrize(("int8", "message"), [
    (StreamFigures(hits=198, keywords=200, false_alarms=2, keyword_free_s=3600), "int8 loses 1.0 points"),
    (StreamFigures(hits=200, keywords=200, false_alarms=8, keyword_free_s=3600), "past 7.2/h"),
])
def test_int8_weights_that_lose_detections_or_raise_false_alarms_are_refused_with_the_loss(int8, message):
    exact = StreamFigures(hits=200, keywords=200, false_alarms=2, keyword_free_s=3600)
    assert check_quantised(exact, StreamFigures(200, 200, 7, 3600), "m.ckpt").startswith("int8 weights")
    with pytest.raises(SpeechRNNError, match=message) as err:
        check_quantised(exact, int8, "checkpoint m.ckpt")
    assert "checkpoint m.ckpt is not quantised" in str(err.value)
    assert poisson_interval(2)[1] == pytest.approx(7.2247, abs=1e-4)


def user_error(capsys, argv: list) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    assert exit_.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


def test_quantize_needs_the_whole_graph_and_its_test_streams(checkpoint, tmp_path, capsys):
    keywords, free = write_streams(tmp_path)
    (tmp_path / "free.json").unlink()
    cases = [(["--format", "onnx-step"], "use --format onnx"), ([], "--quantize needs --streams"),
             (["--streams", keywords, tmp_path / "none.wav"], "none.wav does not exist"),
             (["--streams", keywords, free], "has no timeline")]
    for extra, message in cases:
        assert message in user_error(capsys, ["export", checkpoint, "--out", tmp_path / "kws.onnx", "--quantize", *extra])
    assert "add --quantize" in user_error(capsys, ["export", checkpoint, "--out", tmp_path / "kws.onnx", "--streams",
                                                   keywords, keywords])
    assert not (tmp_path / "kws.onnx").exists()
