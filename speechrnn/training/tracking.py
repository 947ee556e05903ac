"""Everything Weights & Biases: offline by default, run naming, and the charts speechrnn adds.

This is the one module that imports ``wandb``, and only when a W&B logger is in use. Runs are
offline whenever no API key is configured, so nothing prompts or blocks.
"""

from __future__ import annotations

import netrc
import os
import sys

import lightning as L
import yaml
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor

from speechrnn.plots import bucket_centres


def has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def default_wandb_mode() -> None:
    """Set ``WANDB_MODE=offline`` unless the user chose a mode or has logged in."""
    if "WANDB_MODE" not in os.environ and not has_wandb_key():
        os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")


def describe_run(init_args, model, dataset: str, task: str, hop_ms: float | None) -> None:
    """Fill in the W&B run name, group and tags that ``init_args`` (a WandbLogger's) leaves unset.

    The group is the dataset and task, so runs of every encoder on the same data line up in one
    workspace; the name says the encoder and frame hop; tags hold encoder, dataset and task.
    Checkpoints are uploaded only online (Lightning refuses ``log_model`` with ``offline``);
    offline they stay in ``run_dir/checkpoints``.
    """
    hop = f"-hop{hop_ms:g}ms" if hop_ms else ""
    direction = "-bi" if model.get("bidirectional") else ""
    init_args.name = init_args.get("name") or f"{model.cell}{direction}-{model.num_layers}x{model.hidden_size}{hop}"
    init_args.group = init_args.get("group") or f"{dataset}-{task}"
    init_args.tags = init_args.get("tags") or [model.cell, dataset, task]
    if os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        init_args.log_model = False


class SaveConfigToWandb(SaveConfigCallback):
    """Also put the resolved config into the W&B run (key ``cli``), so the run says how to repeat it."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        if isinstance(trainer.logger, WandbLogger):
            resolved = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
            trainer.logger.log_hyperparams({"cli": resolved})


class LengthAccuracyCharts(L.Callback):
    """After each validation and test, the bucket table and a line of accuracy against length.

    Reads the table the model's metrics left in ``pl_module.results[split]``; does nothing
    unless the trainer logs to W&B.
    """

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._log(trainer, pl_module, "val")

    def on_test_end(self, trainer, pl_module) -> None:
        self._log(trainer, pl_module, "test")

    def _log(self, trainer, pl_module, split: str) -> None:
        if not isinstance(trainer.logger, WandbLogger) or split not in pl_module.results:
            return
        wandb = _wandb()
        report = pl_module.results[split]
        centres = bucket_centres(report["edges"], report["buckets"])
        data = [[name, centre, count, acc] for (name, count, acc), centre in zip(report["buckets"], centres)]
        table = wandb.Table(columns=["bucket", "length_frames", "count", "accuracy"], data=data)
        chart = wandb.plot.line(table, "length_frames", "accuracy", title=f"{split} accuracy against sequence length")
        trainer.logger.experiment.log({f"{split}/acc_by_length": table, f"{split}/acc_by_length_plot": chart,
                                       "trainer/global_step": trainer.global_step})


def log_gradient_curve(trainer, norms: Tensor, tag: str) -> None:
    """``||d loss / d x_t||`` against distance from the readout, as a W&B line plot (W&B runs only)."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            wandb = _wandb()
            table = wandb.Table(data=[[d, float(n)] for d, n in enumerate(norms.tolist())],
                                columns=["distance", "grad_norm"])
            logger.experiment.log({f"grad/through_time_{tag}": wandb.plot.line(
                table, "distance", "grad_norm", title=f"||d loss / d x_t|| ({tag})")})


def finish_run(exit_code: int = 0) -> None:
    """Close the current W&B run, if any, so its files are written before the next run starts.

    ``exit_code`` 1 marks it failed in W&B (a diverged sweep run).
    """
    wandb = sys.modules.get("wandb")  # never imported: no run to close (a fit with no W&B logger)
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)


def _wandb():
    """The ``wandb`` module, imported only when a W&B run is in use (it is slow to import)."""
    import wandb

    return wandb
