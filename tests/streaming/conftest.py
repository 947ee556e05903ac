"""The tone spotter the streaming tests share: trained once per test session."""

import pytest

from pipelines.configs import trainer_args
from speechrnn.cli import main
from tones import SAMPLE_RATE

CONFIGS = "configs"


def fit_tones(root, background: bool):
    """A one-layer GRU with pooling: last and causal normalisation, fitted on the tone corpus."""
    main(["fit", *trainer_args(f"{CONFIGS}/trainer/cpu.yaml"), "--config", f"{CONFIGS}/model/gru.yaml",
          "--data", "tones.ToneDataModule", "--data.data_root", str(root / "data"),
          "--data.background", str(background).lower(), "--data.per_class", "24",
          "--data.sample_rate", str(SAMPLE_RATE),
          "--data.cache_dir", str(root / "cache"), "--run_dir", str(root / "run"), "--trainer.max_epochs", "40", "--model.lr", "0.01",
          "--trainer.logger", "false", "--trainer.enable_progress_bar", "false", "--test_after_fit", "false",
          "--model.hidden_size", "16", "--model.num_layers", "1", "--model.pooling", "last",
          "--model.normalisation", "causal"])
    return root / "run/checkpoints/last.ckpt"


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """The tone spotter: three tones and a background class of silence and noise."""
    return fit_tones(tmp_path_factory.mktemp("stream"), background=True)


@pytest.fixture(scope="session")
def checkpoint_without_background(tmp_path_factory):
    return fit_tones(tmp_path_factory.mktemp("stream-nobg"), background=False)
