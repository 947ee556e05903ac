"""Distillation: the student also learns the averaged, softened posteriors of trained teachers.

An ensemble of seeds scores better on unseen speakers than any of its members (docs/speakers.md),
and its averaged posteriors say which other digits a clip resembles, which a one-hot target does
not (Hinton et al. 2015). :class:`Distillation` loads the teachers' checkpoints when the fit
starts and hands the classifier a :class:`SoftTargets`; its training loss becomes
``(1 - weight) CE + weight T^2 KL(teachers' posteriors at T || student's at T)`` on the same
(augmented) batch. The teachers are not part of the model: its checkpoint holds the student only.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechrnn.batch import Batch
from speechrnn.checkpoint import load_checkpoint
from speechrnn.errors import SpeechRNNError


@dataclass
class SoftTargets:
    """The teachers and how much their posteriors weigh in the student's loss."""

    teachers: list[nn.Module]
    weight: float
    temperature: float

    def loss(self, hard_loss: Tensor, logits: Tensor, batch: Batch) -> Tensor:
        """``hard_loss`` (cross-entropy on the labels) mixed with the distillation term for ``logits`` ``(B, C)``."""
        with torch.no_grad():
            target = torch.stack([teacher(batch.feats, batch.lengths) for teacher in self.teachers])
            target = (target / self.temperature).softmax(-1).mean(0)  # (B, C)
        soft = F.kl_div((logits / self.temperature).log_softmax(-1), target, reduction="batchmean")
        return (1 - self.weight) * hard_loss + self.weight * self.temperature**2 * soft


class Distillation(L.Callback):
    """``teachers``: checkpoints of the same vocabulary and features (e.g. other seeds' best of the
    same fold); ``weight`` in (0, 1]: the distillation term's share of the loss; ``temperature``
    > 0 softens both posteriors (2-4 is usual)."""

    def __init__(self, teachers: list[str], weight: float = 0.5, temperature: float = 2.0) -> None:
        if not teachers or not 0 < weight <= 1 or not temperature > 0:
            raise SpeechRNNError(f"Distillation needs one or more teachers, a weight in (0, 1] and a temperature "
                                 f"above 0; got teachers={teachers}, weight={weight}, temperature={temperature}")
        self.paths, self.weight, self.temperature = list(teachers), weight, temperature

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.hparams.task != "keyword":
            raise SpeechRNNError(f"Distillation teaches one label per utterance; this model's task is "
                                 f"{pl_module.hparams.task!r}: drop the Distillation callback")
        teachers = []
        features = getattr(trainer.datamodule, "features", None)  # the student's batches' feature settings
        for path in self.paths:
            checkpoint = load_checkpoint(path)
            if list(checkpoint.model_args["labels"]) != list(pl_module.labels) or \
                    checkpoint.model_args["input_size"] != pl_module.hparams.input_size or \
                    (features is not None and checkpoint.features != features):
                raise SpeechRNNError(f"teacher {path} has other labels or features than the model it teaches "
                                     f"({checkpoint.model_args['labels']}, {checkpoint.features}); pass teachers "
                                     f"trained on the same data config")
            teachers.append(checkpoint.model().eval().requires_grad_(False).to(pl_module.device))
        pl_module.soft_targets = SoftTargets(teachers, self.weight, self.temperature)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.soft_targets = None
