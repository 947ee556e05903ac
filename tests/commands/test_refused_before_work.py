"""Output paths and numbers a command cannot use end in one line and exit 2 before any work.

The checkpoint here is not one: a command that loaded it (or read audio) before checking its
arguments would fail with another message.
"""

import numpy as np
import pytest
import soundfile as sf

from speechrnn.cli import main
from tones import SAMPLE_RATE


@pytest.fixture
def inputs(tmp_path):
    """``(ckpt, wav)``: a file posing as a checkpoint, and a recording, both to be left as they are."""
    ckpt, wav = tmp_path / "model.ckpt", tmp_path / "a.wav"
    ckpt.write_bytes(b"not loaded")
    sf.write(wav, np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    return ckpt, wav


def refused(capsys, argv: list) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and err.startswith("speechrnn: error: ") and len(err.splitlines()) == 1, err
    assert out == ""  # nothing scored, nothing printed
    return err


@pytest.mark.parametrize(("argv", "message"), [
    (["predict", "{ckpt}", "{wav}", "--json", "{tmp}"], "--json {tmp} is a folder"),
    (["predict", "{ckpt}", "{wav}", "--json", "{wav}"], "--json {wav} is also an input"),
    (["predict", "{ckpt}", "{wav}", "--top-k", "-3"], "--top-k: -3 is not a whole number >= 1"),
    (["predict", "{ckpt}", "{wav}", "--top-k", "0"], "--top-k: 0 is not a whole number >= 1"),
    (["evaluate", "{ckpt}", "--json", "{wav}/x.json"], "lies under {wav}, which is a file"),
    (["evaluate", "{ckpt}", "--plot", "{tmp}/acc.xyz"], "--plot {tmp}/acc.xyz: cannot write a .xyz file"),
    (["evaluate", "{ckpt}", "--json", "{tmp}/r.json", "--confusion", "{tmp}/r.json"], "is also an input"),
    (["stream", "{ckpt}", "{wav}", "--plot", "{tmp}/s.xyz"], "cannot write a .xyz file"),
    (["stream", "{ckpt}", "{wav}", "--posteriors", "{wav}"], "--posteriors {wav} is also an input"),
    (["stream", "{ckpt}", "{wav}", "--posteriors", "{ckpt}"], "--posteriors {ckpt} is also an input"),
    (["export", "{ckpt}", "--out", "{ckpt}"], "--out {ckpt} is also an input"),
    (["export", "{ckpt}", "--out", "{tmp}/kws.onnx", "--quantize"], "kws.int8.onnx is a folder"),
    (["gradients", "{ckpt}", "--out", "{tmp}/g.xyz"], "cannot write a .xyz file"),
], ids=lambda value: value if isinstance(value, str) else " ".join(value[:1] + value[3:]))
def test_unusable_outputs_and_numbers_are_refused_before_any_work(tmp_path, inputs, capsys, argv, message):
    ckpt, wav = inputs
    (tmp_path / "kws.int8.onnx").mkdir()
    names = {"ckpt": ckpt, "wav": wav, "tmp": tmp_path}
    err = refused(capsys, [arg.format(**names) for arg in argv])
    assert message.format(**names) in err
    assert ckpt.read_bytes() == b"not loaded" and sf.info(wav).frames == SAMPLE_RATE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "kws.int8.onnx", "model.ckpt"]
