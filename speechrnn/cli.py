"""The ``speechrnn`` command: LightningCLI for fit/validate/test/predict, plus our own tools.

Training is configured by stacked YAML files (``--config configs/data/x.yaml --config ...``);
every constructor argument of the data module and the model is a flag and a YAML key.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from speechrnn.checkpoint import data_module_class
from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.errors import SpeechRNNError
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.models.encoder import count_parameters
from speechrnn.tracking import default_wandb_mode


class SpeechCLI(LightningCLI):
    """LightningCLI with the data-to-model links, a run directory, and a test after fitting."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_dir", default="runs/latest",
                            help="holds config.yaml, checkpoints/ and wandb/ of this run")
        parser.add_argument("--test_after_fit", type=bool, default=True,
                            help="after fit, test the best checkpoint and print its accuracy")
        for source, target in [("labels", "labels"), ("feature_dim", "input_size"), ("task", "task"),
                               ("length_buckets", "length_buckets")]:
            parser.link_arguments(f"data.{source}", f"model.{target}", apply_on="instantiate")
        parser.link_arguments("data", "model.label_folding", compute_fn=lambda dm: dm.scoring_map(),
                              apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        """Point the trainer, checkpoints and W&B at ``run_dir`` unless the config says otherwise."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        run_dir = Path(config.run_dir)
        trainer = config.trainer
        trainer.default_root_dir = str(run_dir)
        for callback in trainer.callbacks or []:
            if callback.class_path.endswith("ModelCheckpoint") and not callback.init_args.get("dirpath"):
                callback.init_args.dirpath = str(run_dir / "checkpoints")
        loggers = trainer.logger if isinstance(trainer.logger, list) else [trainer.logger]
        for logger in loggers:
            if getattr(logger, "class_path", "").endswith("WandbLogger"):
                if logger.init_args.get("save_dir") in (None, "."):
                    logger.init_args.save_dir = str(run_dir)
                describe_wandb_run(logger.init_args, config)
        run_dir.mkdir(parents=True, exist_ok=True)

    def before_fit(self) -> None:
        self.fit_started = time.perf_counter()

    def after_fit(self) -> None:
        self.trainer.fit_seconds = time.perf_counter() - self.fit_started
        if self.config.fit.test_after_fit and not self.trainer.fast_dev_run:
            self.test_best_checkpoint()
        if isinstance(self.trainer.logger, WandbLogger):
            self.trainer.logger.experiment.finish()  # write the run's files now, not at exit

    def test_best_checkpoint(self) -> None:
        checkpoint = self.trainer.checkpoint_callback
        best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
        results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None,
                                    weights_only=True)
        accuracy = results[0]["test/acc"]
        write_run_results(Path(self.config.fit.run_dir), self.model, self.trainer, accuracy, best)
        print(f"best checkpoint: {best or '(none saved)'}")
        print(f"test accuracy: {accuracy:.4f}")
        if isinstance(self.trainer.logger, WandbLogger):
            self.trainer.logger.experiment.summary["test/acc"] = accuracy


class SaveConfigToWandb(SaveConfigCallback):
    """Also put the resolved config into the W&B run (key ``cli``), so the run says how to repeat it."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        if isinstance(trainer.logger, WandbLogger):
            resolved = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
            trainer.logger.log_hyperparams({"cli": resolved})


def describe_wandb_run(init_args, config) -> None:
    """Fill in the W&B run name, group and tags the config leaves unset.

    The group is the dataset and task, so runs of every encoder on the same data line up in one
    workspace; the name says the encoder and frame hop; tags hold encoder, dataset and task.
    Checkpoints are uploaded only online (Lightning refuses ``log_model`` with ``offline``);
    offline they stay in ``run_dir/checkpoints``.
    """
    model, data = config.model, config.data.init_args
    data_class = data_module_class(config.data.class_path, "the data config")
    task = data.get("task") or data_class.tasks[0]  # wrappers (the delayed task) take no task
    hop = f"-hop{data.hop_ms:g}ms" if data.get("hop_ms") else ""
    direction = "-bi" if model.get("bidirectional") else ""
    init_args.name = init_args.get("name") or f"{model.cell}{direction}-{model.num_layers}x{model.hidden_size}{hop}"
    init_args.group = init_args.get("group") or f"{data_class.name}-{task}"
    init_args.tags = init_args.get("tags") or [model.cell, data_class.name, task]
    if os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        init_args.log_model = False


def write_run_results(run_dir: Path, model: SpeechClassifier, trainer, accuracy: float, checkpoint: str) -> Path:
    """``run_dir/results.json``: what ``speechrnn compare`` and the pipelines read back."""
    datamodule = trainer.datamodule
    results = {
        "cell": model.hparams.cell,
        "dataset": datamodule.name,
        "task": datamodule.task,
        "hop_ms": datamodule.features.hop_ms,
        "test": {"accuracy": accuracy, **model.results["test"]},
        "parameters": count_parameters(model),
        "train_seconds": getattr(trainer, "fit_seconds", None),
        "epochs": trainer.current_epoch,
        "checkpoint": checkpoint,
    }
    path = run_dir / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)
    return path


def run_lightning(args: list[str] | None = None) -> SpeechCLI:
    """Run LightningCLI on ``args`` (the command line when None)."""
    with warnings.catch_warnings():
        # pipelines pass their own args while sys.argv holds the pipeline's: that is intended
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        return SpeechCLI(
            SpeechClassifier,
            SpeechDataModule,
            subclass_mode_data=True,
            save_config_callback=SaveConfigToWandb,
            save_config_kwargs={"overwrite": True},
            args=args,
        )


# Commands beyond LightningCLI's: each module has ``main(argv)``.
TOOLS = {
    "evaluate": "speechrnn.evaluate",
    "predict": "speechrnn.predict",
    "compare": "speechrnn.compare",
    "gradients": "speechrnn.gradients",
    "stream": "speechrnn.stream",
    "export": "speechrnn.export",
}


def main(argv: list[str] | None = None) -> None:
    """Entry point; ``argv`` defaults to the command line."""
    default_wandb_mode()
    # Lightning 2.6 calls a torch pytree API that torch 2.11 deprecates; nothing for users to do
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    args = sys.argv[1:] if argv is None else argv
    try:
        if args and args[0] in TOOLS:
            importlib.import_module(TOOLS[args[0]]).main(args[1:])
        else:
            run_lightning(argv)
    except SpeechRNNError as err:
        print(f"speechrnn: error: {err}", file=sys.stderr)
        sys.exit(2)
    except MisconfigurationException as err:  # e.g. TRAINER=gpu on a machine without one
        print(f"speechrnn: error: {err} Check the trainer config (make train TRAINER=cpu runs on the CPU).",
              file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
