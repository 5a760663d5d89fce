"""Landscapes against NumPy/SciPy transcriptions of their formulas; minima checked numerically."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

from descentlab import landscapes as L

RNG = np.random.default_rng(0)


def np_two_minima(v):
    x, y = v[..., 0], v[..., 1]
    return (-2 * np.exp(-((x - 1) ** 2 + y**2) / 0.2) - 6 * np.exp(-((x + 1) ** 2 + y**2) / 0.2)
            + x**2 + y**2)


def np_beale(v):
    x, y = v[..., 0], v[..., 1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def np_himmelblau(v):
    x, y = v[..., 0], v[..., 1]
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def np_rastrigin(v):
    return 10 * v.shape[-1] + (v**2 - 10 * np.cos(2 * np.pi * v)).sum(-1)


def np_saddle(v):
    x, y = v[..., 0], v[..., 1]
    return x**4 / 4 - x**2 / 2 + y**2


def np_plateau(v):
    return 1 - np.exp(-(v**2).sum(-1) / 2)


def np_ravine(v):
    x, y = v[..., 0], v[..., 1]
    return 0.05 * (x - 2) ** 2 + 10 * (y - x**2 / 4) ** 2


def np_strongly_convex(v):
    x, y = v[..., 0], v[..., 1]
    return (x - 1) ** 2 + 4 * (y - 0.5) ** 2 + x * y


REFERENCES = {
    "two-minima": (L.two_minima, np_two_minima),
    "beale": (L.beale, np_beale),
    "himmelblau": (L.himmelblau, np_himmelblau),
    "rastrigin": (L.rastrigin, np_rastrigin),
    "rosenbrock": (L.rosenbrock, lambda v: np.apply_along_axis(scipy.optimize.rosen, -1, v)),
    "saddle": (L.saddle, np_saddle),
    "plateau": (L.plateau, np_plateau),
    "ravine": (L.ravine, np_ravine),
    "strongly-convex": (L.strongly_convex, np_strongly_convex),
}


def _points(landscape, count=50):
    low = np.array([lo for lo, _ in landscape.domain])
    high = np.array([hi for _, hi in landscape.domain])
    return low + (high - low) * RNG.random((count, landscape.dim))


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_values_match_a_numpy_transcription(name):
    factory, reference = REFERENCES[name]
    landscape = factory()
    points = _points(landscape)
    got = landscape(torch.from_numpy(points)).numpy()
    np.testing.assert_allclose(got, reference(points), rtol=1e-12, atol=1e-12)
    # a grid of shape (a, b, dim) evaluates point-wise
    grid = points.reshape(5, 10, landscape.dim)
    np.testing.assert_allclose(landscape(torch.from_numpy(grid)).numpy(), reference(points).reshape(5, 10))


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_known_minima_are_minima_of_the_reference(name):
    """Every listed minimum is where SciPy's Nelder–Mead on the NumPy formula ends when started nearby."""
    factory, reference = REFERENCES[name]
    landscape = factory()
    for point, value in zip(landscape.minima, landscape.minimum_values):
        start = np.asarray(point) + 0.05
        found = scipy.optimize.minimize(reference, start, method="Nelder-Mead",
                                        options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20000})
        np.testing.assert_allclose(point, found.x, atol=1e-5)
        assert value == pytest.approx(float(reference(np.asarray(point))), abs=1e-12)
        assert landscape.contains(point)


def test_two_minima_global_well_is_the_deeper_one_found_by_brute_force():
    landscape = L.two_minima()
    grid = scipy.optimize.brute(np_two_minima, ((-2, 2), (-1.5, 1.5)), Ns=81, finish=scipy.optimize.fmin)
    np.testing.assert_allclose(landscape.minima[0], grid, atol=1e-4)
    assert landscape.minimum_values[0] < landscape.minimum_values[1]
    assert landscape.minima[0][0] < 0 < landscape.minima[1][0]  # deep well on the left (x ≈ −1)


def test_himmelblau_has_four_distinct_global_minima():
    landscape = L.himmelblau()
    points = np.array(landscape.minima)
    assert len(np.unique(points.round(3), axis=0)) == 4
    np.testing.assert_allclose(landscape.minimum_values, 0, atol=1e-12)


def test_rosenbrock_n_dimensional_matches_scipy():
    landscape = L.rosenbrock(dim=5)
    points = RNG.normal(size=(20, 5))
    np.testing.assert_allclose(landscape(torch.from_numpy(points)).numpy(),
                               [scipy.optimize.rosen(p) for p in points], rtol=1e-12)
    np.testing.assert_allclose(landscape.minima[0], np.ones(5), atol=1e-6)


@pytest.mark.parametrize("kappa,dim", [(100.0, 2), (10.0, 5)])
def test_quadratic_has_the_requested_condition_number(kappa, dim):
    landscape = L.rotated_quadratic(kappa=kappa, dim=dim)
    hessian = torch.autograd.functional.hessian(landscape.fn, torch.zeros(dim, dtype=torch.float64)).numpy()
    eigenvalues = np.linalg.eigvalsh(hessian)
    assert eigenvalues.max() / eigenvalues.min() == pytest.approx(kappa, rel=1e-9)
    if dim == 2:  # rotated: the Hessian is not diagonal
        assert abs(hessian[0, 1]) > 1


def test_strongly_convex_minimum_solves_the_linear_system():
    # ∇f = (2(x − 1) + y, 8(y − 0.5) + x) = 0
    solution = np.linalg.solve([[2.0, 1.0], [1.0, 8.0]], [2.0, 4.0])
    np.testing.assert_allclose(L.strongly_convex().minima[0], solution, atol=1e-8)


def test_saddle_has_a_saddle_at_the_origin():
    landscape = L.saddle()
    hessian = torch.autograd.functional.hessian(landscape.fn, torch.zeros(2, dtype=torch.float64)).numpy()
    eigenvalues = np.linalg.eigvalsh(hessian)
    assert eigenvalues[0] < 0 < eigenvalues[1]


def test_least_squares_minimum_is_numpys_polyfit():
    landscape = L.least_squares()
    x, y = (t.numpy() for t in landscape.data)
    slope, intercept = np.polyfit(x, y, 1)
    np.testing.assert_allclose(landscape.minima[0], (slope, intercept), atol=1e-10)
    assert not landscape.stochastic


@pytest.mark.parametrize("batch_size", [1, 8, 10])
def test_mini_batches_cover_every_point_once_per_epoch(batch_size):
    landscape = L.least_squares(batch_size=batch_size, n=40)
    draw = landscape.sampler(seed=3)
    per_epoch = -(-40 // batch_size)
    for _ in range(2):
        batches = [draw() for _ in range(per_epoch)]
        assert sorted(torch.cat(batches).tolist()) == list(range(40))
        assert all(len(b) <= batch_size for b in batches)


def test_mini_batch_loss_is_the_mean_over_the_batch():
    landscape = L.least_squares(batch_size=4)
    x, y = (t.numpy() for t in landscape.data)
    batch = landscape.sampler(0)()
    w = torch.tensor([0.3, -0.2], dtype=torch.float64)
    expected = 0.5 * np.mean((0.3 * x[batch.numpy()] - 0.2 - y[batch.numpy()]) ** 2)
    assert float(landscape.sample_loss(w, batch)) == pytest.approx(expected, rel=1e-12)


def test_gradient_noise_has_mean_zero_and_the_requested_sigma():
    landscape = L.with_gradient_noise(L.two_minima(), 0.5)
    draw = landscape.sampler(seed=1)
    w = torch.tensor([0.2, -0.4], dtype=torch.float64, requires_grad=True)
    (true,) = torch.autograd.grad(landscape(w), w)
    seen = []
    for _ in range(1500):
        (g,) = torch.autograd.grad(landscape.sample_loss(w, draw()), w)
        seen.append((g - true).numpy())
    seen = np.array(seen)
    np.testing.assert_allclose(seen.mean(0), 0, atol=0.05)
    np.testing.assert_allclose(seen.std(0), 0.5, rtol=0.08)


def test_same_seed_same_noise():
    landscape = L.with_gradient_noise(L.saddle(), 0.1)
    a, b = landscape.sampler(7), landscape.sampler(7)
    for _ in range(5):
        assert torch.equal(a(), b())


@pytest.mark.parametrize("call,message", [
    (lambda: L.rotated_quadratic(kappa=0.5), "kappa"),
    (lambda: L.rosenbrock(dim=1), "dim"),
    (lambda: L.least_squares(batch_size=0), "batch_size"),
    (lambda: L.with_gradient_noise(L.saddle(), -1.0), "sigma"),
    (lambda: L.get_landscape("two-minimum"), "two-minima"),
])
def test_bad_arguments_name_the_parameter(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_get_landscape_parses_specs():
    landscape = L.get_landscape("Quadratic(kappa=10)")
    assert landscape.name == "quadratic"
    hessian = torch.autograd.functional.hessian(landscape.fn, torch.zeros(2, dtype=torch.float64)).numpy()
    eigenvalues = np.linalg.eigvalsh(hessian)
    assert eigenvalues.max() / eigenvalues.min() == pytest.approx(10)


def test_a_landscape_checks_its_own_fields():
    base = L.two_minima()
    from dataclasses import replace

    for changes, message in [({"dim": 0}, "dim"), ({"start": (0.0,)}, "start must have 2"),
                             ({"domain": ((1.0, -1.0), (0.0, 1.0))}, r"domain\[0\]"),
                             ({"minima": ((0.0, 0.0, 0.0), (1.0, 0.0))}, r"minima\[0\]"),
                             ({"minimum_values": (0.0,)}, "one length"),
                             ({"fn": None}, "fn must be callable"),
                             ({"name": ""}, "name"), ({"noise": -0.1}, "noise"),
                             ({"batch_size": 0}, "batch_size")]:
        with pytest.raises(ValueError, match=message):
            replace(base, **changes)
    with pytest.raises(ValueError, match="landscape must be a Landscape"):
        L.with_gradient_noise("saddle", 0.1)
    with pytest.raises(ValueError, match="seed"):
        L.rotated_quadratic(seed=-1)
