import pytest
import torch
from torch import nn

from speechrnn.data.batching import LengthBucketSampler
from speechrnn.data.features import reflect_pad
from speechrnn.errors import SpeechRNNError
from speechrnn.models.encoder import RecurrentEncoder
from speechrnn.models.heads import UtteranceHead
from tones import ToneDataModule


def test_batched_reflect_pad_equals_padding_each_signal_alone():
    pad = 8
    waves = torch.randn(4, 40)
    lengths = torch.tensor([40, 20, 8, 3])  # the last two are too short to reflect as they are
    padded = reflect_pad(waves, lengths, pad)
    assert padded.shape == (4, 40 + 2 * pad)
    for i, n in enumerate(lengths.tolist()):
        signal = nn.functional.pad(waves[i, :n], (0, max(0, pad + 1 - n)))
        alone = nn.functional.pad(signal[None, None], (pad, pad), mode="reflect")[0, 0, : n + 2 * pad]
        torch.testing.assert_close(padded[i, : n + 2 * pad], alone)
        assert torch.all(padded[i, n + 2 * pad :] == 0)


def test_masked_readout_equals_packed_sequences():
    torch.manual_seed(0)
    encoder, head = RecurrentEncoder(5, "gru", 8, num_layers=2), UtteranceHead(8, 3)
    feats, lengths = torch.randn(4, 12, 5), torch.tensor([12, 7, 3, 9])
    masked = head(encoder(feats, lengths), lengths)
    x = nn.utils.rnn.pack_padded_sequence(feats, lengths, batch_first=True, enforce_sorted=False)
    for layer in encoder.layers:
        x = layer[0](x)[0]
    states = nn.utils.rnn.pad_packed_sequence(x, batch_first=True)[0]
    torch.testing.assert_close(masked, head(states, lengths))


def test_sampler_order_is_computed_once_per_epoch():
    sampler = LengthBucketSampler(torch.randint(5, 50, (300,)), batch_size=16, shuffle=True)
    first = sampler._global_batches()
    assert len(sampler) == len(list(sampler)) and sampler._global_batches() is first
    sampler.set_epoch(1)
    assert sampler._global_batches() is not first


def test_features_stay_in_ram_without_a_gpu_trainer(tone_data):
    assert tone_data.splits["train"].feats.device.type == "cpu"
    batch = next(iter(tone_data.train_dataloader()))
    assert batch.feats.device.type == "cpu" and batch.feats.shape[0] == tone_data.batch_size


def test_feature_device_must_be_known_and_cuda_needs_a_gpu(tmp_path):
    with pytest.raises(SpeechRNNError, match="feature_device"):
        ToneDataModule(data_root=str(tmp_path), feature_device="tpu")
    dm = ToneDataModule(data_root=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"),
                        feature_device="cuda")
    dm.prepare_data()
    with pytest.raises(SpeechRNNError, match="needs a GPU trainer"):
        dm.setup("fit")


def test_building_the_cache_leaves_torch_threads_as_they_were(tmp_path):
    threads = torch.get_num_threads()
    ToneDataModule(data_root=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache")).prepare_data()
    assert torch.get_num_threads() == threads
