"""Per-utterance normalisation: statistics of real frames only, and carried by the checkpoint."""

from pathlib import Path

import torch

from pipelines.configs import trainer_args
from speechrnn.checkpoint import load_checkpoint
from speechrnn.cli import main
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.models.normalisation import FeatureNormaliser, normalise_utterances

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_each_utterance_gets_zero_mean_and_unit_variance_over_its_real_frames():
    feats = torch.randn(2, 9, 4) * 3 + 5
    feats[1, 6:] = 100.0  # padding that must not count
    out = normalise_utterances(feats, torch.tensor([9, 6]))
    for b, n in enumerate([9, 6]):
        torch.testing.assert_close(out[b, :n].mean(0), torch.zeros(4), atol=1e-5, rtol=0)
        torch.testing.assert_close(out[b, :n].var(0, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
    assert torch.all(out[1, 6:] == 0)
    centred = normalise_utterances(feats, torch.tensor([9, 6]), variance=False)
    torch.testing.assert_close(centred[0], feats[0] - feats[0].mean(0))


def test_utterance_normalisation_makes_the_model_deaf_to_a_constant_offset():
    torch.manual_seed(0)
    feats, lengths = torch.randn(3, 8, 6), torch.tensor([8, 5, 3])
    offset = torch.tensor([30.0, 0, 0, -2, 0, 1])  # a gain moves c0; a channel moves the rest
    for normalisation in ("utterance_mean", "utterance"):
        model = SpeechClassifier(["a", "b"], 6, normalisation=normalisation).eval()
        torch.testing.assert_close(model(feats + offset, lengths), model(feats, lengths), atol=1e-4, rtol=1e-4)
    model = SpeechClassifier(["a", "b"], 6).eval()
    assert not torch.allclose(model(feats + offset, lengths), model(feats, lengths), atol=1e-3)


def test_the_checkpoint_stores_the_normalisation_and_its_model_applies_it(tmp_path):
    main(["fit", *trainer_args(CONFIGS / "trainer/cpu.yaml"), "--config", str(CONFIGS / "model/gru.yaml"),
          "--data", "tones.ToneDataModule", "--data.data_root", str(tmp_path / "data"),
          "--data.cache_dir", str(tmp_path / "cache"), "--run_dir", str(tmp_path / "run"),
          "--trainer.max_epochs", "1", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
          "--model.hidden_size", "8", "--model.num_layers", "1", "--model.normalisation", "utterance"])
    model = load_checkpoint(tmp_path / "run/checkpoints/best.ckpt").model()
    assert model.hparams.normalisation == "utterance"
    feats, lengths = torch.randn(2, 10, model.hparams.input_size), torch.tensor([10, 7])
    torch.testing.assert_close(model(feats * 1 + 4.0, lengths), model(feats, lengths), atol=1e-4, rtol=1e-4)


def causal_reference(x: torch.Tensor, prior: int, window: int) -> torch.Tensor:
    """Online CMVN frame by frame: running mean and mean square from a prior of mean 0, variance 1."""
    mean, square, out = torch.zeros(x.shape[-1]), torch.ones(x.shape[-1]), []
    for t, frame in enumerate(x):
        count = min(prior + t + 1, window)
        mean = mean + (frame - mean) / count
        square = square + (frame.square() - square) / count
        out.append((frame - mean) / (square - mean.square() + 1e-5).sqrt())
    return torch.stack(out)


def test_causal_normalisation_is_online_cmvn_over_the_frames_read_so_far():
    feats = torch.randn(2, 50, 4) * 3 + 5
    normaliser = FeatureNormaliser(4, "causal", prior_frames=3, window_frames=20)
    out = normaliser(feats, torch.tensor([50, 30]))
    for b, n in enumerate([50, 30]):
        torch.testing.assert_close(out[b, :n], causal_reference(feats[b, :n], 3, 20), atol=1e-4, rtol=1e-4)
    assert torch.all(out[1, 30:] == 0)  # padding stays zero
    prefix = normaliser(feats[:, :17], torch.tensor([17, 17]))  # frame t reads frames <= t only
    torch.testing.assert_close(prefix, out[:, :17])


def test_causal_normalisation_forgets_a_channel_offset_once_it_has_heard_a_window():
    torch.manual_seed(0)
    feats = torch.randn(1, 1000, 6)
    offset = torch.tensor([30.0, 0, 0, -2, 0, 1])
    normaliser = FeatureNormaliser(6, "causal", prior_frames=10, window_frames=100)
    lengths = torch.tensor([1000])
    shifted, plain = normaliser(feats + offset, lengths), normaliser(feats, lengths)
    assert (shifted[0, :5] - plain[0, :5]).abs().max() > 1  # at first the prior still speaks ...
    assert (shifted[0, -50:] - plain[0, -50:]).abs().max() < 0.15  # ... later the offset is gone
