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
SEQUENTIAL = ("rnn", "gru", "lstm")  # cells that wait for the previous state each frame
REPORT_FRAMES = 2000  # the length whose minGRU ratios and roofline are printed, when measured


FEATURE_DIM = 20  # features per frame, as MFCCs


def training_problem(cell: str, frames: int, batch_size: int, feature_dim: int, hidden_size: int,
                     num_layers: int, device: torch.device):
    """A 10-class classifier and one random batch: ``(model, feats, lengths, targets)``."""
    model = SpeechClassifier(labels=[str(i) for i in range(10)], input_size=feature_dim, cell=cell,
                             hidden_size=hidden_size, num_layers=num_layers).to(device)
    feats = torch.randn(batch_size, frames, feature_dim, device=device)  # (B, T, F)
    lengths = torch.full((batch_size,), frames, device=device)
    targets = torch.randint(0, 10, (batch_size,), device=device)
    return model, feats, lengths, targets


def step_times(cells: list[str], frames: int, batch_size: int = 32, feature_dim: int = FEATURE_DIM,
               hidden_size: int = 64, num_layers: int = 1, repeats: int = 3,
               device: str = "cpu") -> dict[str, tuple[float, float]]:
    """Per cell: median seconds of one forward+backward pass on a ``(batch_size, frames,
    feature_dim)`` batch, and its memory in MiB (CUDA: peak allocated; CPU: saved for backward).

    The cells take turns, one pass each per round, so a change in the machine's load reaches every
    cell alike and their ratios hold even when the milliseconds drift.
    """
    device = torch.device(device)
    problems = {cell: training_problem(cell, frames, batch_size, feature_dim, hidden_size, num_layers, device)
                for cell in cells}
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    times = {cell: [] for cell in cells}
    memory = {}
    for _ in range(repeats + 1):  # the first round warms up kernels and allocators
        for cell, (model, feats, lengths, targets) in problems.items():
            saved_bytes = 0

            def count(tensor):
                nonlocal saved_bytes
                saved_bytes += tensor.numel() * tensor.element_size()
                return tensor

            model.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            start = clock()
            with torch.autograd.graph.saved_tensors_hooks(count, lambda tensor: tensor):
                loss = F.cross_entropy(model(feats, lengths), targets)
            loss.backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[cell].append(clock() - start)
            memory[cell] = (torch.cuda.max_memory_allocated(device) if device.type == "cuda" else saved_bytes) / 2**20
    return {cell: (sorted(times[cell][1:])[repeats // 2], memory[cell]) for cell in cells}


def step_time(cell: str, frames: int, **settings) -> tuple[float, float]:
    """:func:`step_times` for one cell."""
    return step_times([cell], frames, **settings)[cell]


def bandwidth(numel: int, repeats: int = 9) -> dict[str, float]:
    """Bytes per second this process moves through memory on its torch threads (one, as the
    benchmark runs), on float32 arrays of ``numel``: ``copy`` (``c = a``: reads one array, writes
    one) and ``triad`` (``c = a + 3 b``: reads two, writes one), medians."""
    a, b, c = torch.rand(numel), torch.rand(numel), torch.empty(numel)
    kernels = {"copy": (lambda: c.copy_(a), 2), "triad": (lambda: torch.add(a, b, alpha=3.0, out=c), 3)}
    speeds = {}
    for name, (kernel, arrays) in kernels.items():
        times = []
        for _ in range(repeats + 1):
            start = time.process_time()
            kernel()
            times.append(time.process_time() - start)
        speeds[name] = arrays * 4 * numel / sorted(times[1:])[repeats // 2]
    return speeds


def min_gru_bytes(batch_size: int, frames: int, feature_dim: int, hidden_size: int) -> int:
    """Bytes one minGRU training step (one layer, float32) moves at least: forward reads the
    features and writes the states; backward reads both once more, everything else (gates,
    projections, gradients of the state) computed inside that pass without being stored."""
    return 4 * batch_size * frames * 2 * (feature_dim + hidden_size)


def speedups(rows: dict[str, list[tuple[float, float]]], reference: list[float], lengths: list[int],
             title: str) -> list[str]:
    """A table of ``reference`` time / each encoder's time, per length."""
    lines = ["", title, "", "| encoder | " + " | ".join(f"{n} fr" for n in lengths) + " |",
             "|" + "---|" * (len(lengths) + 1)]
    for cell, cells in rows.items():
        lines.append(f"| {cell} | " + " | ".join(f"{base / s:.1f}x" for base, (s, _) in zip(reference, cells)) + " |")
    return lines


def profile_step(cell: str, frames: int, batch_size: int, hidden_size: int, device: str,
                 feature_dim: int = FEATURE_DIM, rows: int = 15) -> str:
    """torch.profiler's table of one warm forward+backward pass, operators by self time."""
    model, feats, lengths, targets = training_problem(cell, frames, batch_size, feature_dim, hidden_size,
                                                      1, torch.device(device))
    F.cross_entropy(model(feats, lengths), targets).backward()  # warm-up
    with torch.profiler.profile() as profile:
        F.cross_entropy(model(feats, lengths), targets).backward()
    return profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def min_gru_summary(rows: dict[str, list[tuple[float, float]]], args: argparse.Namespace,
                    sequential: list[str]) -> list[str]:
    """minGRU against the sequential cells and against its memory-traffic floor at one length."""
    frames = REPORT_FRAMES if REPORT_FRAMES in args.lengths else max(args.lengths)
    i = args.lengths.index(frames)
    seconds = rows["mingru"][i][0]
    ratios = ", ".join(f"{rows[cell][i][0] / seconds:.1f}x {cell}" for cell in sequential)
    if sequential:
        fastest = min(sequential, key=lambda cell: rows[cell][i][0])
        ratios = f"{rows[fastest][i][0] / seconds:.1f}x the fastest sequential cell ({fastest}); {ratios}"
    moved = min_gru_bytes(args.batch_size, frames, FEATURE_DIM, args.hidden_size)
    speed = bandwidth(args.batch_size * frames * args.hidden_size)  # arrays the size of the states
    floor = moved / speed["triad"]
    return [f"mingru at {frames} frames: {1000 * seconds:.1f} ms, {ratios} (same run).",
            (f"Roofline: it moves at least {moved / 1e6:.0f} MB (features read twice, states written once "
            f"and read once); {torch.get_num_threads()} thread(s) copy at {speed['copy'] / 1e9:.0f} GB/s and "
            f"triad at {speed['triad'] / 1e9:.0f} GB/s, a floor of {1000 * floor:.1f} ms: "
            f"measured {100 * floor / seconds:.0f}% of the floor's speed.")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS))
    parser.add_argument("--lengths", nargs="+", type=int, default=list(LENGTHS), help="frames")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--hidden_size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads; CPU time sums over threads, so one compares cells fairly")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--profile", metavar="ENCODER",
                        help="print where one step of ENCODER at the longest length spends its time, and stop")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.profile:
        print(profile_step(args.profile, max(args.lengths), args.batch_size, args.hidden_size, args.device))
        return
    by_length = [step_times(args.encoders, n, args.batch_size, hidden_size=args.hidden_size, device=args.device)
                 for n in args.lengths]
    rows = {cell: [times[cell] for times in by_length] for cell in args.encoders}
    args.out.mkdir(parents=True, exist_ok=True)
    header = "| encoder | " + " | ".join(f"{n} fr" for n in args.lengths) + " |"
    title = (f"Forward+backward per batch of {args.batch_size} on {args.device} (hidden {args.hidden_size}, "
             f"1 layer, {torch.get_num_threads()} thread(s)): milliseconds; MiB peak allocated (CUDA) or saved "
             "for backward (CPU).")
    lines = [title, "", header,
             "|" + "---|" * (len(args.lengths) + 1)]
    for cell, cells in rows.items():
        lines.append(f"| {cell} | " + " | ".join(f"{1000 * s:.0f} ms, {mb:.0f} MiB" for s, mb in cells) + " |")
    # machines differ 3-4x; ratios within one run are what carries over
    if "gru" in rows:
        lines += speedups(rows, [s for s, _ in rows["gru"]], args.lengths,
                          "Speed-up over gru (gru's time / the encoder's, same run):")
    sequential = [cell for cell in SEQUENTIAL if cell in rows]
    if sequential:
        fastest = [min(sequential, key=lambda cell: rows[cell][i][0]) for i in range(len(args.lengths))]
        lines += speedups(rows, [rows[cell][i][0] for i, cell in enumerate(fastest)], args.lengths,
                          "Speed-up over the fastest sequential cell of the same size at each length "
                          f"({', '.join(f'{n} fr: {cell}' for n, cell in zip(args.lengths, fastest))}):")
    if "mingru" in rows and args.device == "cpu":
        lines += ["", *min_gru_summary(rows, args, sequential)]
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
