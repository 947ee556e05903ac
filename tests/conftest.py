"""Shared fixtures: a tiny generated tone corpus and its prepared data module."""

from __future__ import annotations

import os

import pytest

from tones import ToneDataModule

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def tone_data(tmp_path):
    """A prepared three-class tone data module in a temporary data root and cache."""
    dm = ToneDataModule(data_root=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"),
                        length_buckets=[20, 40])
    dm.prepare_data()
    dm.setup("fit")
    return dm
