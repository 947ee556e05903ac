"""Tuning every cell alike: recipes chosen by validation accuracy, repeated over seeds, resumed."""

import json

import pytest
import yaml

from pipelines import fit_settings, tune
from pipelines.configs import CONFIGS
from speechrnn.errors import SpeechRNNError
from tones import write_digits

# a list and a choice's name, as configs/tune/fsdd.yaml writes them, through the real CLI
PLAIN_LAST = {"data": {"vtlp": 0.0, "tempo_factors": [], "time_masks": 0, "coeff_masks": 0}, "model": {"pooling": "last"}}


def record(cell, recipe, seed, val_acc, test_acc):
    return {"cell": cell, "recipe": recipe, "seed": seed, "val_acc": val_acc, "test_acc": test_acc,
            "epochs": 3, "best_epoch": 2, "hit_cap": False, "train_seconds": 1.0}


def test_the_recipe_is_chosen_by_validation_accuracy_never_test_accuracy():
    grid = {"cells": ["rnn"], "seeds": [0], "recipes": {"default": {}, "a": {}, "b": {}}}
    records = {key: record(*key, val, test) for key, val, test in
               [(("rnn", "default", 0), 0.80, 0.99), (("rnn", "a", 0), 0.90, 0.50), (("rnn", "b", 0), 0.85, 1.0)]}
    summary = tune.summarise(grid, records)["rnn"]
    assert summary["selected"] == "a"
    assert summary["best"]["test_acc"] == [0.50] and summary["default"]["test_acc"] == [0.99]
    assert "**90.0% / 50.0% (3)**" in tune.tables(grid, {"rnn": summary})


def test_a_tie_in_validation_accuracy_keeps_the_recipe_listed_first():
    records = {("gru", recipe, 0): record("gru", recipe, 0, 0.9, test) for recipe, test in (("default", 0.8), ("a", 0.9))}
    assert tune.select(records, "gru", ["default", "a"], 0) == "default"


def test_a_recipe_may_only_set_data_and_model_keys():
    assert tune.recipe_flags({"model": {"pooling": "last"}, "data": {"tempo_factors": []}}) == [
        '--model.pooling=last', "--data.init_args.tempo_factors=[]"]
    with pytest.raises(SpeechRNNError, match="trainer"):
        tune.recipe_flags({"trainer": {"max_epochs": 3}})


def test_tuning_selects_repeats_over_seeds_and_resumes_without_training(tmp_path, monkeypatch):
    write_digits(tmp_path / "data", per_digit=12)
    grid = {"data_config": str(CONFIGS / "data/fsdd.yaml"), "trainer_config": str(CONFIGS / "trainer/cpu.yaml"),
            "cells": ["gru"], "seeds": [0, 1], "max_epochs": 1, "patience": 1,
            "recipes": {"default": {}, "plain_last": PLAIN_LAST}}
    grid_path = tmp_path / "grid.yaml"
    grid_path.write_text(yaml.safe_dump(grid))
    out = tmp_path / "tune"
    args = ["--grid", str(grid_path), "--out", str(out), "--", f"--data.init_args.data_root={tmp_path / 'data'}",
            f"--data.init_args.cache_dir={tmp_path / 'cache'}", "--data.init_args.batch_size=8",
            "--model.hidden_size=8"]
    tune.main(args)
    result = json.loads((out / "results.json").read_text())["cells"]["gru"]
    selection = {recipe: run["val_acc"] for recipe, run in result["selection"].items()}
    assert result["selected"] == max(selection, key=lambda recipe: (selection[recipe], recipe == "default"))
    for row in ("default", "best"):
        assert result[row]["seeds"] == [0, 1] and result[row]["epochs"] == [1, 1] and result[row]["hit_cap"]
    assert "best: " in (out / "table.md").read_text()

    def no_training(argv, **kwargs):
        raise AssertionError(f"a finished fit trained again: {argv}")

    monkeypatch.setattr(fit_settings, "run_lightning", no_training)
    tune.main(args)  # every fit recorded: the report is rebuilt from the records
    with pytest.raises(SpeechRNNError, match="other settings"):
        tune.main([*args, "--model.num_layers=1"])
