"""Gradient noise: per-example gradients, tr Σ / B · (N − B)/(N − 1) by Monte Carlo, the critical batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from descentlab.training import GradientNoise, batch_gradient_variance, gradient_noise, per_example_gradients
from descentlab.training._problems import batches, digits, mlp

CE = nn.functional.cross_entropy


@pytest.fixture(scope="module")
def trained():
    x, y, _, _ = digits(512)
    model = mlp([64, 32, 10], seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for inputs, targets in batches(x, y, 32, seed=0, epochs=2):
        opt.zero_grad()
        CE(model(inputs), targets).backward()
        opt.step()
    return model, x, y


def test_monte_carlo_batch_variance_matches_the_formula_within_10_percent(trained):
    model, x, y = trained
    noise = gradient_noise(model, CE, x, y)
    sizes = [4, 8, 16, 32, 64, 128, 256]
    measured = batch_gradient_variance(
        model, CE, x, y, sizes, draws=300, generator=torch.Generator().manual_seed(0)
    )
    for b in sizes:
        assert measured[b] == pytest.approx(noise.batch_variance(b), rel=0.10), b
    # the finite-population factor matters at B = N/2: without it the prediction is 2x off
    assert abs(measured[256] / (noise.trace_cov / 256) - 1) > 0.3


def test_per_example_gradients_equal_single_example_backward(trained):
    model, x, y = trained
    rows = per_example_gradients(model, CE, x[:5], y[:5])
    for i in range(5):
        model.zero_grad()
        CE(model(x[i : i + 1]), y[i : i + 1]).backward()
        expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        torch.testing.assert_close(rows[i], expected, rtol=1e-5, atol=1e-7)
    model.zero_grad()
    CE(model(x[:5]), y[:5]).backward()  # the batch gradient is their mean
    torch.testing.assert_close(
        rows.mean(0), torch.cat([p.grad.reshape(-1) for p in model.parameters()]), rtol=1e-5, atol=1e-7
    )
    torch.testing.assert_close(per_example_gradients(model, CE, x[:5], y[:5], chunk_size=2), rows)


def test_trace_norm_and_critical_batch_from_the_definitions(trained):
    model, x, y = trained
    noise = gradient_noise(model, CE, x[:64], y[:64])
    g = per_example_gradients(model, CE, x[:64], y[:64]).double()
    mean = g.mean(0)
    cov = (g - mean).T @ (g - mean) / 64
    assert noise.trace_cov == pytest.approx(float(torch.trace(cov)), rel=1e-9)
    assert noise.grad_norm_sq == pytest.approx(float(mean @ mean), rel=1e-9)
    assert noise.critical_batch == pytest.approx(noise.trace_cov / noise.grad_norm_sq)
    assert noise.batch_variance(1) == pytest.approx(noise.trace_cov)
    assert noise.batch_variance(64) == 0.0


def test_frozen_parameters_and_buffers_are_held_fixed():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 2)).eval()
    model[0].weight.requires_grad_(False)
    x, y = torch.randn(10, 4), torch.randint(0, 2, (10,))
    rows = per_example_gradients(model, CE, x, y)
    assert rows.shape == (10, sum(p.numel() for p in model.parameters() if p.requires_grad))


def test_bad_arguments(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="at least 2 examples"):
        gradient_noise(model, CE, x[:1], y[:1])
    with pytest.raises(ValueError, match="one row per example"):
        gradient_noise(model, CE, x[:5], y[:4])
    with pytest.raises(ValueError, match=r"batch_sizes\[\] must be an integer in \[1, 8\], got 9"):
        batch_gradient_variance(model, CE, x[:8], y[:8], [9])
    with pytest.raises(ValueError, match=r"batch_size must be an integer in \[1, 10\], got 0"):
        GradientNoise(1.0, 1.0, 1.0, 10).batch_variance(0)
