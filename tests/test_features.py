import librosa
import numpy as np
import pytest
import torch

from speechrnn.data.features import MFCC, FeatureSettings


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


def test_batched_extraction_equals_one_at_a_time():
    settings = FeatureSettings(sample_rate=8000, deltas=True)
    mfcc = MFCC(settings)
    waves = torch.randn(3, 6000)
    lengths = torch.tensor([6000, 2500, 900])
    batched = mfcc(waves, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = mfcc(waves[i : i + 1, :n], lengths[i : i + 1])[0]
        assert alone.shape == (settings.num_frames(n), settings.feature_dim)
        torch.testing.assert_close(batched[i], alone)
