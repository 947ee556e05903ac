"""Test-time augmentation: the variants a model is scored under, and how they are combined."""

import pytest
import torch
from torch import nn

from speechrnn.batch import Batch
from speechrnn.data.augment import warp_vocal_tract
from speechrnn.data.features import FeatureSettings
from speechrnn.errors import SpeechRNNError
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.tta import TTASettings, combine, variant_posteriors

FEATURES = FeatureSettings(sample_rate=8000, n_mfcc=13, n_mels=40, deltas=True)  # FSDD's: 39 features


def mfcc_batch(lengths: list[int]) -> Batch:
    """Random raw features (B, T, 39), zero past each length."""
    generator = torch.Generator().manual_seed(0)
    lengths_t = torch.tensor(lengths)
    feats = torch.randn(len(lengths), max(lengths), FEATURES.feature_dim, generator=generator)
    feats = feats * (torch.arange(max(lengths))[None, :] < lengths_t[:, None])[..., None]
    return Batch(feats, lengths_t, torch.zeros(len(lengths), dtype=torch.long), lengths_t.clone(),
                 torch.arange(len(lengths)))


def gru() -> SpeechClassifier:
    torch.manual_seed(0)
    return SpeechClassifier([str(d) for d in range(10)], FEATURES.feature_dim, hidden_size=8, num_layers=1,
                            normalisation="utterance").eval()


class Recorder(nn.Module):
    """Keeps every input it is given; its logits are each utterance's mean frame's first ten features."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, feats, lengths):
        self.seen.append((feats, lengths))
        return feats.sum(1)[:, :10] / lengths[:, None]


def test_warps_and_tempos_of_one_give_the_plain_posteriors_bit_for_bit():
    batch, model = mfcc_batch([20, 15, 9, 20]), gru()
    with torch.no_grad():
        plain = model(batch.feats, batch.lengths).softmax(-1)
        variants = variant_posteriors(model, batch, TTASettings(), FEATURES)
    assert variants.shape == (1, 4, 10)
    assert torch.equal(variants[0], plain)
    for choice in ("mean", "utterance", "speaker"):
        assert torch.equal(combine(variants, choice), plain)


def test_each_warp_and_tempo_changes_the_features_the_model_sees():
    batch, model = mfcc_batch([20, 15, 9, 20]), Recorder()
    variants = variant_posteriors(model, batch, TTASettings((0.9, 1.0, 1.1), (1.0, 2.0)), FEATURES)
    assert variants.shape == (6, 4, 10)
    seen = dict(zip([(0.9, 1.0), (0.9, 2.0), (1.0, 1.0), (1.0, 2.0), (1.1, 1.0), (1.1, 2.0)], model.seen))
    assert torch.equal(seen[(1.0, 1.0)][0], batch.feats)
    for warp in (0.9, 1.1):
        feats, lengths = seen[(warp, 1.0)]
        assert not torch.allclose(feats, batch.feats, atol=1e-2)
        expected = warp_vocal_tract(batch.feats, torch.full((4,), warp, dtype=torch.float64), FEATURES.n_mfcc,
                                    FEATURES.n_mels, FEATURES.sample_rate)
        assert torch.equal(feats, expected)
        assert torch.equal(lengths, batch.lengths)
    for warp in (0.9, 1.0, 1.1):
        assert seen[(warp, 2.0)][1].tolist() == [10, 8, 4, 10]  # half the frames (round half to even)


def test_the_mean_choice_averages_the_posteriors_over_the_warp_set():
    batch, model = mfcc_batch([20, 15, 9, 20]), gru()
    with torch.no_grad():
        alone = [variant_posteriors(model, batch, TTASettings((warp,)), FEATURES)[0] for warp in (0.9, 1.1)]
        both = variant_posteriors(model, batch, TTASettings((0.9, 1.1)), FEATURES)
    assert not torch.allclose(alone[0], alone[1])
    torch.testing.assert_close(combine(both, "mean"), (alone[0] + alone[1]) / 2)


def test_the_confident_choices_pick_a_variant_per_utterance_or_one_for_all():
    probs = torch.tensor([[[0.6, 0.4], [0.9, 0.1], [0.5, 0.5]],   # variant 0: mean confidence 0.667
                          [[0.2, 0.8], [0.4, 0.6], [0.45, 0.55]]])  # variant 1: 0.65; (V=2, N=3, C=2)
    assert torch.equal(combine(probs, "utterance"), torch.stack([probs[1, 0], probs[0, 1], probs[1, 2]]))
    assert torch.equal(combine(probs, "speaker"), probs[0])
    with pytest.raises(SpeechRNNError, match="choose one of"):
        combine(probs, "median")


@pytest.mark.parametrize(("warps", "tempos", "option"), [((0.9, 0.0), (1.0,), "--tta-warps"),
                                                         ((1.0,), (-1.0,), "--tta-tempos"),
                                                         ((float("nan"),), (1.0,), "--tta-warps"),
                                                         ((), (1.0,), "--tta-warps")])
def test_factors_not_above_zero_are_refused_naming_the_option(warps, tempos, option):
    with pytest.raises(SpeechRNNError, match=f"{option} .*must be a number in \\[0.5, 2\\]"):
        TTASettings(warps, tempos)
