"""Line searches on a one-dimensional restriction φ(t) = f(x + t d).

Every search takes ``phi(t) -> (φ(t), φ'(t))`` — one function-and-gradient evaluation gives both,
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
* :func:`more_thuente` — Moré & Thuente's search for the same conditions (MINPACK-2's ``dcsrch``,
  the search ``scipy.optimize.line_search_wolfe1`` runs and SciPy's BFGS, CG and Newton-CG try
  first): every trial step is a safeguarded cubic or quadratic interpolation of the last two
  points, also inside a bracket, so a minimiser far from the bracket's middle is reached in a few
  evaluations where bisection would take many.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .validation import check_int, check_number, check_positive

__all__ = ["LineSearchResult", "backtracking_armijo", "more_thuente", "strong_wolfe"]

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


def more_thuente(
    phi: Phi,
    f0: float,
    g0: float,
    t0: float = 1.0,
    *,
    c1: float = 1e-4,
    c2: float = 0.9,
    t_max: float | None = None,
    xtol: float = 1e-14,
    max_iter: int = 25,
) -> LineSearchResult:
    """Find ``t`` with ``φ(t) ≤ φ(0) + c₁ t φ'(0)`` and ``|φ'(t)| ≤ c₂ |φ'(0)|`` (Moré & Thuente 1994).

    Moré, J. J. & Thuente, D. J., "Line search algorithms with guaranteed sufficient decrease",
    ACM TOMS 20(3):286–307 (1994) — the search of MINPACK-2's ``dcsrch``. It keeps an interval
    ``[t_x, t_y]`` (``t_x``: the best step so far) and chooses each trial step by
    :func:`_more_thuente_step` from the values and slopes at ``t_x``, ``t_y`` and the last step:

    * before a minimiser is bracketed the trial steps extrapolate, within
      ``[t + 1.1 (t − t_x), t + 4 (t − t_x)]``;
    * while ``ψ(t) = φ(t) − φ(0) − c₁ t φ'(0)`` has not been seen ≤ 0 with ``φ'(t) ≥ 0`` ("stage 1"),
      the interpolation works on ψ instead of φ, which steers it to steps that satisfy the
      sufficient-decrease condition;
    * once bracketed, an interval that did not shrink by a third in two trials is bisected.

    A non-finite ``φ(t)`` or ``φ'(t)`` closes the bracket at ``t`` and the next trial is half-way
    back to ``t_x``. The search fails — returning the best step seen — when the bracket is narrower
    than ``xtol · t_max-of-bracket`` or rounding stops it from shrinking (MINPACK's warnings), at
    ``t_max``, or after ``max_iter`` evaluations.
    """
    _check_search_args(g0, t0, c1, c2)
    check_int("max_iter", max_iter)
    check_positive("xtol", xtol)
    if t_max is not None:
        check_positive("t_max", t_max)
    t_max = math.inf if t_max is None else t_max
    counted = _CountingPhi(phi, f0, g0)
    sufficient = c1 * g0  # the slope of the sufficient-decrease line
    x = _Trial(0.0, f0, g0)  # the best step: lowest ψ-or-φ, as the search measures it
    y = _Trial(0.0, f0, g0)  # the other end of the interval
    bracketed, stage_one = False, True
    width, width_before = math.inf, math.inf
    low, high = 0.0, t0 + 4.0 * t0  # where the next trial step may lie
    t = min(t0, t_max)
    for _ in range(max_iter):
        f, g = counted(t)
        if not (math.isfinite(f) and math.isfinite(g)):
            bracketed, y = True, _Trial(t, math.inf, math.nan)
            low, high = min(x.t, t), max(x.t, t)
            t = x.t + 0.5 * (t - x.t)
            continue
        decrease = f0 + t * sufficient
        if f <= decrease and abs(g) <= -c2 * g0:
            return counted.done(t, f, g)
        if stage_one and f <= decrease and g >= 0:
            stage_one = False
        if (
            (bracketed and (t <= low or t >= high))
            or (bracketed and high - low <= xtol * high)
            or (t == t_max and f <= decrease and g <= sufficient)
        ):
            break
        trial = _Trial(t, f, g)
        if stage_one and f <= x.f and f > decrease:
            # interpolate ψ, the function less its sufficient-decrease line
            shift = lambda p: _Trial(p.t, p.f - p.t * sufficient, p.g - sufficient)  # noqa: E731
            x, y, t, bracketed = _more_thuente_step(shift(x), shift(y), shift(trial), bracketed, low, high)
            x = _Trial(x.t, x.f + x.t * sufficient, x.g + sufficient)
            y = _Trial(y.t, y.f + y.t * sufficient, y.g + sufficient)
        else:
            x, y, t, bracketed = _more_thuente_step(x, y, trial, bracketed, low, high)
        if bracketed:
            if abs(y.t - x.t) >= 0.66 * width_before:
                t = x.t + 0.5 * (y.t - x.t)
            width_before, width = width, abs(y.t - x.t)
            low, high = min(x.t, y.t), max(x.t, y.t)
        else:
            low, high = t + 1.1 * (t - x.t), t + 4.0 * (t - x.t)
        t = min(max(t, 0.0), t_max)
        if bracketed and (t <= low or t >= high or high - low <= xtol * high):
            break  # MINPACK would now evaluate t_x again and stop: it is the best step already
    return counted.failed()


@dataclass(frozen=True)
class _Trial:
    t: float
    f: float
    g: float


def _more_thuente_step(x: _Trial, y: _Trial, p: _Trial, bracketed: bool, low: float, high: float):
    """One step of Moré & Thuente's interval update (their §4, MINPACK-2's ``dcstep``).

    ``x`` is the best step, ``y`` the interval's other end, ``p`` the step just evaluated and
    ``[low, high]`` where the next one may lie; returns the new ``(x, y)``, the next trial step and
    whether a minimiser is bracketed. The four cases:

    1. ``f_p > f_x``: a minimiser lies between; the cubic step if it is closer to ``t_x`` than the
       quadratic (values and slope at x) step, else half-way between them;
    2. the slopes have opposite signs: bracketed too; of the cubic and the secant step, the one
       farther from ``t_p``;
    3. the slope decreases in magnitude: the cubic step if the cubic tends to infinity in the
       search's direction (else the end of the allowed range), or the secant step, whichever is
       closer to ``t_p`` — kept within 0.66 of the way to ``t_y`` once bracketed;
    4. the slope does not decrease: the cubic through ``p`` and ``y`` if bracketed, else the end of
       the allowed range.
    """
    sign = p.g * math.copysign(1.0, x.g)  # < 0: the slopes at x and p have opposite signs
    far_end = high if p.t > x.t else low
    try:
        if p.f > x.f:  # case 1
            cubic = _mt_cubic(x, p)
            quadratic = x.t + x.g / ((x.f - p.f) / (p.t - x.t) + x.g) / 2 * (p.t - x.t)
            step = cubic if abs(cubic - x.t) < abs(quadratic - x.t) else cubic + (quadratic - cubic) / 2
            bracketed = True
        elif sign < 0:  # case 2
            cubic = _mt_cubic(p, x)
            secant = p.t + p.g / (p.g - x.g) * (x.t - p.t)
            step = cubic if abs(cubic - p.t) > abs(secant - p.t) else secant
            bracketed = True
        elif abs(p.g) < abs(x.g):  # case 3
            cubic = _mt_cubic(p, x, far_end)
            secant = p.t + p.g / (p.g - x.g) * (x.t - p.t)
            if bracketed:
                step = cubic if abs(cubic - p.t) < abs(secant - p.t) else secant
                limit = p.t + 0.66 * (y.t - p.t)
                step = min(limit, step) if p.t > x.t else max(limit, step)
            else:
                step = cubic if abs(cubic - p.t) > abs(secant - p.t) else secant
                step = min(max(step, low), high)
        elif bracketed:  # case 4
            step = _mt_cubic(p, y) if math.isfinite(y.f) else math.nan
        else:
            step = far_end
    except (ZeroDivisionError, OverflowError):
        step = math.nan
    if not math.isfinite(step):  # a degenerate interpolation: bisect, or extrapolate to the end
        step = p.t + 0.5 * (y.t - p.t) if bracketed else far_end
    if p.f > x.f:
        y = p
    else:
        if sign < 0:
            y = x
        x = p
    return x, y, step, bracketed


def _mt_cubic(a: _Trial, b: _Trial, unbounded_end: float | None = None) -> float:
    """Minimiser of the cubic with values and slopes ``a`` and ``b``, measured from ``a`` (NaN if none).

    Written, as in MINPACK, with the scaling ``s = max(|θ|, |f'_a|, |f'_b|)`` against overflow.
    With ``unbounded_end`` (case 3) the square root's argument is clipped at 0 and, where the
    cubic does not turn back up beyond ``a``, the step is ``unbounded_end``.
    """
    try:
        theta = 3 * (a.f - b.f) / (b.t - a.t) + a.g + b.g
        s = max(abs(theta), abs(a.g), abs(b.g))
        radicand = (theta / s) ** 2 - (a.g / s) * (b.g / s)
        if unbounded_end is not None:
            radicand = max(0.0, radicand)
        gamma = s * math.sqrt(radicand)
        if b.t < a.t:
            gamma = -gamma
        p = (gamma - a.g) + theta
        q = ((gamma - a.g) + gamma) + b.g
        if unbounded_end is not None:
            q = (gamma + (b.g - a.g)) + gamma
            r = p / q
            return a.t + r * (b.t - a.t) if r < 0 and gamma != 0 else unbounded_end
        return a.t + p / q * (b.t - a.t)
    except (ZeroDivisionError, ValueError, OverflowError):
        return math.nan
