"""The streaming front end: audio chunks of any size -> the MFCC frames the offline path computes.

:class:`FrameStream` emits the frames :class:`~speechrnn.data.features.MFCC` computes for the
whole audio (centred STFT, reflect padding at both ends), each once its window (and, with
deltas, the frames its deltas read) is complete; the last ones when the stream ends.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from speechrnn.data.features import DELTA_REACH, MFCC, FeatureSettings
from speechrnn.errors import SpeechRNNError

DELTA_DENOMINATOR = 10.0  # 2 * (1^2 + 2^2), ComputeDeltas' normaliser for a window of 5
FEATURE_CHUNK_S = 10.0  # audio per front-end call when featurising a long signal


def deltas_at(x: Tensor, base: int, start: int, stop: int, last: int) -> Tensor:
    """Deltas ``(stop - start, F)`` of frames ``start..stop`` of a sequence whose frames ``base..`` are ``x``.

    Indices past ``0`` or ``last`` repeat the edge frame, as ComputeDeltas' replicate padding does.
    """
    steps = torch.arange(start, stop)
    out = torch.zeros(len(steps), x.shape[1], dtype=x.dtype)
    for k in range(1, DELTA_REACH + 1):
        ahead = x[(steps + k).clamp(0, last) - base]
        behind = x[(steps - k).clamp(0, last) - base]
        out += k * (ahead - behind)
    return out / DELTA_DENOMINATOR


class DeltaStream:
    """Cepstra in chunks -> cepstra with first and second deltas, as on the whole sequence.

    Frame t waits for cepstra t+4 (deltas of deltas, each reaching two frames ahead) or for the
    end of the stream, whose edge frames are repeated.
    """

    def __init__(self) -> None:
        self.ceps = torch.zeros(0, 0)  # frames ceps_base.. of the cepstra
        self.ceps_base = 0
        self.d1 = torch.zeros(0, 0)  # frames d1_base.. of the first deltas
        self.d1_base = 0
        self.emitted = 0  # frames returned so far

    def push(self, ceps: Tensor, final: bool) -> Tensor:  # (T, n_mfcc) -> (T', 3 * n_mfcc)
        self.ceps = torch.cat([self.ceps.reshape(-1, ceps.shape[1]), ceps])
        total = self.ceps_base + len(self.ceps)
        if total == 0:
            return torch.zeros(0, 3 * ceps.shape[1])
        d1_done = self.d1_base + len(self.d1)
        d1_stop = total if final else max(d1_done, total - DELTA_REACH)
        fresh = deltas_at(self.ceps, self.ceps_base, d1_done, d1_stop, total - 1)
        self.d1 = torch.cat([self.d1.reshape(-1, ceps.shape[1]), fresh])
        stop = d1_stop if final else max(self.emitted, d1_stop - DELTA_REACH)
        d2 = deltas_at(self.d1, self.d1_base, self.emitted, stop, d1_stop - 1)
        rows = slice(self.emitted - self.ceps_base, stop - self.ceps_base)
        out = torch.cat([self.ceps[rows], self.d1[self.emitted - self.d1_base : stop - self.d1_base], d2], 1)
        self.emitted = stop
        # keep what later frames read: their own cepstra, and deltas two frames back
        keep_ceps = min(self.emitted, d1_stop - DELTA_REACH)
        self.ceps, self.ceps_base = self.ceps[max(0, keep_ceps - self.ceps_base):], max(self.ceps_base, keep_ceps)
        keep_d1 = self.emitted - DELTA_REACH
        self.d1, self.d1_base = self.d1[max(0, keep_d1 - self.d1_base):], max(self.d1_base, keep_d1)
        return out


def check_streamable(settings: FeatureSettings, source: str) -> None:
    """Refuse features a stream cannot compute as training did, naming ``source``."""
    if settings.floor_db is not None:
        raise SpeechRNNError(f"{source} floors its log-mel bands {settings.floor_db:g} dB below each clip's loudest "
                             "(data.floor_db), which a stream has not heard yet; retrain with data.floor_db: null "
                             "to stream")


class FrameStream:
    """Audio chunks ``(S,)`` at ``settings.sample_rate`` -> MFCC frames ``(T, F)``, as computed offline.

    Frame t is centred on sample ``t * hop`` and needs the audio up to
    ``settings.ready_s(t)`` (half a window, and with deltas the four frames after it); it is
    emitted by the push that brings that audio. :meth:`finish` adds the reflected end and returns the last frames. Memory stays
    bounded: only the samples of unfinished windows are kept.

    Example:
        >>> stream = FrameStream(FeatureSettings(sample_rate=8000))
        >>> chunks = [stream.push(torch.randn(800)) for _ in range(10)] + [stream.finish()]
        >>> sum(len(c) for c in chunks)  # 1 + 8000 // 80, as MFCC gives for one second
        101
    """

    def __init__(self, settings: FeatureSettings, source: str = "this front end") -> None:
        check_streamable(settings, source)
        self.settings = settings
        self.mfcc = MFCC(settings)
        self.pad = settings.n_fft // 2
        self.buffer = torch.zeros(0)  # samples of the padded signal from index `base` on
        self.base = 0
        self.received = 0  # samples of audio pushed so far
        self.next_frame = 0
        self.deltas = DeltaStream() if settings.deltas else None

    @property
    def started(self) -> bool:
        """True once the reflected start (samples 1..pad) could be written."""
        return self.received > self.pad

    def push(self, chunk: Tensor) -> Tensor:
        """The frames completed by ``chunk``; ``(0, F)`` when none is."""
        chunk = torch.as_tensor(chunk, dtype=torch.float32).reshape(-1)
        was_started = self.started
        self.buffer = torch.cat([self.buffer, chunk])
        self.received += len(chunk)
        if not self.started:
            return self._out(torch.zeros(0, self.settings.n_mfcc), final=False)
        if not was_started:  # prepend x[pad], ..., x[1], as reflect padding does
            self.buffer = torch.cat([self.buffer[1 : self.pad + 1].flip(0), self.buffer])
        return self._out(self._cepstra(), final=False)

    def finish(self) -> Tensor:
        """The frames left at the end of the stream (the reflected end completes them)."""
        if not self.started:  # too short to reflect in place: the offline path pads it itself
            if self.received == 0:
                return torch.zeros(0, self.settings.feature_dim)
            return self.mfcc(self.buffer[None], torch.tensor([self.received]))[0]
        self.buffer = torch.cat([self.buffer, self.buffer[-self.pad - 1 : -1].flip(0)])  # x[n-2], x[n-3], ...
        return self._out(self._cepstra(), final=True)

    def _cepstra(self) -> Tensor:  # (T, n_mfcc) of every window the buffer now completes
        hop, n_fft = self.settings.hop_length, self.settings.n_fft
        end = self.base + len(self.buffer)
        count = (end - n_fft) // hop + 1 - self.next_frame
        if count <= 0:
            return torch.zeros(0, self.settings.n_mfcc)
        start = self.next_frame * hop - self.base
        ceps = self.mfcc.cepstra(self.buffer[None, start : start + (count - 1) * hop + n_fft])[0]
        self.next_frame += count
        # keep the next window's samples, and the last pad + 1 samples the reflected end reads
        keep = min(self.next_frame * hop, end - self.pad - 1)
        self.buffer, self.base = self.buffer[keep - self.base :], keep
        return ceps

    def _out(self, ceps: Tensor, final: bool) -> Tensor:
        return ceps if self.deltas is None else self.deltas.push(ceps, final)


def featurise(wave: np.ndarray, settings: FeatureSettings, source: str = "this stream") -> torch.Tensor:
    """MFCC frames ``(T, F)`` of a long signal, computed as the streaming front end computes them."""
    stream = FrameStream(settings, source)
    step = round(FEATURE_CHUNK_S * settings.sample_rate)
    with torch.inference_mode():
        frames = [stream.push(torch.from_numpy(wave[i : i + step])) for i in range(0, len(wave), step)]
        return torch.cat([*frames, stream.finish()])
