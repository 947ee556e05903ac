"""Files speechrnn writes: strict JSON, written whole, never over an input."""

import math

import lightning as L
from strict_json import strict_json

from speechrnn.cli import main, write_run_results
from speechrnn.files import write_json
from speechrnn.models.classifier import SpeechClassifier


def test_results_with_an_empty_bucket_are_strict_json_that_compare_reads(tmp_path, tone_data, capsys):
    buckets = [20, 40, 1000]  # tones last 11-61 frames: nothing reaches 1000
    model = SpeechClassifier(labels=tone_data.labels, input_size=tone_data.feature_dim, hidden_size=8,
                             length_buckets=buckets)
    tone_data.length_buckets = buckets
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    accuracy = trainer.test(model, datamodule=tone_data, verbose=False)[0]["test/acc"]
    (tmp_path / "run").mkdir()
    path = write_run_results(tmp_path / "run", model, trainer, accuracy, "")
    results = strict_json(path)
    assert results["test"]["buckets"][-1] == ["1000-inf", 0, None]
    main(["compare", str(tmp_path / "run"), "--plot", str(tmp_path / "c.png")])
    row = next(line for line in capsys.readouterr().out.splitlines() if "1000-inf" in line)
    assert row.split()[2:] == ["-", "(0)"]


def test_write_json_writes_null_for_non_finite_floats_and_leaves_no_temporary_file(tmp_path):
    path = write_json(tmp_path / "r.json", {"a": [math.nan, 1.5, (math.inf, -math.inf)], "b": {"c": 2}})
    assert strict_json(path) == {"a": [None, 1.5, [None, None]], "b": {"c": 2}}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
