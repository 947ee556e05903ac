"""MFCC frames computed in batches with torchaudio, identical to one-at-a-time extraction."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.functional as AF
import torchaudio.transforms as T
from torch import Tensor, nn

from speechrnn.errors import SpeechRNNError
from speechrnn.options import Range, check

POSITIVE = Range(0, low_open=True)

DELTA_REACH = 2  # frames each side of ComputeDeltas' default window of 5


@dataclass(frozen=True)
class FeatureSettings:
    """Everything that decides the feature values; part of the cache key."""

    sample_rate: int = 16000  # Hz
    n_mfcc: int = 40
    n_mels: int = 40
    win_ms: float = 25.0
    hop_ms: float = 10.0
    deltas: bool = False  # append first and second differences
    floor_db: float | None = None  # log-mel bands floored this far below the clip's loudest; None: no floor

    def __post_init__(self) -> None:
        """Refuse settings that would divide by zero, or build an empty or meaningless feature."""
        for name in ("sample_rate", "n_mfcc", "n_mels", "win_ms", "hop_ms"):
            check(name, getattr(self, name), POSITIVE)
        if self.floor_db is not None:  # dB below the clip's loudest band; null for no floor
            check("floor_db", self.floor_db, POSITIVE)
        if self.n_mels < self.n_mfcc:
            raise SpeechRNNError(f"n_mfcc {self.n_mfcc} is more than n_mels {self.n_mels}: the cepstrum "
                                 "has at most one coefficient per mel band; lower n_mfcc or raise n_mels")
        for name, samples in (("win_ms", self.win_length), ("hop_ms", self.hop_length)):
            if samples < 1:
                raise SpeechRNNError(f"{name} {getattr(self, name)} is less than one sample at "
                                     f"{self.sample_rate} Hz; raise it")

    @property
    def win_length(self) -> int:  # samples
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def min_samples(self) -> int:
        """The shortest clip kept (samples): one analysis window, so a frame holds some real audio.

        Shorter clips (a 10 ms click, one sample) give frames that are mostly padding; classifying
        them would score noise.
        """
        return self.win_length

    @property
    def hop_length(self) -> int:  # samples
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def frame_s(self) -> float:
        """Seconds from one frame to the next: the rounded hop, so ``t * frame_s`` is frame t's centre."""
        return self.hop_length / self.sample_rate

    def frames_in(self, seconds: float) -> int:
        """How many frames ``seconds`` span (at least 0): the one conversion from time to frames."""
        return max(0, round(seconds / self.frame_s))

    @property
    def lookahead_frames(self) -> int:
        """Frames past frame t that its features read: the delta windows' reach (deltas of deltas)."""
        return 2 * DELTA_REACH if self.deltas else 0

    @property
    def lookahead_s(self) -> float:
        """Audio frame t reads past its centre: half an FFT window, and the deltas' frames after it."""
        return (self.n_fft // 2) / self.sample_rate + self.lookahead_frames * self.frame_s

    def centre_s(self, frame: int) -> float:
        """Where frame ``frame`` is centred, seconds from the start."""
        return frame * self.frame_s

    def ready_s(self, frame: int) -> float:
        """When frame ``frame`` can be computed: the time of the last audio it reads."""
        return self.centre_s(frame) + self.lookahead_s

    @property
    def n_fft(self) -> int:
        return 1 << (self.win_length - 1).bit_length()

    @property
    def feature_dim(self) -> int:
        return self.n_mfcc * (3 if self.deltas else 1)

    def num_frames(self, num_samples: int) -> int:
        """Frames of a centred STFT: frame t is centred on sample t * hop_length."""
        return 1 + num_samples // self.hop_length


def dct_matrix(n_mfcc: int, n_mels: int) -> Tensor:
    """``(n_mels, n_mfcc)``: the orthonormal DCT-II that turns log-mel bands into cepstra.

    Orthonormal, so its transpose maps cepstra back to (smoothed) log-mel bands: the noise mixer
    and vocal tract warp rely on that.
    """
    return AF.create_dct(n_mfcc, n_mels, "ortho")


class MFCC(nn.Module):
    """Waveforms ``(B, S)`` with their lengths ``(B,)`` in samples -> list of ``(T_i, F)`` frames.

    Each signal is reflect-padded on its own, exactly as a centred STFT of that signal alone
    would be, and then zero-padded to the batch; so an utterance's features do not depend on
    its neighbours. No top-dB clamp (it would depend on the loudest item in view). ``floor_db``
    floors each clip's log-mel bands at its own loudest band and frame minus ``floor_db``: hiss from
    one microphone and the silence of a quiet room then read alike, the floor is the same in every
    clip whatever its noise, and what stays is the speech above it. It needs the whole clip, so
    features with a floor do not stream.

    Example:
        >>> mfcc = MFCC(FeatureSettings(sample_rate=8000))
        >>> [f.shape for f in mfcc(torch.randn(2, 8000), torch.tensor([8000, 4000]))]
        [torch.Size([101, 40]), torch.Size([51, 40])]
    """

    def __init__(self, settings: FeatureSettings) -> None:
        super().__init__()
        self.settings = settings
        self.register_buffer("window", torch.hann_window(settings.win_length))
        self.mel_scale = T.MelScale(settings.n_mels, settings.sample_rate,
                                    n_stft=settings.n_fft // 2 + 1)
        self.to_db = T.AmplitudeToDB("power", top_db=None)
        self.register_buffer("dct", dct_matrix(settings.n_mfcc, settings.n_mels))
        self.compute_deltas = T.ComputeDeltas(win_length=2 * DELTA_REACH + 1) if settings.deltas else None

    def forward(self, waves: Tensor, lengths: Tensor) -> list[Tensor]:
        ceps = self.cepstra(reflect_pad(waves, lengths, self.settings.n_fft // 2))  # (B, T, n_mfcc)
        frames = [ceps[i, : self.settings.num_frames(n)] for i, n in enumerate(lengths.tolist())]
        if self.compute_deltas is not None:
            frames = [self._with_deltas(f) for f in frames]
        return frames

    def cepstra(self, padded: Tensor) -> Tensor:
        """Already padded signals ``(B, S)`` -> cepstra ``(B, T, n_mfcc)`` of every whole window.

        Frame t reads ``padded[:, t * hop : t * hop + n_fft]``; the streaming front end calls this
        on the stretch it has, so both paths share one recipe.
        """
        settings = self.settings
        stft = torch.stft(padded, settings.n_fft, settings.hop_length, settings.win_length,
                          self.window, center=False, return_complex=True)  # (B, n_freq, T)
        # |X|^2 as re^2 + im^2: three times faster on CPU than torchaudio's abs().pow(2)
        power = stft.real.square() + stft.imag.square()
        mel_db = self.to_db(self.mel_scale(power))  # (B, n_mels, T)
        if settings.floor_db is not None:
            mel_db = mel_db.maximum(mel_db.amax((1, 2), keepdim=True) - settings.floor_db)
        return (mel_db.transpose(1, 2) @ self.dct).contiguous()  # (B, T, n_mfcc)

    def _with_deltas(self, ceps: Tensor) -> Tensor:  # (T, n_mfcc) -> (T, 3 * n_mfcc)
        d1 = self.compute_deltas(ceps.T)
        d2 = self.compute_deltas(d1)
        return torch.cat([ceps.T, d1, d2]).T.contiguous()


def reflect_pad(waves: Tensor, lengths: Tensor, pad: int) -> Tensor:
    """``(B, S)`` -> ``(B, max(lengths) + 2 * pad)``: each signal reflect-padded at its own length.

    A few whole-batch ops (the edges are gathered, ``(B, pad)`` each) rather than one pad per
    signal: on a GPU, a handful of kernel launches per batch instead of three per signal. Zeros
    follow each padded signal. A signal no longer than ``pad`` is first zero-extended to
    ``pad + 1`` samples, as reflecting it needs.
    """
    lengths = lengths.to(waves.device)[:, None]  # (B, 1)
    width = max(waves.shape[1], pad + 1)
    steps = torch.arange(width, device=waves.device)[None, :]
    signals = nn.functional.pad(waves, (0, width - waves.shape[1])) * (steps < lengths)  # (B, S)
    out = nn.functional.pad(signals, (pad, pad))  # (B, S + 2 * pad), signal i at [pad, pad + n_i)
    edge = torch.arange(1, pad + 1, device=waves.device)[None, :]  # (1, pad)
    out[:, :pad] = signals[:, 1 : pad + 1].flip(1)  # x[pad], ..., x[1]
    reflected_len = lengths.clamp_min(pad + 1)
    # x[n-2], x[n-3], ... right after each signal (after its zero extension when it is short)
    out.scatter_(1, reflected_len + pad - 1 + edge, signals.gather(1, reflected_len - 1 - edge))
    out_steps = torch.arange(int(lengths.max()) + 2 * pad, device=waves.device)[None, :]
    return out[:, : out_steps.shape[1]] * (out_steps < lengths + 2 * pad)
