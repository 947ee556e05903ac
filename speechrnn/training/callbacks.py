"""Lightning callbacks: the feature statistics handed to the model, gradient stability, and the
gradient through time.

``speechrnn fit`` always adds :class:`FeatureStatistics` and :class:`TrainingStability` (its
``--stability.*`` flags tune it); :class:`GradientDecay` is added by configs that want the curve
(the long-range experiment); :class:`InitialWeights` by a fit that fine-tunes another's model.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor
from torch.optim.swa_utils import get_ema_multi_avg_fn

from speechrnn.errors import TrainingDiverged
from speechrnn.models.gradient_decay import decay_factor, input_gradient_norms
from speechrnn.training import tracking


class FeatureStatistics(L.Callback):
    """Copies the data module's feature statistics into the model's buffers when a fit starts.

    The model normalises raw MFCCs by its normaliser's ``mean`` and ``std``, buffers that every
    checkpoint carries; the data module knows them once its ``setup`` has read the training split. Lightning
    sets up the data module before the callbacks and the model, so a callback's ``setup`` is where
    both are ready, and neither has to reach into the other. A resumed fit restores the checkpoint's
    buffers afterwards. A Trainer built by hand needs it in its callbacks to normalise.
    """

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit" and trainer.datamodule is not None:
            mean, std = trainer.datamodule.feature_stats()  # (F,) each
            pl_module.normaliser.mean.copy_(mean)
            pl_module.normaliser.std.copy_(std)


class InitialWeights(L.Callback):
    """Starts a fit from the weights (normaliser statistics included) of another run's checkpoint.

    Unlike ``--ckpt_path``, which resumes that run's epochs and optimizer, this fine-tunes: a fresh
    optimizer, epoch count and early-stopping budget, e.g. on more data. Runs after
    :class:`FeatureStatistics`, so the statistics the weights were trained with are kept.
    """

    def __init__(self, checkpoint: str) -> None:
        self.checkpoint = checkpoint

    def on_fit_start(self, trainer, pl_module) -> None:
        state = torch.load(self.checkpoint, map_location=pl_module.device, weights_only=True)["state_dict"]
        pl_module.load_state_dict(state)


class WeightEMA(WeightAveraging):
    """Validates, checkpoints and tests an exponential moving average of the weights.

    Lightning's :class:`WeightAveraging` keeps the average after every step (``decay`` per step,
    so it spans about ``1 / (1 - decay)`` steps) and swaps it in for validation and into every
    checkpoint, so early stopping and the best checkpoint judge the averaged model, and that is
    the model ``evaluate``, ``stream`` and ``export`` load.
    """

    def __init__(self, decay: float = 0.995) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"WeightEMA's decay must lie between 0 and 1, got {decay}")
        super().__init__(multi_avg_fn=get_ema_multi_avg_fn(decay))

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        # A checkpoint's ``state_dict`` holds the average. Lightning's callback would load the
        # current, unaveraged weights into the model whenever its average exists, as it does when
        # the fit's Trainer goes on to test its best checkpoint; only a resumed fit wants them.
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class TrainingStability(L.Callback):
    """Gradient norms, gradient-norm spikes and non-finite losses; stops a run that meets NaN.

    A spike is a norm ``spike_factor`` times its running mean (weight ``norm_decay`` on the past)
    or a non-finite one: an explosion. The counters stay on the device, so no step waits for the
    GPU; once per epoch they are read, and a run that met a non-finite loss stops with an error
    before any checkpoint of that epoch is written, so no result is ever computed from NaN.

    Args:
        spike_factor: how many times its running mean a gradient norm must be to count as a spike.
        norm_decay: the weight of the past in that running mean.
    """

    def __init__(self, spike_factor: float = 10.0, norm_decay: float = 0.9) -> None:
        self.spike_factor = spike_factor
        self.norm_decay = norm_decay
        self.counters: dict[str, Tensor] = {}

    def _reset(self, device: torch.device) -> None:
        zeros = {"nonfinite_losses": 0, "grad_spikes": 0, "steps": 0, "max_grad_norm": 0.0,
                 "mean_grad_norm": float("nan")}
        self.counters = {name: torch.tensor(value, device=device) for name, value in zeros.items()}

    def on_fit_start(self, trainer, pl_module) -> None:
        self._reset(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.counters["nonfinite_losses"] += ~torch.isfinite(loss.detach())
        pl_module.log("train/nonfinite_losses", self.counters["nonfinite_losses"].float(), on_step=True,
                      on_epoch=False)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        norms = [p.grad.detach().norm() for p in pl_module.parameters() if p.grad is not None]
        norm = torch.stack(norms).norm()  # before clipping
        pl_module.log("train/grad_norm", norm, on_step=True, on_epoch=False)
        self.count(norm)
        pl_module.log("train/grad_spikes", self.counters["grad_spikes"].float(), on_step=True, on_epoch=False)

    def count(self, norm: Tensor) -> None:
        """Update the counters with one step's gradient norm."""
        if not self.counters:
            self._reset(norm.device)
        c = self.counters
        finite = torch.isfinite(norm)
        c["steps"] += 1
        c["grad_spikes"] += ~finite | (norm > self.spike_factor * c["mean_grad_norm"])  # NaN mean: no spike yet
        c["max_grad_norm"].copy_(torch.where(finite, torch.maximum(c["max_grad_norm"], norm), c["max_grad_norm"]))
        previous = torch.where(torch.isnan(c["mean_grad_norm"]), norm, c["mean_grad_norm"])
        updated = self.norm_decay * previous + (1 - self.norm_decay) * norm
        c["mean_grad_norm"].copy_(torch.where(finite, updated, c["mean_grad_norm"]))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        bad = int(self.counters["nonfinite_losses"])
        if bad:
            raise TrainingDiverged(
                f"training met {bad} non-finite loss(es) by epoch {trainer.current_epoch}; the run is stopped "
                "and reports nothing. Lower model.lr, keep trainer.gradient_clip_val on, or check the "
                "data for corrupt audio", trainer.current_epoch)

    @property
    def stability(self) -> dict:
        """Non-finite losses, gradient-norm spikes, the largest norm and the steps taken, as numbers."""
        c = self.counters
        return {"nonfinite_losses": int(c["nonfinite_losses"]), "grad_spikes": int(c["grad_spikes"]),
                "max_grad_norm": float(c["max_grad_norm"]), "steps": int(c["steps"])}


class GradientDecay(L.Callback):
    """Logs the gradient-through-time curve of the first validation batch, at the start and after
    every ``every_n_epochs`` training epochs: ``grad/decay_per_step``, and a line plot in W&B."""

    def __init__(self, every_n_epochs: int = 1) -> None:
        self.every_n_epochs = every_n_epochs
        self.history: list[tuple[int, float]] = []  # (epoch, decay factor)

    def _measure(self, trainer, model, tag: str) -> None:
        batch = next(iter(trainer.datamodule.val_dataloader()))
        batch = model.transfer_batch_to_device(batch, model.device, 0)
        norms = input_gradient_norms(model, batch.feats, batch.lengths, batch.targets)
        factor = decay_factor(norms)
        self.history.append((trainer.current_epoch, factor))
        for logger in trainer.loggers:
            logger.log_metrics({"grad/decay_per_step": factor}, step=trainer.global_step)
        tracking.log_gradient_curve(trainer, norms, tag)

    def on_train_start(self, trainer, pl_module) -> None:
        self._measure(trainer, pl_module, "init")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._measure(trainer, pl_module, f"epoch{trainer.current_epoch + 1}")
