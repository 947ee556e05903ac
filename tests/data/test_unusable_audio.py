"""Audio that would turn every feature into NaN is refused, naming the file."""

import numpy as np
import pytest
import soundfile as sf

from speechrnn.data.audio import read_audio
from speechrnn.errors import SpeechRNNError
from tones import SAMPLE_RATE


def test_audio_with_nan_samples_is_an_error_naming_the_file(tmp_path):
    wave = np.full(800, 0.1, dtype=np.float32)
    wave[400] = np.nan
    sf.write(tmp_path / "nan.wav", wave, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(SpeechRNNError, match=r"nan\.wav holds 1 samples that are NaN, infinite"):
        read_audio(tmp_path / "nan.wav", SAMPLE_RATE)
