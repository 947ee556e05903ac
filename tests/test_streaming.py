import pytest
import torch

from speechrnn.data.features import MFCC, FeatureSettings
from speechrnn.errors import SpeechRNNError
from speechrnn.models.classifier import SpeechClassifier
from speechrnn.streaming import FrameStream, Streamer, StreamStep, check_streamable

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


def model(cell: str, **overrides) -> SpeechClassifier:
    torch.manual_seed(0)
    args = {"cell": cell, "hidden_size": 16, "num_layers": 2, "pooling": "last"} | overrides
    classifier = SpeechClassifier(labels=["a", "b", "background"], input_size=SETTINGS.feature_dim, **args)
    classifier.feat_mean.normal_(-5, 10)  # normalisation must be applied on both paths
    classifier.feat_std.uniform_(5, 20)
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


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_streamed_logits_at_each_frame_equal_the_offline_logits_of_the_prefix(cell):
    classifier = model(cell)
    feats = torch.randn(1, 40, SETTINGS.feature_dim) * 10 - 5  # (1, T, F)
    steps = len(feats[0])
    prefixes = feats.expand(steps, -1, -1)  # prefix t is row t with length t + 1
    offline = classifier(prefixes, torch.arange(1, steps + 1))  # (T, C): the model read to frame t
    step = StreamStep(classifier)
    state, online = step.initial_state(), []
    for size in [1, 3, 7, 2, 11, 16]:  # 40 frames in uneven chunks
        logits, state = step.logits(feats[:, sum(map(len, online)) :][:, :size], state)
        online.append(logits[0])
    torch.testing.assert_close(torch.cat(online), offline, rtol=1e-5, atol=1e-5)


def test_state_is_one_tensor_per_layer_and_two_for_an_lstm():
    for cell, count in [("rnn", 2), ("gru", 2), ("lstm", 4)]:
        state = StreamStep(model(cell)).initial_state(3)
        assert len(state) == count and all(s.shape == (3, 16) for s in state)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_streamer_posteriors_equal_the_offline_model_on_the_whole_recording(cell):
    classifier = model(cell)
    wave = speechlike(1.5, seed=1)
    feats = MFCC(SETTINGS)(wave[None], torch.tensor([len(wave)]))[0]  # (T, F)
    steps = len(feats)
    offline = classifier(feats.expand(steps, -1, -1), torch.arange(1, steps + 1)).softmax(-1)
    online = streamed(Streamer(classifier, SETTINGS), wave, 333)
    torch.testing.assert_close(online, offline, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"pooling": "mean"}, "pools its states with 'mean'"),
    ({"pooling": "attention"}, "pools its states with 'attention'"),
    ({"bidirectional": True}, "is bidirectional"),
    ({"cell": "transformer"}, "is a Transformer"),
])
def test_models_that_read_the_whole_clip_refuse_to_stream(overrides, reason):
    classifier = model(overrides.pop("cell", "gru"), **overrides)
    with pytest.raises(SpeechRNNError, match=reason) as err:
        check_streamable(classifier, "checkpoint runs/x/best.ckpt")
    assert "checkpoint runs/x/best.ckpt" in str(err.value) and "--model.pooling last" in str(err.value)
