"""``speechrnn gradients CKPT...``: gradient through time of trained checkpoints against their init.

    speechrnn gradients runs/x/checkpoints/best.ckpt [more.ckpt ...] --frames 300 --out grads.png

The command feeds Gaussian frames with each model's own feature statistics (no data needed) and
also measures a freshly initialised copy of each model, so the plot shows init against trained
(:mod:`speechrnn.models.gradient_decay` says what is measured).
"""

from __future__ import annotations

from pathlib import Path

from speechrnn.checkpoint import load_checkpoint
from speechrnn.files import check_writable
from speechrnn.models.gradient_decay import (
    decay_factor,
    initialised_copy,
    input_gradient_norms,
    synthetic_batch,
)
from speechrnn.options import Parser, number
from speechrnn.plots import FIGURE_SUFFIXES, plot_gradient_norms


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="speechrnn gradients", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--frames", type=number(1, 100_000, integer=True), default=300, help="sequence length")
    parser.add_argument("--batch-size", type=number(1, integer=True), default=32)
    parser.add_argument("--seed", type=number(0, integer=True), default=0)
    parser.add_argument("--out", type=Path, default=Path("gradients.png"))
    args = parser.parse_args(argv)
    check_writable(args.out, "--out", args.checkpoints, FIGURE_SUFFIXES)
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
