"""Initialisation schemes: exact bounds, variances within a sampling tolerance, init_model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from descentlab import init as dinit

# A big sample: n = 400·600 = 240 000 weights.
FAN_OUT, FAN_IN = 400, 600
N = FAN_OUT * FAN_IN
Z = 5.0  # standard errors allowed (two-sided false-alarm probability ≈ 6e-7)


def sample(initialise, seed=0, shape=(FAN_OUT, FAN_IN), **kwargs):
    w = torch.empty(shape, dtype=torch.float64)
    initialise(w, generator=torch.Generator().manual_seed(seed), **kwargs)
    return w


def assert_variance(w, sigma2, kurtosis):
    """Sample variance s² of n iid zero-mean draws: Var(s²) ≈ σ⁴(κ − 1)/n (κ = μ₄/σ⁴)."""
    n = w.numel()
    s2 = w.var().item()
    se = sigma2 * math.sqrt((kurtosis - 1) / n)
    assert abs(s2 - sigma2) <= Z * se, f"s²={s2:.6g}, σ²={sigma2:.6g}, tolerance {Z * se:.3g}"
    assert abs(w.mean().item()) <= Z * math.sqrt(sigma2 / n)


NORMAL_KURTOSIS, UNIFORM_KURTOSIS = 3.0, 9 / 5


@pytest.mark.parametrize("gain", [1.0, 0.5, math.sqrt(2)])
def test_xavier_uniform_bound_is_exact_and_variance_is_glorots(gain):
    w = sample(dinit.xavier_uniform_, gain=gain)
    a = gain * math.sqrt(6 / (FAN_IN + FAN_OUT))
    top = w.abs().max().item()
    assert top <= a
    assert top >= a * (1 - 20 / N)  # P(max|w| < a(1−20/n)) = (1−20/n)^n ≈ e^−20
    sigma = gain * math.sqrt(2 / (FAN_IN + FAN_OUT))  # Glorot's σ (the notes print σ²)
    assert_variance(w, sigma**2, UNIFORM_KURTOSIS)


def test_notes_sigma_squared_reading_is_rejected_by_the_same_test():
    gain = 0.5
    w = sample(dinit.xavier_normal_, gain=gain)
    notes_sigma2 = gain * math.sqrt(2 / (FAN_IN + FAN_OUT))  # notes 000 as printed
    with pytest.raises(AssertionError):
        assert_variance(w, notes_sigma2, NORMAL_KURTOSIS)


@pytest.mark.parametrize("gain", [1.0, 0.25])
def test_xavier_normal_variance(gain):
    w = sample(dinit.xavier_normal_, gain=gain)
    assert_variance(w, gain**2 * 2 / (FAN_IN + FAN_OUT), NORMAL_KURTOSIS)


def test_fan_in_normal_is_randn_over_sqrt_n():
    w = sample(dinit.fan_in_normal_)
    assert_variance(w, 1 / FAN_IN, NORMAL_KURTOSIS)
    # same generator, same draws as the notes' w = randn(N)/√N
    ref = torch.randn(FAN_OUT, FAN_IN, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(w, ref / math.sqrt(FAN_IN))


def test_fan_in_of_a_convolution_counts_the_kernel():
    w = sample(dinit.fan_in_normal_, shape=(64, 16, 5, 5), gain=2.0)
    assert_variance(w, 4.0 / (16 * 25), NORMAL_KURTOSIS)


def test_kaiming_relu():
    w = sample(dinit.kaiming_normal_)
    assert_variance(w, 2 / FAN_IN, NORMAL_KURTOSIS)
    u = sample(dinit.kaiming_uniform_, mode="fan_out")
    b = math.sqrt(2) * math.sqrt(3 / FAN_OUT)
    assert u.abs().max().item() <= b
    assert_variance(u, b**2 / 3, UNIFORM_KURTOSIS)


@pytest.mark.parametrize("shape", [(30, 50), (50, 30), (8, 4, 3, 3)])
def test_orthogonal_with_gain(shape):
    gain = 1.7
    w = sample(dinit.orthogonal_, shape=shape, gain=gain).reshape(shape[0], -1)
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    torch.testing.assert_close(
        gram, gain**2 * torch.eye(gram.shape[0], dtype=torch.float64), atol=1e-10, rtol=0
    )


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.norm = nn.LayerNorm(8)
        self.rnn = nn.LSTM(8, 6, num_layers=2)
        self.head = nn.Linear(6, 2)
        self.embed = nn.Embedding(10, 8)


def test_init_model_touches_every_weight_and_zeroes_biases():
    torch.manual_seed(0)
    net = Net().double()
    norm_before = [p.clone() for p in net.norm.parameters()]
    embed_before = net.embed.weight.clone()
    report = dinit.init_model(net, "xavier_uniform", gain=0.8, generator=torch.Generator().manual_seed(3))

    # reference: torch.nn.init in module order with the same generator
    ref = Net().double()
    gen = torch.Generator().manual_seed(3)
    expected = []
    for mod_name, mod in ref.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.LSTM, nn.Linear)):
            for name, p in mod.named_parameters(recurse=False):
                if name.startswith("weight"):
                    nn.init.xavier_uniform_(p.data, gain=0.8, generator=gen)
                    expected.append((f"{mod_name}.{name}", p.data))
                else:
                    expected.append((f"{mod_name}.{name}", torch.zeros_like(p)))
    params = dict(net.named_parameters())
    assert [r.name for r in report] == [name for name, _ in expected]
    for name, value in expected:
        torch.testing.assert_close(params[name], value, rtol=0, atol=0)
    for before, after in zip(norm_before, net.norm.parameters()):
        assert torch.equal(before, after)
    assert torch.equal(embed_before, net.embed.weight)
    conv = next(r for r in report if r.name == "conv.weight")
    assert (conv.fan_in, conv.fan_out) == (3 * 9, 8 * 9)
    table = str(report)
    assert "rnn.weight_hh_l1" in table and "zeros" in table


def test_init_model_can_keep_biases():
    net = nn.Linear(4, 3)
    before = net.bias.clone()
    report = dinit.init_model(net, "orthogonal", bias=None)
    assert torch.equal(net.bias, before) and [r.name for r in report] == ["weight"]


def test_bad_arguments():
    with pytest.raises(
        ValueError, match=r"scheme must be one of \['fan_in', .*'xavier_uniform'\], got 'glorot'"
    ):
        dinit.init_model(nn.Linear(2, 2), "glorot")
    for initialise in (dinit.xavier_uniform_, dinit.xavier_normal_, dinit.orthogonal_, dinit.fan_in_normal_):
        for gain in (0.0, -1.0, float("nan")):
            with pytest.raises(ValueError, match="gain"):
                initialise(torch.empty(3, 3), gain=gain)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        dinit.xavier_uniform_(torch.empty(5))


@pytest.mark.parametrize("call,message", [
    (lambda: dinit.kaiming_uniform_(torch.empty(3, 3), mode="fan_avg"), "mode must be one of"),
    (lambda: dinit.kaiming_normal_(torch.empty(3, 3), nonlinearity="gelu"), "nonlinearity must be one of"),
    (lambda: dinit.kaiming_normal_(torch.empty(3, 3), a="x"), "a must be a number"),
    (lambda: dinit.xavier_normal_(torch.empty(3, 3), generator=0), "generator"),
    (lambda: dinit.orthogonal_([[1.0, 2.0]]), "tensor must be a torch.Tensor"),
    (lambda: dinit.init_model("model"), "model must be a torch.nn.Module"),
    (lambda: dinit.init_model(nn.Linear(2, 2), bias=float("nan")), "bias"),
    (lambda: dinit.init_model(nn.Linear(2, 2), "xavier_uniform", nonlinearity="relu"), "takes gain"),
])
def test_every_argument_is_checked_before_any_weight_changes(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_bad_option_leaves_the_model_untouched():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(ValueError, match="gain"):
        dinit.init_model(net, "xavier_uniform", gain=-1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
