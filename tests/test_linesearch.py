"""Line searches against SciPy's (wolfe2 and MINPACK's dcsrch) and a NumPy enumeration of backtracking."""

import math

import numpy as np
import pytest
import scipy.optimize

from descentlab.linesearch import backtracking_armijo, more_thuente, strong_wolfe


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


# SciPy's Moré–Thuente search (MINPACK-2's dcsrch), which its BFGS, CG and Newton-CG try first.
scalar_search_wolfe1 = getattr(
    pytest.importorskip("scipy.optimize._linesearch"), "scalar_search_wolfe1", None
)


@pytest.mark.skipif(scalar_search_wolfe1 is None, reason="SciPy no longer has scalar_search_wolfe1")
@pytest.mark.parametrize("name", list(PROBLEMS))
@pytest.mark.parametrize("c2", [0.9, 0.4, 0.1])
@pytest.mark.parametrize("t0", [1.0, 0.3, 1e-3])
def test_more_thuente_takes_minpacks_steps(name, c2, t0):
    """The same trial steps as SciPy's line_search_wolfe1: the same accepted step, the same count."""
    f, g, x0, d = PROBLEMS[name]
    f0, g0 = f(x0), float(g(x0) @ d)
    trials = []

    def phi(t):
        trials.append(t)
        return f(x0 + t * d)

    # SciPy's first trial is min(1, 1.01 · 2 (φ(0) − old_φ0) / φ'(0)): old_φ0 chosen to make it t0
    old = f0 - t0 * g0 / (2 * 1.01) if t0 < 1 else None
    expected, _, _ = scalar_search_wolfe1(
        phi, lambda t: float(g(x0 + t * d) @ d), f0, old, g0, c1=1e-4, c2=c2, amax=1e100, amin=1e-100
    )
    result = more_thuente(restriction(f, g, x0, d), f0, g0, t0, c1=1e-4, c2=c2, max_iter=100)
    assert expected is not None and result.success
    assert result.step == pytest.approx(expected, rel=1e-12)
    assert result.evaluations == len(trials)
    assert result.value <= f0 + 1e-4 * result.step * g0  # and the strong Wolfe conditions hold
    assert abs(result.derivative) <= c2 * abs(g0)


def test_more_thuente_reaches_a_minimiser_far_from_the_first_step_in_few_evaluations():
    # φ's minimiser is at t = 1e-6 while the first trial is t = 1: N&W's zoom bisects ~20 times.
    phi = lambda t: ((t - 1e-6) ** 2, 2 * (t - 1e-6))  # noqa: E731
    f0, g0 = phi(0.0)
    found = more_thuente(phi, f0, g0, 1.0, c2=0.1)
    zoomed = strong_wolfe(phi, f0, g0, 1.0, c2=0.1, max_zoom=40)
    assert found.success and found.step == pytest.approx(1e-6, rel=0.2)
    assert found.evaluations <= 4 < zoomed.evaluations


def test_more_thuente_backs_off_from_nan_and_inf():
    for bad in (math.nan, math.inf):
        phi = lambda t, bad=bad: (bad, bad) if t > 0.1 else ((t - 0.05) ** 2, 2 * (t - 0.05))  # noqa: E731
        result = more_thuente(phi, 0.0025, -0.1, 1.0, c2=0.1)
        assert result.success and 0 < result.step <= 0.1 and math.isfinite(result.value)
        assert abs(result.derivative) <= 0.1 * 0.1


def test_more_thuente_failure_keeps_best():
    # NaN everywhere but at 0: nothing beats the start, and the search says so instead of raising.
    result = more_thuente(lambda t: (math.nan, math.nan), 1.0, -1.0, 1.0)
    assert not result.success and result.step == 0.0 and result.value == 1.0
    # A kink no smooth model fits: fails, but keeps the best step it saw.
    phi = lambda t: (-t if t < 1e-3 else 1.0, -1.0 if t < 1e-3 else 1.0)  # noqa: E731
    result = more_thuente(phi, 0.0, -1.0, 1.0, max_iter=6)
    assert not result.success and 0 < result.step < 1e-3 and result.value < 0


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
@pytest.mark.parametrize("search", [strong_wolfe, more_thuente])
def test_invalid_arguments(kwargs, name, search):
    phi = lambda t: (t * t - t, 2 * t - 1)  # noqa: E731
    with pytest.raises(ValueError, match=name):
        search(phi, 0.0, -1.0, **kwargs)


def test_ascent_direction_is_rejected():
    with pytest.raises(ValueError, match="descent"):
        backtracking_armijo(lambda t: (t, 1.0), 0.0, 1.0)
