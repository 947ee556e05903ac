"""How a gated cell's memory gate starts: the bias that sets the fraction of the state kept per step.

A gate whose sigmoid is the fraction kept (the LSTM's forget gate f, the GRU's update gate z in
``h' = (1 - z) * n + z * h``) starts at PyTorch's bias init with sigmoid ~ 0.5: half the state
gone each frame, a memory of a couple of frames. Two known aids:

- ``constant``: one bias ``b`` for every unit, keeping sigmoid(b) per step (b = 1 keeps 0.73;
  Jozefowicz et al. 2015 recommend it for the LSTM's forget gate).
- ``chrono`` (Tallec & Ollivier 2018): ``b ~ log U[1, T_max - 1]``, so the units' time constants
  spread up to ``T_max`` frames, the longest dependency expected.

A cell whose gate is the fraction *written* (minGRU's z) uses the negated bias.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from speechrnn.errors import SpeechRNNError

GateInit = Literal["default", "constant", "chrono"]
GATE_INITS = ("default", "constant", "chrono")


def keep_gate_bias(gate_init: GateInit, hidden_size: int, gate_bias: float = 1.0,
                   chrono_frames: int | None = None) -> Tensor | None:
    """The bias ``(H,)`` of the keep gate, or None for ``default`` (leave PyTorch's init alone).

    ``chrono`` draws from torch's global generator, so a seeded run draws the same biases.
    """
    if gate_init not in GATE_INITS:
        raise SpeechRNNError(f"gate_init must be one of {GATE_INITS}, got {gate_init!r}")
    if gate_init == "default":
        return None
    if gate_init == "constant":
        return torch.full((hidden_size,), float(gate_bias))
    if chrono_frames is None or chrono_frames < 2:
        raise SpeechRNNError(f"gate_init: chrono needs chrono_frames >= 2 (the longest dependency in "
                             f"frames, e.g. the sequence length), got {chrono_frames}; set --model.chrono_frames")
    return torch.empty(hidden_size).uniform_(1.0, chrono_frames - 1.0).log()
