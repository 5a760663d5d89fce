"""Second-order and other non-gradient-step solvers, each a descent *direction* plus a *search*.

All are ``torch.optim.Optimizer`` subclasses driven like ``torch.optim.LBFGS``::

    opt = LBFGS(model.parameters())
    def closure():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss
    opt.step(closure)

Shared pieces: :mod:`.direction` (Newton, BFGS, L-BFGS, CG-β directions), :mod:`.search`
(line searches along a direction), :mod:`descentlab.linalg` (CG) and :mod:`descentlab.curvature`.
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
