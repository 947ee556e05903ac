import lightning as L
import pytest
import torch
from torch import nn

from speechrnn.data.batching import LengthBucketSampler
from speechrnn.data.datamodule import GPU_CACHE_SHARE
from speechrnn.data.features import reflect_pad
from speechrnn.errors import SpeechRNNError
from speechrnn.models.classifier import SpeechClassifier
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


class LoaderSeen(L.Callback):
    """Keeps the training loader and the first batch the trainer actually used."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.loader, self.batch = trainer.train_dataloader, batch


def test_cpu_trainer_keeps_features_in_ram_and_batches_unpinned(make_data):
    dm = make_data(ToneDataModule, feature_device="auto")  # set up by the trainer, not before
    model = SpeechClassifier(labels=dm.vocabulary(), input_size=dm.feature_dim, hidden_size=8,
                             length_buckets=dm.length_buckets)
    seen = LoaderSeen()
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=1, limit_val_batches=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[seen])
    trainer.fit(model, datamodule=dm)
    assert dm.trainer is trainer and dm._training_device() == torch.device("cpu")
    assert {split.feats.device.type for split in dm.splits.values()} == {"cpu"}
    assert seen.loader.pin_memory is False
    assert seen.batch.feats.device.type == "cpu" and seen.batch.feats.shape[0] == dm.batch_size


def place_on_a_gpu(dm, monkeypatch, free_bytes):
    """Where ``dm`` puts its feature arrays for a trainer on cuda:0 with ``free_bytes`` free."""
    monkeypatch.setattr(dm, "_training_device", lambda: torch.device("cuda", 0))
    # total is far above free: only the free memory may count
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free_bytes, 100 * free_bytes))
    return dm._feature_placement()


def feature_bytes(dm):
    return sum(split.nbytes for split in dm.splits.values())


def test_auto_puts_features_on_the_gpu_when_they_fit_its_share_of_free_memory(tone_data, monkeypatch):
    free = int(1.1 * feature_bytes(tone_data) / GPU_CACHE_SHARE)
    assert place_on_a_gpu(tone_data, monkeypatch, free) == torch.device("cuda", 0)


def test_auto_keeps_features_in_ram_and_pins_batches_when_they_exceed_that_share(
    tone_data, monkeypatch
):
    free = int(0.9 * feature_bytes(tone_data) / GPU_CACHE_SHARE)
    assert free > feature_bytes(tone_data)  # they would fit in all the free memory, not in the share
    assert place_on_a_gpu(tone_data, monkeypatch, free) == torch.device("cpu")
    assert tone_data.train_dataloader().pin_memory is True  # gathered in RAM for a GPU


def test_cpu_feature_device_keeps_features_in_ram_even_when_the_gpu_has_room(tone_data, monkeypatch):
    tone_data.feature_device = "cpu"
    free = 10 * int(feature_bytes(tone_data) / GPU_CACHE_SHARE)
    assert place_on_a_gpu(tone_data, monkeypatch, free) == torch.device("cpu")


def test_feature_device_must_be_known_and_cuda_needs_a_gpu(tmp_path, make_data):
    with pytest.raises(SpeechRNNError, match="feature_device"):
        ToneDataModule(data_root=str(tmp_path), feature_device="tpu")
    dm = make_data(ToneDataModule, feature_device="cuda")
    dm.prepare_data()
    with pytest.raises(SpeechRNNError, match="needs a GPU trainer"):
        dm.setup("fit")


def test_building_the_cache_leaves_torch_threads_as_they_were(make_data):
    threads = torch.get_num_threads()
    make_data(ToneDataModule).prepare_data()
    assert torch.get_num_threads() == threads
