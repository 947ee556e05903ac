"""``make gpu-check``: one short epoch on a GPU, features on the device, bf16; a smoke test.

Trains an LSTM for one epoch on the embedded corpus with ``feature_device: cuda`` and
``precision: bf16-mixed``, asserts that every batch and the model are on the GPU, and prints
the epoch time and utterances per second. Without a CUDA GPU it says so and exits 0.

    python -m benchmarks.gpu_check [--per-word 100] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import lightning as L
import torch

from speechrnn.corpora.synth import SynthDataModule
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.training.callbacks import FeatureStatistics


class OnDevice(L.Callback):
    """Fails the run unless each training batch and the model sit on a GPU; times the epoch."""

    def __init__(self) -> None:
        self.batches = 0
        self.epoch_s = float("nan")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        assert batch.feats.is_cuda and batch.targets.is_cuda, "a batch reached the model from the host"
        assert all(p.is_cuda for p in pl_module.parameters()), "the model is not on the GPU"
        self.batches += 1

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        torch.cuda.synchronize()
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        torch.cuda.synchronize()
        self.epoch_s = time.perf_counter() - self.started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-word", type=int, default=100, help="utterances per word of the embedded corpus")
    parser.add_argument("--data-root", help="where the embedded corpus is generated (default: a temporary folder)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA GPU on this machine; nothing to check (exit 0)")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        root = args.data_root or scratch
        dm = SynthDataModule(per_word=args.per_word, data_root=root, cache_dir=f"{scratch}/cache",
                             feature_device="cuda", batch_size=64)
        model = SpeechClassifier(labels=dm.labels, input_size=dm.feature_dim, length_buckets=dm.length_buckets,
                                 cell="lstm")
        probe = OnDevice()
        trainer = L.Trainer(accelerator="gpu", devices=1, precision="bf16-mixed", max_epochs=1, logger=False,
                            enable_checkpointing=False, enable_model_summary=False, callbacks=[FeatureStatistics(), probe],
                            limit_val_batches=0)
        trainer.fit(model, datamodule=dm)
        utterances = len(dm.splits["train"])
    print(f"gpu-check: {torch.cuda.get_device_name()}: {probe.batches} batches on the GPU, bf16; "
          f"epoch {probe.epoch_s:.2f} s, {utterances / probe.epoch_s:,.0f} utterances/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
