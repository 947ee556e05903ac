"""Audio that would turn every feature into NaN is refused, naming the file."""

import numpy as np
import pytest
import soundfile as sf
import torch

from speechrnn.data.audio import read_audio
from speechrnn.data.features import MFCC, FeatureSettings
from speechrnn.errors import SpeechRNNError
from tones import SAMPLE_RATE


def test_audio_with_nan_samples_is_an_error_naming_the_file(tmp_path):
    wave = np.full(800, 0.1, dtype=np.float32)
    wave[400] = np.nan
    sf.write(tmp_path / "nan.wav", wave, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(SpeechRNNError, match=r"nan\.wav holds 1 samples that are NaN, infinite"):
        read_audio(tmp_path / "nan.wav", SAMPLE_RATE)


@pytest.mark.parametrize("peak", [1e18, -1e7])
def test_audio_loud_enough_to_overflow_the_features_is_refused_like_nan(tmp_path, peak):
    """Samples near 1e18 once overflowed the power spectrum: `predict` printed nan scores, exit 0."""
    wave = np.full(800, 0.1, dtype=np.float32)
    wave[400] = peak
    sf.write(tmp_path / "loud.wav", wave, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(SpeechRNNError, match=r"loud\.wav holds 1 samples that are NaN, infinite or beyond ±1e\+06"):
        read_audio(tmp_path / "loud.wav", SAMPLE_RATE)


def test_loud_but_usable_audio_gives_finite_features(tmp_path):
    wave = 1e5 * np.sin(np.linspace(0, 200, 4000)).astype(np.float32)  # 100 dB above full scale
    sf.write(tmp_path / "loud.wav", wave, SAMPLE_RATE, subtype="FLOAT")
    mfcc = MFCC(FeatureSettings(sample_rate=SAMPLE_RATE, n_mfcc=13, n_mels=23))
    loaded = read_audio(tmp_path / "loud.wav", SAMPLE_RATE)
    assert mfcc(loaded[None], torch.tensor([len(loaded)]))[0].isfinite().all()
