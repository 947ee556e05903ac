"""``make bench``: how fast speechrnn's data path is, against a standard baseline and the model alone.

    python -m benchmarks.run --fsdd_root ../shared/data            # FSDD and the embedded corpus
    python -m benchmarks.run --corpora fsdd --repeats 5 --out runs/bench

Per corpus, on the CPU, with a 2-layer 128-unit GRU and batches of 64 (the same model everywhere):

- training throughput (utterances/s, frames/s) of our data path against the standard baseline
  (``benchmarks/baseline.py``), each a median over ``--repeats`` epochs timed in the same run;
- pipeline overhead: our epoch's wall time over the model alone on that epoch's batches (1.0 is
  the limit), and the model alone on random batches (what bucketing saves);
- masked readout against pack_padded_sequence, forward+backward, on bucketed and random batches;
- feature preparation: building the cache (decode + batched MFCC + write) against librosa and
  our MFCC one file at a time (both warm), in clips/s;
- evaluation throughput of ``speechrnn evaluate`` (the whole command: cache check, load, test loop);
- step time against sequence length per encoder (``benchmarks/step_time.py``).

Prints one table and writes ``bench.json`` and ``bench.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
import yaml

from benchmarks import extraction, training
from benchmarks.baseline import baseline_loader
from benchmarks.step_time import step_time
from speechrnn.checkpoint import load_checkpoint
from speechrnn.corpora.fsdd import FSDDDataModule
from speechrnn.corpora.synth import SynthDataModule
from speechrnn.data.batching import LengthBucketSampler, PaddedBatches
from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.evaluation import build_datamodule, evaluate
from speechrnn.files import write_json

CORPORA = ("fsdd", "synth")
MODEL = {"cell": "gru", "hidden_size": 128, "num_layers": 2}
BATCH_SIZE = 64
STEP_TIME_LENGTHS = (50, 100, 200, 500, 1000)  # frames
STEP_TIME_ENCODERS = ("rnn", "gru", "lstm", "mingru")
AUGMENT_KEYS = ("time_masks", "time_mask_frames", "coeff_masks", "coeff_mask_width", "tempo_factors", "gain_db",
                "vtlp")


def augmentation(config: Path | None) -> dict:
    """The training-batch augmentation arguments a data or experiment config sets (none without one)."""
    if config is None:
        return {}
    init_args = (yaml.safe_load(config.read_text()) or {}).get("data", {}).get("init_args", {})
    return {key: value for key, value in init_args.items() if key in AUGMENT_KEYS}


def corpus(name: str, args: argparse.Namespace, augment: dict) -> SpeechDataModule:
    cache_dir = str(args.out / "cache")
    if name == "fsdd":
        return FSDDDataModule(data_root=args.fsdd_root, cache_dir=cache_dir, batch_size=BATCH_SIZE, **augment)
    return SynthDataModule(data_root=args.data_root, cache_dir=cache_dir, batch_size=BATCH_SIZE, **augment)


def bench_training(dm: SpeechDataModule, repeats: int, augmented: SpeechDataModule | None = None) -> dict:
    """Our path and the baseline, alternating fits of two epochs; the first epoch of each is warm-up.

    With ``augmented`` (the same corpus with training augmentation on), our path is also timed
    with it, in the same alternation, so both ratios share the baseline's epochs.
    """
    ours, baseline, with_augment = training.EpochTimer(reference=True), training.EpochTimer(), training.EpochTimer()
    split = dm.splits["train"]
    train = training.training_utterances(dm)
    for _ in range(repeats):
        trainer = training.bench_trainer(2, [ours])
        trainer.fit(training.build_model(dm, **MODEL), datamodule=dm)
        loader = baseline_loader(train, dm.features, dm.labels, BATCH_SIZE)
        training.bench_trainer(2, [baseline]).fit(training.build_model(dm, **MODEL), train_dataloaders=loader)
        if augmented is not None:
            training.bench_trainer(2, [with_augment]).fit(training.build_model(augmented, **MODEL), datamodule=augmented)
    utts, frames = len(split), int(split.lengths.sum())
    ours_s, baseline_s = training.median(ours.epoch_s[1::2]), training.median(baseline.epoch_s[1::2])
    bucketed_s, random_s = training.median(ours.bucketed_s[1::2]), training.median(ours.random_s[1::2])
    overheads = [e / b for e, b in zip(ours.epoch_s[1::2], ours.bucketed_s[1::2])]
    augmented_s = {"augmented_utt_per_s": utts / training.median(with_augment.epoch_s[1::2]),
                   "speedup_vs_baseline_augmented": baseline_s / training.median(with_augment.epoch_s[1::2])
                   } if augmented is not None else {}
    checkpoint = dm.cache_dir / f"bench-{dm.name}.ckpt"
    trainer.save_checkpoint(checkpoint)  # the model writes its data pipeline into it
    return {
        "train_utterances": utts, "train_frames": frames,
        "ours_utt_per_s": utts / ours_s, "ours_frames_per_s": frames / ours_s,
        "baseline_utt_per_s": utts / baseline_s, "baseline_frames_per_s": frames / baseline_s,
        "speedup_vs_baseline": baseline_s / ours_s, **augmented_s,
        "model_alone_bucketed_utt_per_s": utts / bucketed_s,
        "model_alone_random_utt_per_s": utts / random_s,
        "pipeline_overhead": training.median(overheads),
        "padding_bucketed": ours.padding["bucketed"], "padding_random": ours.padding["random"],
        "epoch_s": {"ours": ours.epoch_s, "baseline": baseline.epoch_s, "ours_augmented": with_augment.epoch_s,
                    "model_alone_bucketed": ours.bucketed_s, "model_alone_random": ours.random_s},
        "checkpoint": str(checkpoint),
    }


def bench_packing(dm: SpeechDataModule, checkpoint: str, repeats: int) -> dict:
    model = load_checkpoint(checkpoint).model(dm.length_buckets)
    padded = PaddedBatches(dm.splits["train"], dm.framewise)
    sampler = LengthBucketSampler(dm.splits["train"].lengths, BATCH_SIZE, shuffle=True)
    batches = {"bucketed": [padded[b] for b in sampler],
               "random": training.random_batches(padded, BATCH_SIZE)}
    times = training.packing_timings(model, batches, repeats)
    return times | {f"packed_over_masked_{name}": times[f"packed_{name}"] / times[f"masked_{name}"]
                    for name in batches}


def bench_extraction(dm: SpeechDataModule, repeats: int, scratch: Path) -> dict:
    clips = len(dm.utterances())
    ours, by_librosa, per_file = [], [], []
    for _ in range(repeats):  # interleaved, so a busy spell on a shared machine hits all three
        ours.append(extraction.build_cache_s(dm, scratch))
        by_librosa.append(extraction.librosa_per_file_s(dm))
        per_file.append(extraction.torchaudio_per_file_s(dm))
    ratios = [lib / own for lib, own in zip(by_librosa, ours)]
    return {"clips": clips, "cache_build_clips_per_s": clips / training.median(ours),
            "librosa_per_file_clips_per_s": clips / training.median(by_librosa),
            "torchaudio_per_file_clips_per_s": clips / training.median(per_file),
            "speedup_vs_librosa": training.median(ratios)}


def bench_evaluate(dm: SpeechDataModule, checkpoint: str, repeats: int) -> dict:
    ckpt = load_checkpoint(checkpoint)
    seconds = []
    for _ in range(repeats):
        datamodule = build_datamodule(ckpt, data_root=str(dm.data_root), cache_dir=str(dm.cache_dir))
        start = time.perf_counter()
        report = evaluate(ckpt, datamodule, "test", "cpu")
        seconds.append(time.perf_counter() - start)
    utts = report["test"]["utterances"]
    return {"test_utterances": utts, "evaluate_utt_per_s": utts / training.median(seconds)}


def bench_step_time() -> dict:
    return {cell: {n: step_time(cell, n)[0] for n in STEP_TIME_LENGTHS} for cell in STEP_TIME_ENCODERS}


def table(results: dict) -> str:
    rows = [("measure", *results["corpora"])]
    metrics = [
        ("train utt/s, ours", "training", "ours_utt_per_s", "{:,.0f}"),
        ("train utt/s, standard baseline", "training", "baseline_utt_per_s", "{:,.0f}"),
        ("train speed-up over baseline", "training", "speedup_vs_baseline", "{:.2f}x"),
        ("train utt/s, ours with augmentation", "training", "augmented_utt_per_s", "{:,.0f}"),
        ("train speed-up over baseline, with augmentation", "training", "speedup_vs_baseline_augmented", "{:.2f}x"),
        ("train frames/s, ours", "training", "ours_frames_per_s", "{:,.0f}"),
        ("train frames/s, baseline", "training", "baseline_frames_per_s", "{:,.0f}"),
        ("model alone utt/s, bucketed batches", "training", "model_alone_bucketed_utt_per_s", "{:,.0f}"),
        ("model alone utt/s, random batches", "training", "model_alone_random_utt_per_s", "{:,.0f}"),
        ("pipeline overhead (epoch / model alone)", "training", "pipeline_overhead", "{:.3f}"),
        ("padding, bucketed / random", "training", ("padding_bucketed", "padding_random"), "{:.2f}x"),
        ("pack_padded / masked, bucketed", "packing", "packed_over_masked_bucketed", "{:.2f}x"),
        ("pack_padded / masked, random", "packing", "packed_over_masked_random", "{:.2f}x"),
        ("features clips/s, cache build", "extraction", "cache_build_clips_per_s", "{:,.0f}"),
        ("features clips/s, librosa per file", "extraction", "librosa_per_file_clips_per_s", "{:,.0f}"),
        ("features clips/s, ours per file", "extraction", "torchaudio_per_file_clips_per_s", "{:,.0f}"),
        ("features speed-up over librosa", "extraction", "speedup_vs_librosa", "{:.2f}x"),
        ("evaluate utt/s (whole command)", "evaluate", "evaluate_utt_per_s", "{:,.0f}"),
    ]
    for label, section, key, fmt in metrics:
        keys = key if isinstance(key, tuple) else (key,)
        if any(section not in results["corpora"][name] or keys[0] not in results["corpora"][name][section]
               for name in results["corpora"]):
            continue  # left out with --skip, or no --augment
        cells = []
        for name in results["corpora"]:
            values = results["corpora"][name][section]
            cells.append(" / ".join(fmt.format(values[k]) for k in keys))
        rows.append((label, *cells))
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * len(rows[0]))
    if results["augmentation"]:
        lines += ["", f"Augmentation: {results['augmentation']}; the baseline never augments."]
    if "step_time_s" not in results:
        return "\n".join(lines)
    steps = results["step_time_s"]
    lines += ["", "Forward+backward seconds per batch of 32 against length (frames), hidden 64:", "",
              "| encoder | " + " | ".join(str(n) for n in STEP_TIME_LENGTHS) + " |",
              "|" + "---|" * (len(STEP_TIME_LENGTHS) + 1)]
    lines += ["| " + cell + " | " + " | ".join(f"{steps[cell][n]:.4f}" for n in STEP_TIME_LENGTHS) + " |"
              for cell in steps]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", nargs="+", choices=CORPORA, default=list(CORPORA))
    parser.add_argument("--fsdd_root", default=os.environ.get("SPEECHRNN_DATA_ROOT", "data"),
                        help="the folder holding fsdd/ (read-only is fine)")
    parser.add_argument("--data_root", default="data", help="where the embedded corpus is generated")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--augment", type=Path, help="also time our path trained with this config's augmentation "
                        "(e.g. configs/data/fsdd.yaml), in the same alternation; the baseline never augments")
    parser.add_argument("--skip", nargs="+", default=[], choices=["packing", "extraction", "evaluate", "step_time"],
                        help="leave these measurements out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = {"machine": {"cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                           "processor": platform.processor() or platform.machine(),
                           "load_average": os.getloadavg(), "torch": torch.__version__},
               "model": MODEL, "batch_size": BATCH_SIZE, "repeats": args.repeats,
               "augmentation": augmentation(args.augment), "corpora": {}}
    for name in args.corpora:
        dm = corpus(name, args, {})
        dm.prepare_data()
        dm.setup("fit")
        augmented = corpus(name, args, results["augmentation"]) if results["augmentation"] else None
        section = {"training": bench_training(dm, args.repeats, augmented)}
        checkpoint = section["training"]["checkpoint"]
        if "packing" not in args.skip:
            section["packing"] = bench_packing(dm, checkpoint, args.repeats)
        if "extraction" not in args.skip:
            section["extraction"] = bench_extraction(dm, args.repeats, args.out)
        if "evaluate" not in args.skip:
            section["evaluate"] = bench_evaluate(dm, checkpoint, args.repeats)
        results["corpora"][name] = section
    if "step_time" not in args.skip:
        results["step_time_s"] = bench_step_time()
    results["machine"]["load_average_after"] = os.getloadavg()
    results["wall_s"] = time.perf_counter() - started
    write_json(args.out / "bench.json", results)
    text = table(results)
    (args.out / "bench.md").write_text(text + "\n")
    print(text)
    print(f"\n{args.out / 'bench.json'} ({results['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
