"""Nonlinear conjugate gradient with FR, PR+, HS and DY β and restarts."""

from __future__ import annotations

from typing import Any

from ..validation import check_choice, check_int, check_positive
from ._solver import LineSearchSolver, hyperparameters
from .direction import BETA_RULES, ConjugateDirection


class NonlinearCG(LineSearchSolver):
    """Nonlinear CG: x ← x + t·d,  d ← −g + β·d  (Fletcher & Reeves 1964; Nocedal & Wright §5.2)::

        d₀ = −g₀;   d_{k+1} = −g_{k+1} + β_{k+1} d_k   (β by ``beta``: "FR", "PR+", "HS", "DY")

    Direction :class:`~.direction.ConjugateDirection` + Moré & Thuente's strong-Wolfe line search
    with c₂ = 0.4, as ``scipy.optimize.minimize(method="CG")`` (c₂ < 1/2 keeps Fletcher–Reeves
    directions descent directions, Al-Baali 1985; Dai–Yuan's need only the Wolfe conditions; a
    PR+ or HS direction that is not a descent direction is replaced by −g). SciPy's initial trial
    step (:func:`~.direction.scipy_first_step`). Restarts with ``d = −g`` every
    ``restart_every`` iterations (default: the number of parameters, n), when two consecutive
    gradients are far from orthogonal (``|g₊ᵀg| ≥ restart_threshold ‖g₊‖²``, Powell 1977), after a
    failed line search and whenever d is not a descent direction.
    State: ``d`` (last direction), ``prev_flat_grad``, ``since_restart``, ``restarts``.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        beta: str = "PR+",
        restart_every: int | None = None,
        restart_threshold: float = 0.2,
        max_iter: int = 1,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        line_search_fn: str | None = "more_thuente",
        c1: float = 1e-4,
        c2: float = 0.4,
    ) -> None:
        defaults = hyperparameters(locals())
        check_choice("beta", beta, BETA_RULES)
        if restart_every is not None:
            check_int("restart_every", restart_every)
        check_positive("restart_threshold", restart_threshold)
        super().__init__(params, defaults)

    def _direction(self) -> ConjugateDirection:
        group = self.group
        return ConjugateDirection(
            group["beta"], group["restart_every"] or self._numel, group["restart_threshold"]
        )
