"""descentlab.linalg.cg against torch.linalg.solve and the CG theory (exact in ≤ n steps)."""

import pytest
import torch

from descentlab.linalg import cg


def random_spd(n, condition=100.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=g))
    eigenvalues = torch.logspace(0, torch.log10(torch.tensor(condition)).item(), n, dtype=torch.float64)
    return q @ torch.diag(eigenvalues) @ q.T, g


@pytest.mark.parametrize("n", [1, 5, 30])
def test_cg_solves_spd_system_in_at_most_n_iterations(n):
    # Finite termination is exact-arithmetic theory; a moderate condition number keeps the
    # floating-point loss of conjugacy small enough to see it.
    a, g = random_spd(n, condition=10.0)
    b = torch.randn(n, dtype=torch.float64, generator=g)
    result = cg(lambda v: a @ v, b, tol=1e-10)
    assert result.converged and result.iterations <= n
    torch.testing.assert_close(result.x, torch.linalg.solve(a, b), rtol=1e-7, atol=1e-9)


def test_cg_with_few_distinct_eigenvalues_needs_that_many_iterations():
    # CG theory: with k distinct eigenvalues, CG terminates in k iterations.
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(40, 40, dtype=torch.float64, generator=g))
    eigenvalues = torch.tensor([1.0, 5.0, 20.0], dtype=torch.float64).repeat_interleave(
        torch.tensor([10, 20, 10])
    )
    a = q @ torch.diag(eigenvalues) @ q.T
    b = torch.randn(40, dtype=torch.float64, generator=g)
    result = cg(lambda v: a @ v, b, tol=1e-9)
    assert result.converged and result.iterations == 3


def test_preconditioning_reduces_iterations_and_gives_the_same_solution():
    g = torch.Generator().manual_seed(2)
    n = 60
    scales = torch.logspace(0, 4, n, dtype=torch.float64)
    m = torch.randn(n, n, dtype=torch.float64, generator=g) * 0.05
    a = torch.diag(scales) + (m @ m.T) * torch.sqrt(torch.outer(scales, scales)) * 0.1
    b = torch.randn(n, dtype=torch.float64, generator=g)
    plain = cg(lambda v: a @ v, b, tol=1e-10, max_iter=10 * n)
    jacobi = cg(lambda v: a @ v, b, preconditioner=torch.diag(a), tol=1e-10, max_iter=10 * n)
    as_function = cg(
        lambda v: a @ v, b, preconditioner=lambda r: r / torch.diag(a), tol=1e-10, max_iter=10 * n
    )
    expected = torch.linalg.solve(a, b)
    for result in (plain, jacobi, as_function):
        torch.testing.assert_close(result.x, expected, rtol=1e-6, atol=1e-8)
    assert jacobi.iterations < plain.iterations
    assert jacobi.iterations == as_function.iterations


def test_negative_curvature_is_detected_and_reported():
    a = torch.diag(torch.tensor([2.0, 1.0, -3.0], dtype=torch.float64))
    b = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    result = cg(lambda v: a @ v, b)
    assert result.negative_curvature and not result.converged
    p = result.curvature_direction
    assert torch.dot(p, a @ p) <= 0
    assert torch.isfinite(result.x).all()
    # The returned iterate still decreases the quadratic φ(x) = ½xᵀAx − bᵀx below φ(0) = 0.
    assert 0.5 * result.x @ a @ result.x - b @ result.x < 0


def test_negative_curvature_on_first_direction_returns_b():
    a = -torch.eye(3, dtype=torch.float64)
    b = torch.ones(3, dtype=torch.float64)
    result = cg(lambda v: a @ v, b)
    assert result.negative_curvature and result.iterations == 0
    torch.testing.assert_close(result.x, b)


def test_iteration_cap_and_initial_guess():
    a, g = random_spd(20, condition=1e4, seed=3)
    b = torch.randn(20, dtype=torch.float64, generator=g)
    capped = cg(lambda v: a @ v, b, max_iter=3)
    assert capped.iterations == 3 and not capped.converged
    exact = torch.linalg.solve(a, b)
    warm = cg(lambda v: a @ v, b, x0=exact, tol=1e-8)
    assert warm.converged and warm.iterations == 0


def test_quadratic_values_decrease_and_iterates_saved():
    a, g = random_spd(25, condition=1e3, seed=4)
    b = torch.randn(25, dtype=torch.float64, generator=g)
    result = cg(lambda v: a @ v, b, save_iterates=lambda i: i % 5 == 0)
    values = torch.tensor(result.quadratic_values)
    assert (values[1:] <= values[:-1] + 1e-12).all()
    for i, x in result.iterates:
        torch.testing.assert_close(
            torch.tensor(result.quadratic_values[i], dtype=torch.float64), 0.5 * x @ a @ x - b @ x
        )


def test_martens_progress_criterion_stops_early():
    # b = Q λ: the directions of tiny curvature hardly matter to φ, so progress stalls early.
    g = torch.Generator().manual_seed(5)
    q, _ = torch.linalg.qr(torch.randn(200, 200, dtype=torch.float64, generator=g))
    eigenvalues = torch.logspace(-6, 0, 200, dtype=torch.float64)
    a, b = q @ torch.diag(eigenvalues) @ q.T, q @ eigenvalues
    full = cg(lambda v: a @ v, b, tol=1e-12, max_iter=400)
    early = cg(lambda v: a @ v, b, tol=1e-12, max_iter=400, progress_tol=5e-4)
    assert early.iterations < full.iterations
    i, k = early.iterations, max(10, -(-early.iterations // 10))
    q = early.quadratic_values
    assert (q[i] - q[i - k]) / q[i] < k * 5e-4
    optimum = -0.5 * torch.dot(b, torch.linalg.solve(a, b)).item()
    assert q[i] < 0.99 * optimum  # stopped early, yet within 1% of the best value of φ


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"tol": -1.0}, "tol"),
        ({"max_iter": -2}, "max_iter"),
        ({"atol": float("nan")}, "atol"),
        ({"progress_tol": 0.0}, "progress_tol"),
    ],
)
def test_invalid_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        cg(lambda v: v, torch.ones(3), **kwargs)
