"""Training-step cost against sequence length: forward+backward time and peak memory per batch.

    python -m benchmarks.step_time                       # CPU, every encoder, 50-2000 frames
    python -m benchmarks.step_time --device cuda --out runs/bench

Writes ``step_time.md`` and ``step_time.png`` to ``--out``. Memory is the peak the CUDA allocator
saw on a GPU; on the CPU it is the growth of the process's peak resident set (a coarse bound:
it only grows, so lengths are measured shortest first).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from speechrnn.models.classifier import SpeechClassifier  # noqa: E402

ENCODERS = ("rnn", "gru", "lstm", "transformer")
LENGTHS = (50, 100, 200, 500, 1000, 2000)  # frames


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


def step_time(cell: str, frames: int, batch_size: int = 32, feature_dim: int = 20, hidden_size: int = 64,
              num_layers: int = 1, repeats: int = 3, device: str = "cpu") -> tuple[float, float]:
    """Median seconds of one forward+backward pass on a ``(batch_size, frames, feature_dim)`` batch,
    and the peak memory (MiB) it added."""
    device = torch.device(device)
    model = SpeechClassifier(labels=[str(i) for i in range(10)], input_size=feature_dim, cell=cell,
                             hidden_size=hidden_size, num_layers=num_layers).to(device)
    feats = torch.randn(batch_size, frames, feature_dim, device=device)
    lengths = torch.full((batch_size,), frames, device=device)
    targets = torch.randint(0, 10, (batch_size,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = peak_memory_mb(device) if device.type == "cpu" else 0.0
    times = []
    for _ in range(repeats + 1):  # the first pass warms up kernels and allocators
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        F.cross_entropy(model(feats, lengths), targets).backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[repeats // 2], peak_memory_mb(device) - before


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS))
    parser.add_argument("--lengths", nargs="+", type=int, default=list(LENGTHS), help="frames")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--hidden_size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    args = parser.parse_args(argv)
    rows = {cell: [step_time(cell, n, args.batch_size, hidden_size=args.hidden_size, device=args.device)
                   for n in args.lengths] for cell in args.encoders}
    args.out.mkdir(parents=True, exist_ok=True)
    header = "| encoder | " + " | ".join(f"{n} fr" for n in args.lengths) + " |"
    lines = [f"Forward+backward per batch of {args.batch_size} on {args.device} (hidden {args.hidden_size}, "
             "1 layer): milliseconds, peak memory added in MiB.", "", header,
             "|" + "---|" * (len(args.lengths) + 1)]
    for cell, cells in rows.items():
        lines.append(f"| {cell} | " + " | ".join(f"{1000 * s:.0f} ms, {mb:.0f} MiB" for s, mb in cells) + " |")
    (args.out / "step_time.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 4))
    for cell, cells in rows.items():
        ax.plot(args.lengths, [1000 * s for s, _ in cells], marker="o", label=cell)
    ax.set(xscale="log", yscale="log", xlabel="sequence length (frames)", ylabel="forward+backward (ms)",
           title=f"Step time per batch of {args.batch_size} ({args.device})")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "step_time.png", dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
