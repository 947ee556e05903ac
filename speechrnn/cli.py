"""The ``speechrnn`` command: LightningCLI for fit/validate/test/predict, plus our own tools.

Training is configured by stacked YAML files (``--config configs/data/x.yaml --config ...``);
every constructor argument of the data module and the model is a flag and a YAML key.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import WandbLogger

from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.errors import SpeechRNNError
from speechrnn.models.classifier import SpeechClassifier
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
            if getattr(logger, "class_path", "").endswith("WandbLogger") and logger.init_args.get("save_dir") in (None, "."):
                logger.init_args.save_dir = str(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)

    def after_fit(self) -> None:
        if not self.config.fit.test_after_fit or self.trainer.fast_dev_run:
            return
        checkpoint = self.trainer.checkpoint_callback
        best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
        results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None,
                                    weights_only=True)
        accuracy = results[0]["test/acc"]
        print(f"best checkpoint: {best or '(none saved)'}")
        print(f"test accuracy: {accuracy:.4f}")
        if isinstance(self.trainer.logger, WandbLogger):
            self.trainer.logger.experiment.summary["test/acc"] = accuracy


def run_lightning(args: list[str] | None = None) -> SpeechCLI:
    return SpeechCLI(
        SpeechClassifier,
        SpeechDataModule,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point; ``argv`` defaults to the command line."""
    default_wandb_mode()
    try:
        run_lightning(argv)
    except SpeechRNNError as err:
        print(f"speechrnn: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
