"""Building a data module from a description or from stacked config files: one function for both."""

from pathlib import Path

from speechrnn.corpora.fsdd import FSDDDataModule
from speechrnn.data.pipeline import build_data_module

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_stacked_data_configs_build_the_module_they_describe_together(tmp_path):
    dm = build_data_module([CONFIGS / "data/fsdd.yaml", CONFIGS / "data/fsdd_speakers.yaml"],
                           data_root=str(tmp_path), batch_size=None)
    assert isinstance(dm, FSDDDataModule) and dm.data_root == tmp_path
    assert (dm.split, dm.test_speakers, dm.features.n_mfcc, dm.augmentation.settings.vtlp) == (
        "speakers", ["theo"], 13, 0.1)
    assert dm.batch_size == 64  # None leaves an argument as the configs have it


def test_a_modules_description_builds_the_same_module_again(tmp_path):
    dm = build_data_module(CONFIGS / "data/fsdd_delayed.yaml", data_root=str(tmp_path), delays_s=[1.0])
    again = build_data_module(dm.description())
    assert again.description() == dm.description()
    assert again.inner.data_root == tmp_path and again.delays_s == [1.0]  # the corpus's location goes inside
