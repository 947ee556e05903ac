import math

import lightning as L
import pytest
import torch

from speechrnn.commands.gradients import main
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.models.gradient_decay import decay_factor, input_gradient_norms
from speechrnn.training.callbacks import GradientDecay


def vanishing_rnn(factor: float) -> SpeechClassifier:
    """A one-layer tanh RNN whose recurrence shrinks the state by ``factor`` per step."""
    torch.manual_seed(0)
    model = SpeechClassifier(labels=["a", "b"], input_size=4, cell="rnn", hidden_size=8, num_layers=1,
                             pooling="last")
    rnn = model.encoder.layers[0][0]
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(factor * torch.eye(8))
        rnn.weight_ih_l0.mul_(0.1)  # small inputs keep tanh near linear: the factor is the decay
        rnn.bias_ih_l0.zero_()
        rnn.bias_hh_l0.zero_()
    return model.train()


def test_known_vanishing_recurrence_gives_decreasing_norms_at_its_rate():
    model = vanishing_rnn(0.7)
    feats, lengths = torch.randn(16, 30, 4), torch.full((16,), 30)
    norms = input_gradient_norms(model, feats, lengths, torch.randint(2, (16,)))
    assert (norms[1:] < norms[:-1]).all()
    assert decay_factor(norms) == pytest.approx(0.7, abs=0.03)


def test_distances_count_only_real_frames():
    model = vanishing_rnn(0.7)
    feats = torch.randn(2, 10, 4)
    lengths = torch.tensor([10, 4])
    norms = input_gradient_norms(model, feats, lengths, torch.tensor([0, 1]))
    alone = input_gradient_norms(model, feats[:1], lengths[:1], torch.tensor([0]))
    torch.testing.assert_close(norms[4:], alone[4:])  # only the long sequence reaches that far back


def test_decay_factor_recovers_a_geometric_rate():
    assert decay_factor(0.9 ** torch.arange(50.0)) == pytest.approx(0.9)
    assert math.isnan(decay_factor(torch.tensor([1.0, 0.0, 0.0])))  # too few non-zero norms to fit


def test_callback_and_command_measure_the_decay_a_checkpoint_has(tone_data, tmp_path, capsys):
    model = SpeechClassifier(labels=tone_data.labels, input_size=tone_data.feature_dim, cell="rnn",
                             hidden_size=8, num_layers=1, pooling="last", length_buckets=tone_data.length_buckets)
    callback = GradientDecay()
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_train_batches=2, limit_val_batches=1,
                        callbacks=[callback])
    trainer.fit(model, datamodule=tone_data)
    assert [epoch for epoch, _ in callback.history] == [0, 0]  # at the start and after epoch 1
    rnn = model.encoder.layers[0][0]
    with torch.no_grad():  # the trained weights replaced by a recurrence of known decay 0.6
        rnn.weight_hh_l0.copy_(0.6 * torch.eye(8))
        rnn.weight_ih_l0.mul_(0.05)
        rnn.bias_ih_l0.zero_()
        rnn.bias_hh_l0.zero_()
    checkpoint = tmp_path / "run" / "checkpoints" / "best.ckpt"
    trainer.save_checkpoint(checkpoint)
    main([str(checkpoint), "--frames", "40", "--batch-size", "16", "--out", str(tmp_path / "grads.png")])
    printed = dict(line.rsplit(": decay per step ", 1) for line in capsys.readouterr().out.splitlines()
                   if "decay per step" in line)
    assert float(printed["rnn run trained"]) == pytest.approx(0.6, abs=0.03)
    assert abs(float(printed["rnn run init"]) - 0.6) > 0.05  # a fresh copy is measured too, and differs
    assert (tmp_path / "grads.png").read_bytes()[:4] == b"\x89PNG"
