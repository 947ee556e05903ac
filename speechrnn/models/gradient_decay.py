"""Gradient through time: how much the loss at the readout feels each input frame, by distance.

For a batch, ``||d loss / d x_t||`` is taken for every real frame t and averaged over the batch
at each distance ``lengths - 1 - t`` from the readout. A straight line fitted to the log-norm
against distance gives the per-step decay factor: 0.9 means a frame 100 steps back moves the
loss 0.9^100 ~ 3e-5 times as much as the last one (Bengio et al. 1994; Pascanu et al. 2013).
``speechrnn gradients`` (:mod:`speechrnn.commands.gradients`) measures checkpoints with it, the
training callback ``GradientDecay`` a run as it trains.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from speechrnn.models.classifier import SpeechClassifier

FIT_FROM = 1  # the readout frame itself has a direct path to the head; the fit starts one step back


def input_gradient_norms(model: SpeechClassifier, feats: Tensor, lengths: Tensor, targets: Tensor) -> Tensor:
    """Mean ``||d loss / d x_t||`` over the batch at each distance from the readout, ``(T,)``.

    Distance 0 is each sequence's last frame. Sequences shorter than a distance do not count
    towards it. The model's mode is left as it is (cuDNN RNNs only run backward in train mode).
    """
    feats = feats.detach().clone().requires_grad_(True)  # (B, T, F)
    with torch.enable_grad():
        loss = F.cross_entropy(model(feats, lengths), targets, reduction="sum")
        (grad,) = torch.autograd.grad(loss, feats)
    norms = grad.norm(dim=-1)  # (B, T)
    steps = torch.arange(feats.shape[1], device=feats.device)
    distance = lengths[:, None] - 1 - steps[None, :]  # (B, T); negative on padding
    valid = distance >= 0
    total = torch.zeros(feats.shape[1], device=feats.device).index_add_(0, distance[valid], norms[valid])
    count = torch.zeros_like(total).index_add_(0, distance[valid], torch.ones_like(norms[valid]))
    return (total / count.clamp_min(1)).detach().cpu()


def decay_factor(norms: Tensor) -> float:
    """Per-step factor ``exp(slope)`` of a least-squares line through log-norm against distance.

    Distances whose norm is zero or not finite (underflow, or no sequence that long) are left out;
    NaN when fewer than two points remain.
    """
    distance = torch.arange(len(norms), dtype=torch.float64)
    keep = (norms > 0) & torch.isfinite(norms) & (distance >= FIT_FROM)
    if int(keep.sum()) < 2:
        return math.nan
    x, y = distance[keep], norms[keep].double().log()
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    return math.exp(float(slope))


def initialised_copy(model: SpeechClassifier, seed: int) -> SpeechClassifier:
    """The same architecture freshly initialised from ``seed``, with the model's feature statistics."""
    torch.manual_seed(seed)
    arguments = {k: v for k, v in model.hparams.items() if not k.startswith("_")}  # drop the CLI's own keys
    fresh = SpeechClassifier(**arguments).to(model.device)
    fresh.normaliser.load_state_dict(model.normaliser.state_dict())
    return fresh.train(model.training)


def synthetic_batch(model: SpeechClassifier, frames: int, batch_size: int, seed: int) -> tuple[Tensor, ...]:
    """Gaussian frames with the model's own feature statistics, and random labels."""
    generator = torch.Generator().manual_seed(seed)
    stats = model.normaliser
    noise = torch.randn(batch_size, frames, len(stats.mean), generator=generator)
    feats = noise * stats.std.cpu() + stats.mean.cpu()  # (B, T, F) raw features
    targets = torch.randint(len(model.labels), (batch_size,), generator=generator)
    return feats, torch.full((batch_size,), frames), targets
