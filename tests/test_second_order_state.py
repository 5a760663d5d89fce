"""Second-order solvers as parts of the user's world: both closure styles, no global side effects,
hooks that go away, state that resumes bit for bit, failures recorded instead of raised."""

import copy
import gc
import io
import math
import re
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

import descentlab.second_order as so
from descentlab import scipy as dscipy

ORIGINAL_BACKWARD = torch.Tensor.backward


# -- a small problem every solver can take ----------------------------------------------------
def problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(24, 3, dtype=torch.float64, generator=g)
    y = torch.tanh(x @ torch.randn(3, 2, dtype=torch.float64, generator=g))
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    return model, x, y


def loss_of(name, out, y):
    return (out - y).abs().mean() if name == "Subgradient" else nn.functional.mse_loss(out, y)


# name → (constructor keywords, does the closure return outputs, does its state change the next step)
SOLVERS = {
    "Newton": (dict(damping=1e-2), False, False),
    "BFGS": (dict(max_iter=2), False, True),
    "LBFGS": (dict(max_iter=3, history_size=2), False, True),
    "NonlinearCG": (dict(max_iter=2), False, True),
    "HessianFree": (dict(preconditioner="diagonal"), True, True),
    "NaturalGradient": (dict(lr=0.3), True, True),  # K-FAC (model= is added below)
    "KrylovSubspaceDescent": (dict(subspace_dim=3, subspace_iter=3), True, True),
    "CoordinateDescent": (dict(order="random", block="tensor"), False, True),
    "Subgradient": (dict(step_rule="diminishing", lr=0.1), False, True),
}
CASES = list(SOLVERS) + ["NaturalGradient-cg"]


def build(case, model):
    name = case.split("-")[0]
    kwargs, _, _ = SOLVERS[name]
    kwargs = dict(kwargs)
    if case == "NaturalGradient":
        kwargs["model"] = model
    if case == "NaturalGradient-cg":
        kwargs["fisher"] = "cg"
    return getattr(so, name)(model.parameters(), **kwargs)


def closure_for(case, opt, model, x, y, torch_style=True):
    name = case.split("-")[0]
    with_outputs = SOLVERS[name][1]

    def closure():
        if torch_style:
            opt.zero_grad()
        out = model(x)
        loss = loss_of(name, out, y)
        if torch_style:
            loss.backward()
        return (loss, out) if with_outputs else loss

    return closure


def flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def trajectory(case, opt, model, x, y, steps, torch_style=True):
    closure = closure_for(case, opt, model, x, y, torch_style)
    points = []
    for _ in range(steps):
        opt.step(closure)
        points.append(flat(model).clone())
    return points


# -- both closure styles --------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_a_closure_that_only_returns_the_loss_gives_the_same_run(case):
    runs = []
    for torch_style in (True, False):
        model, x, y = problem()
        opt = build(case, model)
        runs.append(trajectory(case, opt, model, x, y, 3, torch_style))
        if isinstance(opt, so.NaturalGradient):
            opt.close()
    start = flat(problem()[0])
    assert not torch.equal(runs[0][-1], start)  # the solver moved
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_returning_closure_needs_a_graph():
    p = nn.Parameter(torch.ones(2, dtype=torch.float64))
    opt = so.BFGS([p])
    with pytest.raises(RuntimeError, match="no_grad"):
        opt.step(lambda: (p**2).sum().detach())


# -- no global side effects -------------------------------------------------------------------
def test_torch_is_never_patched_and_other_threads_backward_normally():
    """While HF's closure runs (its capturing mode active), another thread's backward() is untouched."""
    a_inside, b_done = threading.Event(), threading.Event()
    seen = {}

    def other_thread():
        a_inside.wait(timeout=30)
        w = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
        (w**3).sum().backward()
        seen["patched"] = torch.Tensor.backward is not ORIGINAL_BACKWARD
        seen["grad"] = w.grad.clone()
        seen["grad_has_graph"] = w.grad.requires_grad or w.grad.grad_fn is not None
        b_done.set()

    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.randn(32, 3, dtype=torch.float64, generator=g),
        torch.randn(32, 2, dtype=torch.float64, generator=g),
    )
    model = nn.Linear(3, 2).double()
    opt = so.HessianFree(model.parameters(), damping=1e-3)
    calls = []

    def closure():
        opt.zero_grad()
        out = model(x)
        loss = nn.functional.mse_loss(out, y)
        calls.append(torch.Tensor.backward is ORIGINAL_BACKWARD)
        if len(calls) == 1:  # the curvature evaluation: let the other thread run backward meanwhile
            a_inside.set()
            assert b_done.wait(timeout=30)
        loss.backward()
        return loss, out

    thread = threading.Thread(target=other_thread)
    thread.start()
    opt.step(closure)
    thread.join(timeout=30)
    assert all(calls) and not seen["patched"]
    torch.testing.assert_close(seen["grad"], torch.tensor([3.0, 12.0], dtype=torch.float64))
    assert not seen["grad_has_graph"]
    # ... and the capturing thread did get a differentiable gradient: on least squares the
    # Gauss–Newton model is exact, so the reduction ratio is 1.
    assert opt.solver_state["rho"] == pytest.approx(1.0, abs=1e-6)
    assert all(p.grad is None or not p.grad.requires_grad for p in model.parameters())


def test_no_module_assigns_to_an_attribute_of_torch_or_matplotlib():
    src = Path(__file__).resolve().parents[1] / "src"
    pattern = re.compile(r"^\s*(torch|matplotlib)(\.\w+)+\s*=[^=]", re.MULTILINE)
    offenders = [str(path) for path in src.rglob("*.py") if pattern.search(path.read_text(encoding="utf-8"))]
    assert offenders == []


def forward_hook_count(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def test_kfac_hooks_are_removed_on_close_and_at_garbage_collection():
    model, x, y = problem()
    opt = build("NaturalGradient", model)
    assert forward_hook_count(model) == 2  # one per nn.Linear
    opt.step(closure_for("NaturalGradient", opt, model, x, y))
    opt.close()
    assert forward_hook_count(model) == 0
    with pytest.raises(RuntimeError, match="close"):
        opt.step(closure_for("NaturalGradient", opt, model, x, y))
    opt = build("NaturalGradient", model)
    assert forward_hook_count(model) == 2
    del opt
    gc.collect()
    assert forward_hook_count(model) == 0


def test_kfac_hooks_record_only_during_the_solvers_closure():
    model, x, y = problem()
    opt = build("NaturalGradient", model)
    nn.functional.mse_loss(model(x[:5]), y[:5]).backward()  # the user's own forward/backward
    assert all(layer.inputs is None for layer in opt._layers)
    opt.close()


# -- state_dict resumes a run bit for bit ---------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_a_run_saved_mid_way_resumes_bit_identically(case):
    model, x, y = problem()
    opt = build(case, model)
    trajectory(case, opt, model, x, y, 3)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    expected = trajectory(case, opt, model, x, y, 3)

    def resumed(load_optimizer):
        buffer.seek(0)
        saved = torch.load(buffer)
        fresh_model = problem(seed=1)[0]
        fresh_model.load_state_dict(saved["model"])
        fresh = build(case, fresh_model)
        if load_optimizer:
            fresh.load_state_dict(saved["opt"])
        return trajectory(case, fresh, fresh_model, x, y, 3)

    for a, b in zip(expected, resumed(True)):
        assert torch.equal(a, b)
    if SOLVERS[case.split("-")[0]][2] and case != "NaturalGradient-cg":
        # the state matters: without it the run differs (so the test can fail)
        assert not all(torch.equal(a, b) for a, b in zip(expected, resumed(False)))


def test_state_dict_holds_the_curvature_models():
    model, x, y = problem()
    keys = {}
    for case in ("BFGS", "LBFGS", "HessianFree", "NaturalGradient", "CoordinateDescent", "Subgradient"):
        model, x, y = problem()
        opt = build(case, model)
        trajectory(case, opt, model, x, y, 2)
        (state,) = [s for s in opt.state_dict()["state"].values() if s]
        keys[case] = set(state)
    assert "inverse_hessian" in keys["BFGS"]
    assert {"old_dirs", "old_stps"} <= keys["LBFGS"]
    assert {"damping", "direction", "generator_state"} <= keys["HessianFree"]
    assert "kfac_factors" in keys["NaturalGradient"]
    assert "generator_state" in keys["CoordinateDescent"]
    assert {"best_loss", "best_flat_params"} <= keys["Subgradient"]


# -- failures are recorded, never raised --------------------------------------------------------
def test_nonlinear_cg_on_a_badly_scaled_problem_records_failed_searches():
    # float32 with curvatures 1e20 and 1e-40: φ'(0) overflows and no step passes the line search.
    # Before: TypeError "dot(): argument 'tensor' ... must be Tensor, not NoneType" on the second step.
    p = nn.Parameter(torch.tensor([1.5, -1.0]))
    opt = so.NonlinearCG([p])
    start = p.detach().clone()

    def closure():
        opt.zero_grad()
        loss = 1e20 * (p[0] - 1) ** 2 + (p[1] / 1e20) ** 2
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    state = opt.solver_state
    assert state["line_search_failed"] and state["line_search_failures"] == 5
    assert torch.equal(p.detach(), start)  # the best point seen: nothing beat the start


def test_a_nan_gradient_is_a_failed_search_not_an_exception():
    p = nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    opt = so.Newton([p], max_iter=3)

    def closure():
        opt.zero_grad()
        loss = (p**2).sum() * math.nan
        loss.backward()
        return loss

    opt.step(closure)
    assert opt.solver_state["line_search_failed"]
    assert torch.equal(p.detach(), torch.tensor([1.0, 2.0], dtype=torch.float64))


def powell_badly_scaled(p):  # Moré, Garbow & Hillstrom (1981), problem 3, from (0, 1)
    return (1e4 * p[0] * p[1] - 1) ** 2 + (torch.exp(-p[0]) + torch.exp(-p[1]) - 1.0001) ** 2


def brown_badly_scaled(p):  # MGH problem 4, from (1, 1); the minimum is at (1e6, 2e-6)
    return (p[0] - 1e6) ** 2 + (p[1] - 2e-6) ** 2 + (p[0] * p[1] - 2) ** 2


# name → (f, start, dtype); "nan away" is NaN everywhere but at the start
HOSTILE = {
    "nan away from the start": (None, [1.0, 2.0], torch.float64),
    "inf beyond a radius": (
        lambda p: torch.where(p.norm() > 1.5, math.inf, (p**2).sum() - 3 * p.sum()),
        [1.0, 0.5],
        torch.float64,
    ),
    "non-finite gradient": (lambda p: p.abs().sqrt().sum(), [0.0, 1.0], torch.float64),
    "nan loss": (lambda p: (p**2).sum() * math.nan, [1.0, 2.0], torch.float64),
    "log of a negative": (lambda p: -torch.log(p).sum() + 10 * p.sum(), [0.05, 0.02], torch.float64),
    "float32 overflow": (lambda p: 1e20 * (p[0] - 1) ** 2 + (p[1] / 1e20) ** 2, [1.5, -1.0], torch.float32),
    "Powell badly scaled": (powell_badly_scaled, [0.0, 1.0], torch.float64),
    "Brown badly scaled": (brown_badly_scaled, [1.0, 1.0], torch.float64),
    "Brown badly scaled, float32": (brown_badly_scaled, [1.0, 1.0], torch.float32),
}
# every solver on a bare parameter (K-FAC needs a model: tested below), with each line search
PARAMETER_SOLVERS = [
    ("Newton", {}),
    ("Newton", {"line_search_fn": "backtracking"}),
    ("Newton", {"line_search_fn": "strong_wolfe"}),
    ("BFGS", {}),
    ("BFGS", {"line_search_fn": "strong_wolfe"}),
    ("LBFGS", {}),
    ("LBFGS", {"line_search_fn": "strong_wolfe"}),
    ("LBFGS", {"line_search_fn": None}),
    ("NonlinearCG", {"beta": "FR"}),
    ("NonlinearCG", {"beta": "PR+"}),
    ("NonlinearCG", {"beta": "HS", "line_search_fn": "strong_wolfe"}),
    ("NonlinearCG", {"beta": "DY", "line_search_fn": "backtracking"}),
    ("HessianFree", {}),
    ("NaturalGradient", {"fisher": "cg"}),
    ("KrylovSubspaceDescent", {}),
    ("CoordinateDescent", {}),
    ("CoordinateDescent", {"line_search_fn": "more_thuente"}),
    ("Subgradient", {}),
]
NOT_DESCENT = ("NaturalGradient", "Subgradient")  # fixed steps (as line_search_fn=None): f may go up


@pytest.mark.parametrize("solver, kwargs", PARAMETER_SOLVERS, ids=lambda v: str(v))
@pytest.mark.parametrize("hostile", list(HOSTILE))
def test_no_solver_raises_from_its_search_on_non_finite_or_badly_scaled_problems(solver, kwargs, hostile):
    f, start, dtype = HOSTILE[hostile]
    p = nn.Parameter(torch.tensor(start, dtype=dtype))
    x0 = p.detach().clone()
    if f is None:
        f = lambda q: (q**2).sum() * (1.0 if torch.equal(q.detach(), x0) else math.nan)  # noqa: E731
    opt = getattr(so, solver)([p], **kwargs)

    def closure():
        opt.zero_grad()
        loss = f(p)
        loss.backward()
        return loss

    for _ in range(4):
        opt.step(closure)  # never raises
    state, x = opt.solver_state, p.detach()
    descent = solver not in NOT_DESCENT and kwargs.get("line_search_fn", "default") is not None
    assert torch.isfinite(x).all()  # a failed search leaves a point that was evaluated, never NaN
    with torch.no_grad():
        f0, f1 = float(f(x0)), float(f(x))
    if not math.isfinite(f0) or hostile == "non-finite gradient":
        # no finite gradient at the start, no ray to search along: recorded, and nobody moves
        assert state["line_search_failed"] and state["line_search_failures"] >= 1
        assert torch.equal(x, x0)
    elif hostile == "nan away from the start" and descent:
        assert state["line_search_failures"] >= 1 and torch.equal(x, x0)  # the best point it saw
    elif descent:
        assert f1 <= f0  # the best point: never worse than the start
    if state["line_search_failed"]:
        assert state["line_search_failures"] >= 1


@pytest.mark.parametrize("cls", [so.Newton, so.BFGS, so.LBFGS, so.NonlinearCG])
@pytest.mark.parametrize("f, start", [(powell_badly_scaled, [0.0, 1.0]), (brown_badly_scaled, [1.0, 1.0])])
def test_core_solvers_on_badly_scaled_problems_converge_or_record_the_failure(cls, f, start):
    p = nn.Parameter(torch.tensor(start, dtype=torch.float64))
    opt = cls([p], max_iter=3000, max_eval=10_000, tolerance_grad=1e-5, tolerance_change=0.0)
    opt.step(lambda: f(p))
    state, x = opt.solver_state, p.detach()
    g = torch.func.grad(f)(x).abs().max().item()
    assert float(f(x)) < float(f(torch.tensor(start, dtype=torch.float64)))
    assert g <= 1e-5 or state["line_search_failed"] or state["n_iter"] == 3000
    if cls is not so.LBFGS:  # BFGS, Newton and nonlinear CG solve both (L-BFGS creeps on Powell's)
        assert g <= 1e-5 and float(f(x)) < 1e-5 and not state["line_search_failed"]


def test_kfac_records_a_non_finite_gradient_and_keeps_its_factors():
    model, x, y = problem()
    opt = build("NaturalGradient", model)
    opt.step(closure_for("NaturalGradient", opt, model, x, y))
    factors = copy.deepcopy(opt.solver_state["kfac_factors"])
    before = flat(model).clone()

    def nan_closure():
        opt.zero_grad()
        out = model(x)
        loss = nn.functional.mse_loss(out, y) * math.nan
        loss.backward()
        return loss, out

    opt.step(nan_closure)
    state = opt.solver_state
    assert state["line_search_failed"] and state["line_search_failures"] == 1
    assert torch.equal(flat(model), before)
    for kept, now in zip(factors, state["kfac_factors"]):
        assert torch.equal(kept["A"], now["A"]) and torch.equal(kept["G"], now["G"])
    opt.step(closure_for("NaturalGradient", opt, model, x, y))  # and it carries on
    assert not opt.solver_state["line_search_failed"] and torch.isfinite(flat(model)).all()
    opt.close()


# -- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", so.__all__)
def test_a_second_parameter_group_is_refused_by_add_param_group(name):
    opt = getattr(so, name)([nn.Parameter(torch.zeros(2))])
    with pytest.raises(ValueError, match="parameter groups"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2))]})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize(
    "cls, kwargs, name",
    [
        (so.HessianFree, {"damping_bounds": (1.0, 0.5)}, "damping_bounds"),
        (so.HessianFree, {"damping_bounds": 3.0}, "damping_bounds"),
        (so.HessianFree, {"seed": -1}, "seed"),
        (so.HessianFree, {"preconditioner_exponent": 2.0}, "preconditioner_exponent"),
        (so.NaturalGradient, {"model": "net"}, "model"),
        (so.NaturalGradient, {"kl_clip": 0.0}, "kl_clip"),
        (so.KrylovSubspaceDescent, {"damping": -1.0}, "damping"),
        (so.CoordinateDescent, {"c1": 0.5, "c2": 0.1}, "c2"),
        (so.CoordinateDescent, {"seed": 1.5}, "seed"),
        (so.Subgradient, {"f_star": math.nan}, "f_star"),
        (so.LBFGS, {"max_eval": 0}, "max_eval"),
        (so.NonlinearCG, {"restart_threshold": 0.0}, "restart_threshold"),
    ],
)
def test_every_argument_is_checked_before_any_work(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls([nn.Parameter(torch.zeros(2))], **kwargs)
    with pytest.raises(ValueError, match=name):  # before torch looks at the (empty) parameter list
        cls([], **kwargs)


def test_scipy_bridge_checks_its_loss_function():
    with pytest.raises(ValueError, match="loss_fn"):
        dscipy.minimize(nn.Linear(2, 1), 3.0)


def test_state_dict_round_trip_keeps_the_solver_hyperparameters():
    model, x, y = problem()
    opt = build("HessianFree", model)
    trajectory("HessianFree", opt, model, x, y, 1)
    state = copy.deepcopy(opt.state_dict())
    assert state["param_groups"][0]["seed"] == 0 and state["param_groups"][0]["preconditioner"] == "diagonal"
