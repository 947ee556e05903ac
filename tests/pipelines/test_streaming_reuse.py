"""``make streaming``'s reuse: figures are kept only for the checkpoint they were measured on."""

import json
import shutil

import yaml

from pipelines import streaming
from speechrnn.checkpoint import load_checkpoint
from speechrnn.files import file_digest
from tones import tone_stream_config

SENTINEL = 0.123  # a detection rate no tiny spotter reports by chance: it marks figures kept from before


def mark_figures(summary) -> None:
    results = json.loads(summary.read_text())
    results["cells"]["gru"]["test"]["detection_rate"] = SENTINEL
    summary.write_text(json.dumps(results))


def test_a_spotter_retrained_in_place_is_tuned_and_scored_again(tmp_path):
    (tmp_path / "stream.yaml").write_text(yaml.safe_dump(tone_stream_config(tmp_path)))
    out = tmp_path / "out"
    command = ["--out", str(out), "--cells", "gru", "--epochs", "1", "--data", str(tmp_path / "stream.yaml"),
               "--", "--model.hidden_size=8", "--trainer.enable_model_summary=false"]
    streaming.main(command)
    summary = out / "results.json"
    checkpoint = json.loads(summary.read_text())["cells"]["gru"]["checkpoint"]
    assert load_checkpoint(checkpoint).operating_point is not None
    mark_figures(summary)
    streaming.main(command)  # nothing changed: the figures are kept
    assert json.loads(summary.read_text())["cells"]["gru"]["test"]["detection_rate"] == SENTINEL

    shutil.rmtree(out / "gru")
    streaming.main(command)  # the same command retrains the spotter in place
    cells = json.loads(summary.read_text())["cells"]
    assert cells["gru"]["test"]["detection_rate"] != SENTINEL
    assert f"{100 * SENTINEL:.1f}%" not in (out / "table.md").read_text()
    retrained = load_checkpoint(checkpoint)
    assert retrained.operating_point is not None and retrained.operating_point.to_json() == cells["gru"]["detector"]
    assert cells["gru"]["checkpoint_sha256"] == file_digest(checkpoint)
