import librosa
import numpy as np
import pytest
import torch

from speechrnn.data.features import MFCC, FeatureSettings
from speechrnn.errors import SpeechRNNError


def librosa_mfcc(signal: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """The same recipe in librosa: HTK mel scale, unnormalised filters, power dB without clamp."""
    mel = librosa.feature.melspectrogram(
        y=signal, sr=settings.sample_rate, n_fft=settings.n_fft, win_length=settings.win_length,
        hop_length=settings.hop_length, n_mels=settings.n_mels, htk=True, norm=None, pad_mode="reflect")
    return librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=settings.n_mfcc).T


@pytest.mark.parametrize("sample_rate", [8000, 16000])
def test_mfcc_agrees_with_librosa(sample_rate):
    settings = FeatureSettings(sample_rate=sample_rate, n_mfcc=40, n_mels=40)
    rng = np.random.default_rng(0)
    t = np.arange(int(0.7 * sample_rate)) / sample_rate
    signal = (np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(len(t))).astype(np.float32)
    ours = MFCC(settings)(torch.from_numpy(signal)[None], torch.tensor([len(signal)]))[0].numpy()
    reference = librosa_mfcc(signal, settings)
    assert ours.shape == reference.shape == (settings.num_frames(len(signal)), 40)
    # float32 STFTs in two libraries: agreement to 1e-3 of the cepstra's range (values ~ +-300)
    assert np.abs(ours - reference).max() < 1e-3 * np.abs(reference).max()


@pytest.mark.parametrize("floor_db", [None, 35.0])
def test_batched_extraction_equals_one_at_a_time(floor_db):
    settings = FeatureSettings(sample_rate=8000, deltas=True, floor_db=floor_db)
    mfcc = MFCC(settings)
    waves = torch.randn(3, 6000) * torch.tensor([[1.0], [0.01], [3.0]])  # a floor follows its own clip
    lengths = torch.tensor([6000, 2500, 900])
    batched = mfcc(waves, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = mfcc(waves[i : i + 1, :n], lengths[i : i + 1])[0]
        assert alone.shape == (settings.num_frames(n), settings.feature_dim)
        torch.testing.assert_close(batched[i], alone)


def test_a_floor_hides_noise_below_it_and_keeps_the_speech_above():
    """A tone alone and the tone with hiss 50 dB below give the same features under a 35 dB
    floor; without one, the hiss changes them (that is what the floor is for)."""
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 8000
    tone = np.sin(2 * np.pi * 500 * t).astype(np.float32)
    hiss = (10 ** (-50 / 20) * rng.standard_normal(len(t))).astype(np.float32)
    lengths = torch.tensor([len(t)])

    def features(floor_db, signal):
        return MFCC(FeatureSettings(sample_rate=8000, n_mfcc=13, floor_db=floor_db))(torch.from_numpy(signal)[None], lengths)[0]

    moved = (features(None, tone + hiss) - features(None, tone)).abs().max()
    moved_floored = (features(35.0, tone + hiss) - features(35.0, tone)).abs().max()
    assert moved > 10 and moved_floored < moved / 20, (moved, moved_floored)
    louder = features(35.0, 2 * tone + 2 * hiss)  # the floor follows the clip's level: only c0 moves
    assert (louder[:, 1:] - features(35.0, tone + hiss)[:, 1:]).abs().max() < 1e-3


@pytest.mark.parametrize("floor_db", [0.0, -10.0, float("nan")])
def test_a_floor_that_is_not_above_zero_is_refused(floor_db):
    with pytest.raises(SpeechRNNError, match="floor_db is"):
        FeatureSettings(floor_db=floor_db)
