"""Natural gradient: K-FAC for nn.Linear layers, and a generic Fisher-vector + CG variant."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..linalg import cg
from ._closure import Closure, ClosureSolver, check_choice, check_hyper, check_int

FISHERS = ("auto", "kfac", "cg")


class _LinearFactors:
    """Running Kronecker factors of one nn.Linear: ``A = E[ā āᵀ]`` (inputs, with a 1 for the bias)
    and ``G = E[g gᵀ]`` (per-example output gradients)."""

    def __init__(self, module: nn.Linear) -> None:
        self.module = module
        self.inputs: Tensor | None = None
        self.output_grads: Tensor | None = None
        self.a: Tensor | None = None
        self.g: Tensor | None = None
        module.register_forward_hook(self._save_input)

    def _save_input(self, module, args, output) -> None:
        if torch.is_grad_enabled() and output.requires_grad:
            self.inputs = args[0].detach().reshape(-1, module.in_features)
            output.register_hook(self._save_output_grad)

    def _save_output_grad(self, grad: Tensor) -> None:
        self.output_grads = grad.detach().reshape(-1, self.module.out_features)

    def update(self, decay: float) -> bool:
        if self.inputs is None or self.output_grads is None:
            return False
        a = self.inputs
        if self.module.bias is not None:
            a = torch.cat([a, torch.ones_like(a[:, :1])], dim=1)
        n = a.shape[0]
        g = self.output_grads * n  # the loss is a mean: per-example gradients are n × these
        a_batch, g_batch = a.T @ a / n, g.T @ g / n
        self.a = a_batch if self.a is None else decay * self.a + (1 - decay) * a_batch
        self.g = g_batch if self.g is None else decay * self.g + (1 - decay) * g_batch
        self.inputs = self.output_grads = None
        return True

    def precondition(self, damping: float) -> tuple[Tensor, Tensor | None]:
        """``(G + π√λ I)⁻¹ ∇W̄ (A + √λ/π I)⁻¹`` with π = √((tr A / dim A) / (tr G / dim G)) (M&G §6.3)."""
        w, b = self.module.weight, self.module.bias
        grad = w.grad if b is None else torch.cat([w.grad, b.grad.unsqueeze(1)], dim=1)
        pi = torch.sqrt(
            (torch.trace(self.a) / self.a.shape[0]) / (torch.trace(self.g) / self.g.shape[0])
        ).clamp(1e-4, 1e4)
        root = damping**0.5
        eye_a = torch.eye(self.a.shape[0], dtype=self.a.dtype, device=self.a.device)
        eye_g = torch.eye(self.g.shape[0], dtype=self.g.dtype, device=self.g.device)
        left = torch.linalg.solve(self.g + pi * root * eye_g, grad)
        update = torch.linalg.solve(self.a + root / pi * eye_a, left.T).T
        if b is None:
            return update, None
        return update[:, :-1], update[:, -1]


class NaturalGradient(ClosureSolver):
    """Natural gradient descent ``x ← x − lr (F + λ I)⁻¹ ∇f`` (Amari 1998; notes 002).

    Two ways to apply the inverse Fisher:

    * **K-FAC** (Martens & Grosse 2015), when ``model`` is given (``fisher="auto"`` or ``"kfac"``):
      for every ``nn.Linear`` the Fisher block is approximated by ``A ⊗ G`` with running averages
      (decay ``min(1 − 1/k, factor_decay)``) of ``A = E[ā āᵀ]`` and ``G = E[g gᵀ]``, inverted
      with factored Tikhonov damping; parameters outside Linear layers get the plain gradient.
      ``G`` uses the gradients of the actual loss (the *empirical* Fisher) — Martens & Grosse
      sample targets from the model, which a closure cannot do; for the canonical
      cross-entropy/squared losses the difference vanishes as the model fits.
    * **Fisher-vector products + CG** (``fisher="cg"``, or no ``model``): solve
      ``(F + λ I) d = ∇f`` with at most ``cg_max_iter`` CG iterations. If the closure returns
      ``(loss, outputs)``, ``F v = Jᵀ H_L J v``, which *is* the Fisher for softmax-cross-entropy
      and squared error (Martens 2014, §9.2); with a bare loss only the one-sample empirical Fisher
      ``∇f ∇fᵀ`` is known, and the step becomes ``∇f / (λ + ‖∇f‖²)``.

    ``kl_clip`` (optional) rescales the step so that ``lr² dᵀ ∇f ≤ kl_clip``, bounding the
    predicted KL divergence between successive models (Ba, Grosse & Martens 2017).
    """

    def __init__(
        self,
        params: Any,
        lr: float = 0.1,
        damping: float = 0.1,
        model: nn.Module | None = None,
        fisher: str = "auto",
        factor_decay: float = 0.95,
        cg_max_iter: int = 20,
        kl_clip: float | None = None,
    ) -> None:
        check_hyper("lr", lr, low_open=True)
        check_hyper("damping", damping, low_open=True)
        check_choice("fisher", fisher, FISHERS)
        check_hyper("factor_decay", factor_decay, high=1.0, high_open=True)
        check_int("cg_max_iter", cg_max_iter)
        if kl_clip is not None:
            check_hyper("kl_clip", kl_clip, low_open=True)
        if fisher == "kfac" and model is None:
            raise ValueError(
                "fisher='kfac' needs model= (the nn.Module whose nn.Linear layers K-FAC factors)"
            )
        defaults = dict(
            lr=lr,
            damping=damping,
            fisher=fisher,
            factor_decay=factor_decay,
            cg_max_iter=cg_max_iter,
            kl_clip=kl_clip,
        )
        super().__init__(params, defaults)
        use_kfac = model is not None and fisher in ("auto", "kfac")
        self._factors = (
            [_LinearFactors(m) for m in model.modules() if isinstance(m, nn.Linear)] if use_kfac else []
        )

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:  # type: ignore[override]
        closure = self._require_closure(closure)
        state, group = self.solver_state, self.group
        state["n_iter"] += 1
        if self._factors:
            f, g = self._evaluate(closure)
            d = self._kfac_direction(g, min(1 - 1 / state["n_iter"], group["factor_decay"]))
        else:
            graph = self._evaluate_graph(closure)
            f, g = graph.value, graph.grad
            fvp = graph.ggn if graph.outputs is not None else (lambda v: g * torch.dot(g, v))
            result = cg(lambda v: fvp(v) + group["damping"] * v, g, max_iter=group["cg_max_iter"])
            d = result.x if not result.negative_curvature or result.iterations > 0 else g
        scale = group["lr"]
        if group["kl_clip"] is not None:
            predicted_kl = scale * scale * torch.dot(d, g).abs().item()
            if predicted_kl > group["kl_clip"]:
                scale *= (group["kl_clip"] / predicted_kl) ** 0.5
        self._set_flat_params(self._flat_params() - scale * d)
        return f

    def _kfac_direction(self, g: Tensor, decay: float) -> Tensor:
        damping = self.group["damping"]
        updates: dict[int, Tensor] = {}
        for factors in self._factors:
            if not factors.update(decay) and factors.a is None:
                continue
            w, b = factors.module.weight, factors.module.bias
            if w.grad is None:
                continue
            dw, db = factors.precondition(damping)
            updates[id(w)] = dw
            if b is not None:
                updates[id(b)] = db
        pieces, offset = [], 0
        for p in self._params:
            n = p.numel()
            pieces.append(updates[id(p)].reshape(-1) if id(p) in updates else g[offset : offset + n])
            offset += n
        return torch.cat(pieces)
