"""The ``speechrnn`` command: LightningCLI for fit/validate/test/predict, plus our own tools.

Training is configured by stacked YAML files (``--config configs/data/x.yaml --config ...``);
every constructor argument of the data module and the model is a flag and a YAML key.
"""

from __future__ import annotations

import importlib
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import WandbLogger

from speechrnn.data.datamodule import SpeechDataModule
from speechrnn.data.pipeline import data_module_class
from speechrnn.errors import SpeechRNNError
from speechrnn.files import same_path, write_json
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.models.encoder import count_parameters
from speechrnn.processes import end_process_group, global_rank_is_zero
from speechrnn.training import tracking
from speechrnn.training.callbacks import FeatureStatistics, TrainingStability
from speechrnn.training.runlock import RunLock, set_aside_killed_run


class SpeechCLI(LightningCLI):
    """LightningCLI with the data-to-model links, a run directory, and a test after fitting."""

    def __init__(self, *args, run_lock: RunLock | None = None, **kwargs) -> None:
        self.held_lock = run_lock  # the caller's lock on the run folder, held before and after this fit
        self.run_lock: RunLock | None = None  # else taken in before_instantiate_classes
        try:
            super().__init__(*args, **kwargs)  # parses, instantiates and runs the subcommand
        finally:
            if self.run_lock is not None:
                self.run_lock.release()

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
        # always on, whatever the trainer config lists: the model's input statistics, NaN guards and
        # the W&B length charts
        parser.add_lightning_class_args(FeatureStatistics, "feature_statistics")
        parser.add_lightning_class_args(TrainingStability, "stability")
        parser.add_lightning_class_args(tracking.LengthAccuracyCharts, "length_charts")

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
        if not global_rank_is_zero():  # the other ranks of a job write into the folder rank 0 holds
            return
        lock = self.held_lock
        if lock is None or lock.fd is None or not same_path(lock.run_dir, run_dir):
            lock = self.run_lock = RunLock(run_dir).acquire()  # it creates the folder, or names why it cannot
        # a resume (--ckpt_path) continues the killed run from its files; a fresh fit starts clean
        if lock.taken_over and self.subcommand == "fit" and not config.get("ckpt_path"):
            set_aside(run_dir, lock.taken_over)

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


def set_aside(run_dir: Path, holder: list[str]) -> None:
    """Move a killed run's files out of the way of a fresh fit in its folder, and say so on stderr."""
    moved = set_aside_killed_run(run_dir, holder)
    if moved:
        aside, names = moved
        print(f"speechrnn: {run_dir} held the files of a run that was killed (pid {' on '.join(holder)}): "
              f"moved its {', '.join(names)} to {aside}, so this fit's checkpoints are its own "
              f"(to continue that run instead, pass --ckpt_path {aside}/checkpoints/last.ckpt)", file=sys.stderr)


def describe_wandb_run(init_args, config) -> None:
    """Name, group and tag the W&B run from the config (see ``tracking.describe_run``)."""
    data = config.data.init_args
    data_class = data_module_class(config.data.class_path, "the data config")
    corpus = data.get("inner", config.data).init_args  # a wrapper's features are its inner module's
    tracking.describe_run(init_args, config.model, data_class.dataset_name(data),
                          data.get("task") or data_class.tasks[0], corpus.get("hop_ms"))


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
        "epochs": trainer.current_epoch,  # epochs completed
        "max_epochs": trainer.max_epochs,
        "checkpoint": checkpoint,
    }
    return write_json(run_dir / "results.json", results)  # an empty bucket's NaN accuracy becomes null


def run_lightning(args: list[str] | None = None, run: bool = True, run_lock: RunLock | None = None) -> SpeechCLI:
    """Run LightningCLI on ``args`` (the command line when None); ``run=False`` only builds the
    classes (``args`` then has no subcommand), e.g. to prepare a run's data before timing it.

    ``run_lock``: the caller's lock on the run folder (a pipeline's, held from its reuse check to
    its records), used instead of taking a second one."""
    with warnings.catch_warnings():
        # pipelines pass their own args while sys.argv holds the pipeline's: that is intended
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        return SpeechCLI(
            SpeechClassifier,
            SpeechDataModule,
            subclass_mode_data=True,
            save_config_callback=tracking.SaveConfigToWandb,
            save_config_kwargs={"overwrite": True},
            args=args,
            run=run,
            run_lock=run_lock,
        )


# Commands beyond LightningCLI's: each module has ``main(argv)``.
TOOLS = {
    "evaluate": "speechrnn.commands.evaluate",
    "predict": "speechrnn.commands.predict",
    "compare": "speechrnn.commands.compare",
    "gradients": "speechrnn.commands.gradients",
    "stream": "speechrnn.commands.stream",
    "export": "speechrnn.commands.export",
    "tune": "speechrnn.commands.tune",
}


def user_error(err: BaseException) -> SpeechRNNError | None:
    """The SpeechRNNError behind ``err``, if any: jsonargparse wraps the errors of the classes it
    builds (a bad data path, say) in its own ValueError, whose dump would bury our one line."""
    while err is not None:
        if isinstance(err, SpeechRNNError):
            return err
        err = err.__cause__ or err.__context__
    return None


def main(argv: list[str] | None = None) -> None:
    """Entry point; ``argv`` defaults to the command line."""
    tracking.default_wandb_mode()
    # Lightning 2.6 calls a torch pytree API that torch 2.11 deprecates; nothing for users to do
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in TOOLS:
        exit_on_user_error(lambda: importlib.import_module(TOOLS[args[0]]).main(args[1:]))
    else:
        exit_on_user_error(lambda: run_to_the_end(argv))


def run_to_the_end(argv: list[str] | None) -> None:
    """LightningCLI on ``argv``, then (in a distributed job) every rank waited for and the group ended."""
    run_lightning(argv)
    end_process_group()


def exit_on_user_error(entry: Callable[[], object]) -> None:
    """Run ``entry``; a mistake the user can fix is one line on stderr and exit status 2.

    Every command and pipeline enters through here; bugs stay tracebacks.
    """
    try:
        entry()
    except MisconfigurationException as err:  # e.g. TRAINER=gpu on a machine without one
        print(f"speechrnn: error: {err} Check the trainer config (make train TRAINER=cpu runs on the CPU).",
              file=sys.stderr)
        sys.exit(2)
    except Exception as err:
        cause = user_error(err)
        if cause is None:
            raise
        print(f"speechrnn: error: {cause}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
