"""Scoring a checkpoint: accuracy overall, macro and per length bucket (``speechrnn evaluate``), and
the posteriors behind it (:func:`posteriors`, which ensembles average).

The data module is rebuilt from the checkpoint (or from ``--dataset``) with the checkpoint's
feature settings, and scored by ``Trainer.test`` with the model's own ``test_step``: the batches
and the metric of the training run's test, so the numbers agree with it.
"""

from __future__ import annotations

import importlib.resources
import logging
import math
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path

import lightning as L
import torch

from speechrnn.checkpoint import Checkpoint
from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.data.pipeline import build_data_module, data_config
from speechrnn.errors import SpeechRNNError
from speechrnn.tta import TTASettings, variant_posteriors

DATA_CONFIGS = "data"  # the dataset configs, within the package's configs (importlib.resources)


def dataset_config(name: str) -> dict:
    """The ``data`` section of the packaged ``configs/data/<name>.yaml``."""
    folder = importlib.resources.files("speechrnn.configs") / DATA_CONFIGS
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise SpeechRNNError(f"no dataset config {name!r}; choose one of {known}")
    return data_config(Path(str(path)))


def build_datamodule(ckpt: Checkpoint, dataset: str | None = None, data_root: str | None = None,
                     cache_dir: str | None = None, batch_size: int | None = None,
                     buckets: list[int] | None = None, split: str = "test") -> SpeechDataModule:
    """The data module to score on: the checkpoint's pipeline, or ``dataset`` with its features.

    ``dataset`` is a packaged dataset name, ``folder`` (``data_root`` is then ``DIR/<label>/*.wav``,
    every file in ``split``), or None for the checkpoint's own data module as training built it.
    Its targets are numbered by the checkpoint's labels, so targets and predictions agree; the data
    may hold a subset of them (scoring some classes is a normal use).
    """
    overrides = {"data_root": data_root, "cache_dir": cache_dir, "batch_size": batch_size,
                 "length_buckets": buckets or ckpt.model_args["length_buckets"], "target_labels": ckpt.labels}
    if dataset is None:
        description = ckpt.pipeline.data
    else:
        if dataset == "folder":
            if data_root is None:
                raise SpeechRNNError("--dataset folder needs --data-root DIR holding DIR/<label>/*.wav")
            data = {"class_path": "speechrnn.corpora.folder.FolderDataModule",
                    "init_args": {"path": data_root, "use_all_for": split}}
            overrides.pop("data_root")
        else:
            data = dataset_config(dataset)
        description = {"class_path": data["class_path"],
                       "init_args": data["init_args"] | asdict(ckpt.features) | {"task": ckpt.task}}
    datamodule = build_data_module(description, **overrides)
    datamodule.check_corpus_present()
    if datamodule.labels != ckpt.labels:  # a wrapper (the delayed task) numbers by its corpus's labels
        raise SpeechRNNError(f"{datamodule.name} numbers its labels {datamodule.labels}, checkpoint {ckpt.path} "
                             f"{ckpt.labels}; evaluate a checkpoint trained on this data")
    return datamodule


@torch.no_grad()
def posteriors(ckpt: Checkpoint, datamodule: SpeechDataModule, tta: TTASettings | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, list[str]]:
    """The checkpoint's answers on the test split of ``datamodule`` (:func:`build_datamodule`, prepared
    here): ``(posteriors (N, C), posteriors of each test-time variant (V, N, C) or None without
    ``tta``, targets (N,), utterance keys)``, in the test loader's order."""
    datamodule.prepare_data()
    datamodule.setup("test")
    model = ckpt.model().eval()
    probs, variants, targets = [], [], []
    for batch in datamodule.test_dataloader():
        probs.append(model(batch.feats, batch.lengths).softmax(-1))
        if tta is not None:
            variants.append(variant_posteriors(model, batch, tta, ckpt.features))
        targets.append(batch.targets)
    return (torch.cat(probs), torch.cat(variants, 1) if variants else None, torch.cat(targets),
            list(datamodule.splits["test"].keys))


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
