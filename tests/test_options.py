"""Every numeric option of every command and pipeline refuses 0, -1, nan, inf and 1e30 where they
are outside its range, naming the option, the value and the range, before any work."""

import importlib

import pytest

from speechrnn.errors import SpeechRNNError
from speechrnn.options import Range, check, number

ALL = ("0", "-1", "nan", "inf", "1e30")
NEGATIVE_OR_NOT_FINITE = ("-1", "nan", "inf")

# (module whose main(argv) runs it, the arguments before the option, option, values it refuses)
OPTIONS = [
    ("speechrnn.commands.predict", ["m.ckpt", "a.wav"], "--top-k", ALL),
    ("speechrnn.commands.evaluate", ["m.ckpt"], "--batch-size", ALL),
    ("speechrnn.commands.stream", ["m.ckpt", "a.wav"], "--chunk-s", ALL),
    ("speechrnn.commands.stream", ["m.ckpt", "a.wav"], "--threshold", ALL),
    ("speechrnn.commands.stream", ["m.ckpt", "a.wav"], "--smooth-s", NEGATIVE_OR_NOT_FINITE),
    ("speechrnn.commands.stream", ["m.ckpt", "a.wav"], "--refractory-s", NEGATIVE_OR_NOT_FINITE),
    ("speechrnn.commands.stream", ["m.ckpt", "--mic"], "--seconds", ("0", "-1", "nan", "inf")),
    ("speechrnn.commands.gradients", ["m.ckpt"], "--frames", ALL),
    ("speechrnn.commands.gradients", ["m.ckpt"], "--batch-size", ALL),
    ("speechrnn.commands.gradients", ["m.ckpt"], "--seed", (*NEGATIVE_OR_NOT_FINITE, "1e30")),
    ("pipelines.loso", [], "--epochs", ALL),
    ("pipelines.loso", [], "--folds", ALL),
    ("pipelines.loso", [], "--train_speakers", ALL),
    ("pipelines.loso", [], "--distill_weight", ALL),
    ("pipelines.loso", [], "--distill_temperature", ALL),
    ("pipelines.loso_ensemble", ["run", "--out", "ens"], "--tta-warps", ALL),
    ("pipelines.loso_ensemble", ["run", "--out", "ens"], "--tta-tempos", (*ALL, "0.001")),
    ("pipelines.streaming", [], "--epochs", ALL),
    ("pipelines.streaming", [], "--mining-rounds", (*NEGATIVE_OR_NOT_FINITE, "1e30")),
    ("pipelines.streaming", [], "--mining-threshold", ALL),
    ("pipelines.demo", [], "--epochs", ALL),
    ("pipelines.sweep", [], "--jobs", ALL),
    ("pipelines.piper_digits", ["--out", "digits"], "--per-digit", ALL),
    ("pipelines.piper_digits", ["--out", "digits"], "--seed", (*NEGATIVE_OR_NOT_FINITE, "1e30")),
    ("pipelines.streaming_curves", ["--out", "c.png", "a=r.json:gru", "--target", "1"], "", NEGATIVE_OR_NOT_FINITE),
]


@pytest.mark.parametrize(("module", "before", "option", "values"), OPTIONS,
                         ids=[f"{module.rsplit('.', 1)[1]} {option}" for module, _, option, _ in OPTIONS])
def test_each_numeric_option_refuses_values_outside_its_range(tmp_path, monkeypatch, module, before, option, values):
    monkeypatch.chdir(tmp_path)  # nothing may be written; if it were, it lands here
    main = importlib.import_module(module).main
    for value in values:
        with pytest.raises(SpeechRNNError, match=rf"{option}: {value} is not (a|a whole) number") as refused:
            main([*before, *([option] if option else []), value])
        assert "\n" not in str(refused.value)
    assert list(tmp_path.iterdir()) == []


def test_a_range_names_its_bounds_and_refuses_what_lies_outside():
    assert str(Range(0, 1, low_open=True)) == "a number in (0, 1]"
    assert str(Range(1, integer=True)) == "a whole number >= 1"
    with pytest.raises(SpeechRNNError, match=r"floor_db is inf; it must be a number > 0"):
        check("floor_db", float("inf"), Range(0, low_open=True))
    assert number(0, 1)("0.5") == 0.5 and number(1, integer=True)("3") == 3
