"""A small Transformer encoder: the non-recurrent reference for accuracy and cost against length."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from speechrnn.batch import padding_mask
from speechrnn.models.pooling import weighted_sum

NUM_HEADS = 4
MAX_FRAMES = 10000  # longest sequence the positional table covers (100 s at a 10 ms hop)


def sinusoidal_positions(max_len: int, dim: int) -> Tensor:
    """``(max_len, dim)`` sine/cosine positional encoding (Vaswani et al. 2017)."""
    position = torch.arange(max_len)[:, None]
    rates = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    table = torch.zeros(max_len, dim)
    table[:, 0::2] = torch.sin(position * rates)
    table[:, 1::2] = torch.cos(position * rates[: dim // 2])
    return table


class TransformerEncoder(nn.Module):
    """Frames ``(B, T, F)`` and lengths ``(B,)`` -> states ``(B, T, hidden_size)``.

    Every frame attends to every real frame (padding is masked out of the keys), so the path
    from any frame to the readout is one attention step whatever the distance; what it pays
    instead is time and memory quadratic in T.
    """

    def __init__(self, input_size: int, hidden_size: int = 128, num_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden_size % NUM_HEADS:
            raise ValueError(f"hidden_size must be a multiple of {NUM_HEADS} heads, got {hidden_size}")
        self.output_size = hidden_size
        self.project = nn.Linear(input_size, hidden_size)
        self.register_buffer("positions", sinusoidal_positions(MAX_FRAMES, hidden_size), persistent=False)
        layer = nn.TransformerEncoderLayer(hidden_size, NUM_HEADS, dim_feedforward=2 * hidden_size,
                                           dropout=dropout, batch_first=True, norm_first=True)
        # no nested tensors: they zero padded positions in eval only, and we want one code path
        self.layers = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)

    def forward(self, feats: Tensor, lengths: Tensor, weights: Tensor | None = None) -> Tensor:
        """States ``(B, T, H)``, or given ``weights`` ``(B, T)``, their weighted sum over frames ``(B, H)``."""
        steps = feats.shape[1]
        if steps > MAX_FRAMES:
            raise ValueError(f"sequence of {steps} frames is longer than the {MAX_FRAMES} positions covered")
        x = self.project(feats) + self.positions[:steps]  # (B, T, H)
        states = self.layers(x, src_key_padding_mask=~padding_mask(lengths, steps))
        return states if weights is None else weighted_sum(states, weights)
