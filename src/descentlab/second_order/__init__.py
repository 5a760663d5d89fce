"""Second-order and other non-gradient-step solvers, each a descent *direction* plus a *search*.

Design (after optimistix's descents and searches). A solver works on an *objective* of the flat
parameter vector x — :class:`~.objective.ClosureObjective`, which calls the user's closure and
counts the calls — and is assembled from two interchangeable parts:

* a **direction** (:mod:`.direction`) picks ``d`` from the point ``(x, f, ∇f)`` and its own small
  state (−g, Newton, BFGS, L-BFGS, nonlinear CG; HF's truncated-Newton CG, Krylov's subspace,
  K-FAC's preconditioned gradient). Curvature comes from :mod:`descentlab.operators`
  (one Hessian-vector, Gauss–Newton and Fisher product, shared with :mod:`descentlab.curvature`);
* a **search** (:mod:`.search`) sees only the line objective φ(t) = f(x + t d) — value,
  directional derivative, a cache, an evaluation count (:class:`~.objective.LineObjective`) — and
  returns a step: fixed, Armijo backtracking or strong Wolfe (:mod:`descentlab.linesearch`).
  It never touches the solver: the solver moves the parameters and records failures
  (``solver_state["line_search_failed"]``, ``["line_search_failures"]``); a failed search leaves
  the best point it saw.

:func:`~._solver.descend` is the one loop that alternates them (Newton, BFGS, L-BFGS, nonlinear CG,
and BFGS inside Krylov's subspace). Every solver's state — curvature models, histories, damping,
RNG — lives in ``state_dict``, so a run resumes bit for bit.

All are ``torch.optim.Optimizer`` subclasses driven by ``step(closure)``, and a closure may be
written either way:

    def closure():                      # returns the loss: the solver differentiates it
        return loss_fn(model(x), y)     # (or (loss, outputs) for Gauss–Newton / Fisher products)

    def closure():                      # torch-style, as for torch.optim.LBFGS
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss

Solvers that need curvature differentiate the gradient again. For the torch-style closure they
run it under a thread-local ``TorchFunctionMode``, active only during their own closure call, that
answers ``loss.backward()`` with ``torch.autograd.grad(..., create_graph=True)`` (see
:mod:`._closure`); nothing in torch is patched.
"""

from .coordinate import CoordinateDescent
from .hessian_free import HessianFree
from .krylov import KrylovSubspaceDescent
from .natural_gradient import NaturalGradient
from .newton import Newton
from .nonlinear_cg import NonlinearCG
from .quasi_newton import BFGS, LBFGS
from .subgradient import Subgradient

__all__ = [
    "Newton",
    "BFGS",
    "LBFGS",
    "NonlinearCG",
    "HessianFree",
    "NaturalGradient",
    "KrylovSubspaceDescent",
    "CoordinateDescent",
    "Subgradient",
]
