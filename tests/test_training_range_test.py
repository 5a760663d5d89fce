"""The learning-rate range test: suggestions against a grid, bit-for-bit restore, rules, bad input."""

from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

import descentlab.optim as dl
from descentlab.training import DEFAULT_RULE, RULES, lr_range_test
from descentlab.training._problems import batches, digits, mlp
from descentlab.training.range_test import RangeRun, RangeTest, _suggest

CE = nn.functional.cross_entropy
OPTIMIZERS = {
    "torch SGD+momentum": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
    "torch Adam": lambda p, lr: torch.optim.Adam(p, lr=lr),
    "descentlab SGD+momentum": lambda p, lr: dl.SGD(p, lr=lr, momentum=0.9),
    "descentlab Adam": lambda p, lr: dl.Adam(p, lr=lr),
}
# quarter-decade grids wide enough that the best rate is inside (checked below)
GRIDS = {"SGD": (-2.0, 0.5), "Adam": (-3.0, -0.5)}


@pytest.fixture(scope="module")
def data():
    x, y, _, _ = digits()
    return x, y


def _final_train_loss(x, y, make_opt, lr, seed, steps=150):
    model = mlp([64, 64, 10], seed=seed)
    opt = make_opt(model.parameters(), lr)
    for inputs, targets in batches(x, y, 64, seed=seed, epochs=10)[:steps]:
        opt.zero_grad()
        CE(model(inputs), targets).backward()
        opt.step()
    with torch.no_grad():
        value = float(CE(model(x), y))
    return value if math.isfinite(value) else math.inf


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_the_default_suggestion_is_within_3x_of_the_grid_best_rate_on_digits(data, name):
    x, y = data
    make_opt = OPTIMIZERS[name]
    low, high = GRIDS["Adam" if "Adam" in name else "SGD"]
    grid = [10 ** (low + 0.25 * i) for i in range(int(round((high - low) / 0.25)) + 1)]
    seeds = (0, 1, 2)
    mean_loss = [sum(_final_train_loss(x, y, make_opt, lr, s) for s in seeds) / 3 for lr in grid]
    best_index = min(range(len(grid)), key=mean_loss.__getitem__)
    assert 0 < best_index < len(grid) - 1, "the grid must bracket the best rate"
    best = grid[best_index]
    suggestions = []
    for seed in seeds:
        model = mlp([64, 64, 10], seed=seed)
        result = lr_range_test(
            model, make_opt(model.parameters(), 1e-3), CE, batches(x, y, 64, seed=seed, epochs=10)
        )
        suggestions.append(result.suggest())
    suggested = math.exp(sum(map(math.log, suggestions)) / 3)
    assert 1 / 3 <= suggested / best <= 3, f"{DEFAULT_RULE}: suggested {suggested:.3g}, grid best {best:.3g}"


# -- restore -------------------------------------------------------------------------------------
def _model_with_buffers(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))


def _warm(model, opt, x, y, steps=3):
    for i in range(steps):
        opt.zero_grad()
        CE(model(x[i * 32 : (i + 1) * 32]), y[i * 32 : (i + 1) * 32]).backward()
        opt.step()


def _everything(model, opt):
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "opt": copy.deepcopy(opt.state_dict()),  # state_dict() shares the live state tensors
        "groups": [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state()[1].copy(),  # noqa: NPY002 - the legacy global RNG
        "python_rng": random.getstate(),
        "training": model.training,
    }


def _assert_bitwise_equal(before, after):
    assert before["state"].keys() == after["state"].keys()
    for k in before["state"]:
        assert torch.equal(before["state"][k], after["state"][k]), k
    for a, b in zip(before["grads"], after["grads"]):
        assert (a is None and b is None) or torch.equal(a, b)
    for p_state_a, p_state_b in zip(before["opt"]["state"].values(), after["opt"]["state"].values()):
        for key in p_state_a:
            a, b = p_state_a[key], p_state_b[key]
            assert torch.equal(torch.as_tensor(a), torch.as_tensor(b)), key
    assert before["opt"]["state"].keys() == after["opt"]["state"].keys()
    assert before["groups"] == after["groups"]
    assert torch.equal(before["torch_rng"], after["torch_rng"])
    assert np.array_equal(before["numpy_rng"], after["numpy_rng"])
    assert before["python_rng"] == after["python_rng"]
    assert before["training"] == after["training"]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_restore_puts_back_parameters_buffers_optimizer_state_lr_and_rng_bit_for_bit(data, name):
    x, y = data
    model = _model_with_buffers()
    opt = OPTIMIZERS[name](model.parameters(), 0.01)
    _warm(model, opt, x, y)
    model.eval()  # a mode the test must put back
    before = _everything(model, opt)
    result = lr_range_test(model, opt, CE, batches(x, y, 32, seed=0), steps=30, start=1e-4, end=1.0, seeds=2)
    assert len(result.runs) == 2 and len(result.lrs) > 10
    _assert_bitwise_equal(before, _everything(model, opt))


@pytest.mark.parametrize("name", ["torch Adam", "descentlab Adam"])
def test_restore_also_when_the_sweep_raises(data, name):
    x, y = data
    model = _model_with_buffers()
    opt = OPTIMIZERS[name](model.parameters(), 0.01)
    _warm(model, opt, x, y)
    before = _everything(model, opt)
    calls = {"n": 0}

    def failing_loss(out, target):
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("boom in the loss")
        return CE(out, target)

    with pytest.raises(RuntimeError, match="boom"):
        lr_range_test(model, opt, failing_loss, batches(x, y, 32, seed=0), steps=20)
    _assert_bitwise_equal(before, _everything(model, opt))


@pytest.mark.parametrize("name", ["torch SGD+momentum", "descentlab Adam"])
def test_a_training_run_after_the_test_equals_one_without_it(data, name):
    x, y = data
    make_opt = OPTIMIZERS[name]

    def train(with_range_test: bool):
        torch.manual_seed(5)
        model = _model_with_buffers(1)
        opt = make_opt(model.parameters(), 0.01)
        _warm(model, opt, x, y, steps=2)
        if with_range_test:
            lr_range_test(model, opt, CE, batches(x, y, 32, seed=3), steps=25, start=1e-3, end=3.0)
        dropout = nn.Dropout(0.2)  # consumes the global RNG: the test must have restored it
        for i in range(5):
            opt.zero_grad()
            CE(model(dropout(x[i * 32 : (i + 1) * 32])), y[i * 32 : (i + 1) * 32]).backward()
            opt.step()
        return [p.detach().clone() for p in model.parameters()], opt.state_dict()

    (p1, s1), (p2, s2) = train(False), train(True)
    assert all(torch.equal(a, b) for a, b in zip(p1, p2))
    for a, b in zip(s1["state"].values(), s2["state"].values()):
        assert all(torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a)


def test_restore_false_leaves_the_sweep_state(data):
    x, y = data
    model = mlp([64, 64, 10], seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    result = lr_range_test(model, opt, CE, batches(x, y, 64, seed=0), steps=10, restore=False)
    assert not result.restored
    assert opt.param_groups[0]["lr"] == result.lrs[-1]
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


# -- the sweep -----------------------------------------------------------------------------------
def test_the_schedule_and_the_debiased_smoothing_follow_the_formulas(data):
    x, y = data
    model = mlp([64, 64, 10], seed=0)
    result = lr_range_test(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        CE,
        batches(x, y, 64, seed=0),
        start=1e-5,
        end=1e-2,
        steps=12,
        smooth=0.9,
    )
    expected = [1e-5 * 1000 ** (i / 11) for i in range(12)]
    assert result.lrs == pytest.approx(expected, rel=1e-12)
    average = 0.0
    for i, loss in enumerate(result.losses):
        average = 0.9 * average + 0.1 * loss
        assert result.smoothed[i] == pytest.approx(average / (1 - 0.9 ** (i + 1)), rel=1e-12)
    assert result.runs[0].stopped_by == "end"
    linear = lr_range_test(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        CE,
        batches(x, y, 64, seed=0),
        start=0.01,
        end=0.1,
        steps=4,
        mode="linear",
    )
    assert linear.lrs == pytest.approx([0.01, 0.04, 0.07, 0.1])


def test_the_sweep_stops_at_divergence_and_at_a_non_finite_loss(data):
    x, y = data
    model = mlp([64, 64, 10], seed=0)
    result = lr_range_test(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        CE,
        batches(x, y, 64, seed=0),
        start=1e-3,
        end=1e4,
        steps=60,
    )
    run = result.runs[0]
    assert run.stopped_by in ("diverged", "nonfinite") and len(run.lrs) < 60
    if run.stopped_by == "diverged":
        assert run.smoothed[-1] > 4.0 * min(run.smoothed[:-1])

    def nan_after_5(out, target, calls=[0]):  # noqa: B006 - a counter
        calls[0] += 1
        return CE(out, target) * (math.nan if calls[0] > 5 else 1.0)

    result = lr_range_test(
        model, torch.optim.SGD(model.parameters(), lr=0.1), nan_after_5, batches(x, y, 64, seed=0), steps=20
    )
    assert result.runs[0].stopped_by == "nonfinite" and len(result.lrs) == 6


def test_the_curvature_line_is_two_over_the_top_hessian_eigenvalue(data):
    x, y = data
    model = mlp([64, 8, 10], seed=0)
    probe = (x[:64], y[:64])
    result = lr_range_test(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        CE,
        batches(x, y, 64, seed=0),
        steps=10,
        probe=probe,
    )
    from descentlab.curvature import flat_loss, hessian

    f, x0 = flat_loss(model, CE, *probe)
    top = float(torch.linalg.eigvalsh(hessian(f, x0)).max())
    assert result.lambda_max == pytest.approx(top, rel=1e-3)
    assert result.curvature_lr == pytest.approx(2 / top, rel=1e-3)


# -- the rules on hand-made curves ---------------------------------------------------------------
def _curve(n=100):
    x = np.linspace(-7, 1, n)  # log10 lr
    s = 2.0 - 1.0 / (1 + np.exp(-(x + 2) * 3)) + np.where(x > 0, 5 * x**2, 0.0)  # drop centred at 1e-2
    return 10**x, s


def test_the_rules_on_a_hand_made_curve():
    lrs, s = _curve()
    minimum = lrs[int(np.argmin(s))]
    assert _suggest(lrs, s, "minimum/10") == pytest.approx(minimum / 10)
    steepest = _suggest(lrs, s, "steepest")
    assert abs(math.log10(steepest) - (-2)) <= 0.1  # the sigmoid is steepest at its centre
    assert _suggest(lrs, s, "combined") == pytest.approx(math.sqrt(steepest * minimum / 10))
    valley = _suggest(lrs, s, "valley")  # the whole curve decreases up to the minimum: halfway along it
    burn_in = len(lrs) // 10
    assert valley == lrs[burn_in + (int(np.argmin(s)) - burn_in) // 2]


def test_steepest_is_not_fooled_by_a_wiggle():
    lrs, s = _curve()
    wiggly = s.copy()
    wiggly[30] -= 0.2  # one noisy batch on the plateau: a two-point slope picks it
    pointwise = np.gradient(wiggly, np.log10(lrs))
    assert abs(math.log10(lrs[int(np.argmin(pointwise[10:]) + 10)]) - math.log10(lrs[30])) < 0.2
    assert abs(math.log10(_suggest(lrs, wiggly, "steepest")) - (-2)) <= 0.1


def test_several_seeds_give_a_band_and_the_geometric_mean():
    lrs, s = _curve()
    runs = [RangeRun(list(lrs * f), list(s), list(s), "end") for f in (1.0, 4.0)]  # the same curve, shifted
    result = RangeTest(runs, "exp", 0.98, 4.0)
    low, high = result.band("minimum/10")
    assert high == pytest.approx(4 * low)
    assert result.suggest("minimum/10") == pytest.approx(2 * low)  # √(low · 4 low)
    assert set(result.suggestions()) == set(RULES)


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(start=0.0), r"start must be in \(0, inf\], got 0"),
        (dict(start=1.0, end=0.5), r"end must be in \(1, inf\], got 0.5"),
        (dict(steps=2), r"steps must be an integer in \[3, inf\], got 2"),
        (dict(mode="log"), r"mode must be one of \('exp', 'linear'\), got 'log'"),
        (dict(smooth=1.0), r"smooth must be in \[0, 1\), got 1"),
        (dict(diverge=1.0), r"diverge must be in \(1, inf\], got 1"),
        (dict(seeds=0), r"seeds must be an integer in \[1, inf\], got 0"),
        (dict(restore="yes"), r"restore must be True or False, got 'yes'"),
    ],
)
def test_bad_arguments_raise_before_any_work(kwargs, pattern):
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=pattern):
        lr_range_test(model, opt, CE, [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))], **kwargs)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_bad_rule_names_the_allowed_rules():
    lrs, s = _curve()
    result = RangeTest([RangeRun(list(lrs), list(s), list(s), "end")], "exp", 0.98, 4.0)
    with pytest.raises(
        ValueError, match=r"rule must be one of \('valley', 'minimum/10', 'steepest', 'combined'\)"
    ):
        result.suggest("best")
