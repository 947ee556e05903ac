"""Training and evaluation timings: our data path, the standard baseline, and the model alone.

The model alone is the limit a data path can reach: the same forward/backward/clip/AdamW steps in
a plain loop over batches already built. It runs right after each timed epoch on the very batches
that epoch used, so both see the same load on a shared machine.
"""

from __future__ import annotations

import statistics
import time

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechrnn.batch import Batch
from speechrnn.data.batching import PaddedBatches
from speechrnn.data.corpus import Utterance
from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.training.callbacks import FeatureStatistics

GRADIENT_CLIP = 1.0  # as configs/trainer/base.yaml


def build_model(dm: SpeechDataModule, cell: str, hidden_size: int, num_layers: int) -> SpeechClassifier:
    torch.manual_seed(0)
    return SpeechClassifier(labels=dm.labels, input_size=dm.feature_dim, task=dm.task,
                            length_buckets=dm.length_buckets, cell=cell, hidden_size=hidden_size,
                            num_layers=num_layers, lr_schedule="constant")


def bench_trainer(max_epochs: int, callbacks: list[L.Callback], accelerator: str = "cpu",
                  precision: str = "32-true") -> L.Trainer:
    """The Trainer of configs/trainer/cpu.yaml (or gpu.yaml: ``accelerator="gpu"``,
    ``precision="bf16-mixed"``) without validation, logging or checkpoints; it normalises as
    ``speechrnn fit`` does."""
    return L.Trainer(accelerator=accelerator, devices=1, precision=precision, max_epochs=max_epochs,
                     limit_val_batches=0, num_sanity_val_steps=0, gradient_clip_val=GRADIENT_CLIP,
                     use_distributed_sampler=False, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False,
                     callbacks=[FeatureStatistics(), *callbacks])


def train_steps(model: SpeechClassifier, batches: list[Batch]) -> float:
    """Seconds of one plain-loop pass of training steps over ``batches`` (the model alone)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=model.hparams.lr)
    model.train()
    start = time.perf_counter()
    for batch in batches:
        loss = F.cross_entropy(model(batch.feats, batch.lengths), batch.targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP)
        optimizer.step()
    return time.perf_counter() - start


def random_batches(batches: PaddedBatches, batch_size: int, seed: int = 0) -> list[Batch]:
    """Every utterance once, in random batches (what a shuffling DataLoader gives)."""
    order = torch.randperm(len(batches), generator=torch.Generator().manual_seed(seed))
    return [batches[chunk.tolist()] for chunk in order.split(batch_size)]


def padding_ratio(batches: list[Batch]) -> float:
    """Frames computed (padding included) per real frame."""
    return sum(b.feats.shape[0] * b.feats.shape[1] for b in batches) / sum(int(b.lengths.sum()) for b in batches)


class EpochTimer(L.Callback):
    """Wall time of every training epoch; with ``reference``, the model alone on that epoch's batches.

    ``reference`` also times the model alone on random batches of the same split.
    """

    def __init__(self, reference: bool = False) -> None:
        self.reference = reference
        self.epoch_s: list[float] = []
        self.bucketed_s: list[float] = []
        self.random_s: list[float] = []
        self.padding: dict[str, float] = {}

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loader = trainer.train_dataloader
        self.epoch_batches = list(loader.sampler) if self.reference else None  # this epoch's order
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_s.append(time.perf_counter() - self.started)
        if not self.reference:
            return
        padded = trainer.train_dataloader.dataset
        bucketed = [padded[indices] for indices in self.epoch_batches]
        shuffled = random_batches(padded, len(self.epoch_batches[0]), seed=trainer.current_epoch)
        self.padding = {"bucketed": padding_ratio(bucketed), "random": padding_ratio(shuffled)}
        copy = twin(pl_module)
        self.bucketed_s.append(train_steps(copy, bucketed))
        self.random_s.append(train_steps(copy, shuffled))


def training_utterances(dm: SpeechDataModule) -> list[Utterance]:
    """The utterances of the data module's loaded training split, for the baseline to decode."""
    keys = set(dm.splits["train"].keys)
    return [u for u in dm.utterances() if u.split == "train" and u.key in keys]


def twin(model: SpeechClassifier) -> SpeechClassifier:
    """A fresh copy of ``model``: the same hyperparameters, weights and feature statistics."""
    copy = type(model)(**model.hparams)
    copy.load_state_dict(model.state_dict())
    return copy


def median(values: list[float]) -> float:
    return statistics.median(values)


class PackedEncoder(nn.Module):
    """The encoder's layers run on packed sequences: the pack_padded_sequence alternative."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.layers = encoder.layers

    def forward(self, feats: Tensor, lengths: Tensor) -> Tensor:
        x = nn.utils.rnn.pack_padded_sequence(feats, lengths.cpu(), batch_first=True, enforce_sorted=False)
        for directions in self.layers:
            x = directions[0](x)[0]
        return nn.utils.rnn.pad_packed_sequence(x, batch_first=True)[0]  # (B, T, H)


def forward_backward_s(model: SpeechClassifier, batches: list[Batch]) -> float:
    start = time.perf_counter()
    for batch in batches:
        F.cross_entropy(model(batch.feats, batch.lengths), batch.targets).backward()
    return time.perf_counter() - start


def packing_timings(model: SpeechClassifier, batches: dict[str, list[Batch]], repeats: int) -> dict:
    """Forward+backward seconds per pass, masked readout against packing, on each batch set."""
    packed = type(model)(**model.hparams)
    packed.load_state_dict(model.state_dict())
    packed.encoder = PackedEncoder(packed.encoder)
    times = {f"{kind}_{name}": [] for kind in ("masked", "packed") for name in batches}
    for _ in range(repeats):
        for name, batch_set in batches.items():
            times[f"masked_{name}"].append(forward_backward_s(model, batch_set))
            times[f"packed_{name}"].append(forward_backward_s(packed, batch_set))
    return {key: median(values) for key, values in times.items()}
