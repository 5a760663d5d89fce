"""descentlab.curvature against torch.autograd.functional / torch.linalg.eigvalsh and known spectra."""

import math

import pytest
import torch
from torch import nn
from torch.autograd.functional import hessian as dense_hessian
from torch.autograd.functional import jacobian

from descentlab import curvature as C


def small_model(seed=0, out=3):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, out)).double()
    x = torch.randn(16, 4, dtype=torch.float64)
    return model, x


def reference_hessian(model, loss_fn, x, y):
    """Dense Hessian by torch.autograd.functional on a hand-written flat function."""
    params = [p.detach() for p in model.parameters()]
    shapes = [p.shape for p in params]
    flat = torch.cat([p.reshape(-1) for p in params])

    def f(v):
        pieces = torch.split(v, [math.prod(s) for s in shapes])
        ws = [piece.view(s) for piece, s in zip(pieces, shapes)]
        h = torch.tanh(x @ ws[0].T + ws[1])
        return loss_fn(h @ ws[2].T + ws[3], y)

    def outputs(v):
        pieces = torch.split(v, [math.prod(s) for s in shapes])
        ws = [piece.view(s) for piece, s in zip(pieces, shapes)]
        return torch.tanh(x @ ws[0].T + ws[1]) @ ws[2].T + ws[3]

    return dense_hessian(f, flat), flat, outputs


@pytest.fixture
def regression():
    model, x = small_model()
    y = torch.randn(16, 3, dtype=torch.float64)
    return model, nn.functional.mse_loss, x, y


def squared_error(out, y):
    # Written out: torch 2.13's F.mse_loss fails under forward-over-reverse (ZeroTensor error).
    return ((out - y) ** 2).mean()


@pytest.mark.parametrize("mode", ["forward-over-reverse", "reverse-over-reverse"])
@pytest.mark.parametrize("loss_fn", [squared_error, nn.functional.cross_entropy])
def test_hvp_matches_dense_hessian(regression, mode, loss_fn):
    model, _, x, y = regression
    if loss_fn is nn.functional.cross_entropy:
        y = torch.randint(0, 3, (16,))
    h, flat, _ = reference_hessian(model, loss_fn, x, y)
    f, x0 = C.flat_loss(model, loss_fn, x, y)
    torch.testing.assert_close(x0, flat)
    v = torch.randn(flat.numel(), dtype=torch.float64)
    torch.testing.assert_close(C.hvp(f, x0, v, mode=mode), h @ v)
    torch.testing.assert_close(C.hessian(f, x0), h)


def test_double_backward_hvp(regression):
    model, loss_fn, x, y = regression
    h, flat, _ = reference_hessian(model, loss_fn, x, y)
    v = torch.randn(flat.numel(), dtype=torch.float64)
    params = list(model.parameters())
    vs = [piece.view_as(p) for piece, p in zip(torch.split(v, [p.numel() for p in params]), params)]
    products = C.hvp_double_backward(loss_fn(model(x), y), params, vs)
    torch.testing.assert_close(torch.cat([t.reshape(-1) for t in products]), h @ v)


def test_ggn_product_is_jt_hl_j(regression):
    model, loss_fn, x, y = regression
    _, flat, outputs = reference_hessian(model, loss_fn, x, y)
    j = jacobian(outputs, flat).reshape(-1, flat.numel())
    z = outputs(flat)
    h_l = dense_hessian(lambda out: loss_fn(out.view_as(z), y), z.reshape(-1))
    expected = j.T @ h_l @ j
    op = C.ggn_operator(model, loss_fn, x, y)
    torch.testing.assert_close(op.dense(), expected)
    assert torch.linalg.eigvalsh(op.dense()).min() > -1e-10  # PSD, unlike the Hessian


def test_fisher_equals_explicit_formula_and_ggn_for_cross_entropy():
    model, x = small_model(out=4)
    y = torch.randint(0, 4, (16,))
    _, flat, outputs = reference_hessian(model, nn.functional.cross_entropy, x, y)
    j = jacobian(outputs, flat)  # [16, 4, n]
    p = torch.softmax(outputs(flat), dim=-1)
    expected = sum(j[i].T @ (torch.diag(p[i]) - torch.outer(p[i], p[i])) @ j[i] for i in range(16)) / 16
    fisher = C.fisher_operator(model, x, likelihood="categorical").dense()
    torch.testing.assert_close(fisher, expected)
    torch.testing.assert_close(fisher, C.ggn_operator(model, nn.functional.cross_entropy, x, y).dense())


def test_gaussian_fisher_is_jtj_over_n(regression):
    model, _, x, y = regression
    _, flat, outputs = reference_hessian(model, nn.functional.mse_loss, x, y)
    j = jacobian(outputs, flat).reshape(-1, flat.numel())
    torch.testing.assert_close(C.fisher_operator(model, x, likelihood="gaussian").dense(), j.T @ j / 16)


def test_top_eigenpairs_of_model_hessian_match_eigvalsh(regression):
    model, loss_fn, x, y = regression
    h, _, _ = reference_hessian(model, loss_fn, x, y)
    expected = torch.linalg.eigvalsh(h)
    op = C.hessian_operator(model, loss_fn, x, y)
    values, vectors = C.top_eigenpairs(op, k=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(values, expected.flip(0)[:3], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(h @ vectors, vectors * values, rtol=1e-6, atol=1e-8)
    smallest = C.smallest_eigenvalue(op, generator=torch.Generator().manual_seed(1))
    assert smallest == pytest.approx(expected[0].item(), rel=1e-8, abs=1e-10)


def constructed(eigenvalues, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=g))
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T


def test_condition_number_of_constructed_quadratics():
    spd = constructed([0.01 * 10 ** (4 * i / 49) for i in range(50)])
    op = C.matrix_operator(spd)
    assert C.condition_number(op, generator=torch.Generator().manual_seed(0)) == pytest.approx(1e4, rel=1e-6)
    # Indefinite: σ = |λ| ⇒ κ = 8 / 0.5.
    indefinite = constructed([-8.0, -1.0, 0.5, 2.0, 4.0])
    assert C.condition_number(C.matrix_operator(indefinite)) == pytest.approx(16.0, rel=1e-8)
    singular = constructed([0.0, 1.0, 2.0])
    assert C.condition_number(C.matrix_operator(singular)) == math.inf


def test_lanczos_top_eigenvalues_converge_with_fewer_steps_than_n():
    eigenvalues = [100.0, 50.0, 20.0] + [1.0 - i / 500 for i in range(497)]
    op = C.matrix_operator(constructed(eigenvalues, seed=3))
    values, _ = C.top_eigenpairs(op, k=3, num_steps=40, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(values, torch.tensor([100.0, 50.0, 20.0], dtype=torch.float64))


def test_hutchinson_trace_and_diagonal_estimate():
    a = constructed([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]) + torch.diag(
        torch.arange(8.0, dtype=torch.float64)
    )
    op = C.matrix_operator(a)
    g = torch.Generator().manual_seed(0)
    trace = C.hutchinson_trace(op, num_samples=4000, generator=g)
    assert trace == pytest.approx(torch.trace(a).item(), rel=0.02)
    diag = C.diagonal_estimate(op, num_samples=4000, generator=g)
    torch.testing.assert_close(diag, torch.diag(a), rtol=0.1, atol=0.3)
    # For a diagonal matrix Rademacher probes are exact.
    d = torch.diag(torch.arange(1.0, 6.0, dtype=torch.float64))
    torch.testing.assert_close(C.diagonal_estimate(C.matrix_operator(d), num_samples=1), torch.diag(d))
    assert C.hutchinson_trace(C.matrix_operator(d), num_samples=1) == pytest.approx(15.0)


def test_spectral_density_integrates_to_one_and_finds_clusters(tmp_path):
    eigenvalues = [1.0] * 60 + [10.0] * 30 + [-3.0] * 10
    op = C.matrix_operator(constructed(eigenvalues, seed=4))
    result = C.spectral_density(
        op, num_probes=20, num_steps=30, sigma=0.3, generator=torch.Generator().manual_seed(0)
    )
    dx = (result.grid[1] - result.grid[0]).item()
    assert result.density.sum().item() * dx == pytest.approx(1.0, abs=0.02)
    torch.testing.assert_close(result.weights.sum(dim=1), torch.ones(20, dtype=torch.float64))

    def mass_near(c):
        mask = (result.grid - c).abs() < 1.5
        return result.density[mask].sum().item() * dx

    # The exact mass of each cluster is 0.6, 0.3, 0.1; SLQ with 20 probes is within a few percent.
    assert mass_near(1.0) == pytest.approx(0.6, abs=0.1)
    assert mass_near(10.0) == pytest.approx(0.3, abs=0.1)
    assert mass_near(-3.0) == pytest.approx(0.1, abs=0.07)
    path = tmp_path / "density.png"
    fig = C.plot_spectral_density(result, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.axes[0].get_yscale() == "log"


def test_invalid_arguments():
    op = C.matrix_operator(torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="k must"):
        C.top_eigenpairs(op, k=4)
    with pytest.raises(ValueError, match="num_samples"):
        C.hutchinson_trace(op, num_samples=0)
    with pytest.raises(ValueError, match="mode"):
        C.hvp(lambda x: x.sum(), torch.ones(2), torch.ones(2), mode="sideways")
    with pytest.raises(ValueError, match="likelihood"):
        C.fisher_vector_product(nn.Linear(2, 2), torch.ones(1, 2), torch.ones(6), likelihood="poisson")
