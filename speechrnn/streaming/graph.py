"""The whole spotter as one module: audio samples and the state in, posteriors and the next state out.

:class:`AudioGraph` computes, chunk by chunk, what :class:`~speechrnn.data.frontend.FrameStream`
and the model's :class:`~speechrnn.models.streaming_step.StreamingStep` compute, with every
piece of memory an explicit tensor, so that ``torch.onnx`` writes it as one graph a runtime
without Python (onnxruntime in a browser, on a phone) runs as it is. The STFT is a matrix
product with the window folded in (an exported graph has no complex numbers), mel, log and DCT
are the MFCC module's own matrices, and the reflect padding at both ends is an index map, so
the first frames match the offline path too. Frames are gathered with indices computed from the
sample count, so any chunk length works, a multiple of the hop or not.

State, in order: ``samples`` ``(n_fft,)`` the last samples received (zeros before the start),
``received`` ``(1,)`` int64 the samples received so far, ``cepstra`` ``(8, n_mfcc)`` the last
cepstra (with deltas only), then the step's state (normaliser, each recurrent layer).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from speechrnn.data.features import DELTA_REACH, MFCC, FeatureSettings
from speechrnn.data.frontend import DELTA_DENOMINATOR
from speechrnn.models.streaming_step import StreamingStep

DB_FLOOR = 1e-10  # AmplitudeToDB's amin: power below it reads as -100 dB
FRONT_END_WEIGHTS = ("dft", "mel", "dct")  # the front end's matrices, by their names in an exported graph
CEPSTRA_KEPT = 4 * DELTA_REACH  # frame t's deltas of deltas read cepstra t - 4 .. t + 4


class AudioGraph(nn.Module):
    """``(audio (S,), final (1,) bool, *state) -> (posteriors (T, C), *next_state)``.

    ``posteriors`` holds every frame the chunk completes (``T`` may be 0). ``final`` true ends
    the stream: the end is reflected as the offline path does and the last frames come out; the
    state it returns is not meant to be used again.
    """

    def __init__(self, step: StreamingStep, settings: FeatureSettings) -> None:
        super().__init__()
        self.step, self.settings = step, settings
        mfcc = MFCC(settings)
        n_fft, win = settings.n_fft, settings.win_length
        window = torch.zeros(n_fft, dtype=torch.float64)
        left = (n_fft - win) // 2  # torch.stft centres a shorter window in the FFT frame
        window[left : left + win] = torch.hann_window(win, dtype=torch.float64)
        bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
        angle = 2 * math.pi * torch.arange(n_fft, dtype=torch.float64)[:, None] * bins / n_fft  # (n_fft, n_freq)
        self.register_buffer("dft", (window[:, None] * torch.cat([angle.cos(), -angle.sin()], 1)).float())
        self.register_buffer("mel", mfcc.mel_scale.fb.clone())  # (n_freq, n_mels)
        self.register_buffer("dct", mfcc.dct.clone())  # (n_mels, n_mfcc)
        self.register_buffer("offsets", torch.arange(n_fft) - n_fft // 2)  # window sample - its centre

    @property
    def state_names(self) -> list[str]:
        front = ["samples", "received"] + (["cepstra"] if self.settings.deltas else [])
        return front + [f"step_{i}" for i in range(len(self.step.initial_state(1)))]

    def initial_state(self) -> tuple[Tensor, ...]:
        """The state a stream starts from (the step's with its batch of one)."""
        settings = self.settings
        front = (torch.zeros(settings.n_fft), torch.zeros(1, dtype=torch.long))
        if settings.deltas:
            front += (torch.zeros(CEPSTRA_KEPT, settings.n_mfcc),)
        return front + self.step.initial_state(1)

    def forward(self, audio: Tensor, final: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        settings = self.settings
        pad, hop = settings.n_fft // 2, settings.hop_length
        samples, received = state[0], state[1]
        front_size = 3 if settings.deltas else 2
        before = received.reshape(())  # samples received before this chunk
        total = before + torch.ones_like(audio, dtype=torch.long).sum()
        # frames whose window the audio completes; frame 0 also needs x[pad], which its reflection reads
        done_before = frames_ready(before, pad, hop)
        done = torch.where(final.reshape(()), torch.where(total > 0, total // hop + 1, 0), frames_ready(total, pad, hop))
        rows = torch.arange(done_before, torch.maximum(done, done_before + 1))  # at least one: see below
        heard = torch.cat([samples, audio, torch.zeros(pad + 1)])  # from sample before - n_fft on
        ceps = self.cepstra(heard, rows, before, total)  # (R, n_mfcc)
        new_state = (torch.cat([samples, audio])[-settings.n_fft:], total.reshape(1))
        if settings.deltas:
            carried = torch.cat([state[2], ceps])  # cepstra done_before - 8 ..
            emitted_before = (done_before - 2 * DELTA_REACH).clamp_min(0)
            emitted = torch.where(final.reshape(()), done, (done - 2 * DELTA_REACH).clamp_min(0))
            rows = torch.arange(emitted_before, torch.maximum(emitted, emitted_before + 1))
            feats = with_deltas(carried, done_before - CEPSTRA_KEPT, rows, done - 1)
            kept = torch.arange(done - CEPSTRA_KEPT, done) - (done_before - CEPSTRA_KEPT)
            new_state += (carried.index_select(0, kept),)
            count = emitted - emitted_before
        else:
            feats, count = ceps, done - done_before
        # the step cannot take 0 frames, so a chunk that completes none runs one it then drops
        posteriors, *step_state = self.step(feats[None], *state[front_size:])
        kept_any = count > 0
        step_state = [torch.where(kept_any, new, old) for new, old in zip(step_state, state[front_size:])]
        return (posteriors[0].index_select(0, torch.arange(count)), *new_state, *step_state)

    def cepstra(self, heard: Tensor, rows: Tensor, before: Tensor, total: Tensor) -> Tensor:
        """Cepstra ``(R, n_mfcc)`` of frames ``rows``, from ``heard``: sample ``before - n_fft`` on."""
        pad = self.settings.n_fft // 2
        index = rows[:, None] * self.settings.hop_length + self.offsets  # (R, n_fft): sample read
        # reflect at both ends, as the offline path pads; a stream shorter than pad + 1 samples is
        # first extended with zeros to pad + 1 (the zeros after the audio in `heard`)
        end = total.clamp_min(pad + 1) - 1
        index = index.abs()
        index = torch.where(index > end, 2 * end - index, index)
        # a dropped row (see forward) may point before `heard`; every kept one lies inside it
        frames = heard[(index - (before - self.settings.n_fft)).clamp_min(0)]  # (R, n_fft)
        spectrum = frames @ self.dft  # (R, 2 * n_freq): real parts, then imaginary
        real, imag = spectrum.chunk(2, 1)
        mel_db = 10 * torch.log10(((real.square() + imag.square()) @ self.mel).clamp_min(DB_FLOOR))
        return mel_db @ self.dct


def frames_ready(received: Tensor, pad: int, hop: int) -> Tensor:
    """Frames whose window ``received`` samples complete: frame t needs ``t * hop + pad`` and x[pad]."""
    return torch.where(received > pad, (received - pad) // hop + 1, 0)


def with_deltas(ceps: Tensor, base: Tensor, rows: Tensor, last: Tensor) -> Tensor:
    """Frames ``rows`` of cepstra with deltas ``(R, 3 * n_mfcc)``, from ``ceps`` (frames ``base``..).

    Indices outside ``0 .. last`` repeat the edge frame, as ComputeDeltas' replicate padding does.
    """
    reach = torch.arange(-DELTA_REACH, DELTA_REACH + 1)
    weights = reach.float()[:, None]  # (5, 1)
    around = (rows[:, None] + reach).clamp(0, last)  # (R, 5): frames whose first deltas are needed
    ahead = (around[:, :, None] + reach).clamp(0, last) - base  # (R, 5, 5): cepstra they read
    d1 = (ceps[ahead] * weights).sum(2) / DELTA_DENOMINATOR  # (R, 5, n_mfcc)
    d2 = (d1 * weights).sum(1) / DELTA_DENOMINATOR
    return torch.cat([ceps[rows - base], d1[:, DELTA_REACH], d2], 1)
