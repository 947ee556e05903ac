"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates from the input alone.

Every gate reads only ``x_t``, so the state update ``h_t = a_t * h_{t-1} + b_t`` is linear in
``h`` and the whole sequence is one linear recurrence, solved here by :func:`linear_scan` in
``O(sqrt(T))`` sequential kernel launches instead of ``T`` (in one on CUDA with Triton,
:mod:`~speechrnn.models.scan_triton`; one compiled pass on a CPU). Both layers take
``nn.GRU(batch_first=True)``'s call, ``layer(x (B, T, F), h0 (1, B, H) | None) -> (out, h_n)``,
so :class:`~speechrnn.models.encoder.RecurrentEncoder` stacks and reverses them like ``nn.GRU``.

Why not the paper's log-space scan (``logcumsumexp``)? On one CPU thread it is slower than
``nn.GRU`` (its backward dominates); a cumulative sum rescaled by ``exp(-sum log a)`` overflows
float32 once a chunk's decays multiply below ``exp(-88)``. The scan below only multiplies and
adds numbers with ``|a| <= 1`` in the order the recurrence does, so it needs no exponentials, no
bound on the chunk size, and matches the frame-by-frame recurrence to float rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechrnn.models import scan_kernel, scan_triton
from speechrnn.models.pooling import weighted_sum
from speechrnn.models.recurrence import recurrence_chunk


def _chunk_size(frames: int) -> int:
    """Frames per chunk. Near ``sqrt(T)``, which minimises the sequential steps (C inside a chunk
    plus T / C across chunks); a divisor of T down to ``sqrt(T) / 2`` if there is one, since
    padding T to a multiple of C costs two copies of the inputs each way; else ``ceil(sqrt(T))``."""
    root = math.isqrt(frames)
    divisor = next((c for c in range(root, root // 2, -1) if frames % c == 0), None)
    return divisor or root + (root * root < frames)


def _scan(decay: Tensor, drive: Tensor, h0: Tensor, chunk: int | None = None,
          reverse: bool = False) -> Tensor:
    """``h_t = decay_t * h_{t-1} + drive_t`` over ``(B, T, H)``, from ``h0`` ``(B, H)``; no autograd.
    ``reverse`` runs from the last frame to the first (``h_{t+1}`` in place of ``h_{t-1}``).

    Three passes over chunks of C frames, viewed ``(B, N, C, H)`` (N = T / C chunks, no copy):
    1. every chunk at once, from a zero state, one frame position at a time (C steps);
    2. the state entering each chunk, one chunk at a time (N steps on ``(B, H)``);
    3. each frame adds its entering state times the decay product since the chunk start.
    """
    batch, frames, hidden = drive.shape
    chunk = chunk or _chunk_size(frames)
    chunks = -(-frames // chunk)
    pad = chunks * chunk - frames  # frames after the end: decay 1, drive 0, so either direction
    if pad:                        # carries its state through them unchanged
        decay, drive = F.pad(decay, (0, 0, 0, pad), value=1.0), F.pad(drive, (0, 0, 0, pad))
    a = decay.reshape(batch, chunks, chunk, hidden)
    b = drive.reshape(batch, chunks, chunk, hidden)
    local = torch.empty_like(b)  # state from a zero start at each chunk's beginning
    kept = torch.empty_like(a)  # decay product since the chunk's beginning
    order = range(chunk - 1, -1, -1) if reverse else range(chunk)
    first, *rest = order
    local[:, :, first], kept[:, :, first] = b[:, :, first], a[:, :, first]
    previous = first
    for j in rest:
        torch.addcmul(b[:, :, j], a[:, :, j], local[:, :, previous], out=local[:, :, j])
        torch.mul(a[:, :, j], kept[:, :, previous], out=kept[:, :, j])
        previous = j
    entering = torch.empty(batch, chunks, hidden, dtype=b.dtype, device=b.device)
    first, *rest = range(chunks - 1, -1, -1) if reverse else range(chunks)
    entering[:, first] = h0
    for n in rest:
        before = n + 1 if reverse else n - 1
        torch.addcmul(local[:, before, previous], kept[:, before, previous], entering[:, before],
                      out=entering[:, n])
    h = torch.addcmul(local, kept, entering[:, :, None])  # (B, N, C, H)
    return h.view(batch, chunks * chunk, hidden)[:, :frames]


def _solve(decay: Tensor, drive: Tensor, h0: Tensor, chunk: int | None, reverse: bool = False) -> Tensor:
    """:func:`_scan`'s result: from the Triton kernel where it runs and no ``chunk`` is asked for."""
    if chunk is None and scan_triton.available(drive):
        return scan_triton.linear_scan(decay, drive, h0, reverse)
    return _scan(decay, drive, h0, chunk, reverse)


class _LinearScan(torch.autograd.Function):
    """Autograd for :func:`_solve` (or, given the compiled ``library``, its one-pass CPU twin): the
    adjoint of a linear recurrence is the same recurrence run backwards
    (``g_t = dL/dh_t + decay_{t+1} * g_{t+1}``), so backward costs one more scan and saves only
    ``decay``, ``h`` and ``h0``."""

    @staticmethod
    def forward(ctx, decay: Tensor, drive: Tensor, h0: Tensor, chunk: int | None, library) -> Tensor:
        if library is None:
            h = _solve(decay, drive, h0, chunk)
        else:
            h = scan_kernel.linear_scan(library, decay, drive, h0)
        ctx.save_for_backward(decay, h, h0)
        ctx.chunk, ctx.library = chunk, library
        return h

    @staticmethod
    def backward(ctx, grad_h: Tensor):
        decay, h, h0 = ctx.saved_tensors
        if ctx.library is not None:
            return *scan_kernel.linear_scan_backward(ctx.library, decay, h0, h, grad_h), None, None
        next_decay = F.pad(decay[:, 1:], (0, 0, 0, 1))  # decay_{t+1}; nothing follows the last frame
        grad = _solve(next_decay, grad_h, torch.zeros_like(h0), ctx.chunk, reverse=True)
        previous = torch.cat([h0[:, None], h[:, :-1]], dim=1)  # h_{t-1}
        return grad * previous, grad, decay[:, 0] * grad[:, 0], None, None


def linear_scan(decay: Tensor, drive: Tensor, h0: Tensor, chunk: int | None = None) -> Tensor:
    """All states of ``h_t = decay_t * h_{t-1} + drive_t``: ``(B, T, H)`` each, ``h0`` ``(B, H)``.

    On a CPU one compiled pass (:mod:`~speechrnn.models.scan_kernel`), on CUDA one Triton kernel
    (:mod:`~speechrnn.models.scan_triton`), elsewhere (or given a ``chunk``, or without Triton) the
    chunked scan; ``chunk`` (frames) only changes its order of work, not the result; None picks
    about ``sqrt(T)``.
    """
    return _LinearScan.apply(decay, drive, h0, chunk, scan_kernel.kernel(drive) if chunk is None else None)


class _PositiveCandidate(torch.autograd.Function):
    """The paper's positive candidate activation ``g``, with its slope saved in forward: written
    with ``torch.where`` it costs ~10x a sigmoid on a CPU, forward and backward."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        s = torch.sigmoid(x.clamp(max=0))  # sigmoid(x) below 0, 1/2 above
        # slope: s (1 - s) below 0; 1 at and above 0, where s (1 - s) = 1/4 and 3/4 is added
        ctx.save_for_backward(s * (1 - s) + 0.75 * (x >= 0).to(x.dtype))
        return torch.relu(x) + s

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (slope,) = ctx.saved_tensors
        return grad * slope


def g(x: Tensor) -> Tensor:
    """The paper's positive candidate activation: ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` below.

    Continuous, slope 1 above 0 like a linear unit, and always > 0. The paper needs the
    positivity for its log-space scan; :func:`linear_scan` does not, but keeping the paper's
    activation keeps the model the paper's (and its trained weights valid for either scan).
    Without gradients (inference, a traced export) it is plain tensor ops: an exported graph
    cannot hold a Python autograd function.
    """
    if torch.jit.is_tracing() or not (torch.is_grad_enabled() and x.requires_grad):
        return torch.relu(x) + torch.sigmoid(x.clamp(max=0))
    return _PositiveCandidate.apply(x)


class _MinimalRecurrence(nn.Module):
    """A layer whose gates read only the input: ``decay, drive = gates(x)``, then a linear scan.

    ``forward`` runs the parallel scan (training); ``step`` solves one chunk in closed form
    (streaming and export: no loop, so a traced graph takes any chunk length), and
    ``forward_steps`` runs the recurrence frame by frame (the reference both must match).
    """

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = True) -> None:
        super().__init__()
        if not batch_first:
            raise ValueError("minimal recurrences take batch_first=True inputs only")
        self.hidden_size = hidden_size

    def gates(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` ``(..., F)`` -> (decay ``a``, drive ``b``), each ``(..., H)``."""
        raise NotImplementedError

    def _initial(self, x: Tensor, h0: Tensor | None) -> Tensor:
        return x.new_zeros(x.shape[0], self.hidden_size) if h0 is None else h0[0]  # (B, H)

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x`` ``(B, T, F)``, ``h0`` ``(1, B, H)`` or None -> (``out`` ``(B, T, H)``, ``h_n`` ``(1, B, H)``)."""
        out = self._states(x, self._initial(x, h0))
        return out, out[:, -1][None]

    def pooled(self, x: Tensor, weights: Tensor) -> Tensor:
        """:meth:`forward`'s states (from a zero state) summed over frames with ``weights`` ``(B, T)``
        (constants, e.g. :func:`~speechrnn.models.pooling.mean_weights`) -> ``(B, H)``."""
        return weighted_sum(self(x)[0], weights)

    def _states(self, x: Tensor, h0: Tensor) -> Tensor:
        """All states ``(B, T, H)`` from ``x`` ``(B, T, F)`` and ``h0`` ``(B, H)``: gates, then the scan."""
        decay, drive = self.gates(x)
        return linear_scan(decay, drive, h0)

    def step(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """A chunk ``x`` ``(B, T, F)`` after state ``h`` ``(B, H)`` -> (``out`` ``(B, T, H)``, next state ``(B, H)``)."""
        decay, drive = self.gates(x)
        # a decay that underflowed to 0 keeps nothing either way; its log must stay finite
        out = recurrence_chunk(decay.clamp_min(torch.finfo(decay.dtype).tiny).log(), drive, h)
        return out, out[:, -1]

    def forward_steps(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """:meth:`forward`'s result, computed frame by frame."""
        h = self._initial(x, h0)
        states = []
        for t in range(x.shape[1]):
            decay, drive = self.gates(x[:, t])
            h = decay * h + drive
            states.append(h)
        return torch.stack(states, dim=1), h[None]


class MinGRU(_MinimalRecurrence):
    """``h_t = (1 - z_t) * h_{t-1} + z_t * g(W_h x_t)``, ``z_t = sigmoid(W_z x_t)``.

    One ``nn.Linear`` per gate (``update``: z, ``candidate``: h~) keeps each pre-activation
    contiguous; elementwise work on slices of one wide projection runs markedly slower on a CPU.
    """

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = True) -> None:
        super().__init__(input_size, hidden_size, batch_first)
        self.update = nn.Linear(input_size, hidden_size)
        self.candidate = nn.Linear(input_size, hidden_size)

    def gates(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k = self.update(x)
        return torch.sigmoid(-k), torch.sigmoid(k) * g(self.candidate(x))  # 1 - z without cancellation

    def _states(self, x: Tensor, h0: Tensor) -> Tensor:
        """On a CPU, the projections, :meth:`gates` and the scan in one compiled pass per block of rows."""
        library = scan_kernel.kernel(x)
        if library is None:
            return super()._states(x, h0)
        return self._compiled(library, x, h0, None)[0]

    def pooled(self, x: Tensor, weights: Tensor) -> Tensor:
        """On a CPU, summed inside the compiled pass: the sum's gradient enters the reverse pass
        frame by frame, so no ``(B, T, H)`` gradient of the states is made."""
        library = scan_kernel.kernel(x)
        if library is None:
            return super().pooled(x, weights)
        return self._compiled(library, x, self._initial(x, None), weights)[1]

    def _compiled(self, library, x: Tensor, h0: Tensor, weights: Tensor | None) -> tuple[Tensor, Tensor | None]:
        weight = torch.cat([self.update.weight, self.candidate.weight])  # (2H, F)
        bias = torch.cat([self.update.bias, self.candidate.bias])
        return scan_kernel.MinGRUScan.apply(library, x, weight, bias, h0, weights)

    @torch.no_grad()
    def init_memory_gate(self, keep_bias: Tensor | float) -> None:
        """Set the bias so the fraction kept per frame at zero input is ``sigmoid(keep_bias)``
        (scalar or ``(H,)``): keep = 1 - z, so the update gate's bias is ``-keep_bias``."""
        self.update.bias.copy_(-torch.as_tensor(keep_bias))


class MinLSTM(_MinimalRecurrence):
    """``h_t = f'_t * h_{t-1} + i'_t * g(W_h x_t)`` with ``f', i'`` = ``f, i`` normalised to sum 1,
    ``f = sigmoid(W_f x_t)``, ``i = sigmoid(W_i x_t)`` (the paper's length-independent scaling).
    """

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = True) -> None:
        super().__init__(input_size, hidden_size, batch_first)
        self.forget = nn.Linear(input_size, hidden_size)
        self.input = nn.Linear(input_size, hidden_size)
        self.candidate = nn.Linear(input_size, hidden_size)

    def gates(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # f' = f / (f + i) = sigmoid(log f - log i), computed in log space so it never divides 0/0
        diff = F.logsigmoid(self.forget(x)) - F.logsigmoid(self.input(x))
        return torch.sigmoid(diff), torch.sigmoid(-diff) * g(self.candidate(x))

    @torch.no_grad()
    def init_memory_gate(self, keep_bias: Tensor | float) -> None:
        """Set the biases so the fraction kept per frame at zero input is ``sigmoid(keep_bias)``:
        forget bias ``b``, input bias ``-b`` (``sigmoid(b) / sigmoid(-b) = exp(b)``)."""
        self.forget.bias.copy_(torch.as_tensor(keep_bias))
        self.input.bias.copy_(-torch.as_tensor(keep_bias))
