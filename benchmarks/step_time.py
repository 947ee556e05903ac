"""Training-step cost against sequence length: forward+backward time and peak memory per batch.

    python -m benchmarks.step_time                       # CPU, every encoder, 50-4000 frames
    python -m benchmarks.step_time --device cuda --out runs/bench

Writes ``step_time.md`` and ``step_time.png`` to ``--out``. Memory is the peak the CUDA allocator
saw on a GPU; on the CPU, where no allocator keeps a peak, it is the bytes autograd saved for the
backward pass (the activations, which is what grows with length). Time on the CPU is the
process's CPU time, not wall time: on a shared machine a descheduled process would otherwise
count its wait (run with ``OMP_NUM_THREADS=1``, where the two agree on an idle machine).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from speechrnn.models.classifier import SpeechClassifier
from speechrnn.plots import plt, save_figure

ENCODERS = ("rnn", "gru", "lstm", "mingru", "minlstm", "transformer")
LENGTHS = (50, 100, 200, 500, 1000, 2000, 4000)  # frames


def training_problem(cell: str, frames: int, batch_size: int, feature_dim: int, hidden_size: int,
                     num_layers: int, device: torch.device):
    """A 10-class classifier and one random batch: ``(model, feats, lengths, targets)``."""
    model = SpeechClassifier(labels=[str(i) for i in range(10)], input_size=feature_dim, cell=cell,
                             hidden_size=hidden_size, num_layers=num_layers).to(device)
    feats = torch.randn(batch_size, frames, feature_dim, device=device)  # (B, T, F)
    lengths = torch.full((batch_size,), frames, device=device)
    targets = torch.randint(0, 10, (batch_size,), device=device)
    return model, feats, lengths, targets


def step_time(cell: str, frames: int, batch_size: int = 32, feature_dim: int = 20, hidden_size: int = 64,
              num_layers: int = 1, repeats: int = 3, device: str = "cpu") -> tuple[float, float]:
    """Median seconds of one forward+backward pass on a ``(batch_size, frames, feature_dim)`` batch,
    and its memory in MiB (CUDA: peak allocated; CPU: saved for backward)."""
    device = torch.device(device)
    model, feats, lengths, targets = training_problem(cell, frames, batch_size, feature_dim, hidden_size,
                                                      num_layers, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    saved_bytes = 0

    def count(tensor):
        nonlocal saved_bytes
        saved_bytes += tensor.numel() * tensor.element_size()
        return tensor

    clock = time.perf_counter if device.type == "cuda" else time.process_time
    times = []
    for _ in range(repeats + 1):  # the first pass warms up kernels and allocators
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = clock()
        saved_bytes = 0
        with torch.autograd.graph.saved_tensors_hooks(count, lambda tensor: tensor):
            loss = F.cross_entropy(model(feats, lengths), targets)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(clock() - start)
    if device.type == "cuda":
        return sorted(times[1:])[repeats // 2], torch.cuda.max_memory_allocated(device) / 2**20
    return sorted(times[1:])[repeats // 2], saved_bytes / 2**20


def profile_step(cell: str, frames: int, batch_size: int, hidden_size: int, device: str,
                 feature_dim: int = 20, rows: int = 15) -> str:
    """torch.profiler's table of one warm forward+backward pass, operators by self time."""
    model, feats, lengths, targets = training_problem(cell, frames, batch_size, feature_dim, hidden_size,
                                                      1, torch.device(device))
    F.cross_entropy(model(feats, lengths), targets).backward()  # warm-up
    with torch.profiler.profile() as profile:
        F.cross_entropy(model(feats, lengths), targets).backward()
    return profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS))
    parser.add_argument("--lengths", nargs="+", type=int, default=list(LENGTHS), help="frames")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--hidden_size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--profile", metavar="ENCODER",
                        help="print where one step of ENCODER at the longest length spends its time, and stop")
    args = parser.parse_args(argv)
    if args.profile:
        print(profile_step(args.profile, max(args.lengths), args.batch_size, args.hidden_size, args.device))
        return
    rows = {cell: [step_time(cell, n, args.batch_size, hidden_size=args.hidden_size, device=args.device)
                   for n in args.lengths] for cell in args.encoders}
    args.out.mkdir(parents=True, exist_ok=True)
    header = "| encoder | " + " | ".join(f"{n} fr" for n in args.lengths) + " |"
    title = (f"Forward+backward per batch of {args.batch_size} on {args.device} (hidden {args.hidden_size}, "
             "1 layer): milliseconds; MiB peak allocated (CUDA) or saved for backward (CPU).")
    lines = [title, "", header,
             "|" + "---|" * (len(args.lengths) + 1)]
    for cell, cells in rows.items():
        lines.append(f"| {cell} | " + " | ".join(f"{1000 * s:.0f} ms, {mb:.0f} MiB" for s, mb in cells) + " |")
    if "gru" in rows:  # machines differ 3-4x; ratios within one run are what carries over
        lines += ["", "Speed-up over gru (gru's time / the encoder's, same run):", "", header,
                  "|" + "---|" * (len(args.lengths) + 1)]
        for cell, cells in rows.items():
            lines.append(f"| {cell} | " + " | ".join(f"{gru / s:.1f}x" for (gru, _), (s, _)
                                                      in zip(rows["gru"], cells)) + " |")
    (args.out / "step_time.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 4))
    for cell, cells in rows.items():
        ax.plot(args.lengths, [1000 * s for s, _ in cells], marker="o", label=cell)
    ax.set(xscale="log", yscale="log", xlabel="sequence length (frames)", ylabel="forward+backward (ms)",
           title=f"Step time per batch of {args.batch_size} ({args.device})")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    save_figure(fig, args.out / "step_time.png", dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
