"""Decoding and resampling: any rate, whole or in chunks, in memory that no pair of rates blows up."""

import numpy as np
import pytest
import soundfile as sf
import torch
from memory import AWKWARD_RATE, peak_rss_mb

from speechrnn.data.audio import read_audio
from speechrnn.data.chunks import read_chunks


def write_tone(path, rate: int, seconds: float = 2.0, hz: float = 440.0) -> None:
    t = np.arange(round(seconds * rate)) / rate
    sf.write(path, (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32), rate, subtype="FLOAT")


def peak_hz(wave: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave.numpy() * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * rate / len(wave))


@pytest.mark.parametrize("rate", [AWKWARD_RATE, 44100, 8000])
def test_a_440_hz_tone_stays_440_hz_at_the_feature_rate(tmp_path, rate):
    write_tone(tmp_path / "tone.wav", rate)
    wave = read_audio(tmp_path / "tone.wav", 16000)
    assert len(wave) == 32000
    assert peak_hz(wave, 16000) == pytest.approx(440, abs=0.5)  # 2 s: bins of 0.5 Hz
    assert wave[2000:-2000].abs().max() == pytest.approx(0.5, abs=0.005)  # the passband keeps its level


@pytest.mark.parametrize("chunk_s", [0.01, 0.1, 0.37])
def test_chunks_join_into_the_whole_file_resampled(tmp_path, chunk_s):
    write_tone(tmp_path / "tone.wav", AWKWARD_RATE)
    chunks = list(read_chunks(tmp_path / "tone.wav", 16000, chunk_s, notify=lambda message: None))
    assert len(chunks) > 2
    torch.testing.assert_close(torch.cat(chunks), read_audio(tmp_path / "tone.wav", 16000), atol=1e-6, rtol=0)


def test_an_awkward_rate_is_read_whole_and_in_chunks_in_bounded_memory(tmp_path):
    write_tone(tmp_path / "tone.wav", AWKWARD_RATE)
    baseline = peak_rss_mb("import torch, speechrnn.data.chunks")
    used = peak_rss_mb(f"""
import torch
from speechrnn.data.audio import read_audio
from speechrnn.data.chunks import read_chunks
assert len(read_audio({str(tmp_path / 'tone.wav')!r}, 16000)) == 32000
assert sum(map(len, read_chunks({str(tmp_path / 'tone.wav')!r}, 16000, notify=lambda message: None))) == 32000
""")
    assert used < 1024 and used - baseline < 100  # was 12 GB whole and 22 GB in chunks


def test_white_noise_lands_at_the_asked_snr_and_is_the_same_for_the_same_key():
    from speechrnn.data.audio import with_white_noise

    wave = torch.sin(torch.arange(80000) * 0.05)  # power 1/2
    noisy = with_white_noise(wave, 10.0, "0_ann_12-noisy0")
    snr = 10 * torch.log10(wave.square().mean() / (noisy - wave).square().mean())
    assert abs(snr.item() - 10.0) < 0.1
    assert torch.equal(noisy, with_white_noise(wave, 10.0, "0_ann_12-noisy0"))
    assert not torch.equal(noisy, with_white_noise(wave, 10.0, "0_ann_12-noisy1"))
