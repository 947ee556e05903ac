import signal
from pathlib import Path

import pytest
import torch
import yaml

from speechrnn.cli import main

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def fit(tmp_path, *extra):
    main(["fit", "--config", str(CONFIGS / "model/gru.yaml"), "--config", str(CONFIGS / "trainer/cpu.yaml"),
          "--data", "tones.ToneDataModule", "--data.data_root", str(tmp_path / "data"),
          "--data.cache_dir", str(tmp_path / "cache"), "--run_dir", str(tmp_path / "run"),
          "--trainer.enable_progress_bar=false", "--model.hidden_size=16", *extra])


def test_an_interrupted_run_resumes_at_the_epoch_it_stopped(tmp_path):
    epochs = tmp_path / "epochs.txt"
    interrupting = {"class_path": "tones.EpochLog", "init_args": {"path": str(epochs), "stop_at": 2}}
    checkpointing = yaml.safe_load((CONFIGS / "trainer/cpu.yaml").read_text())["trainer"]["callbacks"]
    callbacks = tmp_path / "callbacks.yaml"
    callbacks.write_text(yaml.safe_dump({"trainer": {"callbacks": [*checkpointing, interrupting]}}))
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):  # Lightning's graceful shutdown on Ctrl+C
            fit(tmp_path, "--config", str(callbacks), "--trainer.max_epochs=4")
    finally:
        signal.signal(signal.SIGINT, handler)
    assert epochs.read_text().split() == ["0", "1"]
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file()
    stopped = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert stopped["epoch"] == 1

    resumed_log = {"class_path": "tones.EpochLog", "init_args": {"path": str(epochs), "stop_at": -1}}
    callbacks.write_text(yaml.safe_dump({"trainer": {"callbacks": [*checkpointing, resumed_log]}}))
    main(["fit", "--config", str(run / "config.yaml"), "--config", str(callbacks), "--ckpt_path", "last"])
    assert epochs.read_text().split() == ["0", "1", "2", "3"]
    final = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert final["global_step"] == 2 * stopped["global_step"]
