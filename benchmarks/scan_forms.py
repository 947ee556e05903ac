"""Ways to solve minGRU's linear recurrence ``h_t = a_t h_{t-1} + b_t``: time and exactness.

    OMP_NUM_THREADS=1 python -m benchmarks.scan_forms      # batch 32, 2000 frames, hidden 64

Forward+backward CPU time (median of 3) of each formulation on the same ``(B, T, H)`` decays and
drives, and its largest error against the frame-by-frame recurrence in float64. The decays are
drawn as minGRU makes them, ``sigmoid(-k)`` with ``k ~ N(0, 3^2)``, so some frames forget
almost everything: that is where the rescaled cumulative sum overflows.
"""

from __future__ import annotations

import argparse
import time

import torch

from speechrnn.models.mingru import _chunk_size, linear_scan


def log_space(a, b, h0):
    """The paper's log-space scan (``b > 0``, ``h0 = 0``): ``log h = A + logcumsumexp(log b - A)``."""
    log_decay = a.log().cumsum(1)
    return torch.exp(log_decay + torch.logcumsumexp(b.log() - log_decay, dim=1))


def rescaled_cumsum(a, b, h0):
    """``h = exp(A) * cumsum(b * exp(-A))`` over the whole sequence: overflows once ``A < -88``."""
    log_decay = a.log().cumsum(1)
    return log_decay.exp() * torch.cumsum(b * torch.exp(-log_decay), dim=1)


def chunked_scan(a, b, h0):
    """:func:`speechrnn.models.mingru.linear_scan` in torch: chunks of about ``sqrt(T)`` frames, exact."""
    return linear_scan(a, b, h0, chunk=_chunk_size(a.shape[1]))


def one_pass(a, b, h0):
    """:func:`speechrnn.models.mingru.linear_scan` on a CPU: the compiled pass, frame after frame."""
    return linear_scan(a, b, h0)


FORMS = {"log_space": log_space, "rescaled_cumsum": rescaled_cumsum, "chunked_scan": chunked_scan,
         "one_pass": one_pass}


def reference(a, b, h0):
    h, states = h0, []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        states.append(h)
    return torch.stack(states, dim=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--hidden_size", type=int, default=64)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    shape = (args.batch_size, args.frames, args.hidden_size)
    k = 3 * torch.randn(shape)
    a, b, h0 = torch.sigmoid(-k), torch.sigmoid(k) * torch.rand(shape), torch.zeros(shape[0], shape[2])
    exact = reference(a.double(), b.double(), h0.double())
    print(f"Batch {args.batch_size}, {args.frames} frames, hidden {args.hidden_size}, float32:\n")
    print("| form | fwd+bwd ms | max abs error |")
    print("|---|---|---|")
    for name, form in FORMS.items():
        times = []
        for _ in range(4):  # the first pass warms up
            a_, b_ = a.clone().requires_grad_(), b.clone().requires_grad_()
            start = time.process_time()
            h = form(a_, b_, h0)
            h.sum().backward()
            times.append(time.process_time() - start)
        error = (h.detach().double() - exact).abs().max().item()
        print(f"| {name} | {1000 * sorted(times[1:])[1]:.0f} | {error:.1e} |")


if __name__ == "__main__":
    main()
