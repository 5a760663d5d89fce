"""Planted pathologies get their label, healthy controls get none (load_digits MLPs, notes 002/000/003)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from descentlab.diagnostics import (
    LABELS,
    Probe,
    Thresholds,
    activation_stats,
    classify_plateau,
    diagnose,
    gradient_flow,
    trivial_loss,
    update_ratios,
)
from descentlab.diagnostics.labels import ADVICE, overfitting_label
from descentlab.diagnostics.planted import digits, mlp

CE = nn.functional.cross_entropy


@pytest.fixture(scope="module")
def batch():
    return digits(256)


def flow(model, x, y):
    return gradient_flow(model, CE(model(x), y))


def labels(flags):
    return {f.label for f in flags}


# -- vanishing and exploding gradients ---------------------------------------------------------------
def test_deep_sigmoid_vanishes(batch):
    f = flow(mlp(20, "sigmoid"), *batch)
    assert f.ratio < 1e-14  # measured 3.9e-16: each sigmoid layer multiplies the gradient by ≤ 1/4
    assert labels(f.flags()) == {"vanishing"}


def test_deep_tanh_with_large_weights_explodes(batch):
    f = flow(mlp(20, "tanh", init=("normal", 4.0)), *batch)
    assert f.ratio > 1e3  # measured 2.2e3
    assert labels(f.flags()) == {"exploding"}


def test_nan_gradient_is_exploding(batch):
    model = mlp(3, "tanh")
    x, y = batch
    CE(model(x), y).backward()
    model[2].weight.grad[0, 0] = math.nan
    f = gradient_flow(model)  # from .grad
    assert not f.finite
    (flag,) = f.flags()
    assert flag.label == "exploding" and flag.layer == "2"


@pytest.mark.parametrize("activation,init", [("tanh", "xavier"), ("relu", "kaiming")])
def test_well_initialised_deep_nets_are_healthy(batch, activation, init):
    f = flow(mlp(20, activation, init=init), *batch)
    assert 1e-2 < f.ratio < 10  # measured 1.8 (tanh + Xavier), 0.30 (ReLU + Kaiming)
    assert f.flags() == []


def test_gradient_flow_leaves_grad_alone(batch):
    model = mlp(3, "tanh")
    gradient_flow(model, CE(model(batch[0]), batch[1]))
    assert all(p.grad is None for p in model.parameters())


# -- saturation and dead units -----------------------------------------------------------------------
def test_large_sigmoid_weights_saturate(batch):
    stats = activation_stats(mlp(4, "sigmoid", init=("normal", 8.0)), batch[0])
    assert min(stats.saturated) > 0.25  # measured 0.30-0.44 per layer
    assert labels(stats.flags()) == {"saturated"}
    assert {f.layer for f in stats.flags()} == {"1", "3", "5"}


def test_relu_with_bias_minus_ten_is_dead_everywhere(batch):
    model = mlp(4, "relu", bias=-10.0)
    stats = activation_stats(model, batch[0])
    assert stats.dead == [1.0, 1.0, 1.0]
    assert [f.layer for f in stats.flags()] == ["1", "3", "5"] and labels(stats.flags()) == {"dead-relu"}
    f = flow(model, *batch)
    assert f.norms[:-1] == [0.0, 0.0, 0.0]  # every hidden gradient exactly zero
    assert f.norms[-1] > 0  # only the output bias learns


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_default_init_activations_are_healthy(batch, activation):
    stats = activation_stats(mlp(4, activation), batch[0])
    assert stats.flags() == []
    values = stats.dead if activation == "relu" else stats.saturated
    assert max(values) < 0.1  # measured ≤ 0.0625 (dead, default ReLU) and ≤ 0.0015 (saturated)


def test_activation_stats_leave_batchnorm_buffers(batch):
    model = nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    before = model[1].running_mean.clone()
    activation_stats(model, batch[0])
    assert torch.equal(model[1].running_mean, before)
    assert not any(m._forward_hooks for m in model.modules())


# -- update ratios -----------------------------------------------------------------------------------
def test_update_ratios_by_hand():
    model = mlp(2, "tanh")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        model[0].weight.mul_(1.5)
        model[2].bias.add_(1e-7)
    r = update_ratios(before, model)
    w0, b0 = before["0.weight"].numpy(), before["0.bias"].numpy()
    expected0 = np.linalg.norm(0.5 * w0) / math.sqrt((w0**2).sum() + (b0**2).sum())
    assert r.layers == ["0", "2"]
    assert r.ratios[0] == pytest.approx(expected0, rel=1e-6)
    assert [(f.label, f.layer) for f in r.flags()] == [("update-ratio-high", "0"), ("update-ratio-low", "2")]


# -- plateaus, saddles, convergence ------------------------------------------------------------------
def _train(model, x, y, lr, steps, momentum=0.0):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = CE(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.fixture(scope="module")
def probe512():
    x, y = digits(512)
    return x, y, Probe(x, y, CE)


def test_tiny_weights_sit_on_a_saddle(probe512):
    x, y, probe = probe512
    model = mlp(3, "tanh", scale=1e-3)
    losses = _train(model, x, y, lr=0.1, steps=20)
    counts = torch.bincount(y, minlength=10).double() / len(y)
    prior_entropy = float(-(counts * counts.log()).sum())
    assert trivial_loss(CE, model(x), y) == pytest.approx(prior_entropy, rel=1e-6)
    assert losses[-1] == pytest.approx(prior_entropy, rel=1e-3)  # the loss equals the class-prior entropy
    result = classify_plateau(losses, model=model, probe=probe)
    assert result.label == "plateau:saddle"
    assert result.evidence["lambda_min"] < 0 < result.evidence["lambda_max"]
    assert result.flag.advice == ADVICE["plateau:saddle"]


class Saddle(nn.Module):
    """f(x, y) = x² − y², at the origin."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def forward(self, inputs):
        return self.w[0] ** 2 - self.w[1] ** 2


def test_x2_minus_y2_at_the_origin_is_a_saddle():
    model = Saddle()
    result = classify_plateau([0.0] * 20, model=model, probe=Probe(None, None, lambda out, t: out))
    assert result.label == "plateau:saddle"
    assert result.evidence["lambda_min"] == pytest.approx(-2.0)
    assert result.evidence["lambda_max"] == pytest.approx(2.0)
    with torch.no_grad():  # the same function at a minimum of its x direction only: not flat-and-tiny
        model.w.fill_(1.0)
    assert (
        classify_plateau([0.0] * 20, model=model, probe=Probe(None, None, lambda o, t: o)).label == "plateau"
    )


def test_trained_net_is_converged_not_saddle(probe512):
    x, y, probe = probe512
    model = mlp(3, "tanh")
    losses = _train(model, x, y, lr=0.3, steps=300, momentum=0.9)
    result = classify_plateau(losses, model=model, probe=probe)
    assert result.label == "converged"
    assert result.evidence["lambda_min"] < 0  # a trained net has slightly negative directions too ...
    assert result.evidence["trivial_gap"] > 0.9  # ... but sits far below the trivial predictor's loss


def test_tiny_learning_rate_plateau(probe512):
    x, y, probe = probe512
    model = mlp(3, "tanh")
    losses = _train(model, x, y, lr=1e-4, steps=20)
    assert classify_plateau(losses, model=model, probe=probe, lr=1e-4).label == "plateau:lr-too-small"
    assert classify_plateau(losses, model=model, probe=probe).label == "plateau"  # no lr: cannot tell


def test_saturated_plateau(probe512):
    x, y, probe = probe512
    model = mlp(4, "sigmoid", init=("normal", 8.0))
    losses = _train(model, x, y, lr=1e-4, steps=20)
    assert classify_plateau(losses, model=model, probe=probe).label == "plateau:saturation"


def test_falling_loss_is_no_plateau(probe512):
    x, y, probe = probe512
    model = mlp(3, "tanh")
    losses = _train(model, x, y, lr=0.3, steps=20, momentum=0.9)
    assert classify_plateau(losses, model=model, probe=probe).label is None


# -- overfitting -------------------------------------------------------------------------------------
def test_overfitting_when_val_rises_and_train_falls():
    t = Thresholds()
    train = [(s, 1.0 / (1 + s)) for s in range(100)]
    val = [(s, 0.5 + 0.001 * (s - 40) ** 2 / 40) for s in range(0, 100, 10)]  # best at step 40
    flags = overfitting_label(val, train, 90, t)
    assert [f.label for f in flags] == ["overfitting"] and flags[0].value > t.overfitting_rise
    falling = [(s, 1.0 / (1 + s)) for s in range(0, 100, 10)]
    assert overfitting_label(falling, train, 90, t) == []
    both_rise = [(s, 1.0 + s / 100) for s in range(100)]  # val and train rising: not overfitting
    assert overfitting_label(val, both_rise, 90, t) == []


# -- diagnose and thresholds -------------------------------------------------------------------------
def test_diagnose_one_batch(batch):
    x, y = batch
    model = mlp(20, "sigmoid")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    d = diagnose(model, CE, x, y, opt)
    assert d.labels == ["vanishing"] and not d.healthy
    assert "vanishing" in str(d) and "notes 002" in str(d)
    assert d.to_dict()["flags"][0]["label"] == "vanishing"
    assert diagnose(mlp(3, "tanh"), CE, x, y, opt).healthy


def test_every_label_has_advice_citing_the_notes():
    assert set(ADVICE) == set(LABELS)
    assert all("notes 00" in text for text in ADVICE.values())


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"dead_fraction": 1.5}, r"dead_fraction must be in \[0, 1\), got 1.5"),
        ({"vanishing_ratio": -1.0}, r"vanishing_ratio must be in \(0, inf\], got -1.0"),
        ({"vanishing_ratio": 1e3}, r"vanishing_ratio must be below exploding_ratio \(100\), got 1000"),
        ({"plateau_window": 2}, r"plateau_window must be an integer in \[4, inf\], got 2"),
        ({"update_ratio_low": 1.0}, r"update_ratio_low must be in \[0, 0.3\), got 1.0"),
    ],
)
def test_bad_thresholds(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Thresholds(**kwargs)
