"""The GPU benchmark's code, run small on the CPU (its figures need a GPU; see the README)."""

import json
import math

from benchmarks.gpu_bench import main


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
