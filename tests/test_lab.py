"""Races against NumPy transcriptions of the update rules and torch.optim."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from descentlab import landscapes as L
from descentlab.lab import optimizer_registry, race
from descentlab.optim import SGD, Adam, from_chain
from descentlab.specs import SpecError
from descentlab.transforms import Momentum, ScaleByLearningRate, chain


def grad_strongly_convex(w):
    x, y = w
    return np.array([2 * (x - 1) + y, 8 * (y - 0.5) + x])


def numpy_gd(grad, start, lr, steps):
    path = [np.asarray(start, float)]
    for k in range(steps):
        rate = lr(k) if callable(lr) else lr
        path.append(path[-1] - rate * grad(path[-1]))
    return np.array(path)


def test_gradient_descent_follows_the_update_rule():
    result = race("strongly-convex", ["sgd(lr=0.1)"], steps=40)
    expected = numpy_gd(grad_strongly_convex, L.strongly_convex().start, 0.1, 40)
    np.testing.assert_allclose(result.runs[0].trajectory, expected, rtol=1e-12, atol=1e-12)
    f = L.strongly_convex()
    np.testing.assert_allclose(result.runs[0].loss, f(torch.from_numpy(expected)).numpy(), rtol=1e-12)
    norms = np.linalg.norm([grad_strongly_convex(w) for w in expected], axis=1)
    np.testing.assert_allclose(result.runs[0].grad_norm, norms, rtol=1e-10)


def test_momentum_follows_the_notes_velocity_form():
    """u_k = α u_{k−1} − η g_k, w_{k+1} = w_k + u_k (notes 001) equals torch's SGD momentum."""
    result = race("strongly-convex", ["sgd(lr=0.05, momentum=0.9)"], steps=60)
    w, u = np.array(L.strongly_convex().start), np.zeros(2)
    path = [w]
    for _ in range(60):
        u = 0.9 * u - 0.05 * grad_strongly_convex(w)
        w = w + u
        path.append(w)
    np.testing.assert_allclose(result.runs[0].trajectory, np.array(path), rtol=1e-10, atol=1e-12)


def test_spec_object_builder_and_torch_optimizer_agree():
    start = torch.zeros(2, dtype=torch.float64)
    result = race("two-minima", {
        "spec": "adam(lr=0.05)",
        "object": Adam([start.clone().requires_grad_()], lr=0.05),
        "builder": lambda params: Adam(params, lr=0.05),
        "torch": lambda params: torch.optim.Adam(params, lr=0.05),
    }, steps=80)
    reference = result["torch"].trajectory
    for label in ("spec", "object", "builder"):
        np.testing.assert_allclose(result[label].trajectory, reference, rtol=1e-10, atol=1e-12)


def test_a_chain_optimizer_object_races_and_a_used_one_is_refused():
    param = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    heavy = from_chain([param], chain(Momentum(), ScaleByLearningRate()), lr=0.05, momentum=0.9)
    first = race("two-minima", [("chain", heavy)], steps=30)
    spec = race("two-minima", ["sgd(lr=0.05, momentum=0.9)"], steps=30)
    np.testing.assert_allclose(first.runs[0].trajectory, spec.runs[0].trajectory, rtol=1e-10)
    with pytest.raises(ValueError, match="already taken steps"):
        race("two-minima", [("chain", heavy)], steps=30)


def test_closure_based_solvers_race_too():
    result = race("rosenbrock", [("lbfgs", lambda p: torch.optim.LBFGS(p, line_search_fn="strong_wolfe"))],
                  steps=20)
    run = result.runs[0]
    assert run.converged_at is not None and run.minimum == 0
    np.testing.assert_allclose(run.final_point, [1.0, 1.0], atol=1e-4)


def test_second_order_solvers_are_in_the_registry_when_installed():
    try:
        from descentlab import second_order
    except ImportError:
        pytest.skip("descentlab.second_order is not installed")
    registry = optimizer_registry()
    for name in second_order.__all__:
        obj = getattr(second_order, name)
        if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer):
            assert registry[name.lower()] is obj


def test_convergence_step_matches_the_definition():
    result = race("strongly-convex", ["sgd(lr=0.1)"], steps=100, xtol=1e-4, ftol=0)
    path = numpy_gd(grad_strongly_convex, L.strongly_convex().start, 0.1, 100)
    distance = np.linalg.norm(path - np.array(L.strongly_convex().minima[0]), axis=1)
    inside = distance <= 1e-4
    expected = int(np.flatnonzero(~inside)[-1]) + 1
    assert result.runs[0].converged_at == expected
    assert result.runs[0].minimum == 0


def test_which_minimum_is_reached_on_two_minima():
    racers = [("gd", "sgd(lr=0.05)"), ("momentum", "sgd(lr=0.05, momentum=0.9)")]
    result = race("two-minima", racers, steps=300)
    minima = np.array(L.two_minima().minima)
    for run in result.runs:
        nearest = int(np.linalg.norm(minima - run.final_point, axis=1).argmin())
        assert run.minimum == nearest
    assert result["gd"].minimum == 1  # plain GD stops in the shallow well (notes 001's point)


def test_divergence_is_a_row_not_a_crash():
    landscape = L.strongly_convex()
    result = race(landscape, [("too big", "sgd(lr=1.0)"), ("fine", "sgd(lr=0.1)")], steps=200)
    # with lr = 1 the iteration matrix I − H has spectral radius > 1: NumPy finds when it escapes
    with np.errstate(over="ignore", invalid="ignore"):
        path = numpy_gd(grad_strongly_convex, landscape.start, 1.0, 200)
        far = np.linalg.norm(path - np.array(landscape.center), axis=1) > 10 * landscape.diagonal
    expected = int(np.flatnonzero(far)[0])
    run = result["too big"]
    assert run.diverged_at == expected
    assert run.converged_at is None
    row = result.rows()[0]
    assert row["diverged"] == f"diverged at step {expected}"
    assert result["fine"].diverged_at is None


def test_non_finite_loss_counts_as_divergence():
    def explode(params):
        return torch.optim.SGD(params, lr=float("inf"))

    result = race("strongly-convex", [("inf", explode)], steps=5)
    assert result.runs[0].diverged_at == 1


def test_same_noise_for_every_optimizer_and_reproducible():
    result = race("saddle", [("a", "sgd(lr=0.05)"), ("b", "sgd(lr=0.05)")], steps=50, noise=0.3, seed=4)
    np.testing.assert_array_equal(result["a"].trajectory, result["b"].trajectory)
    again = race("saddle", ["sgd(lr=0.05)"], steps=50, noise=0.3, seed=4)
    np.testing.assert_array_equal(again.runs[0].trajectory, result["a"].trajectory)
    other = race("saddle", ["sgd(lr=0.05)"], steps=50, noise=0.3, seed=5)
    assert not np.allclose(other.runs[0].trajectory, result["a"].trajectory)


def test_noisy_gradient_descent_is_gd_plus_the_seeded_noise():
    start = (0.5, 0.5)
    result = race("saddle", ["sgd(lr=0.1)"], start=start, steps=20, noise=0.2, seed=9)
    generator = torch.Generator().manual_seed(9)
    w = np.array(start)
    for k in range(20):
        xi = 0.2 * torch.randn(2, generator=generator, dtype=torch.float64).numpy()
        w = w - 0.1 * (np.array([w[0] ** 3 - w[0], 2 * w[1]]) + xi)
        np.testing.assert_allclose(result.runs[0].trajectory[k + 1], w, rtol=1e-12)


def test_full_batch_is_gradient_descent_and_online_uses_one_example():
    full = L.least_squares()
    x, y = (t.numpy() for t in full.data)

    def grad(w, idx=slice(None)):
        residual = w[0] * x[idx] + w[1] - y[idx]
        return np.array([np.mean(residual * x[idx]), np.mean(residual)])

    result = race(full, ["sgd(lr=0.1)"], steps=30)
    np.testing.assert_allclose(result.runs[0].trajectory, numpy_gd(grad, full.start, 0.1, 30), rtol=1e-10)

    online = L.least_squares(batch_size=1)
    result = race(online, ["sgd(lr=0.1)"], steps=10, seed=2)
    order = torch.randperm(64, generator=torch.Generator().manual_seed(2)).numpy()
    w = np.array(online.start)
    for k in range(10):
        w = w - 0.1 * grad(w, [order[k]])
        np.testing.assert_allclose(result.runs[0].trajectory[k + 1], w, rtol=1e-10)


def test_schedule_sets_the_learning_rate_of_each_step():
    def schedule(t):
        return 0.2 / (1 + t)

    result = race("strongly-convex", ["sgd(lr=1.0)"], steps=25, schedule=schedule)
    expected = numpy_gd(grad_strongly_convex, L.strongly_convex().start, schedule, 25)
    np.testing.assert_allclose(result.runs[0].trajectory, expected, rtol=1e-12)


def test_record_reads_the_optimizer_state():
    result = race("strongly-convex", ["adagrad(lr=0.1)"], steps=10,
                  record=lambda opt, p: float(opt.state[p]["sum"].sum()))
    path = result.runs[0].trajectory
    gradients = np.array([grad_strongly_convex(w) for w in path[:-1]])
    np.testing.assert_allclose(result.runs[0].recorded, np.cumsum((gradients**2).sum(1)), rtol=1e-10)


def test_torch_names_and_case_insensitive_specs():
    result = race("strongly-convex", ["TORCH.SGD(lr=0.1)", "Sgd(lr=0.1)"], steps=10)
    np.testing.assert_allclose(result.runs[0].trajectory, result.runs[1].trajectory, rtol=1e-12)
    assert result.runs[0].label == "torch.SGD(lr=0.1)"


@pytest.mark.parametrize("kwargs,message", [
    ({"start": (5.0, 5.0)}, "outside the domain"),
    ({"start": (0.0, 0.0, 0.0)}, "start must have 2"),
    ({"steps": 0}, "steps must be a positive integer"),
    ({"optimizers": ["adma(lr=0.1)"]}, "did you mean"),
    ({"optimizers": ["adam(lr=-1)"]}, "lr"),
    ({"optimizers": []}, "at least one"),
    ({"noise": -1.0}, "sigma"),
])
def test_bad_input_raises_value_error(kwargs, message):
    arguments = {"optimizers": ["sgd(lr=0.1)"], **kwargs}
    with pytest.raises(ValueError, match=message):
        race("two-minima", **arguments)


def test_spec_errors_are_value_errors():
    assert issubclass(SpecError, ValueError)
    with pytest.raises(ValueError, match="optimizer: an optimizer object must hold exactly one"):
        race("two-minima", [SGD([torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)])])


class _FailingSGD(torch.optim.SGD):
    """SGD whose third step raises ``error``."""

    def __init__(self, params, error):
        super().__init__(params, lr=0.1)
        self.error, self.calls = error, 0

    def step(self, closure=None):
        self.calls += 1
        if self.calls == 3:
            raise self.error
        return super().step(closure)


def test_a_non_finite_error_is_a_divergence():
    from descentlab.validation import NonFiniteError

    result = race("strongly-convex", [("nan", lambda p: _FailingSGD(p, NonFiniteError("grad is nan")))],
                  steps=10)
    run = result["nan"]
    assert run.diverged_at == 3 and run.error == "grad is nan"
    assert len(run.trajectory) == 3  # the start and two steps


@pytest.mark.parametrize("error", [RuntimeError("a bug"), ZeroDivisionError("a bug"), KeyError("a bug")])
def test_any_other_exception_propagates(error):
    with pytest.raises(type(error), match="a bug"):
        race("strongly-convex", [("buggy", lambda p: _FailingSGD(p, error))], steps=10)


@pytest.mark.parametrize("kwargs,message", [
    ({"seed": -1}, "seed"),
    ({"xtol": -1.0}, "xtol"),
    ({"ftol": -1.0}, "ftol"),
    ({"escape": 0}, "escape"),
    ({"schedule": 0.1}, "schedule must be callable"),
    ({"record": "sum"}, "record must be callable"),
    ({"steps": True}, "steps must be a positive integer"),
])
def test_every_race_argument_is_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        race("two-minima", ["sgd(lr=0.1)"], **kwargs)
