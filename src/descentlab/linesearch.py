"""Line searches on a one-dimensional restriction φ(t) = f(x + t d).

Both searches take ``phi(t) -> (φ(t), φ'(t))`` — one function-and-gradient evaluation gives both,
as it does for a torch closure — plus ``φ(0)`` and ``φ'(0) < 0``. They return a
:class:`LineSearchResult`; on failure the result holds the best (lowest φ) step seen and
``success=False``, so a solver can stay at the best point and record the failure.

* :func:`backtracking_armijo` — shrink ``t`` until the sufficient-decrease (Armijo) condition
  ``φ(t) ≤ φ(0) + c₁ t φ'(0)`` holds (Nocedal & Wright, Algorithm 3.1).
* :func:`strong_wolfe` — bracket and zoom (Nocedal & Wright, Algorithms 3.5 and 3.6) until also
  ``|φ'(t)| ≤ c₂ |φ'(0)|``. The trial steps follow SciPy's ``scalar_search_wolfe2`` (doubling while
  bracketing; cubic interpolation through three points, quadratic and bisection fallbacks while
  zooming), so it takes the same steps as ``scipy.optimize.line_search`` — except that the
  "not too close to the bracket's ends" safeguard uses the bracket's length where SciPy uses its
  signed width, which switches the safeguard off when ``t_lo > t_hi``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .validation import check_int, check_number, check_positive

__all__ = ["LineSearchResult", "backtracking_armijo", "strong_wolfe"]

Phi = Callable[[float], tuple[float, float]]


@dataclass
class LineSearchResult:
    step: float
    value: float
    derivative: float | None
    evaluations: int
    success: bool


class _CountingPhi:
    """Counts evaluations and remembers the best step seen (for failure returns)."""

    def __init__(self, phi: Phi, f0: float, g0: float) -> None:
        self.phi = phi
        self.evaluations = 0
        self.best = (0.0, f0, g0)

    def __call__(self, t: float) -> tuple[float, float]:
        f, g = self.phi(t)
        f, g = float(f), float(g)
        self.evaluations += 1
        if math.isfinite(f) and f < self.best[1]:
            self.best = (t, f, g)
        return f, g

    def done(self, t: float, f: float, g: float | None) -> LineSearchResult:
        return LineSearchResult(t, f, g, self.evaluations, True)

    def failed(self) -> LineSearchResult:
        t, f, g = self.best
        return LineSearchResult(t, f, g, self.evaluations, False)


def _check_search_args(g0: float, t0: float, c1: float, c2: float | None = None) -> None:
    check_number("c1", c1, low=0.0, high=1.0, low_open=True, high_open=True)
    if c2 is not None:
        check_number("c2", c2, low=c1, high=1.0, low_open=True, high_open=True)
    check_positive("t0", t0)
    if not g0 < 0:
        raise ValueError(f"the search direction must be a descent direction: φ'(0) < 0, got {g0!r}")


def backtracking_armijo(
    phi: Phi,
    f0: float,
    g0: float,
    t0: float = 1.0,
    *,
    c1: float = 1e-4,
    shrink: float = 0.5,
    max_iter: int = 30,
) -> LineSearchResult:
    """Backtracking: try ``t = t0, ρ t0, ρ² t0, …`` until ``φ(t) ≤ φ(0) + c₁ t φ'(0)``.

    Non-finite values count as failures of the condition, so the search backs off from NaN/inf.
    """
    _check_search_args(g0, t0, c1)
    check_number("shrink", shrink, low=0.0, high=1.0, low_open=True, high_open=True)
    check_int("max_iter", max_iter)
    counted = _CountingPhi(phi, f0, g0)
    t = t0
    for _ in range(max_iter):
        f, g = counted(t)
        if math.isfinite(f) and f <= f0 + c1 * t * g0:
            return counted.done(t, f, g)
        t *= shrink
    return counted.failed()


def strong_wolfe(
    phi: Phi,
    f0: float,
    g0: float,
    t0: float = 1.0,
    *,
    c1: float = 1e-4,
    c2: float = 0.9,
    t_max: float | None = None,
    max_iter: int = 10,
    max_zoom: int = 10,
) -> LineSearchResult:
    """Find ``t`` with ``φ(t) ≤ φ(0) + c₁ t φ'(0)`` and ``|φ'(t)| ≤ c₂ |φ'(0)|`` (strong Wolfe).

    Bracketing phase (N&W Alg. 3.5): ``t_{i+1} = 2 t_i`` until the sufficient-decrease condition
    fails, φ stops decreasing, or φ' turns non-negative; then :func:`_zoom` (N&W Alg. 3.6).
    """
    _check_search_args(g0, t0, c1, c2)
    check_int("max_iter", max_iter)
    check_int("max_zoom", max_zoom)
    if t_max is not None:
        check_positive("t_max", t_max)
    counted = _CountingPhi(phi, f0, g0)
    t_prev, f_prev, g_prev = 0.0, f0, g0
    t = t0 if t_max is None else min(t0, t_max)
    f, g = counted(t)
    for i in range(max_iter):
        if not math.isfinite(f) or f > f0 + c1 * t * g0 or (i > 0 and f >= f_prev):
            return _zoom(counted, t_prev, t, f_prev, f, g_prev, f0, g0, c1, c2, max_zoom)
        if abs(g) <= -c2 * g0:
            return counted.done(t, f, g)
        if g >= 0:
            return _zoom(counted, t, t_prev, f, f_prev, g, f0, g0, c1, c2, max_zoom)
        t_next = 2.0 * t if t_max is None else min(2.0 * t, t_max)
        if t_next == t:
            break
        t_prev, f_prev, g_prev = t, f, g
        t = t_next
        f, g = counted(t)
    return counted.failed()


def _zoom(counted, t_lo, t_hi, f_lo, f_hi, g_lo, f0, g0, c1, c2, max_zoom) -> LineSearchResult:
    """N&W Algorithm 3.6: shrink the bracket [t_lo, t_hi] (t_lo has the lower φ) until strong Wolfe holds."""
    cubic_margin, quadratic_margin = 0.2, 0.1
    t_rec, f_rec = 0.0, f0
    for i in range(max_zoom):
        width = t_hi - t_lo
        a, b = (t_lo, t_hi) if width > 0 else (t_hi, t_lo)
        t_j = None
        if i > 0 and math.isfinite(f_hi):
            t_j = _cubic_minimizer(t_lo, f_lo, g_lo, t_hi, f_hi, t_rec, f_rec)
            check = cubic_margin * abs(width)
            if t_j is not None and not a + check <= t_j <= b - check:
                t_j = None
        if t_j is None and math.isfinite(f_hi):
            t_j = _quadratic_minimizer(t_lo, f_lo, g_lo, t_hi, f_hi)
            check = quadratic_margin * abs(width)
            if t_j is not None and not a + check <= t_j <= b - check:
                t_j = None
        if t_j is None:
            t_j = t_lo + 0.5 * width
        f_j, g_j = counted(t_j)
        if not math.isfinite(f_j) or f_j > f0 + c1 * t_j * g0 or f_j >= f_lo:
            t_rec, f_rec = t_hi, f_hi
            t_hi, f_hi = t_j, f_j
        else:
            if abs(g_j) <= -c2 * g0:
                return counted.done(t_j, f_j, g_j)
            if g_j * (t_hi - t_lo) >= 0:
                t_rec, f_rec = t_hi, f_hi
                t_hi, f_hi = t_lo, f_lo
            else:
                t_rec, f_rec = t_lo, f_lo
            t_lo, f_lo, g_lo = t_j, f_j, g_j
    return counted.failed()


def _cubic_minimizer(a, fa, fpa, b, fb, c, fc) -> float | None:
    """Minimizer of the cubic through (a, fa), (b, fb), (c, fc) with slope fpa at a; None if undefined."""
    try:
        db, dc = b - a, c - a
        denom = (db * dc) ** 2 * (db - dc)
        rb, rc = fb - fa - fpa * db, fc - fa - fpa * dc
        big_a = (dc**2 * rb - db**2 * rc) / denom
        big_b = (-(dc**3) * rb + db**3 * rc) / denom
        radical = big_b * big_b - 3 * big_a * fpa
        t = a + (-big_b + math.sqrt(radical)) / (3 * big_a)
    except (ZeroDivisionError, ValueError, OverflowError):
        return None
    return t if math.isfinite(t) else None


def _quadratic_minimizer(a, fa, fpa, b, fb) -> float | None:
    """Minimizer of the parabola through (a, fa), (b, fb) with slope fpa at a; None if undefined."""
    try:
        db = b - a
        curvature = (fb - fa - fpa * db) / (db * db)
        t = a - fpa / (2.0 * curvature)
    except (ZeroDivisionError, OverflowError):
        return None
    return t if math.isfinite(t) else None
