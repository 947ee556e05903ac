"""The LightningModule: normalise, encode, classify; accuracy overall and per length bucket."""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from speechrnn.batch import IGNORE_INDEX, Batch
from speechrnn.errors import SpeechRNNError
from speechrnn.metrics import DEFAULT_LENGTH_BUCKETS, Accuracy, LengthBucketAccuracy, bucket_names
from speechrnn.models.encoder import RecurrentEncoder
from speechrnn.models.heads import FrameHead, UtteranceHead
from speechrnn.models.memory_gates import GateInit
from speechrnn.models.normalisation import STREAMABLE, FeatureNormaliser, Normalisation
from speechrnn.models.streaming_step import StreamingStep
from speechrnn.models.transformer import TransformerEncoder


def build_encoder(input_size: int, cell: str, hidden_size: int, num_layers: int, bidirectional: bool,
                  dropout: float, nonlinearity: str, init: str, gate_init: GateInit,
                  gate_bias: float, chrono_frames: int | None):
    """The encoder behind the ``cell`` key: a recurrent cell, or the Transformer reference."""
    if cell == "transformer":
        return TransformerEncoder(input_size, hidden_size, num_layers, dropout)
    return RecurrentEncoder(input_size, cell, hidden_size, num_layers, bidirectional, dropout,
                            nonlinearity, init, gate_init, gate_bias, chrono_frames)


class SpeechClassifier(L.LightningModule):
    """A speech classifier built from one recurrent encoder and a softmax head.

    ``labels``, ``input_size``, ``task``, ``length_buckets`` and ``label_folding`` come from the
    data module (the CLI links them), so a checkpoint names its own vocabulary and features.

    Args:
        labels: class names, index = class id.
        input_size: feature dimension F.
        task: ``keyword`` (utterance head) or ``phones`` (frame head).
        length_buckets: bucket edges in frames for accuracy against sequence length.
        label_folding: labels merged for scoring (TIMIT 61 -> 39), or None.
        cell, hidden_size, num_layers, bidirectional, dropout, nonlinearity, init, gate_init,
        gate_bias, chrono_frames:
            see :class:`~speechrnn.models.encoder.RecurrentEncoder`; ``cell: transformer`` builds
            :class:`~speechrnn.models.transformer.TransformerEncoder` from ``hidden_size``,
            ``num_layers`` and ``dropout`` (it reads both directions by design).
        pooling: how the utterance head reads the states (``last`` | ``mean`` | ``attention``).
        normalisation, norm_prior_frames, norm_window_frames: ``global`` scales each feature by
            the training set's statistics; ``causal`` then by running statistics of the frames
            read so far (it streams); ``utterance_mean`` subtracts each utterance's own mean,
            ``utterance`` its mean and variance (they do not stream); see
            :mod:`speechrnn.models.normalisation`.
        lr, weight_decay: AdamW settings; ``lr_schedule`` ``cosine`` anneals over max_epochs.
    """

    def __init__(
        self,
        labels: list[str],
        input_size: int,
        task: Literal["keyword", "phones"] = "keyword",
        length_buckets: list[int] = DEFAULT_LENGTH_BUCKETS,
        label_folding: dict[str, str] | None = None,
        cell: Literal["rnn", "gru", "lstm", "mingru", "minlstm", "transformer"] = "gru",
        hidden_size: int = 128,
        num_layers: int = 2,
        bidirectional: bool = False,
        dropout: float = 0.0,
        nonlinearity: Literal["tanh", "relu"] = "tanh",
        init: Literal["default", "orthogonal", "identity"] = "default",
        gate_init: GateInit = "constant",
        gate_bias: float = 1.0,
        chrono_frames: int | None = None,
        pooling: Literal["last", "mean", "attention"] = "mean",
        normalisation: Normalisation = "global",
        norm_prior_frames: int = 10,
        norm_window_frames: int = 300,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        lr_schedule: Literal["cosine", "constant"] = "cosine",
    ) -> None:
        super().__init__()
        check_hyperparameters(labels=labels, hidden_size=hidden_size, num_layers=num_layers, dropout=dropout,
                              lr=lr, weight_decay=weight_decay)
        self.save_hyperparameters()
        self.labels = list(labels)
        num_classes = len(self.labels)
        # the training set's statistics are copied in before fit (``speechrnn.training.callbacks.FeatureStatistics``)
        self.normaliser = FeatureNormaliser(input_size, normalisation, norm_prior_frames, norm_window_frames)
        self.encoder = build_encoder(input_size, cell, hidden_size, num_layers, bidirectional,
                                     dropout, nonlinearity, init, gate_init, gate_bias, chrono_frames)
        if task == "phones":
            self.head = FrameHead(self.encoder.output_size, num_classes)
        else:
            self.head = UtteranceHead(self.encoder.output_size, num_classes, pooling)
        # keyed "<split>_acc": a ModuleDict key may not shadow nn.Module.train
        self.accuracy = torch.nn.ModuleDict({
            f"{split}_acc": Accuracy(IGNORE_INDEX)
            for split in ("train", "val", "test")
        })
        self.bucket_accuracy = torch.nn.ModuleDict({
            split: LengthBucketAccuracy(length_buckets, IGNORE_INDEX) for split in ("val", "test")
        })
        # rows are true classes; macro accuracy (mean recall over classes present) comes from it
        self.confusion = torch.nn.ModuleDict({
            split: MulticlassConfusionMatrix(num_classes, ignore_index=IGNORE_INDEX) for split in ("val", "test")
        })
        folding = label_folding or {}
        folded = sorted({folding.get(lab, lab) for lab in self.labels})
        fold_ids = [folded.index(folding.get(lab, lab)) for lab in self.labels]
        self.register_buffer("fold_ids", torch.tensor(fold_ids), persistent=False)
        self.folded_accuracy = torch.nn.ModuleDict({
            split: Accuracy(IGNORE_INDEX)
            for split in ("val", "test")
        }) if label_folding else None
        self.results: dict[str, dict] = {}  # per split: the bucket table and confusion of the last epoch
        # teachers' posteriors mixed into the training loss, set for a fit by the Distillation callback
        # (speechrnn.training.distillation); None: the labels alone
        self.soft_targets = None

    def forward(self, feats: Tensor, lengths: Tensor) -> Tensor:
        """Raw MFCC frames ``(B, T, F)`` -> logits ``(B, C)`` or ``(B, T, C)``."""
        x = self.normaliser(feats, lengths)
        weights = self.head.frame_weights(lengths, x.shape[1], x.dtype)  # mean pooling: the encoder sums
        return self.head(self.encoder(x, lengths, weights), lengths)

    def streaming_step(self, source: str = "the model") -> StreamingStep:
        """This model frame by frame (:class:`StreamingStep`), sharing its weights.

        Raises SpeechRNNError naming ``source`` when the answer at frame t reads later frames.
        """
        hp = self.hparams
        retrain = "retrain a unidirectional rnn, gru, lstm, mingru or minlstm with `--model.pooling last` to stream"
        reasons = [
            (hp.cell == "transformer", (
                "is a Transformer, which attends over the whole clip and has no state to carry between "
                f"chunks; {retrain}")),
            (hp.bidirectional, (
                "is bidirectional: its backward direction reads the clip from the end, which a stream does "
                f"not have; {retrain}")),
            (hp.task == "keyword" and hp.pooling != "last", (
                f"pools its states with {hp.pooling!r}, over the whole clip, so no single frame holds its "
                f"answer; {retrain}")),
            (hp.normalisation not in STREAMABLE, (
                f"normalises each utterance by its own statistics (normalisation: {hp.normalisation}), which "
                "need the whole utterance before its first frame; retrain with `--model.normalisation "
                "causal` (running statistics, computed in training as in the stream) or `global`")),
        ]
        for refused, reason in reasons:
            if refused:
                raise SpeechRNNError(f"{source} {reason}")
        return StreamingStep(self.normaliser, self.encoder, self.head, self.labels)

    def _loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        logits = self(batch.feats, batch.lengths)
        loss = F.cross_entropy(logits.flatten(0, -2), batch.targets.flatten(), ignore_index=IGNORE_INDEX)
        return loss, logits

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss, logits = self._loss(batch)
        if self.soft_targets is not None:
            loss = self.soft_targets.loss(loss, logits, batch)
        self.accuracy["train_acc"](logits.argmax(-1), batch.targets)
        size = len(batch.lengths)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        self.log("train/acc", self.accuracy["train_acc"], on_step=False, on_epoch=True, batch_size=size)
        return loss

    def _eval_step(self, batch: Batch, split: str) -> None:
        loss, logits = self._loss(batch)
        preds = logits.argmax(-1)
        size = len(batch.lengths)
        self.accuracy[f"{split}_acc"](preds, batch.targets)
        self.bucket_accuracy[split].update(preds, batch.targets, batch.speech_lengths)
        self.confusion[split].update(preds, batch.targets)
        self.log(f"{split}/loss", loss, prog_bar=split == "val", batch_size=size)
        self.log(f"{split}/acc", self.accuracy[f"{split}_acc"], prog_bar=split == "val", batch_size=size)
        if self.folded_accuracy is not None:
            valid = batch.targets != IGNORE_INDEX
            folded_targets = torch.where(valid, self.fold_ids[batch.targets.clamp_min(0)], IGNORE_INDEX)
            self.folded_accuracy[split](self.fold_ids[preds], folded_targets)
            self.log(f"{split}/acc_folded", self.folded_accuracy[split], batch_size=size)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_buckets("val")

    def on_test_epoch_end(self) -> None:
        self._log_buckets("test")

    def _log_buckets(self, split: str) -> None:
        accuracy, counts = self.bucket_accuracy[split].compute()
        self.bucket_accuracy[split].reset()
        names = bucket_names(self.hparams.length_buckets)
        for name, acc, count in zip(names, accuracy.tolist(), counts.tolist()):
            if count:
                self.log(f"{split}/acc_len_{name}", acc, sync_dist=False)
        rows = [[name, int(count), acc if count else None]  # no accuracy for an empty bucket
                for name, acc, count in zip(names, accuracy.tolist(), counts.tolist())]
        confusion = self.confusion[split].compute()  # (C, C), rows are true classes
        self.confusion[split].reset()
        support = confusion.sum(1)
        macro = (confusion.diag()[support > 0] / support[support > 0]).mean()
        self.log(f"{split}/acc_macro", macro)
        self.results[split] = {"edges": list(self.hparams.length_buckets), "buckets": rows,
                               "macro_accuracy": macro.item(), "confusion": confusion.tolist()}

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr,
                                      weight_decay=self.hparams.weight_decay)
        if self.hparams.lr_schedule == "constant":
            return optimizer
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, self.trainer.max_epochs))
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def check_hyperparameters(labels: list[str], hidden_size: int, num_layers: int, dropout: float, lr: float,
                          weight_decay: float) -> None:
    """Refuse settings no model can train with, naming the flag, before torch fails somewhere deeper."""
    problems = [
        (len(labels) < 2, f"model.labels needs at least two classes, got {list(labels)}"),
        (hidden_size < 1, f"model.hidden_size must be at least 1, got {hidden_size}"),
        (num_layers < 1, f"model.num_layers must be at least 1, got {num_layers}"),
        (not 0 <= dropout < 1, f"model.dropout must be in [0, 1), got {dropout}"),
        (not lr > 0, f"model.lr must be positive, got {lr}"),
        (not weight_decay >= 0, f"model.weight_decay must be 0 or more, got {weight_decay}"),
    ]
    for failed, message in problems:
        if failed:
            raise SpeechRNNError(message)
