"""``speechrnn evaluate CKPT``: accuracy overall, macro and per length bucket, from a checkpoint.

The data module is rebuilt from the checkpoint (or from ``--dataset``) with the checkpoint's
feature settings, and scored by ``Trainer.test`` with the model's own ``test_step``: the batches
and the metric of the training run's test, so the numbers agree with it.
"""

from __future__ import annotations

import argparse
import importlib.resources
import logging
import math
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path

import lightning as L
import yaml

from speechrnn.checkpoint import Checkpoint, load_checkpoint
from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.data.folder import FolderDataModule
from speechrnn.data.pipeline import DataPipeline
from speechrnn.data.synth import SynthDataModule
from speechrnn.errors import SpeechRNNError
from speechrnn.jsonio import write_json
from speechrnn.plots import plot_accuracy_by_length, plot_confusion

DATA_CONFIGS = "data"  # the dataset configs, within the package's configs (importlib.resources)


def bucket_edges(text: str) -> list[int]:
    """``--buckets 50,100,150``: increasing positive edges in frames."""
    try:
        edges = [int(edge) for edge in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of frame counts") from None
    if not edges or edges[0] <= 0 or any(b <= a for a, b in pairwise(edges)):
        raise argparse.ArgumentTypeError(f"bucket edges {text!r} must be positive and increasing")
    return edges


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="speechrnn evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .ckpt file written by `speechrnn fit`")
    parser.add_argument("--split", choices=["test", "validation"], default="test")
    parser.add_argument("--dataset", help="a dataset config name (configs/data/<NAME>.yaml), or `folder` for "
                        "--data-root DIR/<label>/*.wav (every file scored); default: the checkpoint's")
    parser.add_argument("--data-root", help="where the dataset lies (for `folder`, the folder itself)")
    parser.add_argument("--cache-dir", help="where feature caches go; default: the checkpoint's")
    parser.add_argument("--buckets", type=bucket_edges, help="length-bucket edges in frames, e.g. 50,100,150")
    parser.add_argument("--batch-size", type=int, help="utterances per batch; default: the checkpoint's")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--json", type=Path, help="also write the report to this file")
    parser.add_argument("--plot", type=Path, help="write a PNG of accuracy against length")
    parser.add_argument("--confusion", type=Path, help="write a PNG of the confusion matrix")
    return parser.parse_args(argv)


def dataset_config(name: str) -> tuple[str, dict]:
    """The class path and arguments of the packaged ``configs/data/<name>.yaml``."""
    folder = importlib.resources.files("speechrnn.configs") / DATA_CONFIGS
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise SpeechRNNError(f"no dataset config {name!r}; choose one of {known}")
    data = yaml.safe_load(path.read_text())["data"]
    return data["class_path"], dict(data.get("init_args") or {})


def build_datamodule(ckpt: Checkpoint, dataset: str | None = None, data_root: str | None = None,
                     cache_dir: str | None = None, batch_size: int | None = None,
                     buckets: list[int] | None = None, split: str = "test") -> SpeechDataModule:
    """The data module to score on: the checkpoint's pipeline, or ``dataset`` with its features.

    ``dataset`` is a packaged dataset name, ``folder`` (``data_root`` is then ``DIR/<label>/*.wav``,
    every file in ``split``), or None for the checkpoint's own data module as training built it.
    """
    overrides = {"data_root": data_root, "cache_dir": cache_dir, "batch_size": batch_size,
                 "length_buckets": buckets or ckpt.model_args["length_buckets"]}
    if dataset is None:
        datamodule = ckpt.pipeline.build(**overrides)
    else:
        if dataset == "folder":
            if data_root is None:
                raise SpeechRNNError("--dataset folder needs --data-root DIR holding DIR/<label>/*.wav")
            class_path, init_args = "speechrnn.data.folder.FolderDataModule", {"path": data_root, "use_all_for": split}
            overrides.pop("data_root")
        else:
            class_path, init_args = dataset_config(dataset)
        described = DataPipeline({"class_path": class_path, "init_args": init_args | asdict(ckpt.features)
                                  | {"task": ckpt.task}}, ckpt.features, ckpt.pipeline.pad_to_s)
        datamodule = described.build(**overrides)
    # a folder is its own corpus; the eSpeak corpus is generated (into the cache) when missing
    if not isinstance(datamodule, FolderDataModule | SynthDataModule) and not datamodule.corpus_dir.is_dir():
        raise SpeechRNNError(
            f"{datamodule.corpus_dir.parent} holds no {datamodule.corpus_dir.name}/ folder; pass --data-root with "
            f"the folder that holds {datamodule.corpus_dir.name}/ (`speechrnn fit` on this dataset downloads it there)"
        )
    adopt_vocabulary(datamodule, ckpt)
    return datamodule


def adopt_vocabulary(datamodule: SpeechDataModule, ckpt: Checkpoint) -> None:
    """Give the data the checkpoint's label ids, so targets and predictions share one numbering.

    The data may hold a subset of the checkpoint's labels (scoring some classes is a normal use).
    """
    unknown = [label for label in datamodule.labels if label not in ckpt.labels]
    if unknown:
        source = getattr(datamodule, "path", datamodule.corpus_dir)
        raise SpeechRNNError(
            f"{source} has labels {unknown} that checkpoint {ckpt.path} does not know; it knows "
            f"{ckpt.labels}: rename or remove those, or evaluate a checkpoint trained on them"
        )
    datamodule.labels = ckpt.labels


def trainer_device(device: str) -> dict:
    """Trainer arguments for ``--device``."""
    kind, _, index = device.partition(":")
    if kind in ("cpu", "auto") and not index:
        return {"accelerator": kind, "devices": 1}
    if kind in ("cuda", "gpu") and (not index or index.isdigit()):
        return {"accelerator": "gpu", "devices": [int(index)] if index else 1}
    raise SpeechRNNError(f"--device {device!r} is not cpu, cuda, cuda:N or auto")


def evaluate(ckpt: Checkpoint, datamodule: SpeechDataModule, split: str, device: str) -> dict:
    """Score the checkpoint on one split; the report that is printed and written as JSON."""
    datamodule.prepare_data()
    datamodule.setup("test")
    if not len(datamodule.splits[split]):
        raise SpeechRNNError(f"the {split} split of {datamodule.name} is empty; choose another --split")
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    model = ckpt.model(datamodule.length_buckets)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # the report is the output
    trainer = L.Trainer(**trainer_device(device), logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.test(model, dataloaders=loader, verbose=False)[0]
    table = model.results["test"]
    hop_s = ckpt.features.frame_s
    scores = {
        "utterances": len(datamodule.splits[split]),
        "accuracy": metrics["test/acc"],
        "macro_accuracy": table["macro_accuracy"],
        **({"folded_accuracy": metrics["test/acc_folded"]} if "test/acc_folded" in metrics else {}),
        "edges": table["edges"],
        "edges_s": [round(edge * hop_s, 6) for edge in table["edges"]],
        "buckets": table["buckets"],
        "confusion": table["confusion"],
    }
    return {"checkpoint": str(ckpt.path), "cell": ckpt.model_args["cell"], "dataset": datamodule.name,
            "task": ckpt.task, "hop_ms": ckpt.features.hop_ms, "labels": ckpt.labels, "split": split,
            split: scores}


def format_report(report: dict) -> str:
    split, scores = report["split"], report[report["split"]]
    framewise = report["task"] == "phones"
    unit = "frames" if framewise else "utterances"
    lines = [
        f"checkpoint: {report['checkpoint']} ({report['cell']}, {report['task']})",
        f"data: {report['dataset']} {split} split, {scores['utterances']} utterances",
        f"{'framewise accuracy' if framewise else 'accuracy'}: {100 * scores['accuracy']:.2f}%",
        f"macro accuracy: {100 * scores['macro_accuracy']:.2f}%",
    ]
    if "folded_accuracy" in scores:
        lines.append(f"folded accuracy: {100 * scores['folded_accuracy']:.2f}%")
    lines.append(f"{'frames':>12}  {'seconds':>12}  {unit:>10}  {'accuracy':>8}")
    bounds_s = [0, *scores["edges_s"], math.inf]
    for (name, count, acc), (lo_s, hi_s) in zip(scores["buckets"], pairwise(bounds_s)):
        lo, hi = name.split("-")
        frames = f"{int(lo)}-{hi if hi == 'inf' else int(hi)}"
        seconds = f"{lo_s:.2f}-{hi_s:.2f}" if hi != "inf" else f"{lo_s:.2f}-inf"
        accuracy = "-" if acc is None else f"{100 * acc:.2f}%"
        lines.append(f"{frames:>12}  {seconds:>12}  {count:>10}  {accuracy:>8}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    datamodule = build_datamodule(ckpt, args.dataset, args.data_root, args.cache_dir, args.batch_size,
                                  args.buckets, args.split)
    report = evaluate(ckpt, datamodule, args.split, args.device)
    print(format_report(report))
    scores = report[report["split"]]
    if args.json:
        write_json(args.json, report)
    if args.plot:
        title = f"{report['cell']} on {report['dataset']} ({report['split']})"
        plot_accuracy_by_length({report["cell"]: scores}, args.plot, report["hop_ms"], title=title)
    if args.confusion:
        plot_confusion(scores["confusion"], report["labels"], args.confusion,
                       title=f"{report['cell']} on {report['dataset']} ({report['split']})")
