import lightning as L
import pytest
import torch

from speechrnn.errors import SpeechRNNError
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.training.callbacks import FeatureStatistics, TrainingStability, WeightEMA

CELLS = ["rnn", "gru", "lstm", "mingru", "minlstm"]


def classifier(task="keyword", **kwargs):
    return SpeechClassifier(labels=["a", "b", "c"], input_size=6, task=task, length_buckets=[5], **kwargs).eval()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
def test_padding_does_not_change_logits(cell, bidirectional, pooling):
    torch.manual_seed(0)
    model = classifier(cell=cell, bidirectional=bidirectional, pooling=pooling, num_layers=2)
    utterance = torch.randn(7, 6)
    alone = model(utterance[None], torch.tensor([7]))
    neighbours = torch.randn(3, 12, 6)
    neighbours[1, :7] = utterance
    neighbours[1, 7:] = 0
    batched = model(neighbours, torch.tensor([12, 7, 4]))
    torch.testing.assert_close(batched[1], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", [*CELLS, "transformer"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_an_encoder_given_frame_weights_returns_the_weighted_sum_of_its_states(cell, bidirectional):
    torch.manual_seed(0)
    model = classifier(cell=cell, bidirectional=bidirectional and cell != "transformer", num_layers=2)
    feats, lengths = torch.randn(3, 11, 6), torch.tensor([11, 6, 9])
    weights = torch.rand(3, 11)
    summed = model.encoder(feats, lengths, weights)
    states = model.encoder(feats, lengths)
    torch.testing.assert_close(summed, (weights[..., None] * states).sum(1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_framewise_logits(bidirectional):
    torch.manual_seed(0)
    model = classifier(task="phones", cell="lstm", bidirectional=bidirectional)
    utterance = torch.randn(5, 6)
    alone = model(utterance[None], torch.tensor([5]))[0]  # (T, C)
    batch = torch.zeros(2, 9, 6)
    batch[0] = torch.randn(9, 6)
    batch[1, :5] = utterance
    torch.testing.assert_close(model(batch, torch.tensor([9, 5]))[1, :5], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_each_cell_learns_the_tone_task_well_beyond_chance(cell, tone_data):
    torch.manual_seed(0)
    model = SpeechClassifier(labels=tone_data.labels, input_size=tone_data.feature_dim, cell=cell,
                             hidden_size=32, num_layers=1, pooling="mean", lr=1e-2,
                             length_buckets=tone_data.length_buckets)
    trainer = L.Trainer(max_epochs=25, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", callbacks=[FeatureStatistics()])
    trainer.fit(model, datamodule=tone_data)
    accuracy = trainer.test(model, datamodule=tone_data, verbose=False)[0]["test/acc"]
    assert accuracy >= 0.9  # chance is 1/3
    assert model.results["test"]["edges"] == [20, 40]
    assert sum(count for _, count, _ in model.results["test"]["buckets"]) == len(tone_data.splits["test"])


def test_normalisation_statistics_come_from_the_training_split_through_the_callback(tone_data):
    model = SpeechClassifier(labels=tone_data.labels, input_size=tone_data.feature_dim)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_train_batches=1, limit_val_batches=0,
                        callbacks=[FeatureStatistics()])
    trainer.fit(model, datamodule=tone_data)
    torch.testing.assert_close(model.normaliser.mean, tone_data.splits["train"].feats.mean(0))


def test_gradient_spikes_and_non_finite_norms_are_counted():
    monitor = TrainingStability()
    for norm in [1.0, 1.2, 0.9, 50.0, float("nan"), 2.0]:
        monitor.count(torch.tensor(norm))
    assert monitor.stability == {"nonfinite_losses": 0, "grad_spikes": 2, "max_grad_norm": 50.0, "steps": 6}


def test_a_non_finite_loss_stops_training_with_an_error_and_no_checkpoint(tone_data, tmp_path):
    model = SpeechClassifier(labels=tone_data.labels, input_size=tone_data.feature_dim, hidden_size=8,
                             length_buckets=tone_data.length_buckets)
    with torch.no_grad():
        model.head.out.bias.fill_(float("nan"))
    checkpoints = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, monitor="val/acc", mode="max")
    trainer = L.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[TrainingStability(), checkpoints])
    with pytest.raises(SpeechRNNError, match="non-finite loss"):
        trainer.fit(model, datamodule=tone_data)
    assert not list(tmp_path.glob("*.ckpt"))


@pytest.mark.parametrize("argument,value", [("hidden_size", 0), ("lr", -1.0), ("num_layers", 0), ("dropout", 1.0)])
def test_impossible_hyperparameters_are_refused_naming_the_flag(argument, value):
    with pytest.raises(SpeechRNNError, match=f"model.{argument}"):
        classifier(**{argument: value})


def test_the_fits_own_test_scores_the_averaged_weights_its_best_checkpoint_holds(tone_data, tmp_path):
    torch.manual_seed(0)
    model = SpeechClassifier(labels=tone_data.labels, input_size=tone_data.feature_dim, hidden_size=8,
                             num_layers=1, length_buckets=tone_data.length_buckets)
    best = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, monitor="val/acc", mode="max", filename="best")
    trainer = L.Trainer(max_epochs=3, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[FeatureStatistics(), WeightEMA(decay=0.9), best])
    trainer.fit(model, datamodule=tone_data)
    trainer.test(model, datamodule=tone_data, ckpt_path="best", verbose=False)
    saved = torch.load(tmp_path / "best.ckpt", weights_only=True)
    averaged, current = saved["state_dict"], saved["current_model_state"]
    assert any(not torch.equal(averaged[name], current[name]) for name in averaged)
    for name, value in model.state_dict().items():  # what the test scored
        torch.testing.assert_close(value, averaged[name], rtol=0, atol=0)


def test_a_decay_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(decay=1.0)
