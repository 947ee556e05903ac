import json
import signal
from pathlib import Path

import pytest
import torch
import yaml

from pipelines.configs import recipe_args, trainer_args
from speechrnn.cli import main
from speechrnn.corpora.synth import SynthDataModule

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def fit(tmp_path, *extra):
    main(["fit", "--config", str(CONFIGS / "model/gru.yaml"), *trainer_args(CONFIGS / "trainer/cpu.yaml"),
          "--data", "tones.ToneDataModule", "--data.data_root", str(tmp_path / "data"),
          "--data.cache_dir", str(tmp_path / "cache"), "--run_dir", str(tmp_path / "run"),
          "--trainer.enable_progress_bar=false", "--model.hidden_size=16", *extra])


def test_an_interrupted_run_resumes_at_the_epoch_it_stopped(tmp_path):
    epochs = tmp_path / "epochs.txt"
    interrupting = {"class_path": "tones.EpochLog", "init_args": {"path": str(epochs), "stop_at": 2}}
    checkpointing = yaml.safe_load((CONFIGS / "trainer/base.yaml").read_text())["trainer"]["callbacks"]
    callbacks = tmp_path / "callbacks.yaml"
    callbacks.write_text(yaml.safe_dump({"trainer": {"callbacks": [*checkpointing, interrupting]}}))
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):  # Lightning's graceful shutdown on Ctrl+C
            fit(tmp_path, "--config", str(callbacks), "--trainer.max_epochs=4")
    finally:
        signal.signal(signal.SIGINT, handler)
    assert epochs.read_text().split() == ["0", "1"]
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file()
    stopped = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert stopped["epoch"] == 1

    resumed_log = {"class_path": "tones.EpochLog", "init_args": {"path": str(epochs), "stop_at": -1}}
    callbacks.write_text(yaml.safe_dump({"trainer": {"callbacks": [*checkpointing, resumed_log]}}))
    main(["fit", "--config", str(run / "config.yaml"), "--config", str(callbacks), "--ckpt_path", "last"])
    assert epochs.read_text().split() == ["0", "1", "2", "3"]
    final = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert final["global_step"] == 2 * stopped["global_step"]


@pytest.mark.parametrize("data_config,model_config", [("synth", "lstm"), ("synth_phones", "rnn")])
def test_fit_from_composed_configs_writes_checkpoint_config_and_results(tmp_path, data_config, model_config):
    run = tmp_path / "run"
    main(["fit", "--config", str(CONFIGS / f"data/{data_config}.yaml"),
          "--config", str(CONFIGS / f"model/{model_config}.yaml"), *trainer_args(CONFIGS / "trainer/cpu.yaml"),
          "--data.init_args.per_word=3", "--data.init_args.data_root", str(tmp_path / "data"),
          "--data.init_args.cache_dir", str(tmp_path / "cache"), "--model.hidden_size=8",
          "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false", "--run_dir", str(run)])
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["cell"] == model_config
    assert config["data"]["class_path"] == "speechrnn.corpora.synth.SynthDataModule"
    checkpoint = torch.load(run / "checkpoints/best.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["labels"] == SynthDataModule(task=config["data"]["init_args"]["task"]).labels
    results = yaml.safe_load((run / "results.json").read_text())
    assert results["task"] == config["data"]["init_args"]["task"]
    assert 0.0 <= results["test"]["accuracy"] <= 1.0
    assert sum(count for _, count, _ in results["test"]["buckets"]) > 0

    report_path = tmp_path / "evaluate.json"
    main(["evaluate", str(run / "checkpoints/best.ckpt"), "--data-root", str(tmp_path / "data"),
          "--cache-dir", str(tmp_path / "cache"), "--json", str(report_path)])
    report = json.loads(report_path.read_text())
    assert report["task"] == results["task"]
    assert report["test"]["accuracy"] == pytest.approx(results["test"]["accuracy"])  # framewise for phones


@pytest.mark.parametrize("flags,named", [
    (["--data", "speechrnn.corpora.folder.FolderDataModule", "--data.path", "{tmp}/nowhere"], "audio folder {tmp}/nowhere"),
    (["--data", "speechrnn.corpora.fsdd.FSDDDataModule", "--data.split", "by_colour"], "FSDD split 'by_colour'"),
    (["--data", "tones.ToneDataModule", "--model.hidden_size", "0"], "model.hidden_size must be at least 1"),
    (["--data", "tones.ToneDataModule", "--model.lr", "-1"], "model.lr must be positive"),
])
def test_a_bad_fit_argument_is_one_line_naming_it_with_exit_2(tmp_path, capsys, flags, named):
    flags = [flag.format(tmp=tmp_path) for flag in flags]
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(CONFIGS / "model/gru.yaml"), *trainer_args(CONFIGS / "trainer/cpu.yaml"),
              "--run_dir", str(tmp_path / "run"), "--trainer.logger", "false", *flags])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("speechrnn: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert named.format(tmp=tmp_path) in err


def resolved_config(capsys, *configs: str) -> dict:
    """The config ``speechrnn fit`` resolves from ``configs`` (its ``--print_config``), built on nothing."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *configs, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def test_cpu_and_gpu_trainers_stack_on_one_base_with_the_same_logger_and_callbacks(capsys):
    data = ["--config", str(CONFIGS / "data/synth.yaml"), "--config", str(CONFIGS / "model/gru.yaml")]
    cpu = resolved_config(capsys, *data, *trainer_args(CONFIGS / "trainer/cpu.yaml"))["trainer"]
    gpu = resolved_config(capsys, *data, *trainer_args(CONFIGS / "trainer/gpu.yaml"))["trainer"]
    assert (cpu["accelerator"], gpu["accelerator"], gpu["precision"]) == ("cpu", "gpu", "bf16-mixed")
    assert cpu["logger"] == gpu["logger"] and cpu["logger"]["class_path"].endswith("WandbLogger")
    assert cpu["callbacks"] == gpu["callbacks"]
    assert [c["class_path"].rpartition(".")[2] for c in cpu["callbacks"]] == [
        "ModelCheckpoint", "ModelCheckpoint", "EarlyStopping"]
    for machine in ("cpu", "gpu"):  # the shared keys live in the base alone
        assert {"logger", "callbacks"}.isdisjoint(yaml.safe_load((CONFIGS / f"trainer/{machine}.yaml").read_text())["trainer"])


def test_data_configs_hold_no_model_keys():
    for path in (CONFIGS / "data").glob("*.yaml"):
        assert set(yaml.safe_load(path.read_text())) == {"data"}, path


def test_fsdd_speakers_stacks_on_the_fsdd_recipe_and_its_experiment_file(capsys):
    config = resolved_config(capsys, *recipe_args(CONFIGS / "data/fsdd.yaml"),
                             "--config", str(CONFIGS / "data/fsdd_speakers.yaml"),
                             "--config", str(CONFIGS / "model/gru.yaml"))
    data = config["data"]["init_args"]
    assert (data["split"], data["test_speakers"], data["n_mfcc"], data["vtlp"]) == ("speakers", ["theo"], 13, 0.1)
    assert (config["model"]["normalisation"], config["model"]["dropout"]) == ("causal", 0.2)


def test_fsdd_voices_adds_espeak_digits_to_the_fsdd_recipe_and_keeps_the_held_out_speaker(capsys):
    config = resolved_config(capsys, *recipe_args(CONFIGS / "data/fsdd.yaml"),
                             "--data.init_args.split=speakers", "--data.init_args.test_speakers=[theo]",
                             "--config", str(CONFIGS / "data/fsdd_voices.yaml"),
                             "--config", str(CONFIGS / "model/gru.yaml"))
    data = config["data"]["init_args"]
    assert (data["espeak_per_digit"], data["test_speakers"], data["vtlp"]) == (100, ["theo"], 0.1)
    assert config["model"]["normalisation"] == "causal"
