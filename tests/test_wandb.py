"""An offline W&B run, checked through the files wandb writes (no account, no network, no mocks)."""

import json
import math
import struct
import time
from pathlib import Path

import pytest
from wandb.proto import wandb_internal_pb2

from pipelines.configs import trainer_args
from speechrnn.cli import main

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
BLOCK = 32768  # the .wandb file is a LevelDB-style log: 32 KiB blocks of checksummed chunks
HEADER = 7  # b":W&B", a 2-byte magic and a version byte


def records(path: Path):
    """Every protobuf Record in a ``run-<id>.wandb`` file, in order."""
    data, pos, pending = path.read_bytes(), HEADER, b""
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a chunk header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):  # a chunk still being written
            return
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    """A two-epoch fit logged to W&B offline: the run directory and its parsed records."""
    root = tmp_path_factory.mktemp("wandb")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    try:
        main(["fit", *trainer_args(CONFIGS / "trainer/cpu.yaml"), "--config", str(CONFIGS / "model/gru.yaml"),
              "--data", "tones.ToneDataModule", "--data.data_root", str(root / "data"),
              "--data.cache_dir", str(root / "cache"), "--data.length_buckets", "[30, 45]",
              "--run_dir", str(root / "run"), "--trainer.max_epochs", "2", "--trainer.log_every_n_steps", "1",
              "--trainer.enable_progress_bar", "false", "--model.hidden_size", "16", "--model.num_layers", "1"])
    finally:
        mp.undo()
    [run_dir] = (root / "run/wandb").glob("offline-run-*")
    [log] = run_dir.glob("run-*.wandb")
    deadline = time.monotonic() + 30
    while True:  # wandb's own process may still be writing the log when finish() has returned
        recs = list(records(log))
        if of_kind(recs, "exit") or time.monotonic() > deadline:
            return root / "run", run_dir, recs
        time.sleep(0.2)


def of_kind(recs, kind):
    return [getattr(r, kind) for r in recs if r.WhichOneof("record_type") == kind]


def history(recs) -> list[dict]:
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in h.item}
            for h in of_kind(recs, "history")]


def test_the_run_is_named_grouped_and_tagged_from_the_config(offline_run):
    _, _, recs = offline_run
    [run] = of_kind(recs, "run")
    assert run.display_name == "gru-1x16-hop10ms"
    assert run.run_group == "tones-keyword"
    assert list(run.tags) == ["gru", "tones", "keyword"]


def test_losses_and_accuracies_are_logged_per_epoch(offline_run):
    rows = history(offline_run[2])
    for key in ("train/loss_epoch", "train/acc", "val/loss", "val/acc", "val/acc_macro"):
        assert [row["epoch"] for row in rows if key in row] == [0, 1], key
    assert any("train/grad_norm" in row for row in rows)


def test_accuracy_per_length_bucket_is_logged_as_scalars_and_a_table(offline_run):
    run, run_dir, recs = offline_run
    rows = history(recs)
    test = json.loads((run / "results.json").read_text())["test"]
    [scalars] = [row for row in rows if "test/acc" in row]
    for name, count, accuracy in test["buckets"]:
        if count:
            assert scalars[f"test/acc_len_{name}"] == pytest.approx(accuracy)
    [logged] = [row for row in rows if "test/acc_by_length/path" in row]
    table = json.loads((run_dir / "files" / logged["test/acc_by_length/path"]).read_text())
    assert table["columns"] == ["bucket", "length_frames", "count", "accuracy"]
    assert [[name, count] for name, _, count, _ in table["data"]] == [row[:2] for row in test["buckets"]]
    for (_, _, count, logged_acc), (_, _, acc) in zip(table["data"], test["buckets"]):
        assert logged_acc is None if not count else logged_acc == pytest.approx(acc)
    assert not any(math.isnan(row[3]) for row in table["data"] if row[3] is not None)
    assert sum(1 for row in rows if "val/acc_by_length/path" in row) == 2  # each epoch, no sanity check


def test_a_line_plot_of_accuracy_against_length_is_declared(offline_run):
    panels = [json.loads(item.value_json) for config in of_kind(offline_run[2], "config")
              for item in config.update if "panel_type" in item.value_json]
    lines = [p["panel_config"] for p in panels if p["panel_config"]["panelDefId"] == "wandb/line/v0"]
    tables = {field["args"][0]["value"] for c in lines for field in c["userQuery"]["queryFields"][0]["fields"]
              if field["name"] == "summaryTable"}
    assert tables == {"test/acc_by_length_plot_table", "val/acc_by_length_plot_table"}
    assert all((c["fieldSettings"]["x"], c["fieldSettings"]["y"]) == ("length_frames", "accuracy") for c in lines)


def test_the_resolved_config_and_the_test_accuracy_are_stored(offline_run):
    run, _, recs = offline_run
    config = {item.key: json.loads(item.value_json) for c in of_kind(recs, "config") for item in c.update}
    assert config["cli"]["trainer"]["max_epochs"] == 2
    assert config["cli"]["data"]["class_path"] == "tones.ToneDataModule"
    assert config["labels"] == ["0", "1", "2"]
    summary = {item.key: json.loads(item.value_json) for s in of_kind(recs, "summary") for item in s.update}
    assert summary["test/acc"] == pytest.approx(json.loads((run / "results.json").read_text())["test"]["accuracy"])
    assert of_kind(recs, "exit"), "the run was finished, not left to end at interpreter exit"
