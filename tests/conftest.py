"""Shared fixtures: data modules rooted in the test's tmp_path, and a tiny generated tone corpus."""

from __future__ import annotations

import os

import pytest

from tones import ToneDataModule

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def make_data(tmp_path):
    """``make_data(cls, prepare=False, **kwargs)``: a data module reading ``tmp_path/data`` and
    caching in ``tmp_path/cache`` unless kwargs say otherwise; ``prepare=True`` also runs
    ``prepare_data()`` and ``setup("fit")``."""

    def make(cls, prepare=False, **kwargs):
        kwargs.setdefault("data_root", str(tmp_path / "data"))
        kwargs.setdefault("cache_dir", str(tmp_path / "cache"))
        dm = cls(**kwargs)
        if prepare:
            dm.prepare_data()
            dm.setup("fit")
        return dm

    return make


@pytest.fixture
def first_batch_phones():
    """``first_batch_phones(dm, loader)``: for each utterance of the first batch that
    ``dm.<loader>_dataloader()`` yields, the phone label of each of its frames (padding cut)."""

    def phones(dm, loader):
        batch = next(iter(getattr(dm, f"{loader}_dataloader")()))
        return [
            [dm.labels[i] for i in row[:length].tolist()]
            for row, length in zip(batch.targets, batch.lengths, strict=True)
        ]

    return phones


@pytest.fixture
def tone_data(make_data):
    """A prepared three-class tone data module in a temporary data root and cache."""
    return make_data(ToneDataModule, prepare=True, length_buckets=[20, 40])
