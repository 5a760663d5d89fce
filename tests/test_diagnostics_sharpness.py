"""λ_max by Lanczos, the optimizers' stability bounds, and unstable-lr in a real loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from descentlab import optim as dl
from descentlab.diagnostics import Probe, sharpness, stability_rule, watch
from descentlab.diagnostics.planted import run_case


class Quadratic(nn.Module):
    """½ xᵀAx with a fixed symmetric positive-definite A."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.register_buffer("a", a)
        self.x = nn.Parameter(
            torch.randn(a.shape[0], dtype=a.dtype, generator=torch.Generator().manual_seed(1))
        )

    def forward(self, inputs):
        return 0.5 * self.x @ self.a @ self.x


def loss_of_output(outputs, targets):
    return outputs


@pytest.fixture
def quadratic():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64, generator=g))
    a = q @ torch.diag(torch.logspace(-1, 1, 8, dtype=torch.float64)) @ q.T
    return Quadratic(a)


def test_lambda_max_matches_eigvalsh(quadratic):
    s = sharpness(quadratic, loss_of_output, None, None)
    eig = torch.linalg.eigvalsh(quadratic.a)
    assert s.lambda_max == pytest.approx(float(eig[-1]), rel=1e-6, abs=1e-6)
    assert s.lambda_min == pytest.approx(float(eig[0]), rel=1e-6, abs=1e-6)
    assert not s.covered  # no optimizer: no bound


BOUNDS = {
    "gd (torch SGD)": (lambda p, lr: torch.optim.SGD(p, lr=lr), 2.0),
    "gd (descentlab SGD)": (lambda p, lr: dl.SGD(p, lr=lr), 2.0),
    "heavy ball (torch SGD, beta 0.9)": (lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9), 2 * 1.9),
    "heavy ball (descentlab HeavyBall, beta 0.5)": (lambda p, lr: dl.HeavyBall(p, lr=lr, momentum=0.5), 3.0),
}


@pytest.mark.parametrize("name", list(BOUNDS))
@pytest.mark.parametrize("factor,fires", [(0.99, False), (1.01, True)])
def test_unstable_lr_fires_iff_above_the_bound(quadratic, name, factor, fires):
    make, bound = BOUNDS[name]
    lam = float(torch.linalg.eigvalsh(quadratic.a)[-1])
    opt = make(quadratic.parameters(), factor * bound / lam)  # η = 0.99 or 1.01 × 2/λ, 2(1+β)/λ
    with watch(quadratic, opt, every=1, curvature_every=1, probe=Probe(None, None, loss_of_output)) as m:
        opt.zero_grad()
        quadratic(None).backward()
        opt.step()
        flags = m.log(loss=0.0)
    assert ("unstable-lr" in {f.label for f in flags}) is fires
    assert m.history[0]["sharpness_bound"] == pytest.approx(bound)
    assert m.history[0]["sharpness"] == pytest.approx(factor * bound, rel=1e-6)


# The bounds are the real optimizers' stability limits: iterate each on f(w) = ½λw² just below and
# just above its bound and watch |w| shrink or grow.
ITERATED = {
    "gd": (lambda p, lr: torch.optim.SGD(p, lr=lr), lambda: 2.0),
    "momentum 0.9": (lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9), lambda: 3.8),
    "momentum 0.9, dampening 0.5": (
        lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, dampening=0.5),
        lambda: 3.8 / 0.5,
    ),
    "nesterov 0.9": (lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True), lambda: 3.8 / 2.8),
    "descentlab nesterov 0.5": (lambda p, lr: dl.SGD(p, lr=lr, momentum=0.5, nesterov=True), lambda: 3 / 2),
    "descentlab heavy ball 0.9": (lambda p, lr: dl.HeavyBall(p, lr=lr, momentum=0.9), lambda: 3.8),
}


@pytest.mark.parametrize("name", list(ITERATED))
def test_bounds_are_the_optimizers_stability_limits(name):
    make, bound_of = ITERATED[name]
    lam = 3.0
    for factor, grows in ((0.95, False), (1.05, True)):
        w = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
        opt = make([w], factor * bound_of() / lam)
        rule, _ = stability_rule(opt)
        # the rule predicts instability exactly when S·λ > bound: here S·λ/bound = factor
        assert rule.scales[id(w)] * lam / rule.bound == pytest.approx(factor)
        for _ in range(400):
            opt.zero_grad()
            (0.5 * lam * w**2).sum().backward()
            opt.step()
        assert (abs(float(w.detach())) > 1.0) is grows, (name, factor, float(w.detach()))


def test_adam_preconditioned_sharpness_against_dense():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    loss_fn = nn.functional.mse_loss
    for opt in (
        torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.99)),
        dl.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.99)),
    ):
        for _ in range(3):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        s = sharpness(model, loss_fn, x, y, opt, num_steps=100)
        # by hand: S = η(1 − β₁)/(√v̂ + ε), effective = λ_max(S^½ H S^½), bound 2(1 + β₁)
        params = list(model.parameters())
        scale = torch.cat(
            [
                (
                    1e-2
                    * 0.2
                    / ((opt.state[p]["exp_avg_sq"] / (1 - 0.99 ** float(opt.state[p]["step"]))).sqrt() + 1e-8)
                ).reshape(-1)
                for p in params
            ]
        )
        from descentlab.curvature import flat_loss, hessian

        f, x0 = flat_loss(model, loss_fn, x, y)
        h = hessian(f, x0)
        root = scale.sqrt()
        expected = torch.linalg.eigvalsh(root[:, None] * h * root[None, :])[-1]
        assert s.preconditioned and s.bound == pytest.approx(2 * 1.8)
        assert s.effective == pytest.approx(float(expected), rel=1e-6)
        assert s.lambda_max == pytest.approx(float(torch.linalg.eigvalsh(h)[-1]), rel=1e-6)


def test_uncovered_optimizer_says_so(quadratic):
    opt = torch.optim.Adagrad(quadratic.parameters(), lr=0.1)
    s = sharpness(quadratic, loss_of_output, None, None, opt)
    assert not s.covered and "no stability rule for Adagrad" in s.note and s.flags() == []
    fresh = torch.optim.Adam(quadratic.parameters())
    assert "before its first step" in sharpness(quadratic, loss_of_output, None, None, fresh).note


def test_sharpness_at_a_diverged_point_is_nan(quadratic):
    with torch.no_grad():
        quadratic.x.fill_(float("inf"))
    s = sharpness(quadratic, loss_of_output, None, None, torch.optim.SGD(quadratic.parameters(), lr=1.0))
    assert s.lambda_max != s.lambda_max and "not finite" in s.note and s.flags() == []


def test_hundred_times_the_best_lr_is_flagged_before_it_diverges():
    monitor, m = run_case("unstable-lr", steps=30)
    flagged = [f.step for f in monitor.flags if f.label == "unstable-lr"]
    assert flagged, "unstable-lr was not raised"
    assert flagged[0] <= m["first_rise_step"]  # at or before the first rise of the loss
    assert m["nonfinite_step"] is not None and m["nonfinite_step"] - flagged[0] >= 5
    assert m["sharpness_first"] > 10 * m["sharpness_bound"] / 3  # measured 48.6 against 3.8


def test_best_lr_is_not_flagged():
    monitor, m = run_case("healthy", steps=40)
    assert monitor.flags == []
    assert m["sharpness_max"] < m["sharpness_bound"] / 5  # measured 0.68 against 3.8
