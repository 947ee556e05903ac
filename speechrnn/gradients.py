"""Gradient through time: how much the loss at the readout feels each input frame, by distance.

For a batch, ``||d loss / d x_t||`` is taken for every real frame t and averaged over the batch
at each distance ``lengths - 1 - t`` from the readout. A straight line fitted to the log-norm
against distance gives the per-step decay factor: 0.9 means a frame 100 steps back moves the
loss 0.9^100 ~ 3e-5 times as much as the last one (Bengio et al. 1994; Pascanu et al. 2013).

    speechrnn gradients runs/x/checkpoints/best.ckpt [more.ckpt ...] --frames 300 --out grads.png

The command feeds Gaussian frames with each model's own feature statistics (no data needed) and
also measures a freshly initialised copy of each model, so the plot shows init against trained.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from speechrnn.checkpoint import load_checkpoint
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.plots import plt, save_figure

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


def plot_gradient_norms(curves: dict[str, Tensor], path: Path, title: str = "Gradient through time") -> Path:
    """One log-scale line per name: norm against distance from the readout, decay factor in the legend."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours: dict[str, str] = {}  # "<model> init" and "<model> trained" share a colour
    for name, norms in curves.items():
        model, _, stage = name.rpartition(" ")
        model = model if stage in ("init", "trained") else name
        colour = colours.setdefault(model, f"C{len(colours) % 10}")
        ax.plot(torch.arange(len(norms)), norms.clamp_min(1e-30), color=colour,
                linestyle="--" if stage == "init" else "-", label=f"{name} (x{decay_factor(norms):.3f}/step)")
    ax.set(yscale="log", xlabel="distance from the readout (frames)", ylabel="mean ||d loss / d x_t||",
           title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=110)


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="speechrnn gradients", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--frames", type=int, default=300, help="sequence length")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("gradients.png"))
    args = parser.parse_args(argv)
    curves = {}
    for path in args.checkpoints:
        trained = load_checkpoint(path).model().train()
        fresh = initialised_copy(trained, args.seed)
        batch = synthetic_batch(trained, args.frames, args.batch_size, args.seed)
        name = f"{trained.hparams.cell} {path.parent.parent.name}"
        for tag, model in (("init", fresh), ("trained", trained)):
            curves[f"{name} {tag}"] = norms = input_gradient_norms(model, *batch)
            print(f"{name} {tag}: decay per step {decay_factor(norms):.4f}")
    print(f"wrote {plot_gradient_norms(curves, args.out)}")
