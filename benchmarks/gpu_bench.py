"""``make gpu-bench``: the main job on a GPU, each figure against a baseline on the same GPU.

    python -m benchmarks.gpu_bench --fsdd_root DIR --out runs/gpu-bench [--sections fsdd scan]

Sections (each prints its lines and adds them to ``gpu_bench.md``; ``gpu_bench.json`` holds all):

- ``ceilings``: a device-to-device copy (GB/s, bytes read plus written) and an 8192^3 bf16
  matrix product (TFLOP/s): what the card does at best, to read the other figures against.
- ``fsdd``: training epochs on FSDD, GRU 2x128, bf16, batches of 64, the same model in each:
  our path (features cached on the GPU, length-bucketed batches gathered there, Lightning)
  against a plain PyTorch loop over a ``DataLoader`` that decodes each WAV and computes its
  MFCC in worker processes (:mod:`benchmarks.baseline`), and the model alone in a plain loop on
  batches already on the GPU (the limit a data path can reach). Host syncs per step for ours.
- ``speech_commands_size``: one epoch of a Speech-Commands-sized corpus (85k clips of 101
  frames, 40 random MFCCs, 35 words), LSTM 2x128, bf16, through our path; host syncs per step.
- ``scan``: forward+backward per batch at 500-16,000 frames: minGRU against cuDNN's RNN, GRU
  and LSTM (:func:`benchmarks.step_time.step_times`), and the linear scan alone in each form.

Host syncs are counted with ``torch.cuda.set_sync_debug_mode("warn")`` over a separate epoch
(the timed epochs run without it), each sync attributed to the line that caused it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import time
import warnings
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import scan_forms, step_time, training
from benchmarks.baseline import baseline_loader
from speechrnn.corpora.fsdd import FSDDDataModule
from speechrnn.data.cache import SplitFeatures
from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.files import write_json

SECTIONS = ("ceilings", "fsdd", "speech_commands_size", "scan")
FSDD_MODEL = {"cell": "gru", "hidden_size": 128, "num_layers": 2}  # benchmarks.run's model
SC_MODEL = {"cell": "lstm", "hidden_size": 128, "num_layers": 2}
BATCH_SIZE = 64
SCAN_LENGTHS = (500, 1000, 2000, 4000, 8000, 16000)  # frames
SCAN_SIZES = ((32, 64), (128, 256))  # (batch, hidden): step_time's size, and one that fills more of a GPU
SYNC_WARNING = "called a synchronizing CUDA operation"


def synchronized(device: torch.device) -> float:
    """A host clock read after the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


@contextlib.contextmanager
def counting_syncs(counts: collections.Counter):
    """Count the host syncs inside the block by the file and line that caused them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")
    counts.update(f"{Path(w.filename).name}:{w.lineno}" for w in caught if SYNC_WARNING in str(w.message))


class EpochClock(L.Callback):
    """Wall time of each training epoch (device work included); the epoch numbered ``count_syncs``
    also counts host syncs and the steps they fell in."""

    def __init__(self, count_syncs: int | None = None) -> None:
        self.epoch_s: list[float] = []
        self.count_syncs = count_syncs
        self.syncs: collections.Counter = collections.Counter()
        self.steps = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.count_syncs:
            self.counting = counting_syncs(self.syncs)
            self.counting.__enter__()
        self.started = synchronized(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == self.count_syncs:
            self.steps += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epoch_s.append(synchronized(pl_module.device) - self.started)
        if trainer.current_epoch == self.count_syncs:
            self.counting.__exit__(None, None, None)

    def syncs_per_step(self) -> dict:
        return {"per_step": sum(self.syncs.values()) / max(self.steps, 1), "steps": self.steps,
                "where": dict(self.syncs.most_common(8))}


def gpu_trainer(epochs: int, callbacks: list[L.Callback], accelerator: str = "gpu") -> L.Trainer:
    """``make train``'s GPU trainer (bf16, clipping) without validation, logging or checkpoints."""
    return training.bench_trainer(epochs, callbacks, accelerator=accelerator,
                                  precision="bf16-mixed" if accelerator == "gpu" else "32-true")


def plain_epoch(model: nn.Module, batches, device: torch.device) -> float:
    """Seconds of one epoch of a plain PyTorch training loop over ``batches`` (any iterable of
    :class:`Batch`, on the host or the device): copy, bf16 autocast on a GPU, AdamW, clipping."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=model.hparams.lr)
    model.train()
    start = synchronized(device)
    for batch in batches:
        feats = batch.feats.to(device, non_blocking=True)
        lengths = batch.lengths.to(device, non_blocking=True)
        targets = batch.targets.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = F.cross_entropy(model(feats, lengths), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), training.GRADIENT_CLIP)
        optimizer.step()
    return synchronized(device) - start


def ceilings(device: torch.device) -> dict:
    """Copy bandwidth and bf16 matrix rate, medians of 10 after 3 warm-ups, on random data."""
    def timed(kernel, repeats: int = 10) -> float:
        for _ in range(3):
            kernel()
        times = []
        for _ in range(repeats):
            start = synchronized(device)
            kernel()
            times.append(synchronized(device) - start)
        return sorted(times)[repeats // 2]

    source = torch.rand(2**28, device=device)  # 1 GiB of float32
    target = torch.empty_like(source)
    a, b = (torch.randn(8192, 8192, device=device, dtype=torch.bfloat16) for _ in range(2))
    copy_s, matmul_s = timed(lambda: target.copy_(source)), timed(lambda: a @ b)
    return {"copy_GB_per_s": 2 * source.nbytes / copy_s / 1e9, "bf16_matmul_TFLOP_per_s": 2 * 8192**3 / matmul_s / 1e12}


def bench_fsdd(fsdd_root: str, cache_dir: Path, device: torch.device, repeats: int, workers: int) -> dict:
    """Our path, the plain DataLoader loop and the model alone, epochs taking turns (median of
    ``repeats`` each, after one warm-up epoch of each)."""
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    dm = FSDDDataModule(data_root=fsdd_root, cache_dir=str(cache_dir), batch_size=BATCH_SIZE,
                        feature_device="cuda" if device.type == "cuda" else "cpu")
    start = time.perf_counter()
    dm.prepare_data()
    cache_s = time.perf_counter() - start
    clock = EpochClock(count_syncs=repeats + 1 if device.type == "cuda" else None)
    trainer = gpu_trainer(repeats + 1 + (device.type == "cuda"), [clock], accelerator)
    model = training.build_model(dm, **FSDD_MODEL)
    trainer.fit(model, datamodule=dm)  # warm-up epoch, timed epochs, then the sync-counting epoch
    loader = baseline_loader(training.training_utterances(dm), dm.features, dm.labels, BATCH_SIZE, workers=workers, pin_memory=device.type == "cuda")
    ours = dm.train_dataloader()
    device_batches = [ours.dataset[indices] for indices in ours.sampler]  # on the GPU already
    baseline_s, alone_s = [], []
    for _ in range(repeats + 1):  # fresh twins of the fitted model
        baseline_s.append(plain_epoch(training.twin(model).to(device), loader, device))
        alone_s.append(plain_epoch(training.twin(model).to(device), device_batches, device))
    utts = len(dm.splits["train"])
    ours_s = training.median(clock.epoch_s[1:repeats + 1])
    baseline, alone = training.median(baseline_s[1:]), training.median(alone_s[1:])
    result = {"train_utterances": utts, "cache_build_s": cache_s, "baseline_workers": workers,
              "ours_utt_per_s": utts / ours_s, "baseline_utt_per_s": utts / baseline,
              "model_alone_utt_per_s": utts / alone, "speedup_vs_baseline": baseline / ours_s,
              "pipeline_overhead": ours_s / alone,
              "epoch_s": {"ours": clock.epoch_s, "baseline": baseline_s, "model_alone": alone_s}}
    if device.type == "cuda":
        result["syncs"] = clock.syncs_per_step()
    return result


class RandomClips(SpeechDataModule):
    """A corpus of ``clips`` training clips of ``frames`` random MFCC frames each (and 64 each for
    validation and test), drawn on the training device: the shape of a real corpus, for timing."""

    name = "random-clips"

    def __init__(self, clips: int, frames: int = 101, words: int = 35, **kwargs) -> None:
        self.clips, self.frames, self.words = clips, frames, words
        super().__init__(**kwargs)

    def vocabulary(self) -> list[str]:
        return [f"word{i}" for i in range(self.words)]

    def prepare_data(self) -> None:
        """Nothing to download or cache."""

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        device = self._feature_placement()
        generator = torch.Generator(device).manual_seed(self.seed)
        dim = self.features.n_mfcc
        for split, clips in (("train", self.clips), ("validation", 64), ("test", 64)):
            feats = torch.randn(clips * self.frames, dim, device=device, generator=generator)
            offsets = torch.arange(clips + 1, device=device) * self.frames
            targets = torch.randint(self.words, (clips,), device=device, generator=generator)
            self.splits[split] = SplitFeatures(feats, offsets, targets, offsets.diff(),
                                               [f"{split}{i}" for i in range(clips)])
        self.mean, self.std = torch.zeros(dim, device=device), torch.ones(dim, device=device)


def bench_speech_commands_size(device: torch.device, clips: int) -> dict:
    """Epoch time of ``clips`` one-second clips through our path: a warm-up epoch, a timed one,
    then one counting host syncs (on a GPU)."""
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    dm = RandomClips(clips, batch_size=BATCH_SIZE, feature_device="cuda" if device.type == "cuda" else "cpu")
    clock = EpochClock(count_syncs=2 if device.type == "cuda" else None)
    model = training.build_model(dm, **SC_MODEL)
    gpu_trainer(2 + (device.type == "cuda"), [clock], accelerator).fit(model, datamodule=dm)
    result = {"clips": clips, "frames_per_clip": dm.frames, "epoch_s": clock.epoch_s[1],
              "clips_per_s": clips / clock.epoch_s[1], "steps_per_epoch": -(-clips // BATCH_SIZE)}
    if device.type == "cuda":
        result["syncs"] = clock.syncs_per_step()
    return result


def scan_alone(device: torch.device, batch: int, frames: int, hidden: int, repeats: int = 5) -> dict[str, float]:
    """Forward+backward seconds of each scan form alone on ``(batch, frames, hidden)``, medians."""
    generator = torch.Generator(device).manual_seed(0)
    decay = torch.sigmoid(-3 * torch.randn(batch, frames, hidden, device=device, generator=generator))
    drive = torch.randn(batch, frames, hidden, device=device, generator=generator)
    h0 = torch.zeros(batch, hidden, device=device)
    times = {}
    for name in ("one_pass", "chunked_scan", "log_space"):
        form = scan_forms.FORMS[name]
        a, b = decay.clone().requires_grad_(), drive.abs().clone().requires_grad_()  # log_space needs b > 0
        seconds = []
        for _ in range(repeats + 1):
            start = synchronized(device)
            form(a, b, h0).sum().backward()
            seconds.append(synchronized(device) - start)
        times[name] = sorted(seconds[1:])[repeats // 2]
    return times


def bench_scan(device: torch.device, lengths: list[int]) -> dict:
    results = {}
    for batch, hidden in SCAN_SIZES:
        cells = ["rnn", "gru", "lstm", "mingru"]
        rows = [step_time.step_times(cells, n, batch, hidden_size=hidden, device=str(device)) for n in lengths]
        scans = [scan_alone(device, batch, n, hidden) for n in lengths]
        results[f"B{batch}-H{hidden}"] = {
            "step_s": {cell: [row[cell][0] for row in rows] for cell in cells},
            "peak_MiB": {cell: [row[cell][1] for row in rows] for cell in cells},
            "scan_alone_s": {form: [row[form] for row in scans] for form in scans[0]}}
    return {"lengths": lengths, "sizes": results}


def report(results: dict) -> list[str]:
    lines = [f"# GPU benchmark: {results['device']}", ""]
    if "ceilings" in results:
        c = results["ceilings"]
        lines += [(f"Ceilings: copy {c['copy_GB_per_s']:,.0f} GB/s, bf16 matrix product "
                  f"{c['bf16_matmul_TFLOP_per_s']:,.0f} TFLOP/s."), ""]
    if "fsdd" in results:
        f = results["fsdd"]
        lines += [(f"FSDD training ({f['train_utterances']} utterances per epoch, GRU 2x128, bf16, batches of "
                  f"{BATCH_SIZE}; cache built in {f['cache_build_s']:.1f} s):"), "",
                  "| path | utterances/s |", "|---|---|",
                  f"| ours (features on the GPU, Lightning) | {f['ours_utt_per_s']:,.0f} |",
                  (f"| plain loop over a DataLoader (WAV + MFCC per item, {f['baseline_workers']} workers) | "
                  f"{f['baseline_utt_per_s']:,.0f} |"),
                  f"| model alone (plain loop, batches on the GPU) | {f['model_alone_utt_per_s']:,.0f} |", "",
                  (f"Ours is {f['speedup_vs_baseline']:.1f}x the DataLoader loop; its epoch takes "
                  f"{f['pipeline_overhead']:.2f}x the model alone's.")]
        if "syncs" in f:
            lines += [sync_line(f["syncs"])]
        lines.append("")
    if "speech_commands_size" in results:
        s = results["speech_commands_size"]
        lines += [(f"Speech-Commands-sized epoch ({s['clips']:,} clips of {s['frames_per_clip']} frames, LSTM 2x128, "
                  f"bf16, {s['steps_per_epoch']} steps): {s['epoch_s']:.1f} s, {s['clips_per_s']:,.0f} clips/s.")]
        if "syncs" in s:
            lines += [sync_line(s["syncs"])]
        lines.append("")
    if "scan" in results:
        lengths = results["scan"]["lengths"]
        for size, rows in results["scan"]["sizes"].items():
            lines += [f"Forward+backward per batch, {size} (batch, hidden), 1 layer, fp32: ms", "",
                      "| encoder | " + " | ".join(f"{n} fr" for n in lengths) + " |", "|" + "---|" * (len(lengths) + 1)]
            for cell, seconds in rows["step_s"].items():
                lines.append(f"| {cell} | " + " | ".join(f"{1000 * s:.2f}" for s in seconds) + " |")
            fastest = [min(rows["step_s"][c][i] for c in ("rnn", "gru", "lstm")) for i in range(len(lengths))]
            lines.append("| mingru speed-up over the fastest cuDNN cell | "
                         + " | ".join(f"{f / m:.1f}x" for f, m in zip(fastest, rows["step_s"]["mingru"])) + " |")
            for form, seconds in rows["scan_alone_s"].items():
                lines.append(f"| scan alone: {form} | " + " | ".join(f"{1000 * s:.2f}" for s in seconds) + " |")
            lines.append("")
    return lines


def sync_line(syncs: dict) -> str:
    where = ", ".join(f"{place} ({count})" for place, count in syncs["where"].items()) or "none"
    return f"Host syncs per training step: {syncs['per_step']:.2f} over {syncs['steps']} steps; from {where}."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd_root", default="data", help="the folder holding fsdd/")
    parser.add_argument("--out", type=Path, default=Path("runs/gpu-bench"))
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--device", default="cuda", help="cpu runs every section small, as a check of the code")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs of each FSDD path")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers of the plain loop")
    parser.add_argument("--clips", type=int, default=85_000, help="clips of the Speech-Commands-sized epoch")
    parser.add_argument("--lengths", nargs="+", type=int, default=list(SCAN_LENGTHS), help="frames, for scan")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu-bench: no CUDA GPU on this machine; nothing to measure (exit 0)")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    for section in args.sections:
        start = time.perf_counter()
        if section == "ceilings":
            results[section] = ceilings(device)
        elif section == "fsdd":
            results[section] = bench_fsdd(args.fsdd_root, args.out / "cache", device, args.repeats, args.workers)
        elif section == "speech_commands_size":
            results[section] = bench_speech_commands_size(device, args.clips)
        else:
            results[section] = bench_scan(device, args.lengths)
        results[section]["section_s"] = time.perf_counter() - start
        write_json(args.out / "gpu_bench.json", results)  # what is done so far survives a later failure
        (args.out / "gpu_bench.md").write_text("\n".join(report(results)) + "\n")
        print(f"gpu-bench: {section} done in {results[section]['section_s']:.0f} s", flush=True)
    print("\n".join(report(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
