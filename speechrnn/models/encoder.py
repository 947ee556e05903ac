"""One recurrent encoder for every cell (vanilla RNN, GRU, LSTM, minGRU, minLSTM), stacked, optionally both ways."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from speechrnn.models.memory_gates import GateInit, keep_gate_bias
from speechrnn.models.mingru import MinGRU, MinLSTM
from speechrnn.models.pooling import weighted_sum

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM, "mingru": MinGRU, "minlstm": MinLSTM}
INITS = ("default", "orthogonal", "identity")


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of ``x`` ``(B, T, H)`` within its own length; padding stays put."""
    steps = torch.arange(x.shape[1], device=x.device)
    idx = torch.where(steps[None, :] < lengths[:, None], lengths[:, None] - 1 - steps[None, :], steps[None, :])
    return x.gather(1, idx[..., None].expand_as(x))


class RecurrentEncoder(nn.Module):
    """Frames ``(B, T, F)`` and lengths ``(B,)`` -> hidden states ``(B, T, H * directions)``.

    Each layer runs as its own ``torch.nn.RNN/GRU/LSTM`` (cuDNN on a GPU), or as a
    :mod:`~speechrnn.models.mingru` layer with the same call (a parallel scan over frames). The backward direction
    reads each sequence reversed within its length, so padding never reaches a real frame in
    either direction: no packing needed, and results do not depend on batch neighbours.

    Args:
        cell: ``rnn`` | ``gru`` | ``lstm`` | ``mingru`` | ``minlstm``.
        nonlinearity: ``tanh`` | ``relu``, for ``rnn`` only.
        init: ``default`` (PyTorch's uniform), ``orthogonal`` recurrent weights, or ``identity``
            recurrent weights with zero biases (IRNN, Le et al. 2015; use with relu).
        gate_init, gate_bias, chrono_frames: how the memory gate starts (GRU update gate, LSTM
            forget gate): ``default`` (PyTorch's), ``constant`` (bias ``gate_bias``) or ``chrono``
            (time constants up to ``chrono_frames``); see :mod:`speechrnn.models.memory_gates`.
            The vanilla RNN has no gate and ignores them.
    """

    def __init__(self, input_size: int, cell: str = "gru", hidden_size: int = 128, num_layers: int = 2,
                 bidirectional: bool = False, dropout: float = 0.0, nonlinearity: str = "tanh",
                 init: str = "default", gate_init: GateInit = "constant", gate_bias: float = 1.0,
                 chrono_frames: int | None = None) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {list(CELLS)}, got {cell!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        directions = 2 if bidirectional else 1
        self.cell = cell
        self.directions = directions
        self.output_size = hidden_size * directions
        self.layers = nn.ModuleList(
            nn.ModuleList(
                CELLS[cell](input_size if layer == 0 else self.output_size, hidden_size, batch_first=True, **extra)
                for _ in range(directions)
            )
            for layer in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self._initialise(init)
        if cell != "rnn":
            self._initialise_memory_gates(gate_init, gate_bias, chrono_frames)

    def _initialise(self, init: str) -> None:
        for name, param in self.layers.named_parameters():
            gates = param.data.chunk(param.shape[0] // (self.output_size // self.directions))
            if "weight_hh" in name and init == "orthogonal":
                for gate in gates:
                    nn.init.orthogonal_(gate)
            elif "weight_hh" in name and init == "identity":
                for gate in gates:
                    nn.init.eye_(gate)
            elif "bias" in name and init == "identity":
                nn.init.zeros_(param.data)

    @torch.no_grad()
    def _initialise_memory_gates(self, gate_init: GateInit, gate_bias: float, chrono_frames: int | None) -> None:
        """Write the keep-gate bias into ``bias_ih`` and zero the same slice of ``bias_hh``.

        Both biases add into one pre-activation, so the zeroed ``bias_hh`` slice makes ``bias_ih``
        the whole bias. Slice [H:2H] is the GRU's update gate (order r, z, n) and the LSTM's
        forget gate (order i, f, g, o); chrono also sets the LSTM's input gate to minus the
        forget gate (Tallec & Ollivier 2018), so a unit that keeps long also writes little.
        """
        hidden = self.output_size // self.directions
        for rnn in (rnn for directions in self.layers for rnn in directions):
            keep = keep_gate_bias(gate_init, hidden, gate_bias, chrono_frames)  # (H,), a fresh draw per layer
            if keep is None:  # default: PyTorch's init stays
                return
            if isinstance(rnn, (MinGRU, MinLSTM)):  # their gates read the input alone: one bias each
                rnn.init_memory_gate(keep)
                continue
            rnn.bias_ih_l0[hidden:2 * hidden] = keep
            rnn.bias_hh_l0[hidden:2 * hidden] = 0.0
            if self.cell == "lstm" and gate_init == "chrono":
                rnn.bias_ih_l0[:hidden] = -keep
                rnn.bias_hh_l0[:hidden] = 0.0

    def forward(self, feats: Tensor, lengths: Tensor, weights: Tensor | None = None) -> Tensor:
        """States ``(B, T, H * directions)``, or given ``weights`` ``(B, T)``, their weighted sum
        over frames ``(B, H * directions)``: a last layer of one minimal recurrence sums as it goes."""
        x = feats  # (B, T, F)
        for i, directions in enumerate(self.layers):
            if i > 0:
                x = self.dropout(x)
            one_minimal = len(directions) == 1 and isinstance(directions[0], (MinGRU, MinLSTM))
            if weights is not None and one_minimal and i == len(self.layers) - 1:
                return directions[0].pooled(x, weights)
            outputs = [directions[0](x)[0]]  # (B, T, H)
            if len(directions) == 2:
                backward = directions[1](reverse_padded(x, lengths))[0]
                outputs.append(reverse_padded(backward, lengths))
            x = torch.cat(outputs, dim=-1) if len(outputs) == 2 else outputs[0]  # (B, T, H * directions)
        return x if weights is None else weighted_sum(x, weights)

    # ----- streaming: the state carried from one chunk of frames to the next -------------------

    @property
    def state_size(self) -> int:
        """Tensors in the state: per layer ``h``, or ``h`` and ``c`` for an LSTM."""
        return len(self.layers) * (2 if self.cell == "lstm" else 1)

    def initial_state(self, batch_size: int) -> tuple[Tensor, ...]:
        """Zeros, ``(B, H)`` each: the state :meth:`forward` starts every sequence from."""
        weight = next(self.parameters())
        return tuple(weight.new_zeros(batch_size, self.output_size) for _ in range(self.state_size))

    def step(self, feats: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Frames ``(B, T, F)`` that continue from ``state`` -> states ``(B, T, H)`` and the state after them.

        Chunk after chunk, this computes what :meth:`forward` computes on the whole sequence.
        Unidirectional encoders only: the backward direction would need the end of the stream.
        """
        if self.directions != 1:
            raise ValueError("step() needs a unidirectional encoder; a bidirectional one reads the future")
        per_layer = self.state_size // len(self.layers)
        x, new_state = feats, []
        for i, (layer,) in enumerate(self.layers):
            if i > 0:
                x = self.dropout(x)
            carried = state[i * per_layer : (i + 1) * per_layer]  # (B, H) each
            if isinstance(layer, (MinGRU, MinLSTM)):  # the closed form: no loop in an exported graph
                x, last = layer.step(x, carried[0])
                new_state.append(last)
                continue
            batched = tuple(s[None] for s in carried)  # (1, B, H) each, as torch's layers take them
            x, last = layer(x, batched if per_layer == 2 else batched[0])  # (B, T, H)
            new_state.extend(s[0] for s in (last if per_layer == 2 else (last,)))
        return x, tuple(new_state)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

