"""Accuracy overall and per sequence-length bucket (the figure speechrnn exists to show)."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import Tensor
from torchmetrics import Metric

DEFAULT_LENGTH_BUCKETS = [50, 100, 150]  # frames; a corpus sets edges where its lengths lie


def bucket_names(edges: list[int]) -> list[str]:
    """Stable names for buckets ``[0, e0), [e0, e1), ..., [e_last, inf)`` in frames."""
    bounds = [0, *edges]
    names = [f"{lo:04d}-{hi:04d}" for lo, hi in pairwise(bounds)]
    return names + [f"{bounds[-1]:04d}-inf"]


class Accuracy(Metric):
    """The share of predictions equal to their targets, ``ignore_index`` skipped; summed across ranks.

    torchmetrics' ``MulticlassAccuracy`` checks its inputs with ``torch.unique`` and drops ignored
    targets by boolean indexing: on a GPU each is a host sync, four per training step (README,
    "On a GPU"). Counting under a mask gives the same number with every op on the device.
    """

    full_state_update = False

    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.add_state("correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, targets: Tensor) -> None:
        """Class ids ``(B,)``, or framewise ``(B, T)`` with ``ignore_index`` on padding."""
        valid = targets != self.ignore_index
        self.correct += ((preds == targets) & valid).sum()
        self.total += valid.sum()

    def compute(self) -> Tensor:
        """Correct over counted (0 with nothing counted, as torchmetrics gives)."""
        return self.correct / self.total.clamp_min(1)


class LengthBucketAccuracy(Metric):
    """Correct and total counts per length bucket; summed across ranks under DDP.

    ``update(preds, targets, lengths)`` takes class ids ``(B,)`` with lengths ``(B,)``, or
    framewise ids ``(B, T)`` (``ignore_index`` on padding) where every frame counts in its
    utterance's bucket.
    """

    full_state_update = False

    def __init__(self, edges: list[int], ignore_index: int = -100) -> None:
        super().__init__()
        self.register_buffer("edges", torch.tensor(edges, dtype=torch.long), persistent=False)
        self.ignore_index = ignore_index
        self.add_state("correct", torch.zeros(len(edges) + 1, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(len(edges) + 1, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, targets: Tensor, lengths: Tensor) -> None:
        bucket = torch.bucketize(lengths, self.edges.to(lengths.device), right=True)  # (B,)
        hits = preds == targets
        if targets.dim() == 2:
            valid = targets != self.ignore_index
            bucket = bucket[:, None].expand_as(targets)[valid]
            hits = hits[valid]
        self.correct += torch.bincount(bucket, weights=hits.float(), minlength=len(self.correct)).long()
        self.total += torch.bincount(bucket, minlength=len(self.total))

    def compute(self) -> tuple[Tensor, Tensor]:
        """Accuracy per bucket (NaN where empty) and the count per bucket."""
        accuracy = torch.where(self.total > 0, self.correct / self.total.clamp_min(1), torch.nan)
        return accuracy, self.total
