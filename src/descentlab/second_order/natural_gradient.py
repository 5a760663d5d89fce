"""Natural gradient: K-FAC for nn.Linear layers, and a generic Fisher-vector + CG variant."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ..linalg import cg
from ..validation import check_choice, check_int, check_number, check_positive
from ._closure import Closure
from ._solver import ClosureSolver, hyperparameters, record_search
from .search import Found

FISHERS = ("auto", "kfac", "cg")


class _LinearCapture:
    """What K-FAC needs from one ``nn.Linear`` during the solver's own closure call: the layer's
    inputs ``a`` (forward hook) and the gradients ``g`` of the loss in its outputs (tensor hook).

    Holds no reference to the optimizer, so the optimizer can be garbage-collected (and its
    ``weakref.finalize`` remove the hooks)."""

    def __init__(self, module: nn.Linear) -> None:
        self.module = module
        self.active = False
        self.inputs: Tensor | None = None
        self.output_grads: Tensor | None = None

    def register(self) -> RemovableHandle:
        return self.module.register_forward_hook(self._save_input)

    def _save_input(self, module, args, output) -> None:
        if self.active and torch.is_grad_enabled() and output.requires_grad:
            self.inputs = args[0].detach().reshape(-1, module.in_features)
            output.register_hook(self._save_output_grad)

    def _save_output_grad(self, grad: Tensor) -> None:
        self.output_grads = grad.detach().reshape(-1, self.module.out_features)

    def take(self) -> tuple[Tensor, Tensor] | None:
        """``(ā, g)`` captured since the last call (``ā`` with a column of ones for the bias), or ``None``."""
        if self.inputs is None or self.output_grads is None:
            return None
        a = self.inputs
        if self.module.bias is not None:
            a = torch.cat([a, torch.ones_like(a[:, :1])], dim=1)
        n = a.shape[0]
        g = self.output_grads * n  # the loss is a mean: per-example gradients are n × these
        self.inputs = self.output_grads = None
        return a, g


def kfac_update_factors(factors: dict[str, Tensor | None], a: Tensor, g: Tensor, decay: float) -> None:
    """Running averages ``A ← ε A + (1 − ε) āᵀā / n`` and ``G ← ε G + (1 − ε) gᵀg / n`` (M&G §5)."""
    n = a.shape[0]
    a_batch, g_batch = a.T @ a / n, g.T @ g / n
    factors["A"] = a_batch if factors["A"] is None else decay * factors["A"] + (1 - decay) * a_batch
    factors["G"] = g_batch if factors["G"] is None else decay * factors["G"] + (1 - decay) * g_batch


def kfac_precondition(factors: dict[str, Tensor | None], grad: Tensor, damping: float) -> Tensor:
    """``(G + π√λ I)⁻¹ ∇W̄ (A + √λ/π I)⁻¹`` with π = √((tr A / dim A) / (tr G / dim G)) (M&G §6.3).

    ``grad`` is ``∇W̄ = [∇W, ∇b]`` (out × in, plus the bias column when there is one).
    """
    a, g = factors["A"], factors["G"]
    pi = torch.sqrt((torch.trace(a) / a.shape[0]) / (torch.trace(g) / g.shape[0])).clamp(1e-4, 1e4)
    root = damping**0.5
    eye_a = torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
    eye_g = torch.eye(g.shape[0], dtype=g.dtype, device=g.device)
    left = torch.linalg.solve(g + pi * root * eye_g, grad)
    return torch.linalg.solve(a + root / pi * eye_a, left.T).T


def _remove_all(handles: list[RemovableHandle]) -> None:
    for handle in handles:
        handle.remove()
    handles.clear()


class NaturalGradient(ClosureSolver):
    """Natural gradient descent ``x ← x − lr (F + λ I)⁻¹ ∇f`` (Amari 1998; notes 002).

    The direction is ``(F + λ I)⁻¹ ∇f``; the search is the fixed step ``lr`` (optionally clipped by
    the predicted KL divergence). Two ways to apply the inverse Fisher:

    * **K-FAC** (Martens & Grosse 2015), when ``model`` is given (``fisher="auto"`` or ``"kfac"``):
      for every ``nn.Linear`` the Fisher block is approximated by ``A ⊗ G`` with running averages
      (decay ``min(1 − 1/k, factor_decay)``) of ``A = E[ā āᵀ]`` and ``G = E[g gᵀ]``, inverted
      with factored Tikhonov damping; parameters outside Linear layers get the plain gradient.
      ``G`` uses the gradients of the actual loss (the *empirical* Fisher) — Martens & Grosse
      sample targets from the model, which a closure cannot do; for the canonical
      cross-entropy/squared losses the difference vanishes as the model fits. The factors live in
      ``state["kfac_factors"]`` (one ``{"A", "G"}`` per Linear layer, in ``model.modules()`` order),
      so ``state_dict`` resumes them. The forward hooks that capture the layers' inputs record only
      during the solver's own closure calls; their handles are kept and removed by :meth:`close`
      (or when the optimizer is garbage-collected).
    * **Fisher-vector products + CG** (``fisher="cg"``, or no ``model``): solve
      ``(F + λ I) d = ∇f`` with at most ``cg_max_iter`` CG iterations. If the closure returns
      ``(loss, outputs)``, ``F v = Jᵀ H_L J v``, which *is* the Fisher for softmax-cross-entropy
      and squared error (Martens 2014, §9.2); with a bare loss only the one-sample empirical Fisher
      ``∇f ∇fᵀ`` is known, and the step becomes ``∇f / (λ + ‖∇f‖²)``.

    ``kl_clip`` (optional) rescales the step so that ``lr² dᵀ ∇f ≤ kl_clip``, bounding the
    predicted KL divergence between successive models (Ba, Grosse & Martens 2017).

    A non-finite gradient or step is a failed step: recorded (``state["line_search_failed"]``), the
    parameters and the K-FAC factors stay as they were.
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
        defaults = hyperparameters(locals(), exclude=("model",))  # the model is not a hyperparameter
        check_positive("lr", lr)
        check_positive("damping", damping)
        if model is not None and not isinstance(model, nn.Module):
            raise ValueError(
                f"model must be an nn.Module (whose nn.Linear layers K-FAC factors) or None, got {model!r}"
            )
        check_choice("fisher", fisher, FISHERS)
        check_number("factor_decay", factor_decay, low=0.0, high=1.0, high_open=True)
        check_int("cg_max_iter", cg_max_iter)
        if kl_clip is not None:
            check_positive("kl_clip", kl_clip)
        if fisher == "kfac" and model is None:
            raise ValueError(
                "fisher='kfac' needs model= (the nn.Module whose nn.Linear layers K-FAC factors)"
            )
        super().__init__(params, defaults)
        use_kfac = model is not None and fisher in ("auto", "kfac")
        self._layers = (
            [_LinearCapture(m) for m in model.modules() if isinstance(m, nn.Linear)] if use_kfac else []
        )
        self._hooks = [layer.register() for layer in self._layers]
        self._finalizer = weakref.finalize(self, _remove_all, self._hooks)

    def close(self) -> None:
        """Remove the K-FAC forward hooks from the model (also done at garbage collection)."""
        self._finalizer()

    @contextlib.contextmanager
    def _capturing(self) -> Iterator[None]:
        for layer in self._layers:
            layer.active = True
        try:
            yield
        finally:
            for layer in self._layers:
                layer.active = False

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:  # type: ignore[override]
        closure = self._require_closure(closure)
        state, group = self.solver_state, self.group
        state["n_iter"] += 1
        if self._layers:
            if not self._finalizer.alive:
                raise RuntimeError("NaturalGradient.step() after close(): the K-FAC hooks are removed")

            def capturing_closure() -> Any:
                with self._capturing():
                    return closure()

            f, g = self._objective(capturing_closure).evaluate()
            if not torch.isfinite(g).all():
                for layer in self._layers:
                    layer.take()  # its statistics belong to a failed step
                return self._failed(f)
            d = self._kfac_direction(g, min(1 - 1 / state["n_iter"], group["factor_decay"]))
        else:
            graph = self._objective(closure).linearise()
            f, g = graph.value, graph.grad
            if not torch.isfinite(g).all():
                return self._failed(f)
            fvp = graph.gauss_newton if graph.outputs is not None else (lambda v: g * torch.dot(g, v))
            result = cg(lambda v: fvp(v) + group["damping"] * v, g, max_iter=group["cg_max_iter"])
            d = result.x if not result.negative_curvature or result.iterations > 0 else g
        if not torch.isfinite(d).all():
            return self._failed(f)
        record_search(state, Found(group["lr"], True))
        scale = group["lr"]
        if group["kl_clip"] is not None:
            predicted_kl = scale * scale * torch.dot(d, g).abs().item()
            if predicted_kl > group["kl_clip"]:
                scale *= (group["kl_clip"] / predicted_kl) ** 0.5
        self._flat.set(self._flat.get() - scale * d)
        return f

    def _failed(self, f: float) -> float:
        record_search(self.solver_state, Found(0.0, False))
        return f

    def _kfac_direction(self, g: Tensor, decay: float) -> Tensor:
        """K-FAC-preconditioned gradient for the Linear layers' parameters, ``g`` elsewhere."""
        state, damping = self.solver_state, self.group["damping"]
        all_factors = state.setdefault("kfac_factors", [{"A": None, "G": None} for _ in self._layers])
        grads = {id(p): piece for p, piece in zip(self._params, self._flat.split(g))}
        updates: dict[int, Tensor] = {}
        for layer, factors in zip(self._layers, all_factors):
            captured = layer.take()
            if captured is not None:
                kfac_update_factors(factors, *captured, decay)
            w, b = layer.module.weight, layer.module.bias
            if factors["A"] is None or id(w) not in grads or (b is not None and id(b) not in grads):
                continue
            grad = grads[id(w)] if b is None else torch.cat([grads[id(w)], grads[id(b)].unsqueeze(1)], dim=1)
            update = kfac_precondition(factors, grad, damping)
            updates[id(w)] = update if b is None else update[:, :-1]
            if b is not None:
                updates[id(b)] = update[:, -1]
        return torch.cat([updates.get(id(p), grads[id(p)]).reshape(-1) for p in self._params])
