"""The config files a pipeline stacks for ``speechrnn fit``, the way ``make train`` stacks them.

- A trainer config (``configs/trainer/cpu.yaml``) stacks on ``base.yaml`` in its folder: the
  logger and callbacks every machine shares.
- A data config (``configs/data/fsdd.yaml``) holds only data-module keys; a corpus whose recipe
  also sets model keys has them in ``configs/experiment/<same name>.yaml``, stacked after it.
"""

from __future__ import annotations

from pathlib import Path

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
MODELS = sorted(path.stem for path in (CONFIGS / "model").glob("*.yaml"))  # the --cells a pipeline can train


def trainer_args(trainer_config: str | Path) -> list[str]:
    """``--config`` arguments for a trainer config, after the base it stacks on."""
    path = Path(trainer_config)
    return ["--config", str(path.parent / "base.yaml"), "--config", str(path)]


def recipe_args(data_config: str | Path) -> list[str]:
    """``--config`` arguments for a data config and its corpus's experiment file, if it has one."""
    path = Path(data_config)
    experiment = path.parent.parent / "experiment" / path.name
    return ["--config", str(path), *(["--config", str(experiment)] if experiment.is_file() else [])]
