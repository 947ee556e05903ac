import pytest
import torch

from speechrnn.data.features import MFCC, FeatureSettings
from speechrnn.data.frontend import FrameStream
from speechrnn.errors import SpeechRNNError
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.streaming.runner import Streamer

SETTINGS = FeatureSettings(sample_rate=8000, n_mfcc=13, n_mels=23)
CHUNK_MS = [10, 13.7, 100, 333.3, 1000]  # 13.7 ms and 333.3 ms are odd sample counts at 8 kHz


def speechlike(seconds: float, seed: int = 0) -> torch.Tensor:
    """Tones switching every 0.2 s over noise: frames that differ from their neighbours."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * 8000)) / 8000
    pitch = 200 + 600 * torch.rand(int(seconds / 0.2) + 1, generator=generator)[(t / 0.2).long()]
    return 0.5 * torch.sin(2 * torch.pi * pitch * t) + 0.05 * torch.randn(len(t), generator=generator)


def streamed(stream, wave: torch.Tensor, chunk: int) -> torch.Tensor:
    return torch.cat([stream.push(wave[i : i + chunk]) for i in range(0, len(wave), chunk)] + [stream.finish()])


def model(cell: str, settings: FeatureSettings = SETTINGS, **overrides) -> SpeechClassifier:
    torch.manual_seed(0)
    args = {"cell": cell, "hidden_size": 16, "num_layers": 2, "pooling": "last"} | overrides
    classifier = SpeechClassifier(labels=["a", "b", "background"], input_size=settings.feature_dim, **args)
    classifier.normaliser.mean.normal_(-5, 10)  # normalisation must be applied on both paths
    classifier.normaliser.std.uniform_(5, 20)
    return classifier.eval()


@pytest.mark.parametrize("deltas", [False, True])
@pytest.mark.parametrize("chunk_ms", CHUNK_MS)
def test_front_end_emits_the_offline_frames_for_any_chunk_size(chunk_ms, deltas):
    settings = FeatureSettings(sample_rate=8000, n_mfcc=13, n_mels=23, deltas=deltas)
    wave = speechlike(2.37)
    offline = MFCC(settings)(wave[None], torch.tensor([len(wave)]))[0]
    online = streamed(FrameStream(settings), wave, round(chunk_ms * 8))
    assert online.shape == offline.shape == (settings.num_frames(len(wave)), settings.feature_dim)
    torch.testing.assert_close(online, offline, rtol=1e-4, atol=1e-3)  # cepstra span about +-500


@pytest.mark.parametrize("samples", [1, 90, 128, 129, 200])
def test_front_end_handles_streams_shorter_than_a_window(samples):
    settings = FeatureSettings(sample_rate=8000, n_mfcc=13, n_mels=23, deltas=True)
    wave = speechlike(0.1)[:samples]
    offline = MFCC(settings)(wave[None], torch.tensor([samples]))[0]
    torch.testing.assert_close(streamed(FrameStream(settings), wave, 7), offline, rtol=1e-4, atol=1e-3)


def test_front_end_keeps_only_the_samples_of_unfinished_windows():
    stream = FrameStream(FeatureSettings(sample_rate=8000, deltas=True))
    for _ in range(100):
        stream.push(torch.randn(800))
    assert len(stream.buffer) < SETTINGS.n_fft + 800
    assert len(stream.deltas.ceps) <= 5 and len(stream.deltas.d1) <= 5


def test_state_is_one_tensor_per_layer_two_for_an_lstm_and_three_for_causal_normalisation():
    for cell, normalisation, count in [("rnn", "global", 2), ("gru", "global", 2), ("lstm", "global", 4),
                                       ("mingru", "global", 2), ("gru", "causal", 5)]:
        state = model(cell, normalisation=normalisation).streaming_step().initial_state(3)
        assert len(state) == count and all(len(s) == 3 for s in state)


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"pooling": "mean"}, "pools its states with 'mean'"),
    ({"pooling": "attention"}, "pools its states with 'attention'"),
    ({"bidirectional": True}, "is bidirectional"),
    ({"cell": "transformer"}, "is a Transformer"),
    ({"normalisation": "utterance"}, "normalises each utterance by its own statistics"),
    ({"normalisation": "utterance_mean"}, "normalises each utterance by its own statistics"),
])
def test_models_that_read_the_whole_clip_refuse_to_stream(overrides, reason):
    classifier = model(overrides.pop("cell", "gru"), **overrides)
    with pytest.raises(SpeechRNNError, match=reason) as err:
        Streamer(classifier, SETTINGS, "checkpoint runs/x/best.ckpt")
    assert "checkpoint runs/x/best.ckpt" in str(err.value) and "retrain" in str(err.value)


def test_features_floored_below_the_clip_refuse_to_stream():
    floored = FeatureSettings(sample_rate=8000, n_mfcc=13, n_mels=23, floor_db=35.0)
    with pytest.raises(SpeechRNNError, match="data.floor_db") as err:
        Streamer(model("gru", pooling="last"), floored, "checkpoint runs/x/best.ckpt")
    assert "checkpoint runs/x/best.ckpt" in str(err.value) and "retrain" in str(err.value)
