import pytest
import torch

from speechrnn.models.classifier import SpeechClassifier
from speechrnn.models.transformer import TransformerEncoder


def classifier(**kwargs):
    return SpeechClassifier(labels=["a", "b", "c"], input_size=6, length_buckets=[5], cell="transformer",
                            hidden_size=16, **kwargs).eval()


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
def test_padding_does_not_change_transformer_logits(pooling):
    torch.manual_seed(0)
    model = classifier(pooling=pooling)
    utterance = torch.randn(7, 6)
    alone = model(utterance[None], torch.tensor([7]))
    neighbours = torch.randn(3, 12, 6)
    neighbours[1, :7] = utterance
    neighbours[1, 7:] = 1e3  # whatever sits in the padding must be masked out
    batched = model(neighbours, torch.tensor([12, 7, 4]))
    torch.testing.assert_close(batched[1], alone[0], atol=1e-5, rtol=1e-5)


def test_positions_make_frame_order_matter():
    torch.manual_seed(0)
    encoder = TransformerEncoder(input_size=6, hidden_size=16).eval()
    feats, lengths = torch.randn(1, 9, 6), torch.tensor([9])
    forward = encoder(feats, lengths).mean(1)
    backward = encoder(feats.flip(1), lengths).mean(1)
    assert not torch.allclose(forward, backward, atol=1e-4)


def test_transformer_is_built_behind_the_cell_key():
    assert isinstance(classifier().encoder, TransformerEncoder)
