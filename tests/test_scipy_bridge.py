"""descentlab.scipy.minimize against closed-form least squares and torch's own Hessian."""

import pytest
import scipy.optimize
import torch
from torch import nn

from descentlab import scipy as dscipy


def least_squares_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 5, dtype=torch.float64, generator=g)
    y = x @ torch.randn(5, 2, dtype=torch.float64, generator=g) + 0.1 * torch.randn(
        64, 2, dtype=torch.float64, generator=g
    )
    model = nn.Linear(5, 2).double()
    design = torch.cat([x, torch.ones(64, 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, y).solution  # [6, 2]
    return model, x, y, solution


@pytest.mark.parametrize(
    "method", ["L-BFGS-B", "BFGS", "CG", "Newton-CG", "trust-krylov", "trust-ncg", "trust-exact"]
)
def test_minimize_recovers_least_squares_solution(method):
    model, x, y, solution = least_squares_problem()
    result = dscipy.minimize(model, lambda m: nn.functional.mse_loss(m(x), y), method=method, tol=1e-10)
    torch.testing.assert_close(model.weight.detach(), solution[:5].T, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.bias.detach(), solution[5], atol=1e-5, rtol=0)
    assert result.fun == pytest.approx(nn.functional.mse_loss(model(x), y).item(), rel=1e-9)


def test_gradient_free_method_gets_the_loss_only():
    x = torch.linspace(-1, 1, 20, dtype=torch.float64).unsqueeze(1)
    y = 3 * x - 0.5
    model = nn.Linear(1, 1).double()
    result = dscipy.minimize(
        model,
        lambda m: nn.functional.mse_loss(m(x), y),
        method="Powell",
        options={"xtol": 1e-8, "ftol": 1e-12},
    )
    assert result.success
    assert model.weight.item() == pytest.approx(3.0, abs=1e-5)
    assert model.bias.item() == pytest.approx(-0.5, abs=1e-5)


def test_hessp_and_gradient_match_torch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x, y = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 1, dtype=torch.float64)
    problem = dscipy._FlatProblem(model, lambda m: ((m(x) - y) ** 2).mean())
    x0 = problem.get()
    params = list(model.parameters())
    shapes = [p.shape for p in params]

    def f(flat):
        pieces = torch.split(flat, [p.numel() for p in params])
        w1, b1, w2, b2 = (piece.view(s) for piece, s in zip(pieces, shapes))
        return ((torch.tanh(x @ w1.T + b1) @ w2.T + b2 - y) ** 2).mean()

    flat = torch.from_numpy(x0)
    h = torch.autograd.functional.hessian(f, flat)
    v = torch.randn(flat.numel(), dtype=torch.float64)
    torch.testing.assert_close(torch.from_numpy(problem.hessp(x0, v.numpy())), h @ v)
    value, grad = problem.fun_and_grad(x0)
    torch.testing.assert_close(torch.from_numpy(grad), torch.autograd.functional.jacobian(f, flat))
    assert (
        scipy.optimize.check_grad(
            lambda z: problem.fun_and_grad(z)[0], lambda z: problem.fun_and_grad(z)[1], x0
        )
        < 1e-6
    )


def test_result_is_written_back_in_the_parameter_dtype():
    model, x, y, solution = least_squares_problem()
    model = model.float()
    dscipy.minimize(
        model,
        lambda m: nn.functional.mse_loss(m(x.float()), y.float()),
        method="L-BFGS-B",
        options={"gtol": 1e-8},
    )
    assert model.weight.dtype == torch.float32
    torch.testing.assert_close(model.weight.detach().double(), solution[:5].T, atol=1e-3, rtol=0)


def test_invalid_method_and_no_parameters():
    with pytest.raises(ValueError, match="method"):
        dscipy.minimize(nn.Linear(2, 1), lambda m: m.weight.sum(), method=3)
    frozen = nn.Linear(2, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="trainable"):
        dscipy.minimize(frozen, lambda m: m.weight.sum())
