"""Distillation from teacher checkpoints: the loss it adds, what a student learns, what it refuses."""

import copy

import lightning as L
import pytest
import torch

from speechrnn.batch import Batch
from speechrnn.errors import SpeechRNNError
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.training.callbacks import FeatureStatistics
from speechrnn.training.distillation import Distillation, SoftTargets
from tones import ToneDataModule


def tone_model(tone_data, **kwargs):
    return SpeechClassifier(labels=tone_data.labels, input_size=tone_data.feature_dim, hidden_size=16,
                            num_layers=1, lr=1e-2, length_buckets=tone_data.length_buckets, **kwargs)


def fit(model, tone_data, callbacks, epochs, tmp_path=None):
    checkpoint = [L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, monitor="val/acc", mode="max",
                                                      filename="best")] if tmp_path else []
    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=bool(tmp_path),
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                        callbacks=[FeatureStatistics(), *callbacks, *checkpoint])
    trainer.fit(model, datamodule=tone_data)
    return trainer


@pytest.mark.parametrize("kwargs", [{"teachers": []}, {"teachers": ["t.ckpt"], "weight": 0.0},
                                    {"teachers": ["t.ckpt"], "weight": 1.5},
                                    {"teachers": ["t.ckpt"], "temperature": 0.0}])
def test_impossible_settings_are_refused_naming_them(kwargs):
    with pytest.raises(SpeechRNNError, match="Distillation needs one or more teachers"):
        Distillation(**kwargs)


def test_a_teacher_that_answers_as_the_student_adds_nothing_to_the_loss():
    torch.manual_seed(0)
    student = SpeechClassifier(labels=["a", "b", "c"], input_size=6)
    batch = Batch(feats=torch.randn(4, 9, 6), lengths=torch.tensor([9, 7, 5, 9]), targets=torch.tensor([0, 1, 2, 0]),
                  speech_lengths=torch.tensor([9, 7, 5, 9]), indices=torch.arange(4))
    logits = student(batch.feats, batch.lengths)
    same = SoftTargets([copy.deepcopy(student)], weight=0.3, temperature=2.0)
    torch.testing.assert_close(same.loss(torch.tensor(1.0), logits, batch), torch.tensor(0.7))
    other = SoftTargets([SpeechClassifier(labels=["a", "b", "c"], input_size=6)], weight=0.3, temperature=2.0)
    assert other.loss(torch.tensor(1.0), logits, batch) > 0.7


def test_a_student_taught_by_the_teacher_alone_learns_its_answers_and_keeps_only_its_own_weights(tone_data,
                                                                                                 tmp_path):
    torch.manual_seed(0)
    fit(tone_model(tone_data), tone_data, [], epochs=20, tmp_path=tmp_path)
    torch.manual_seed(1)
    student = tone_model(tone_data)
    trainer = fit(student, tone_data, [Distillation([str(tmp_path / "best.ckpt")], weight=1.0)], epochs=20)
    assert trainer.test(student, datamodule=tone_data, verbose=False)[0]["test/acc"] >= 0.9  # chance: 1/3
    assert student.soft_targets is None  # the teacher goes with the fit
    assert student.state_dict().keys() == tone_model(tone_data).state_dict().keys()


def test_a_teacher_of_other_labels_is_refused_naming_it(tone_data, tmp_path):
    torch.manual_seed(0)
    fit(tone_model(tone_data), tone_data, [], epochs=1, tmp_path=tmp_path)
    student = SpeechClassifier(labels=["x", "y", "z"], input_size=tone_data.feature_dim, hidden_size=16,
                               num_layers=1)
    with pytest.raises(SpeechRNNError, match=f"teacher {tmp_path / 'best.ckpt'} has other labels"):
        fit(student, tone_data, [Distillation([str(tmp_path / "best.ckpt")])], epochs=1)


def test_with_all_the_weight_on_the_teachers_the_training_loss_ignores_the_labels():
    torch.manual_seed(0)
    student = SpeechClassifier(labels=["a", "b", "c"], input_size=6)
    teacher = SpeechClassifier(labels=["a", "b", "c"], input_size=6)
    feats, lengths = torch.randn(4, 9, 6), torch.tensor([9, 7, 5, 9])

    def loss(targets):
        batch = Batch(feats=feats, lengths=lengths, targets=torch.tensor(targets), speech_lengths=lengths,
                      indices=torch.arange(4))
        return student.training_step(batch, 0)

    assert loss([0, 1, 2, 0]) != loss([2, 2, 1, 1])  # labels alone
    student.soft_targets = SoftTargets([teacher], weight=1.0, temperature=2.0)
    torch.testing.assert_close(loss([0, 1, 2, 0]), loss([2, 2, 1, 1]))


def test_a_teacher_of_other_features_is_refused_naming_it(tone_data, make_data, tmp_path):
    """Same labels and feature size, features floored otherwise: its answers would be for inputs it never saw."""
    torch.manual_seed(0)
    fit(tone_model(tone_data), tone_data, [], epochs=1, tmp_path=tmp_path)
    floored = make_data(ToneDataModule, prepare=True, length_buckets=[20, 40], floor_db=30.0)
    with pytest.raises(SpeechRNNError, match=f"teacher {tmp_path / 'best.ckpt'} has other labels or features"):
        fit(tone_model(floored), floored, [Distillation([str(tmp_path / "best.ckpt")])], epochs=1)
