"""MFCC frames computed in batches with torchaudio, identical to one-at-a-time extraction."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.functional as AF
import torchaudio.transforms as T
from torch import Tensor, nn


@dataclass(frozen=True)
class FeatureSettings:
    """Everything that decides the feature values; part of the cache key."""

    sample_rate: int = 16000  # Hz
    n_mfcc: int = 40
    n_mels: int = 40
    win_ms: float = 25.0
    hop_ms: float = 10.0
    deltas: bool = False  # append first and second differences

    @property
    def win_length(self) -> int:  # samples
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def hop_length(self) -> int:  # samples
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def n_fft(self) -> int:
        return 1 << (self.win_length - 1).bit_length()

    @property
    def feature_dim(self) -> int:
        return self.n_mfcc * (3 if self.deltas else 1)

    def num_frames(self, num_samples: int) -> int:
        """Frames of a centred STFT: frame t is centred on sample t * hop_length."""
        return 1 + num_samples // self.hop_length


class MFCC(nn.Module):
    """Waveforms ``(B, S)`` with their lengths ``(B,)`` in samples -> list of ``(T_i, F)`` frames.

    Each signal is reflect-padded on its own, exactly as a centred STFT of that signal alone
    would be, and then zero-padded to the batch; so an utterance's features do not depend on
    its neighbours. No top-dB clamp (it would depend on the loudest item in view).

    Example:
        >>> mfcc = MFCC(FeatureSettings(sample_rate=8000))
        >>> [f.shape for f in mfcc(torch.randn(2, 8000), torch.tensor([8000, 4000]))]
        [torch.Size([101, 40]), torch.Size([51, 40])]
    """

    def __init__(self, settings: FeatureSettings) -> None:
        super().__init__()
        self.settings = settings
        self.melspec = T.MelSpectrogram(
            sample_rate=settings.sample_rate,
            n_fft=settings.n_fft,
            win_length=settings.win_length,
            hop_length=settings.hop_length,
            n_mels=settings.n_mels,
            center=False,  # centring is done per signal in forward
        )
        self.to_db = T.AmplitudeToDB("power", top_db=None)
        self.register_buffer("dct", AF.create_dct(settings.n_mfcc, settings.n_mels, "ortho"))
        self.compute_deltas = T.ComputeDeltas() if settings.deltas else None

    def forward(self, waves: Tensor, lengths: Tensor) -> list[Tensor]:
        half = self.settings.n_fft // 2
        width = int(lengths.max()) + 2 * half
        padded = waves.new_zeros(len(waves), width)
        for i, n in enumerate(lengths.tolist()):
            signal = waves[i, :n]
            if n <= half:  # reflect padding needs more samples than the pad
                signal = nn.functional.pad(signal, (0, half + 1 - n))
            padded[i, : n + 2 * half] = nn.functional.pad(
                signal[None, None, :], (half, half), mode="reflect"
            )[0, 0, : n + 2 * half]
        mel_db = self.to_db(self.melspec(padded))  # (B, n_mels, T)
        ceps = (mel_db.transpose(1, 2) @ self.dct).contiguous()  # (B, T, n_mfcc)
        frames = [ceps[i, : self.settings.num_frames(n)] for i, n in enumerate(lengths.tolist())]
        if self.compute_deltas is not None:
            frames = [self._with_deltas(f) for f in frames]
        return frames

    def _with_deltas(self, ceps: Tensor) -> Tensor:  # (T, n_mfcc) -> (T, 3 * n_mfcc)
        d1 = self.compute_deltas(ceps.T)
        d2 = self.compute_deltas(d1)
        return torch.cat([ceps.T, d1, d2]).T.contiguous()
