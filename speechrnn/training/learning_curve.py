"""Per-epoch learning curve of a fit, and how its epoch budget was spent (early stop or the cap)."""

from __future__ import annotations

import math

import lightning as L
from lightning.pytorch.callbacks import Callback

CURVE_METRICS = {"val_acc": "val/acc", "train_loss": "train/loss_epoch"}  # record key: logged metric


class LearningCurve(Callback):
    """Keeps ``val/acc`` and the epoch's mean ``train/loss`` after every training epoch.

    The same numbers go to the logger (W&B) as logged metrics; this copy lets a pipeline write them
    next to a run's result without reading the logger back.
    """

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # validation ran inside this epoch, so its metrics are already in callback_metrics
        metrics = trainer.callback_metrics
        self.epochs.append({key: float(metrics[name]) if name in metrics else math.nan
                            for key, name in CURVE_METRICS.items()})

    def summary(self, max_epochs: int) -> dict:
        """Epochs used, whether they reached ``max_epochs``, the best epoch (1-based) and the curve."""
        accs = [epoch["val_acc"] for epoch in self.epochs]
        scored = [(acc, -i) for i, acc in enumerate(accs) if math.isfinite(acc)]
        best = -max(scored)[1] + 1 if scored else None  # first epoch of the best score, as the checkpoint keeps
        return {"epochs": len(self.epochs), "hit_cap": len(self.epochs) >= max_epochs, "best_epoch": best,
                "curve": {key: [epoch[key] for epoch in self.epochs] for key in CURVE_METRICS}}
