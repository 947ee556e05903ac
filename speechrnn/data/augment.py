"""Training-only augmentation of raw MFCC batches on their device: tempo, vocal tract, gain, masks,
background noise and time shifts.

The features are cached MFCCs, so each change is made in the feature domain rather than on the
waveform, on the batch where it already lies (the GPU when training there):

- tempo: each utterance is resampled along time by a factor drawn from ``tempo_factors`` (0.9,
  1.0, 1.1 as in Ko et al. 2015's speed perturbation; here the pitch stays put); lengths follow.
- vocal tract length perturbation (VTLP, Jaitly & Hinton 2013): each utterance's spectrum is
  warped along frequency by a factor drawn from ``[1 - vtlp, 1 + vtlp]``, as if a longer or
  shorter vocal tract had spoken it. The cepstrum is a linear map of the log-mel spectrum (the
  orthonormal DCT), and so is a warp of it (interpolation between mel bands), so the whole
  change is one ``n_mfcc x n_mfcc`` matrix per utterance, applied to every delta block.
- gain: a waveform scaled by ``g`` dB raises every mel band's log power by ``g`` dB; the
  orthonormal DCT's first basis vector is ``1 / sqrt(n_mels)`` in every band and the others
  sum to zero, so only ``c0`` moves, by ``g * sqrt(n_mels)``. Deltas of a constant are zero.
- SpecAugment (Park et al. 2019): time masks, and masks over cepstral coefficients applied the
  same way to the delta blocks. Masked values become the training mean.
- background noise (:class:`NoiseMixer`, mixed in mel power) and time shifts (:func:`time_shift`):
  the TensorFlow keyword-spotting recipe's two, which the Speech Commands module applies.

Every draw comes from one generator seeded by the data module's ``seed``, so a run is repeatable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
import torch
from torch import Tensor

from speechrnn.batch import IGNORE_INDEX, Batch, padding_mask
from speechrnn.data.audio import read_audio
from speechrnn.data.features import MFCC, dct_matrix
from speechrnn.errors import SpeechRNNError


@dataclass(frozen=True)
class AugmentSettings:
    """What to change in training batches; the defaults change nothing."""

    time_masks: int = 0  # SpecAugment time masks per utterance
    time_mask_frames: int = 10  # the widest time mask
    coeff_masks: int = 0  # masks over cepstral coefficients per utterance
    coeff_mask_width: int = 8  # the widest coefficient mask
    tempo_factors: tuple[float, ...] = ()  # speed-up factors drawn per utterance; () for none
    gain_db: float = 0.0  # the largest gain either way, drawn uniformly per utterance
    vtlp: float = 0.0  # the largest frequency warp either way (0.1: factors 0.9 to 1.1)
    seed: int = 0
    n_mfcc: int = field(default=40, repr=False)
    n_mels: int = field(default=40, repr=False)
    sample_rate: int = field(default=16000, repr=False)

    def __post_init__(self) -> None:
        if any(factor <= 0 for factor in self.tempo_factors):
            raise SpeechRNNError(f"tempo_factors must be positive, got {list(self.tempo_factors)}")
        if min(self.time_masks, self.time_mask_frames, self.coeff_masks, self.coeff_mask_width,
               self.gain_db, self.vtlp) < 0:
            raise SpeechRNNError(f"augmentation counts, widths, gain_db and vtlp must not be negative: {self}")
        if self.vtlp >= 0.5:
            raise SpeechRNNError(f"vtlp {self.vtlp} warps frequency by more than half; use 0.05 to 0.2")

    @property
    def active(self) -> bool:
        return bool(self.time_masks or self.coeff_masks or self.gain_db or self.vtlp
                    or any(factor != 1 for factor in self.tempo_factors))


class Augmentation:
    """Applies :class:`AugmentSettings` to a raw training batch; ``fill`` ``(F,)`` is what masks write."""

    def __init__(self, settings: AugmentSettings) -> None:
        self.settings = settings
        self.generator: torch.Generator | None = None

    def _generator(self, device: torch.device) -> torch.Generator:
        if self.generator is None or self.generator.device != device:
            self.generator = torch.Generator(device).manual_seed(self.settings.seed)
        return self.generator

    def __call__(self, batch: Batch, fill: Tensor) -> Batch:
        s = self.settings
        if not s.active:
            return batch
        device = batch.feats.device
        generator = self._generator(device)
        size = len(batch.lengths)
        if any(factor != 1 for factor in s.tempo_factors):
            choice = torch.randint(len(s.tempo_factors), (size,), device=device, generator=generator)
            batch = change_tempo(batch, torch.tensor(s.tempo_factors, device=device)[choice])
        feats = batch.feats
        if s.vtlp:
            alpha = 1 + (torch.rand(size, device=device, generator=generator) * 2 - 1) * s.vtlp  # (B,)
            feats = warp_vocal_tract(feats, alpha, s.n_mfcc, s.n_mels, s.sample_rate)
        if s.gain_db:
            gain_db = (torch.rand(size, device=device, generator=generator) * 2 - 1) * s.gain_db  # (B,)
            feats = add_gain(feats, batch.lengths, gain_db, s.n_mels)
        fill = fill.to(feats.device)
        if s.time_masks:
            feats = time_mask(feats, batch.lengths, s.time_masks, s.time_mask_frames, fill, generator)
        if s.coeff_masks:
            feats = coeff_mask(feats, s.n_mfcc, s.coeff_masks, s.coeff_mask_width, fill, generator)
        return batch._replace(feats=feats * padding_mask(batch.lengths, feats.shape[1])[..., None])


def change_tempo(batch: Batch, factor: Tensor) -> Batch:
    """Resample each utterance along time by its ``factor`` ``(B,)`` (> 1: faster, shorter).

    Frame ``t`` of the result is frame ``t * factor`` of the source, interpolated linearly between
    its neighbours; the new length is ``round(length / factor)`` (at least 1), and so is the
    speech length. Framewise targets take the nearest source frame's label.
    """
    feats, lengths = batch.feats, batch.lengths  # (B, T, F), (B,)
    device = feats.device
    factor = factor.to(feats.dtype)
    new_lengths = (lengths / factor).round().long().clamp_min(1)
    steps = int(new_lengths.max())
    source = torch.arange(steps, device=device)[None, :] * factor[:, None]  # (B, T')
    source = torch.minimum(source, (lengths[:, None] - 1).clamp_min(0).to(source.dtype))
    below = source.floor().long()
    above = torch.minimum(below + 1, (lengths[:, None] - 1).clamp_min(0))
    weight = (source - below)[..., None]  # (B, T', 1)
    dim = feats.shape[-1]
    resampled = ((1 - weight) * feats.gather(1, below[..., None].expand(-1, -1, dim))
                 + weight * feats.gather(1, above[..., None].expand(-1, -1, dim)))
    valid = padding_mask(new_lengths, steps)
    targets = batch.targets
    if targets.dim() == 2:
        nearest = torch.minimum(source.round().long(), (lengths[:, None] - 1).clamp_min(0))
        targets = targets.gather(1, nearest).masked_fill(~valid, IGNORE_INDEX)
    speech_lengths = torch.minimum((batch.speech_lengths / factor).round().long().clamp_min(1), new_lengths)
    return batch._replace(feats=resampled * valid[..., None], lengths=new_lengths, targets=targets,
                          speech_lengths=speech_lengths)


def vtlp_band_warp(alpha: Tensor, n_mels: int, sample_rate: int, boundary: float = 0.8) -> Tensor:
    """``(B, n_mels, n_mels)``: row ``i`` of each interpolates the source bands at band ``i``'s warped centre.

    Band ``i`` of the result reads the source spectrum at ``w(f_i)``, where ``f_i`` is its centre
    (HTK mel bands from 0 Hz to Nyquist, as ``features.MFCC`` uses) and ``w`` is VTLP's
    piecewise-linear warp for that utterance's ``alpha`` ``(B,)``: ``w(f) = alpha * f`` up to
    ``boundary`` of Nyquist (scaled so that it stays inside the band), then a straight line that
    maps Nyquist to itself. Built for the whole batch at once, on ``alpha``'s device.
    """
    nyquist = sample_rate / 2
    mels = torch.linspace(0.0, 2595 * math.log10(1 + nyquist / 700), n_mels + 2, dtype=torch.float64,
                          device=alpha.device)
    centres = 700 * (10 ** (mels[1:-1] / 2595) - 1)  # (M,) Hz
    a = alpha.to(torch.float64)[:, None]  # (B, 1)
    knee = boundary * nyquist * a.clamp(max=1.0) / a
    warped = torch.where(centres <= knee, a * centres,
                         nyquist - (nyquist - a * knee) / (nyquist - knee) * (nyquist - centres))  # (B, M)
    warped = warped.clamp(centres[0], centres[-1]).contiguous()  # outside the bands: the edge band
    upper = torch.searchsorted(centres, warped).clamp(1, n_mels - 1)
    lower = upper - 1
    position = lower + (warped - centres[lower]) / (centres[upper] - centres[lower])  # fractional band index
    below = position.floor().long().clamp(0, n_mels - 1)
    above = (below + 1).clamp(max=n_mels - 1)
    weight = position - below
    matrix = torch.zeros(len(alpha), n_mels, n_mels, dtype=torch.float64, device=alpha.device)
    matrix.scatter_add_(2, below[..., None], (1 - weight)[..., None])
    matrix.scatter_add_(2, above[..., None], weight[..., None])
    return matrix


def warp_vocal_tract(feats: Tensor, alpha: Tensor, n_mfcc: int, n_mels: int, sample_rate: int) -> Tensor:
    """Each utterance ``(B, T, F)`` with its spectrum warped by its ``alpha`` ``(B,)`` (VTLP).

    Cepstra ``c = L D`` (log-mel ``L``, orthonormal DCT ``D`` of ``n_mels x n_mfcc``); the band
    warp ``W`` acts on ``L = c D^T`` (exact when ``n_mfcc == n_mels``, the smoothed spectrum
    otherwise), so the warped cepstra are ``c D^T W^T D``. The same matrix serves every delta block.
    """
    dct = dct_matrix(n_mfcc, n_mels).to(device=feats.device, dtype=torch.float64)  # (n_mels, n_mfcc)
    maps = dct.T @ vtlp_band_warp(alpha.to(feats.device), n_mels, sample_rate).transpose(1, 2) @ dct
    batch, steps, dim = feats.shape
    blocks = feats.reshape(batch, steps * (dim // n_mfcc), n_mfcc)
    return (blocks @ maps.to(feats.dtype)).reshape(batch, steps, dim)


def add_gain(feats: Tensor, lengths: Tensor, gain_db: Tensor, n_mels: int) -> Tensor:
    """Each utterance ``(B, T, F)`` as if its waveform were scaled by its ``gain_db`` ``(B,)``."""
    offset = torch.zeros_like(feats[0, 0])  # (F,)
    offset[0] = math.sqrt(n_mels)  # c0 only; see the module docstring
    return feats + gain_db[:, None, None] * offset * padding_mask(lengths, feats.shape[1])[..., None]


def time_mask(feats: Tensor, lengths: Tensor, count: int, max_frames: int, fill: Tensor,
              generator: torch.Generator | None = None) -> Tensor:
    """SpecAugment time masks: ``count`` spans of up to ``max_frames`` frames set to ``fill`` ``(F,)``."""
    batch, steps, _ = feats.shape
    device = feats.device
    widths = torch.randint(0, max_frames + 1, (batch, count), device=device, generator=generator)
    room = (lengths[:, None] - widths).clamp_min(0)  # (B, count)
    starts = (torch.rand(batch, count, device=device, generator=generator) * (room + 1)).long()
    t = torch.arange(steps, device=device)[None, None, :]  # (1, 1, T)
    masked = ((t >= starts[..., None]) & (t < (starts + widths)[..., None])).any(1)  # (B, T)
    return torch.where(masked[..., None], fill, feats)


def coeff_mask(feats: Tensor, n_mfcc: int, count: int, max_width: int, fill: Tensor,
               generator: torch.Generator | None = None) -> Tensor:
    """SpecAugment's frequency masks applied to cepstral coefficients (and their deltas).

    Masking MFCCs directly, as keyword-spotting models trained on MFCCs commonly do; the same
    coefficients are masked in the static, delta and delta-delta blocks.
    """
    batch, _, dim = feats.shape
    device = feats.device
    widths = torch.randint(0, max_width + 1, (batch, count), device=device, generator=generator)
    starts = (torch.rand(batch, count, device=device, generator=generator)
              * (n_mfcc - widths + 1).clamp_min(1)).long()
    c = torch.arange(n_mfcc, device=device)[None, None, :]  # (1, 1, n_mfcc)
    masked = ((c >= starts[..., None]) & (c < (starts + widths)[..., None])).any(1)  # (B, n_mfcc)
    masked = masked.repeat(1, dim // n_mfcc)  # (B, F): the same coefficients in every block
    return torch.where(masked[:, None, :], fill, feats)


class NoiseMixer:
    """Adds background noise to normalised MFCC frames at a chosen SNR.

    Noise and speech add in power, so the mixing happens on mel power: with ``n_mfcc ==
    n_mels`` the orthonormal DCT is invertible, so frames go back to mel dB exactly, then to
    power, get a window of noise power scaled to the SNR added, and return to normalised MFCCs.
    Adding powers drops the speech-noise cross term, which averages to zero for independent
    signals. The noise bank holds the train share of each background recording.
    """

    def __init__(self, noise_power: Tensor, dct: Tensor) -> None:
        self.noise_power = noise_power  # (N, n_mels) mel power frames, recordings back to back
        self.dct = dct  # (n_mels, n_mfcc), orthonormal

    @classmethod
    def from_files(cls, paths: list[Path], mfcc: MFCC, span: tuple[float, float] = (0.0, 1.0)) -> NoiseMixer:
        """The bank of ``paths``, each cut to ``span`` (fractions of its duration: a split's share)."""
        banks = []
        rate = mfcc.settings.sample_rate
        low, high = span
        with torch.no_grad():
            for path in paths:
                duration_s = sf.info(str(path)).duration
                wave = read_audio(path, rate, low * duration_s, (high - low) * duration_s)
                (ceps,) = mfcc(wave[None], torch.tensor([len(wave)]))
                banks.append(10 ** ((ceps @ mfcc.dct.T) / 10))  # (T, n_mels) mel power
        return cls(torch.cat(banks), mfcc.dct.clone())

    def __call__(
        self,
        feats: Tensor,
        lengths: Tensor,
        mean: Tensor,
        std: Tensor,
        probability: float,
        snr_db: tuple[float, float],
    ) -> Tensor:
        batch, steps, _ = feats.shape
        device = feats.device
        self.noise_power = self.noise_power.to(device)
        self.dct = self.dct.to(device)
        valid = padding_mask(lengths, steps)[..., None]  # (B, T, 1)
        speech = 10 ** (((feats * std + mean) @ self.dct.T) / 10)  # (B, T, n_mels)
        # One noise window per clip; a window may straddle two recordings (a negligible seam).
        starts = torch.randint(0, max(1, len(self.noise_power) - steps), (batch,), device=device)
        rows = (starts[:, None] + torch.arange(steps, device=device)).clamp_(
            max=len(self.noise_power) - 1
        )
        noise = self.noise_power[rows]  # (B, T, n_mels)
        speech_mean = (speech * valid).sum((1, 2)) / (valid.sum((1, 2)) * speech.shape[-1])
        noise_mean = (noise * valid).sum((1, 2)) / (valid.sum((1, 2)) * noise.shape[-1])
        low, high = snr_db
        snr = torch.empty(batch, device=device).uniform_(low, high)
        scale = speech_mean / (noise_mean * 10 ** (snr / 10))  # (B,)
        scale = scale * (torch.rand(batch, device=device) < probability)
        mixed = speech + scale[:, None, None] * noise
        mixed_db = 10 * torch.log10(mixed.clamp_min(1e-10))  # the floor AmplitudeToDB uses
        return ((mixed_db @ self.dct - mean) / std) * valid


def time_shift(feats: Tensor, lengths: Tensor, max_frames: int) -> Tensor:
    """Shift each clip by up to ``max_frames`` either way within its length.

    Frames shifted in repeat the clip's edge frame: keyword clips start and end in background,
    and a zero (the training mean) would be an unnatural frame.
    """
    batch, steps, _ = feats.shape
    device = feats.device
    shift = torch.randint(-max_frames, max_frames + 1, (batch, 1), device=device)
    source = torch.arange(steps, device=device)[None, :] - shift  # (B, T)
    source = torch.minimum(source.clamp_min(0), (lengths[:, None] - 1).clamp_min(0))
    shifted = feats.gather(1, source[..., None].expand_as(feats))
    return shifted * padding_mask(lengths, steps)[..., None]
