"""The memory gate's starting point, measured through the cells' own forward pass."""

import math

import pytest
import torch

from speechrnn.errors import SpeechRNNError
from speechrnn.models.encoder import RecurrentEncoder

HIDDEN = 256


def measured_keep(cell: str, **gate_options) -> torch.Tensor:
    """Per-unit fraction of the memory kept over one step of zero input, at initialisation.

    Every weight and every bias but the memory gate's (and, for chrono, the LSTM input gate's)
    is zeroed, so the candidate is tanh(0) = 0 and one step maps the memory m to keep * m.
    """
    torch.manual_seed(0)
    encoder = RecurrentEncoder(3, cell, HIDDEN, num_layers=1, **gate_options)
    rnn = encoder.layers[0][0]
    with torch.no_grad():
        gate = rnn.bias_ih_l0[HIDDEN:2 * HIDDEN] + rnn.bias_hh_l0[HIDDEN:2 * HIDDEN]
        for param in rnn.parameters():
            param.zero_()
        rnn.bias_ih_l0[HIDDEN:2 * HIDDEN] = gate
        memory = torch.ones(1, 1, HIDDEN)
        x = torch.zeros(1, 1, 3)
        if cell == "lstm":
            _, (_, after) = rnn(x, (torch.zeros_like(memory), memory))  # cell state c
        else:
            _, after = rnn(x, memory)
    return after.flatten()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_default_init_keeps_about_half_per_step(cell):
    assert measured_keep(cell, gate_init="default").mean().item() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("bias", [1.0, 3.0])
def test_constant_init_keeps_sigmoid_of_the_bias(cell, bias):
    keep = measured_keep(cell, gate_init="constant", gate_bias=bias)
    assert torch.allclose(keep, torch.full_like(keep, 1 / (1 + math.exp(-bias))), atol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_constant_bias_one_is_the_default_for_both_gated_cells(cell):
    assert measured_keep(cell).mean().item() == pytest.approx(1 / (1 + math.exp(-1)), abs=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_chrono_spreads_time_constants_up_to_t_max(cell):
    t_max = 200
    keep = measured_keep(cell, gate_init="chrono", chrono_frames=t_max)
    time_constants = 1 / (1 - keep)  # frames to forget 1 - 1/e of the memory
    # b = log u, u ~ U[1, T_max - 1]: keep = u / (1 + u), so 1 / (1 - keep) = 1 + u in [2, T_max]
    assert time_constants.min() >= 2 - 1e-3 and time_constants.max() <= t_max + 1e-2
    assert time_constants.mean().item() == pytest.approx(1 + t_max / 2, rel=0.15)


@pytest.mark.parametrize("gate_init", ["constant", "chrono"])
def test_memory_gate_bias_lives_in_bias_ih_only(gate_init):
    encoder = RecurrentEncoder(3, "lstm", 8, num_layers=2, bidirectional=True, gate_init=gate_init,
                               gate_bias=2.0, chrono_frames=50)
    for rnn in (rnn for layer in encoder.layers for rnn in layer):
        gates = slice(0, 16) if gate_init == "chrono" else slice(8, 16)  # chrono also sets the input gate
        assert torch.count_nonzero(rnn.bias_hh_l0[gates]) == 0
        if gate_init == "chrono":
            assert torch.equal(rnn.bias_ih_l0[:8], -rnn.bias_ih_l0[8:16])


def test_chrono_without_t_max_names_the_option():
    with pytest.raises(SpeechRNNError, match="chrono_frames"):
        RecurrentEncoder(3, "gru", 8, gate_init="chrono")


def test_vanilla_rnn_ignores_the_gate_option():
    torch.manual_seed(0)
    plain = RecurrentEncoder(3, "rnn", 8, gate_init="default").state_dict()
    torch.manual_seed(0)
    chrono = RecurrentEncoder(3, "rnn", 8, gate_init="chrono", chrono_frames=10).state_dict()
    assert all(torch.equal(plain[k], chrono[k]) for k in plain)


@pytest.mark.parametrize("gate_options,expected", [({"gate_init": "constant", "gate_bias": 2.0}, 1 / (1 + math.exp(-2))),
                                                   ({"gate_init": "constant"}, 1 / (1 + math.exp(-1)))])
def test_mingru_takes_the_same_memory_option_and_keeps_as_much(gate_options, expected):
    """minGRU's gate z is the fraction written: at zero input one step keeps 1 - z of h."""
    torch.manual_seed(0)
    layer = RecurrentEncoder(3, "mingru", HIDDEN, num_layers=1, **gate_options).layers[0][0]
    with torch.no_grad():
        for name, param in layer.named_parameters():
            if "update" not in name or "bias" not in name:
                param.zero_()
        _, after = layer(torch.zeros(1, 1, 3), torch.ones(1, 1, HIDDEN))
    # the candidate at zero input is g(0) = 0.5, so h' = keep * 1 + (1 - keep) * 0.5
    keep = (after.flatten() - 0.5) / 0.5
    assert torch.allclose(keep, torch.full_like(keep, expected), atol=1e-5)
