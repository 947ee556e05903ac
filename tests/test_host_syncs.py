"""A training step holds no op that reads a tensor back to the host: on a GPU each such op is a
sync that makes the host wait for the device (README, "On a GPU"). Checked on the CPU by the ops
the step dispatches, so CI, which has no GPU, catches a sync before a GPU run would."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from speechrnn.batch import IGNORE_INDEX, Batch
from speechrnn.metrics import Accuracy
from speechrnn.models.classifier import SpeechClassifier

# ops whose result size or value the host must read from the device before it can go on
READ_BACK = {"_local_scalar_dense", "nonzero", "_unique2", "unique_dim", "unique_consecutive", "masked_select",
             "is_nonzero"}


class ReadBacks(TorchDispatchMode):
    """Names of the ops that read back: those in READ_BACK, and indexing by a boolean mask."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        masks = [i for i in (args[1] if name == "index" else []) if i is not None and i.dtype == torch.bool]
        if name in READ_BACK or masks:
            self.found.append(name)
        return func(*args, **(kwargs or {}))


def batch(task: str) -> Batch:
    feats = torch.randn(4, 12, 5)
    lengths = torch.tensor([12, 9, 7, 3])
    targets = torch.randint(0, 3, (4, 12) if task == "phones" else (4,))
    if task == "phones":
        targets[torch.arange(12)[None, :] >= lengths[:, None]] = IGNORE_INDEX
    return Batch(feats, lengths, targets, lengths, torch.arange(4))


@pytest.mark.parametrize("task", ["keyword", "phones"])
@pytest.mark.parametrize("cell", ["gru", "mingru"])
def test_a_training_step_and_its_backward_read_nothing_back(task, cell):
    model = SpeechClassifier(labels=["a", "b", "c"], input_size=5, task=task, cell=cell, hidden_size=8, num_layers=1)
    model.normaliser.mean.zero_()
    model.normaliser.std.fill_(1.0)
    step = batch(task)
    with ReadBacks() as probe:
        model.training_step(step, 0).backward()
    assert probe.found == []


def test_the_accuracy_counts_what_torchmetrics_counts_skipping_ignored_targets():
    from torchmetrics.classification import MulticlassAccuracy

    preds, targets = torch.randint(0, 4, (6, 9)), torch.randint(0, 4, (6, 9))
    targets[:, 6:] = IGNORE_INDEX
    ours, theirs = Accuracy(IGNORE_INDEX), MulticlassAccuracy(4, average="micro", ignore_index=IGNORE_INDEX)
    for half in (slice(0, 3), slice(3, 6)):
        ours.update(preds[half], targets[half])
        theirs.update(preds[half], targets[half])
    assert ours.compute().item() == pytest.approx(theirs.compute().item())
    assert Accuracy(IGNORE_INDEX).compute().item() == 0.0  # nothing counted
