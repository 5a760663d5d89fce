"""Second-order solvers: against closed forms, scipy.optimize.minimize and the lab's closure contract."""

import math

import numpy as np
import pytest
import scipy.optimize
import torch
from torch import nn

import descentlab.second_order as so


# -- the landscapes the lab races on (a (2,)-shaped parameter) ------------------------------
def rosenbrock(p):
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


def quadratic(p):
    return 0.5 * (p[0] ** 2 + 10 * p[1] ** 2) + p[0] * p[1]


def two_minima(p):
    x, y = p[0], p[1]
    return (
        -2 * torch.exp(-((x - 1) ** 2 + y**2) / 0.2)
        - 6 * torch.exp(-((x + 1) ** 2 + y**2) / 0.2)
        + x**2
        + y**2
    )


LANDSCAPES = {
    "rosenbrock": (rosenbrock, [-1.2, 1.0]),
    "quadratic": (quadratic, [1.5, -1.0]),
    "two_minima": (two_minima, [0.3, 0.4]),
}


def lab_closure(opt, f, p):
    def closure():
        opt.zero_grad()
        loss = f(p)
        loss.backward()
        return loss

    return closure


def run(cls, f, start, steps=1, dtype=torch.float64, **kwargs):
    p = nn.Parameter(torch.tensor(start, dtype=dtype))
    opt = cls([p], **kwargs)
    closure = lab_closure(opt, f, p)
    losses = [float(opt.step(closure)) for _ in range(steps)]
    return p, opt, losses


# -- Newton --------------------------------------------------------------------------------
def test_newton_solves_a_quadratic_in_one_step():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, dtype=torch.float64, generator=g)
    a, b = m @ m.T + torch.eye(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64, generator=g)
    p = nn.Parameter(torch.randn(6, dtype=torch.float64, generator=g))
    opt = so.Newton([p])
    opt.step(lab_closure(opt, lambda w: 0.5 * w @ a @ w - b @ w, p))
    torch.testing.assert_close(p.detach(), torch.linalg.solve(a, b))
    assert opt.solver_state["func_evals"] == 2  # the Hessian evaluation and the accepted step


def test_newton_evaluates_each_accepted_point_once():
    # Every iteration accepts its first trial step t = 1 here: the search's evaluation at t = 1 keeps
    # the gradient's graph, so the next Hessian needs no second closure call (before: 2 per iteration).
    p = nn.Parameter(torch.tensor([0.8, -0.6, 1.2], dtype=torch.float64))
    opt = so.Newton([p], max_iter=50, tolerance_grad=1e-10)
    calls = []

    def closure():
        calls.append(p.detach().clone())
        return torch.sum(p**2 / 2 + p**4 / 4 + torch.cosh(p))

    opt.step(closure)
    state = opt.solver_state
    assert p.detach().abs().max() < 1e-10 and state["n_iter"] >= 4
    assert state["func_evals"] == len(calls) == state["n_iter"] + 1
    assert len({tuple(c.tolist()) for c in calls}) == len(calls)  # no point evaluated twice


def test_indefinite_hessian_regularisation_follows_ueda_yamashita():
    from descentlab.second_order.direction import damped_newton_direction

    h = torch.diag(torch.tensor([-2.0, 1.0, 4.0], dtype=torch.float64))
    g = torch.tensor([0.3, -0.4, 0.0], dtype=torch.float64)
    d, mu = damped_newton_direction(h, g)
    assert mu == pytest.approx(2 * 2.0 + 0.5)  # 2·(−λ_min) + ‖g‖
    torch.testing.assert_close(d, -g / (torch.diagonal(h) + mu))
    assert torch.dot(g, d) < 0
    # positive definite: the pure Newton step, no damping
    d, mu = damped_newton_direction(h.abs(), g)
    assert mu == 0.0
    torch.testing.assert_close(d, -g / torch.diagonal(h.abs()))


def test_newton_on_a_model_matches_scipy_newton_cg_minimum():
    torch.manual_seed(0)
    x, y = torch.randn(40, 3, dtype=torch.float64), torch.randint(0, 2, (40,)).double()
    model = nn.Linear(3, 1).double()
    opt = so.Newton(model.parameters(), max_iter=20, damping=1e-3)

    def loss_of(m):
        return (
            nn.functional.binary_cross_entropy_with_logits(m(x).squeeze(1), y)
            + 0.01 * m.weight.square().sum()
        )

    def closure():
        opt.zero_grad()
        loss = loss_of(model)
        loss.backward()
        return loss

    opt.step(closure)
    reference = nn.Linear(3, 1).double()
    from descentlab.scipy import minimize

    minimize(reference, loss_of, method="Newton-CG", options={"xtol": 1e-12})
    torch.testing.assert_close(model.weight, reference.weight, atol=1e-6, rtol=0)


def test_newton_handles_indefinite_hessian_by_damping():
    # At (0.3, 0.4) the two-minima function's Hessian is indefinite; a raw Newton step would climb.
    p, opt, losses = run(so.Newton, two_minima, [0.0, 0.3], steps=30)
    assert torch.isfinite(p).all()
    h = torch.func.hessian(two_minima)(torch.tensor([0.0, 0.3], dtype=torch.float64))
    assert torch.linalg.eigvalsh(h).min() < 0  # the start is indeed indefinite
    assert opt.solver_state["damping"] >= 0
    assert all(b <= a + 1e-12 for a, b in zip(losses, losses[1:]))
    assert float(torch.linalg.vector_norm(torch.func.grad(two_minima)(p.detach()))) < 1e-6


# -- BFGS / L-BFGS vs SciPy ------------------------------------------------------------------
def rosen_run(cls, x0, **kwargs):
    p = nn.Parameter(torch.tensor(x0, dtype=torch.float64))
    opt = cls([p], max_iter=10_000, max_eval=100_000, tolerance_change=0.0, **kwargs)

    def closure():
        opt.zero_grad()
        loss = torch.sum(100.0 * (p[1:] - p[:-1] ** 2) ** 2 + (1 - p[:-1]) ** 2)
        loss.backward()
        return loss

    opt.step(closure)
    return p.detach().numpy(), opt.solver_state


@pytest.mark.parametrize("x0", [[-1.2, 1.0], [2.0, -1.5, 0.3, 1.1, -0.5, 0.9]])
def test_bfgs_matches_scipy_on_rosenbrock(x0):
    ref = scipy.optimize.minimize(
        scipy.optimize.rosen, x0, jac=scipy.optimize.rosen_der, method="BFGS", options={"gtol": 1e-5}
    )
    x, state = rosen_run(so.BFGS, x0, tolerance_grad=1e-5)
    np.testing.assert_allclose(x, ref.x, atol=1e-4)
    assert state["n_iter"] <= 1.5 * ref.nit and state["func_evals"] <= 1.5 * ref.nfev


@pytest.mark.parametrize("x0", [[-1.2, 1.0], [2.0, -1.5, 0.3, 1.1, -0.5, 0.9]])
def test_lbfgs_matches_scipy_lbfgsb_on_rosenbrock(x0):
    ref = scipy.optimize.minimize(
        scipy.optimize.rosen,
        x0,
        jac=scipy.optimize.rosen_der,
        method="L-BFGS-B",
        options={"gtol": 1e-5, "maxcor": 10, "ftol": 0.0},
    )
    x, state = rosen_run(so.LBFGS, x0, tolerance_grad=1e-5, history_size=10)
    np.testing.assert_allclose(x, ref.x, atol=1e-4)
    assert state["n_iter"] <= 1.5 * ref.nit and state["func_evals"] <= 1.5 * ref.nfev


def test_lbfgs_direction_equals_dense_bfgs_with_full_history():
    # With history ≥ iterations and the same H0, two-loop recursion = dense BFGS (N&W §7.2).
    from descentlab.second_order.direction import BFGSInverseHessian, lbfgs_direction

    g = torch.Generator().manual_seed(0)
    dense = BFGSInverseHessian(5, torch.float64, "cpu")
    s_hist, y_hist = [], []
    a = torch.randn(5, 5, dtype=torch.float64, generator=g)
    a = a @ a.T + torch.eye(5, dtype=torch.float64)
    for _ in range(4):
        s = torch.randn(5, dtype=torch.float64, generator=g)
        s_hist.append(s)
        y_hist.append(a @ s)
    gamma = (s_hist[-1] @ y_hist[-1]) / (y_hist[-1] @ y_hist[-1])
    dense.matrix = gamma * torch.eye(5, dtype=torch.float64)
    for s, y in zip(s_hist, y_hist):
        dense.update(s, y)
    grad = torch.randn(5, dtype=torch.float64, generator=g)
    torch.testing.assert_close(lbfgs_direction(grad, s_hist, y_hist), dense.direction(grad))


# -- nonlinear CG -------------------------------------------------------------------------
@pytest.mark.parametrize("beta", ["FR", "PR+", "HS", "DY"])
def test_nonlinear_cg_with_exact_steps_is_linear_cg_on_a_quadratic(beta):
    # With exact line searches every β rule reduces to linear CG: the minimum in ≤ n iterations.
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64, generator=g))
    a = q @ torch.diag(torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0], dtype=torch.float64)) @ q.T
    b = torch.randn(5, dtype=torch.float64, generator=g)
    p, opt, _ = run(
        so.NonlinearCG,
        lambda w: 0.5 * w @ a @ w - b @ w,
        [0.0] * 5,
        beta=beta,
        max_iter=5,
        c1=1e-12,
        c2=1e-9,
        restart_every=10,
        tolerance_grad=1e-10,
    )
    torch.testing.assert_close(p.detach(), torch.linalg.solve(a, b), atol=1e-6, rtol=0)


@pytest.mark.parametrize("beta", ["FR", "PR+", "HS", "DY"])
def test_nonlinear_cg_converges_on_rosenbrock(beta):
    x, state = rosen_run(so.NonlinearCG, [-1.2, 1.0], beta=beta, tolerance_grad=1e-6)
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-4)
    assert state.get("restarts", 0) >= 1  # Powell restarts do happen on Rosenbrock


def test_nonlinear_cg_pr_plus_is_comparable_to_scipy_cg():
    ref = scipy.optimize.minimize(
        scipy.optimize.rosen, [-1.2, 1.0], jac=scipy.optimize.rosen_der, method="CG", options={"gtol": 1e-5}
    )
    x, state = rosen_run(so.NonlinearCG, [-1.2, 1.0], beta="PR+", c2=0.4, tolerance_grad=1e-5)
    np.testing.assert_allclose(x, ref.x, atol=1e-4)
    assert state["func_evals"] <= 3 * ref.nfev


# -- bad input ----------------------------------------------------------------------------
CORE = [so.Newton, so.BFGS, so.LBFGS, so.NonlinearCG]


@pytest.mark.parametrize("cls", CORE)
def test_step_without_closure_names_the_solver(cls):
    opt = cls([nn.Parameter(torch.zeros(2))])
    with pytest.raises(RuntimeError, match=cls.__name__ + r"\.step\(\) requires a closure"):
        opt.step()


@pytest.mark.parametrize("cls", CORE)
@pytest.mark.parametrize(
    "name, value",
    [("lr", -1.0), ("tolerance_grad", float("nan")), ("max_iter", 0), ("line_search_fn", "wolfe")],
)
def test_invalid_hyperparameters_name_themselves(cls, name, value):
    with pytest.raises(ValueError, match=name):
        cls([nn.Parameter(torch.zeros(2))], **{name: value})


def test_failed_line_search_keeps_best_point_and_records_failure():
    p = nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
    opt = so.LBFGS([p])
    start = p.detach().clone()

    def closure():  # NaN anywhere but at the start: no step can succeed
        opt.zero_grad()
        loss = (p**2).sum()
        if not torch.equal(p.detach(), start):
            loss = loss * math.nan
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.equal(p.detach(), start)
    assert opt.solver_state["line_search_failed"] and opt.solver_state["line_search_failures"] == 1


def test_parameter_groups_are_rejected():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="parameter groups"):
        so.BFGS([{"params": [a]}, {"params": [b], "lr": 0.5}])


# -- the lab's contract: every solver, default hyperparameters, a (2,)-shaped parameter ------
@pytest.mark.parametrize("name", so.__all__)
@pytest.mark.parametrize("landscape", list(LANDSCAPES))
def test_every_solver_runs_on_the_lab_landscapes(name, landscape):
    f, start = LANDSCAPES[landscape]
    cls = getattr(so, name)
    p = nn.Parameter(torch.tensor(start, dtype=torch.float32))
    opt = cls([p])
    closure = lab_closure(opt, f, p)
    initial = float(f(p.detach()))
    for _ in range(40):
        loss = opt.step(closure)
        assert math.isfinite(float(loss))
    assert torch.isfinite(p).all()
    final = opt.best_loss if isinstance(opt, so.Subgradient) else float(f(p.detach()))
    assert final < initial


# -- Hessian-free ---------------------------------------------------------------------------
def regression_data(seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, dtype=torch.float64, generator=g)
    y = torch.tanh(x @ torch.randn(4, 2, dtype=torch.float64, generator=g))
    return x, y


def closure_with_outputs(opt, model, x, y, loss_fn=nn.functional.mse_loss):
    def closure():
        opt.zero_grad()
        out = model(x)
        loss = loss_fn(out, y)
        loss.backward()
        return loss, out

    return closure


def test_closure_graph_ggn_is_jt_hl_j():
    from descentlab._flat import FlatParameters
    from descentlab.second_order.objective import ClosureObjective

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    x, y = regression_data()
    params = list(model.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    shapes = [p.shape for p in params]

    def outputs(v):
        w1, b1, w2, b2 = (t.view(s) for t, s in zip(torch.split(v, [math.prod(s) for s in shapes]), shapes))
        return torch.tanh(x @ w1.T + b1) @ w2.T + b2

    j = torch.autograd.functional.jacobian(outputs, flat).reshape(-1, flat.numel())
    expected = (
        j.T @ (2 * torch.eye(j.shape[0], dtype=torch.float64) / j.shape[0]) @ j
    )  # mse: H_L = 2I/(N·out)
    opt = so.HessianFree(params)
    objective = ClosureObjective(
        closure_with_outputs(opt, model, x, y), FlatParameters(params), opt.solver_state
    )
    graph = objective.linearise()
    v = torch.randn(flat.numel(), dtype=torch.float64)
    torch.testing.assert_close(graph.gauss_newton(v), expected @ v)


def test_hessian_free_solves_linear_least_squares():
    x, y = regression_data()
    model = nn.Linear(4, 2).double()
    opt = so.HessianFree(model.parameters(), damping=1e-3)
    closure = closure_with_outputs(opt, model, x, y)
    opt.step(closure)
    # On a quadratic the Gauss–Newton model is exact: ρ = 1, so λ shrinks by 2/3.
    assert opt.solver_state["rho"] == pytest.approx(1.0, abs=1e-6)
    assert opt.solver_state["damping"] == pytest.approx(2e-3 / 3)
    for _ in range(5):
        opt.step(closure)
    design = torch.cat([x, torch.ones(64, 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, y).solution
    torch.testing.assert_close(model.weight.detach(), solution[:4].T, atol=1e-6, rtol=0)


@pytest.mark.parametrize("preconditioner", [None, "diagonal"])
def test_hessian_free_trains_an_mlp_faster_than_its_first_gradient_step(preconditioner):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2)).double()
    x, y = regression_data(n=128)
    opt = so.HessianFree(model.parameters(), preconditioner=preconditioner)
    closure = closure_with_outputs(opt, model, x, y)
    start = float(nn.functional.mse_loss(model(x), y))
    curvature_batch = closure_with_outputs(opt, model, x[:32], y[:32])
    for _ in range(10):
        opt.step(closure, curvature_closure=curvature_batch)
    assert float(nn.functional.mse_loss(model(x), y)) < 0.2 * start
    assert opt.solver_state["cg_iterations"] >= 1


# -- natural gradient -----------------------------------------------------------------------
def test_kfac_first_step_matches_numpy_transcription():
    torch.manual_seed(0)
    layer = nn.Linear(3, 2).double()
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 2, dtype=torch.float64)
    w0, b0 = layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy()
    lr, damping = 0.5, 0.01
    opt = so.NaturalGradient(layer.parameters(), lr=lr, damping=damping, model=layer)
    opt.step(closure_with_outputs(opt, layer, x, y))

    # NumPy transcription of Martens & Grosse (2015): A = E[āāᵀ], G = E[ggᵀ] (per-example g),
    # factored Tikhonov damping with π, update = (G + π√λ I)⁻¹ ∇W̄ (A + √λ/π I)⁻¹.
    xn, yn = x.numpy(), y.numpy()
    out = xn @ w0.T + b0
    per_example_g = 2 * (out - yn) / 2  # d/d out of the per-example mean-over-outputs squared error
    grad_out = per_example_g / 20
    a_bar = np.hstack([xn, np.ones((20, 1))])
    grad_w = grad_out.T @ a_bar
    a_factor = a_bar.T @ a_bar / 20
    g_factor = per_example_g.T @ per_example_g / 20
    pi = np.sqrt((np.trace(a_factor) / 4) / (np.trace(g_factor) / 2))
    update = np.linalg.solve(g_factor + pi * np.sqrt(damping) * np.eye(2), grad_w)
    update = np.linalg.solve(a_factor + np.sqrt(damping) / pi * np.eye(4), update.T).T
    np.testing.assert_allclose(layer.weight.detach().numpy(), w0 - lr * update[:, :3], atol=1e-10)
    np.testing.assert_allclose(layer.bias.detach().numpy(), b0 - lr * update[:, 3], atol=1e-10)


def test_kfac_trains_an_mlp_classifier():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    x = torch.randn(128, 4, dtype=torch.float64)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    opt = so.NaturalGradient(model.parameters(), model=model, lr=0.3, damping=0.03)
    closure = closure_with_outputs(opt, model, x, y, nn.functional.cross_entropy)
    start = float(nn.functional.cross_entropy(model(x), y))
    for _ in range(30):
        opt.step(closure)
    assert float(nn.functional.cross_entropy(model(x), y)) < 0.5 * start


def test_fisher_cg_step_solves_the_damped_fisher_system():
    from descentlab.curvature import fisher_operator

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x, y = torch.randn(30, 3, dtype=torch.float64), torch.randint(0, 3, (30,))
    fisher = fisher_operator(model, x, likelihood="categorical").dense()
    x0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    opt = so.NaturalGradient(model.parameters(), lr=1.0, damping=0.1, fisher="cg", cg_max_iter=200)
    closure = closure_with_outputs(opt, model, x, y, nn.functional.cross_entropy)
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    g = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    opt.step(closure)
    x1 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    expected = torch.linalg.solve(fisher + 0.1 * torch.eye(fisher.shape[0], dtype=torch.float64), g)
    torch.testing.assert_close(x0 - x1, expected, atol=1e-7, rtol=1e-6)


def test_natural_gradient_with_a_bare_loss_uses_the_empirical_fisher():
    p, opt, _ = run(so.NaturalGradient, quadratic, [1.5, -1.0], lr=0.5, damping=0.2)
    g = torch.func.grad(quadratic)(torch.tensor([1.5, -1.0], dtype=torch.float64))
    expected = torch.tensor([1.5, -1.0], dtype=torch.float64) - 0.5 * g / (0.2 + g @ g)
    torch.testing.assert_close(p.detach(), expected)


def test_kfac_requires_a_model():
    with pytest.raises(ValueError, match="model"):
        so.NaturalGradient([nn.Parameter(torch.zeros(2))], fisher="kfac")


# -- Krylov subspace descent -----------------------------------------------------------------
def spd_quadratic(n=6, seed=2):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=g))
    a = q @ torch.diag(torch.logspace(0, 2, n, dtype=torch.float64)) @ q.T
    return a, torch.randn(n, dtype=torch.float64, generator=g)


def test_krylov_step_minimises_over_the_krylov_subspace():
    a, b = spd_quadratic()
    x0 = torch.zeros(6, dtype=torch.float64)
    p, opt, _ = run(
        so.KrylovSubspaceDescent,
        lambda w: 0.5 * w @ a @ w - b @ w,
        x0.tolist(),
        subspace_dim=2,
        damping=0.0,
        subspace_iter=50,
    )
    # NumPy reference: the minimiser of the quadratic over span{g, A g}.
    grad = (a @ x0 - b).numpy()
    basis, _ = np.linalg.qr(np.stack([grad, a.numpy() @ grad], axis=1))
    coeffs = -np.linalg.solve(basis.T @ a.numpy() @ basis, basis.T @ grad)
    np.testing.assert_allclose(p.detach().numpy(), basis @ coeffs, atol=1e-7)


def test_krylov_with_full_subspace_reaches_the_minimum_in_one_step():
    a, b = spd_quadratic()
    p, _, _ = run(
        so.KrylovSubspaceDescent,
        lambda w: 0.5 * w @ a @ w - b @ w,
        [0.0] * 6,
        subspace_dim=6,
        damping=0.0,
        subspace_iter=100,
    )
    torch.testing.assert_close(p.detach(), torch.linalg.solve(a, b), atol=1e-7, rtol=0)


# -- coordinate descent ----------------------------------------------------------------------
def test_cyclic_exact_coordinate_descent_is_gauss_seidel():
    a, b = spd_quadratic(n=4)
    p, _, _ = run(
        so.CoordinateDescent,
        lambda w: 0.5 * w @ a @ w - b @ w,
        [0.0] * 4,
        steps=8,
        line_search_fn="strong_wolfe",
        lr=1.0,
        c1=1e-12,
        c2=1e-9,
    )
    x = np.zeros(4)
    an, bn = a.numpy(), b.numpy()
    for _ in range(2):  # two Gauss–Seidel sweeps
        for i in range(4):
            x[i] = (bn[i] - an[i] @ x + an[i, i] * x[i]) / an[i, i]
    np.testing.assert_allclose(p.detach().numpy(), x, atol=1e-6)


def test_coordinate_descent_moves_one_block_at_a_time():
    w1 = nn.Parameter(torch.ones(3, dtype=torch.float64))
    w2 = nn.Parameter(torch.ones(2, dtype=torch.float64))
    opt = so.CoordinateDescent([w1, w2], lr=0.1, block="tensor", line_search_fn=None)

    def closure():
        opt.zero_grad()
        loss = (w1**2).sum() + (w2**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(w1.detach(), torch.full((3,), 0.8, dtype=torch.float64))
    torch.testing.assert_close(w2.detach(), torch.ones(2, dtype=torch.float64))
    random = so.CoordinateDescent([nn.Parameter(torch.ones(5))], order="random", seed=1)
    p = random.param_groups[0]["params"][0]
    random.step(lab_closure(random, lambda w: (w**2).sum(), p))
    assert int((p.detach() != 1).sum()) == 1


# -- subgradient -----------------------------------------------------------------------------
def lad_problem():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(30, 3, dtype=torch.float64, generator=g)
    b = a @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + torch.randn(
        30, dtype=torch.float64, generator=g
    )
    # LP reference: min Σ t  s.t. −t ≤ A x − b ≤ t.
    an, bn = a.numpy(), b.numpy()
    c = np.concatenate([np.zeros(3), np.ones(30)])
    a_ub = np.block([[an, -np.eye(30)], [-an, -np.eye(30)]])
    lp = scipy.optimize.linprog(
        c, A_ub=a_ub, b_ub=np.concatenate([bn, -bn]), bounds=[(None, None)] * 3 + [(0, None)] * 30
    )
    return a, b, lp.fun


@pytest.mark.parametrize(
    "rule, kwargs, rel",
    [("polyak", {}, 1e-3), ("diminishing_length", {"lr": 1.0}, 0.02), ("diminishing", {"lr": 0.05}, 0.02)],
)
def test_subgradient_least_absolute_deviations_vs_linprog(rule, kwargs, rel):
    a, b, optimum = lad_problem()
    p = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    f_star = optimum if rule == "polyak" else 0.0
    opt = so.Subgradient([p], step_rule=rule, f_star=f_star, **kwargs)
    closure = lab_closure(opt, lambda w: (a @ w - b).abs().sum(), p)
    for _ in range(3000):
        opt.step(closure)
    assert opt.best_loss == pytest.approx(optimum, rel=rel)
    assert opt.best_loss >= optimum - 1e-9
    opt.load_best()
    assert float((a @ p.detach() - b).abs().sum()) == pytest.approx(opt.best_loss)


def test_subgradient_of_hinge_loss_keeps_best_iterate():
    x = torch.tensor([[1.0, 2.0], [2.0, 1.0], [-1.0, -1.5], [-2.0, -0.5]], dtype=torch.float64)
    y = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64)
    p, opt, losses = run(
        so.Subgradient,
        lambda w: torch.relu(1 - y * (x @ w)).mean(),
        [0.0, 0.0],
        steps=50,
        step_rule="constant",
        lr=0.5,
    )
    assert opt.best_loss == min(losses) == 0.0  # separable: the hinge loss reaches 0


@pytest.mark.parametrize(
    "cls, kwargs, name",
    [
        (so.HessianFree, {"damping": 0.0}, "damping"),
        (so.HessianFree, {"curvature": "fisher"}, "curvature"),
        (so.NaturalGradient, {"factor_decay": 1.0}, "factor_decay"),
        (so.KrylovSubspaceDescent, {"subspace_dim": 0}, "subspace_dim"),
        (so.CoordinateDescent, {"order": "zigzag"}, "order"),
        (so.Subgradient, {"step_rule": "armijo"}, "step_rule"),
        (so.NonlinearCG, {"beta": "XX"}, "beta"),
        (so.LBFGS, {"history_size": 0}, "history_size"),
        (so.Newton, {"damping": -1.0}, "damping"),
    ],
)
def test_more_invalid_hyperparameters(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls([nn.Parameter(torch.zeros(2))], **kwargs)


@pytest.mark.parametrize(
    "cls",
    [so.HessianFree, so.NaturalGradient, so.KrylovSubspaceDescent, so.CoordinateDescent, so.Subgradient],
)
def test_other_solvers_need_a_closure(cls):
    assert "lr" in cls([nn.Parameter(torch.zeros(2))]).defaults  # the lab's registry passes lr=
    with pytest.raises(RuntimeError, match=cls.__name__):
        cls([nn.Parameter(torch.zeros(2))]).step()
