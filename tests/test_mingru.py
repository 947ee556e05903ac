import pytest
import torch

from speechrnn.models import scan_kernel
from speechrnn.models.mingru import MinGRU, MinLSTM, _scan, g, linear_scan

LAYERS = [MinGRU, MinLSTM]


@pytest.mark.parametrize("layer_class", LAYERS)
@pytest.mark.parametrize("frames", [1, 7, 16, 53, 2000])  # 53: prime, so padded
@pytest.mark.parametrize("with_h0", [False, True])
def test_parallel_scan_matches_the_step_mode(layer_class, frames, with_h0):
    torch.manual_seed(0)
    layer = layer_class(5, 8)
    x = 2 * torch.randn(3, frames, 5)  # wide pre-activations: gates near 0 and 1 both occur
    h0 = torch.randn(1, 3, 8) if with_h0 else None
    out, h_n = layer(x, h0)
    ref_out, ref_h_n = layer.forward_steps(x, h0)
    assert out.shape == (3, frames, 8) and h_n.shape == (1, 3, 8)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h_n, ref_h_n, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 7, 9, 20])  # 9 frames: one chunk, a partial one, longer
@pytest.mark.parametrize("reverse", [False, True])
def test_scan_result_does_not_depend_on_the_chunk_size(chunk, reverse):
    torch.manual_seed(0)
    decay, drive = torch.rand(2, 9, 3, dtype=torch.float64), torch.randn(2, 9, 3, dtype=torch.float64)
    h0 = torch.randn(2, 3, dtype=torch.float64)
    h, expected = h0, []
    for t in (range(8, -1, -1) if reverse else range(9)):
        h = decay[:, t] * h + drive[:, t]
        expected.append(h)
    expected = torch.stack(expected[::-1] if reverse else expected, dim=1)
    torch.testing.assert_close(_scan(decay, drive, h0, chunk, reverse), expected)


@pytest.mark.parametrize("chunk", [None, 1, 4])
def test_scan_gradient_is_exact(chunk):
    torch.manual_seed(0)
    decay = torch.rand(2, 9, 3, dtype=torch.float64, requires_grad=True)
    drive = torch.randn(2, 9, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, h: linear_scan(a, b, h, chunk), (decay, drive, h0))


def test_candidate_activation_is_the_papers_g_with_its_gradient():
    x = torch.linspace(-4, 4, 41, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(g(x), torch.where(x >= 0, x + 0.5, torch.sigmoid(x)))
    assert bool((g(x) > 0).all())
    assert torch.autograd.gradcheck(g, (x + 0.0125,))  # off the kink at 0


@pytest.mark.parametrize("layer_class", LAYERS)
def test_scan_gradients_equal_the_step_modes(layer_class):
    torch.manual_seed(0)
    layer = layer_class(5, 8)
    x = torch.randn(3, 40, 5, requires_grad=True)
    h0 = torch.randn(1, 3, 8, requires_grad=True)

    def gradients(run):
        out, h_n = run(x, h0)
        weights = torch.randn_like(out, generator=torch.Generator().manual_seed(1))
        return torch.autograd.grad((out * weights).sum() + h_n.sum(), [x, h0, *layer.parameters()])

    for scan, step in zip(gradients(layer), gradients(layer.forward_steps)):
        torch.testing.assert_close(scan, step, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("layer_class", LAYERS)
def test_keep_bias_sets_the_fraction_of_memory_kept_at_zero_input(layer_class):
    layer = layer_class(5, 4)
    layer.init_memory_gate(torch.tensor([-2.0, 0.0, 1.0, 3.0]))
    decay, _ = layer.gates(torch.zeros(1, 5))  # zero input reads the biases only
    torch.testing.assert_close(decay[0], torch.sigmoid(torch.tensor([-2.0, 0.0, 1.0, 3.0])))


@pytest.mark.parametrize("layer_class", LAYERS)
def test_cpu_kernel_gives_the_torch_scans_states_and_gradients(layer_class, monkeypatch):
    torch.manual_seed(0)
    layer = layer_class(5, 8)
    x = 2 * torch.randn(3, 2000, 5, requires_grad=True)
    h0 = torch.randn(1, 3, 8, requires_grad=True)
    weights = torch.randn(3, 2000, 8)

    def run():
        out, h_n = layer(x, h0)
        return out, h_n, *torch.autograd.grad((out * weights).sum() + h_n.sum(), [x, h0, *layer.parameters()])

    assert scan_kernel.kernel(x) is not None, "the CPU kernel should build where g++ is installed"
    compiled = run()
    monkeypatch.setattr(scan_kernel, "kernel", lambda x: None)  # the fallback: chunked torch scan
    for fused, torch_scan in zip(compiled, run()):  # weight gradients sum 6,000 frames: rtol 1e-4
        torch.testing.assert_close(fused, torch_scan, atol=1e-5, rtol=1e-4)


def test_min_gru_cpu_kernel_gradient_is_exact():
    torch.manual_seed(0)
    layer = MinGRU(3, 4).double()
    x = 2 * torch.randn(2, 9, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h0: layer(x, h0)[0], (x, h0))


def test_min_gru_pooled_in_the_kernel_equals_the_weighted_sum_of_its_states(monkeypatch):
    torch.manual_seed(0)
    layer = MinGRU(5, 8)
    x = 2 * torch.randn(3, 400, 5, requires_grad=True)
    weights = torch.rand(3, 400)
    weights[1, 250:] = 0  # padding: frames that do not count

    def run():
        pooled = layer.pooled(x, weights)
        return pooled, *torch.autograd.grad((pooled * torch.arange(8.0)).sum(), [x, *layer.parameters()])

    assert scan_kernel.kernel(x) is not None, "the CPU kernel should build where g++ is installed"
    compiled = run()
    monkeypatch.setattr(scan_kernel, "kernel", lambda x: None)  # the torch scan, then weighted_sum
    for fused, reference in zip(compiled, run()):
        torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-4)


def test_min_gru_kernel_gradient_is_exact_for_the_states_the_sum_and_both():
    torch.manual_seed(0)
    layer = MinGRU(3, 4).double()
    library = scan_kernel.kernel(torch.zeros(1, dtype=torch.float64))
    x = 2 * torch.randn(2, 9, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(2, 9, dtype=torch.float64)
    weight = torch.cat([layer.update.weight, layer.candidate.weight]).detach().requires_grad_()
    bias = torch.cat([layer.update.bias, layer.candidate.bias]).detach().requires_grad_()

    def both(x, h0, weight, bias):  # gradcheck feeds each output's gradient alone, then this sums them
        h, pooled = scan_kernel.MinGRUScan.apply(library, x, weight, bias, h0, weights)
        return h, pooled, h.sum(1) * 0.5 + pooled

    assert torch.autograd.gradcheck(both, (x, h0, weight, bias))
