"""Two-process DDP on CPU (gloo), launched by torchrun as a user would: sharding and metrics.

The test runs this file under ``torchrun --nproc_per_node 2``; each rank trains, records the
indices it saw, tests, and writes what it found to ``rank<N>.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import yaml

from speechrnn.models.classifier import SpeechClassifier
from speechrnn.processes import end_process_group
from tones import ToneDataModule

DDP_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "trainer" / "ddp.yaml"
EPOCHS = 2


class CountedTones(ToneDataModule):
    """The tone corpus, noting every prepare_data call in ``prepared.txt``."""

    def prepare_data(self) -> None:
        with (self.data_root.parent / "prepared.txt").open("a") as log:
            log.write(f"{os.environ.get('RANK', '-')}\n")
        super().prepare_data()


class SeenIndices(L.Callback):
    """The split positions of every training batch, per epoch."""

    def __init__(self) -> None:
        self.per_epoch: dict[int, list[int]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.per_epoch.setdefault(trainer.current_epoch, []).extend(batch.indices.tolist())


def tones(root: Path) -> CountedTones:
    # batch 4 on 2 ranks: 24 training items make 3 global batches of 8 per epoch
    return CountedTones(data_root=str(root / "data"), cache_dir=str(root / "cache"), batch_size=4,
                        length_buckets=[20, 40])


def train_on_this_rank(root: Path) -> None:
    """One rank of the torchrun job: fit, save, test; write this rank's findings."""
    L.seed_everything(0)
    dm = tones(root)
    seen = SeenIndices()
    ddp = yaml.safe_load(DDP_CONFIG.read_text())["trainer"]
    trainer = L.Trainer(**ddp | {"devices": 2}, accelerator="cpu", max_epochs=EPOCHS,
                        use_distributed_sampler=False, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[seen])
    model = SpeechClassifier(labels=dm.labels, input_size=dm.feature_dim,
                             length_buckets=dm.length_buckets, hidden_size=16, num_layers=1)
    trainer.fit(model, datamodule=dm)
    trainer.save_checkpoint(root / "model.ckpt")
    accuracy = trainer.test(model, datamodule=dm, verbose=False)[0]["test/acc"]
    findings = {"world_size": trainer.world_size, "seen": seen.per_epoch, "test_acc": accuracy,
                "buckets": model.results["test"]["buckets"], "train_size": len(dm.splits["train"])}
    (root / f"rank{trainer.global_rank}.json").write_text(json.dumps(findings))


def test_ddp_sees_every_example_once_and_agrees_with_one_process(tmp_path):
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                    "2", __file__, str(tmp_path)], check=True, env=env, timeout=180)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # the cache is prepared by local rank 0 alone (fit and test each ask once), never by rank 1
    assert (tmp_path / "prepared.txt").read_text().split() == ["0", "0"]

    train_size = ranks[0]["train_size"]
    for epoch in map(str, range(EPOCHS)):
        seen = ranks[0]["seen"][epoch] + ranks[1]["seen"][epoch]
        assert sorted(seen) == list(range(train_size))  # each example once, across both ranks
        assert len(ranks[0]["seen"][epoch]) == len(ranks[1]["seen"][epoch])

    model = SpeechClassifier.load_from_checkpoint(tmp_path / "model.ckpt", weights_only=True)
    single = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                       enable_model_summary=False)
    accuracy = single.test(model, datamodule=tones(tmp_path), verbose=False)[0]["test/acc"]
    assert ranks[0]["test_acc"] == ranks[1]["test_acc"] == accuracy
    assert ranks[0]["buckets"] == ranks[1]["buckets"] == model.results["test"]["buckets"]


if __name__ == "__main__":
    train_on_this_rank(Path(sys.argv[1]))
    end_process_group()  # every rank done and the group gone before the interpreter exits
