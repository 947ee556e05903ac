"""Length-bucketed batches gathered from a split's contiguous frame array, one tensor op each.

The arrays may live on the GPU (``SpeechDataModule.feature_device``): a batch is then gathered
there, and only its indices cross from the host.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from speechrnn.batch import IGNORE_INDEX, Batch
from speechrnn.data.cache import SplitFeatures


class PaddedBatches(Dataset):
    """Map-style dataset whose items are whole batches: ``batches[list_of_indices] -> Batch``."""

    def __init__(self, split: SplitFeatures, framewise: bool) -> None:
        self.split = split
        self.framewise = framewise
        self.device = split.feats.device
        self.lengths = split.lengths  # (N,) frames, beside the features
        self.host_lengths = self.lengths.cpu()  # sizes each batch without waiting on the GPU

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, indices: list[int]) -> Batch:
        host_idx = torch.as_tensor(indices)
        num_steps = int(self.host_lengths[host_idx].max())
        idx = host_idx.to(self.device, non_blocking=True)
        lengths = self.lengths[idx]
        steps = torch.arange(num_steps, device=self.device)
        valid = steps[None, :] < lengths[:, None]  # (B, T)
        rows = (self.split.offsets[idx, None] + steps[None, :]).clamp_(max=len(self.split.feats) - 1)
        feats = self.split.feats[rows] * valid[..., None]  # (B, T, F)
        if self.framewise:
            targets = self.split.targets[rows].masked_fill_(~valid, IGNORE_INDEX)  # (B, T)
        else:
            targets = self.split.targets[idx]  # (B,)
        return Batch(feats, lengths, targets, self.split.speech_lengths[idx], idx)


class LengthBucketSampler(Sampler[list[int]]):
    """Yields batches of indices of similar length; a new order every epoch.

    Indices are sorted by length with ties broken at random, cut into global batches of
    ``batch_size * num_replicas``, and each rank takes every ``num_replicas``-th item of each
    global batch: ranks see disjoint indices, the same number of batches, and together every
    index exactly once per epoch. Batch order is shuffled with a seed shared by all ranks.
    """

    def __init__(self, lengths: Tensor, batch_size: int, shuffle: bool, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0) -> None:
        self.lengths = torch.as_tensor(lengths).cpu()  # the order is drawn on the host, wherever features lie
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._order: tuple[int, list[Tensor]] | None = None  # (epoch, global batches)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _global_batches(self) -> list[Tensor]:
        """This epoch's batches, computed once per epoch (``len()`` and iteration share them)."""
        if self._order is None or self._order[0] != self.epoch:
            self._order = (self.epoch, self._order_of_epoch())
        return self._order[1]

    def _order_of_epoch(self) -> list[Tensor]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.shuffle:
            tiebreak = torch.randperm(len(self.lengths), generator=generator)
            order = tiebreak[torch.argsort(self.lengths[tiebreak], stable=True)]
        else:
            order = torch.argsort(self.lengths, stable=True)
        batches = list(torch.split(order, self.batch_size * self.num_replicas))
        if len(batches) > 1 and len(batches[-1]) < self.num_replicas:
            batches[-2:] = [torch.cat(batches[-2:])]  # every rank needs an item of the last batch
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
        return batches

    def __iter__(self):
        for batch in self._global_batches():
            yield batch[self.rank :: self.num_replicas].tolist()

    def __len__(self) -> int:
        return len(self._global_batches())
