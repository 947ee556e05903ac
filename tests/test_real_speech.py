"""Real speech: FSDD recordings, trained the way the README says. Slow (minutes): `make test-slow`.

Needs FSDD under ``$SPEECHRNN_DATA_ROOT/fsdd/recordings`` (or ``../shared/data`` beside the clone).
"""

import json
import os
from pathlib import Path

import pytest

from pipelines.configs import recipe_args, trainer_args
from speechrnn.cli import main

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"


def fsdd_root() -> Path:
    root = Path(os.environ.get("SPEECHRNN_DATA_ROOT", ROOT.parent / "shared/data"))
    assert (root / "fsdd/recordings").is_dir(), (
        f"FSDD not found under {root}; set SPEECHRNN_DATA_ROOT to the folder holding fsdd/recordings")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_cells_reach_97_percent_on_fsdd(tmp_path, cell):
    run = tmp_path / "run"
    main(["fit", *recipe_args(CONFIGS / "data/fsdd.yaml"), "--config", str(CONFIGS / f"model/{cell}.yaml"),
          *trainer_args(CONFIGS / "trainer/cpu.yaml"), "--data.init_args.data_root", str(fsdd_root()),
          "--data.init_args.cache_dir", str(tmp_path / "cache"), "--run_dir", str(run),
          "--trainer.enable_progress_bar=false"])
    accuracy = json.loads((run / "results.json").read_text())["test"]["accuracy"]
    assert accuracy >= 0.97  # chance is 10%
