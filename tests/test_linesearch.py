"""Line searches against scipy.optimize.line_search and a NumPy enumeration of backtracking."""

import math

import numpy as np
import pytest
import scipy.optimize

from descentlab.linesearch import backtracking_armijo, strong_wolfe


def rosen_problem(x0):
    x0 = np.asarray(x0, dtype=float)
    d = -scipy.optimize.rosen_der(x0)
    return scipy.optimize.rosen, scipy.optimize.rosen_der, x0, d


def quartic_problem():
    f = lambda x: float(np.sum(x**4 - 3 * x**2 + x))  # noqa: E731
    g = lambda x: 4 * x**3 - 6 * x + 1  # noqa: E731
    x0 = np.array([0.3, -0.2, 1.5])
    return f, g, x0, -g(x0)


def scaled_quadratic(scale):
    a = np.diag([1.0, 10.0, 100.0])
    f = lambda x: 0.5 * float(x @ a @ x)  # noqa: E731
    g = lambda x: a @ x  # noqa: E731
    x0 = np.array([1.0, 1.0, 1.0])
    return f, g, x0, -scale * g(x0)


PROBLEMS = {
    "rosenbrock-start": rosen_problem([-1.2, 1.0]),
    "rosenbrock-5d": rosen_problem([0.5, 1.3, 0.7, 0.8, 1.9]),
    "quartic": quartic_problem(),
    "quadratic-long": scaled_quadratic(1e-3),  # needs expansion
    "quadratic-short": scaled_quadratic(1.0),  # needs zoom
}


def restriction(f, g, x0, d):
    return lambda t: (f(x0 + t * d), float(g(x0 + t * d) @ d))


# SciPy's zoom safeguards its cubic step with the *signed* bracket width, which disables the
# safeguard on a reversed bracket; ours uses the length. The steps then differ (both are valid):
REVERSED_BRACKET = {("rosenbrock-start", 0.1)}


@pytest.mark.parametrize("name", list(PROBLEMS))
@pytest.mark.parametrize("c2", [0.9, 0.1])
def test_strong_wolfe_matches_scipy_line_search(name, c2):
    f, g, x0, d = PROBLEMS[name]
    expected = scipy.optimize.line_search(f, g, x0, d, c1=1e-4, c2=c2)
    result = strong_wolfe(restriction(f, g, x0, d), f(x0), float(g(x0) @ d), c1=1e-4, c2=c2)
    assert expected[0] is not None and result.success
    if (name, c2) not in REVERSED_BRACKET:
        assert result.step == pytest.approx(expected[0], rel=1e-10)
        assert result.value == pytest.approx(expected[3], rel=1e-12)
    else:
        assert result.step == pytest.approx(expected[0], rel=0.05)
    # And the conditions hold.
    g0 = float(g(x0) @ d)
    assert result.value <= f(x0) + 1e-4 * result.step * g0
    assert abs(result.derivative) <= c2 * abs(g0)


def test_backtracking_returns_the_first_armijo_step_of_the_geometric_sequence():
    for name, (f, g, x0, d) in PROBLEMS.items():
        phi = restriction(f, g, x0, d)
        f0, g0 = phi(0.0)
        # NumPy enumeration: the first t = 0.5^k with Armijo's sufficient decrease.
        expected = next(0.5**k for k in range(60) if phi(0.5**k)[0] <= f0 + 1e-4 * 0.5**k * g0)
        result = backtracking_armijo(phi, f0, g0, 1.0, c1=1e-4, shrink=0.5, max_iter=60)
        assert result.success, name
        assert result.step == expected, name


def test_backtracking_backs_off_from_nan():
    phi = lambda t: (math.nan, math.nan) if t > 0.1 else ((t - 0.05) ** 2, 2 * (t - 0.05))  # noqa: E731
    result = backtracking_armijo(phi, 0.0025, -0.1, 1.0)
    assert result.success and result.step <= 0.1 and math.isfinite(result.value)


def test_failure_returns_best_point_seen():
    # φ decreases only very close to 0; with 3 trials the search fails but reports the best step.
    phi = lambda t: ((t - 1e-6) ** 2 - 1e-12 + 10 * t**3, 2 * (t - 1e-6) + 30 * t**2)  # noqa: E731
    f0, g0 = phi(0.0)
    result = backtracking_armijo(phi, f0, g0, 1.0, max_iter=3)
    assert not result.success
    assert result.step == 0.0 and result.value == f0  # nothing better than the start


def test_strong_wolfe_failure_keeps_best():
    phi = lambda t: (-t if t < 1e-3 else 1.0, -1.0 if t < 1e-3 else 1.0)  # noqa: E731
    result = strong_wolfe(phi, 0.0, -1.0, 1.0, max_iter=3, max_zoom=2)
    assert not result.success
    assert result.value <= 0.0


@pytest.mark.parametrize(
    "kwargs, name", [({"c1": 0.0}, "c1"), ({"c1": 0.5, "c2": 0.4}, "c2"), ({"t0": -1.0}, "t0")]
)
def test_invalid_arguments(kwargs, name):
    phi = lambda t: (t * t - t, 2 * t - 1)  # noqa: E731
    with pytest.raises(ValueError, match=name):
        strong_wolfe(phi, 0.0, -1.0, **kwargs)


def test_ascent_direction_is_rejected():
    with pytest.raises(ValueError, match="descent"):
        backtracking_armijo(lambda t: (t, 1.0), 0.0, 1.0)
