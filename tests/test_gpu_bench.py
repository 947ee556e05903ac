"""The GPU benchmark's code, run small on the CPU (its figures need a GPU; see the README)."""

import json
import math

from benchmarks.gpu_bench import main
from tones import write_fsdd_recordings


def test_the_speech_commands_sized_epoch_and_the_scan_table_run_small_on_the_cpu(tmp_path):
    assert main(["--device", "cpu", "--sections", "speech_commands_size", "scan", "--clips", "130",
                 "--lengths", "16", "24", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "gpu_bench.json").read_text())
    epoch = results["speech_commands_size"]
    assert epoch["clips"] == 130 and epoch["steps_per_epoch"] == 3  # batches of 64, the last one partial
    assert math.isfinite(epoch["clips_per_s"]) and epoch["clips_per_s"] > 0
    for size in results["scan"]["sizes"].values():
        assert set(size["step_s"]) == {"rnn", "gru", "lstm", "mingru"}
        assert all(len(times) == 2 and min(times) > 0 for times in [*size["step_s"].values(),
                                                                     *size["scan_alone_s"].values()])
    assert "mingru speed-up over the fastest cuDNN cell" in (tmp_path / "gpu_bench.md").read_text()


def test_the_fsdd_paths_train_the_same_utterances_small_on_the_cpu(tmp_path):
    write_fsdd_recordings(tmp_path / "data" / "fsdd" / "recordings", ("alice", "bob"), range(12))
    assert main(["--device", "cpu", "--sections", "fsdd", "--fsdd_root", str(tmp_path / "data"), "--repeats", "1",
                 "--workers", "0", "--out", str(tmp_path / "out")]) == 0
    fsdd = json.loads((tmp_path / "out" / "gpu_bench.json").read_text())["fsdd"]
    assert fsdd["train_utterances"] == 40  # indices 10-11 of 2 speakers x 10 digits
    epochs = fsdd["epoch_s"]
    assert len(epochs["ours"]) == 2 and len(epochs["baseline"]) == 2 and len(epochs["model_alone"]) == 2
    for key in ("ours_utt_per_s", "baseline_utt_per_s", "model_alone_utt_per_s"):
        assert math.isfinite(fsdd[key]) and fsdd[key] > 0
