"""SOAP: Adam run in the eigenbasis of Shampoo's Kronecker-factored preconditioner.

Vyas et al. 2024, "SOAP: improving and stabilizing Shampoo using Adam". Shampoo
preconditions a matrix gradient G by the factors L = E[G·Gᵀ] and R = E[Gᵀ·G]; SOAP instead
rotates G into their eigenbases, ``G' = Q_Lᵀ·G·Q_R``, runs Adam there (one second moment
per rotated coordinate), and rotates the step back. The eigenbases are refreshed every
``precondition_frequency`` steps by one step of power iteration and a QR decomposition,
far cheaper than Shampoo's matrix roots, and Adam's per-coordinate scale needs no grafting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..validation import check_bool, check_int, check_number, check_unit_interval
from .adam import check_betas
from .base import Context, Transform

#: the most tensor dimensions SOAP keeps a factor for (state keys ``GG_0`` …, ``Q_0`` …)
MAX_FACTORS = 8
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
#: the smallest relative shift of the Gram matrices before each QR step (see ``_refresh_basis``)
QR_FLOOR = 1e-8


def merged_shape(shape: torch.Size, max_dim: int) -> list[int]:
    """The shape SOAP preconditions: the first dimension kept, the others merged from the last
    backwards while their product stays at most ``max_dim`` (a ``[128, 64, 3, 3]`` kernel is
    treated as ``[128, 576]``)."""
    if len(shape) == 0:
        return []
    merged, size = [], 1
    for s in reversed(shape[1:]):
        if size * s > max_dim:
            if size > 1:
                merged.append(size)
                size = s
            else:
                merged.append(s)
                size = 1
        else:
            size *= s
    if size > 1:
        merged.append(size)
    return [shape[0], *reversed(merged)]


def _debias(beta: float, step: int) -> float:
    """β for an average that is bias-corrected at every step: 1 − (1 − β)/(1 − βᵏ)."""
    return 1 - (1 - beta) / (1 - beta**step)


class ScaleBySoap(Transform):
    """SOAP's update for a tensor reshaped to ``[n₁, …, n_d]`` (:func:`merged_shape`); with
    ``Q_i`` the eigenbasis of the factor ``L_i`` of dimension i (``GG_i``, for 1 < n_i ≤
    ``max_precond_dim``; vectors only with ``precondition_1d``), and ``G ×ᵢ Q`` the product
    along dimension i::

        G'    = G ×₁ Q₁ᵀ ⋯ ×_d Q_dᵀ                                    rotate in
        m     ← β̂₁·m + (1 − β̂₁)·G',   v ← β̂₂·v + (1 − β̂₂)·G'²          Adam there
        s     = (m / max(√v, ε)) ×₁ Q₁ ⋯ ×_d Q_d                        rotate back
        L_i   ← β̂ₛ·L_i + (1 − β̂ₛ)·G₍ᵢ₎·G₍ᵢ₎ᵀ                            (G₍ᵢ₎: mode-i unfolding)
        every ``precondition_frequency`` steps:
            Q_i ← QR(L_i·Q_i + δ·Q_i), columns ordered by diag(Q_iᵀ·L_i·Q_i) descending,
            m re-expressed in the new basis (v is kept)

    β̂ = 1 − (1 − β)/(1 − βᵗ) makes every average bias-corrected (β₁, β₂ = ``betas``,
    βₛ = ``shampoo_beta``; t counts the steps after the first). δ = max(10⁻⁸, 64·n·ε_dtype)
    times the largest diag entry lifts the Gram matrix's null space, so that QR's completion
    does not depend on rounding noise (heavyball's safeguard). The first step only sets
    ``L_i = G₍ᵢ₎G₍ᵢ₎ᵀ`` and ``Q_i`` from their eigendecompositions and returns 0 (follow the
    chain with :class:`SkipFirstStep` to skip the whole step). Needs each parameter on its own.
    State: ``exp_avg``, ``exp_avg_sq`` (in the rotated basis) and the shaped ``GG_i``, ``Q_i``.
    """

    defaults = {"betas": (0.9, 0.95), "shampoo_beta": 0.95, "eps": 1e-8, "precondition_frequency": 2,
                "max_precond_dim": 2048, "merge_dims": True, "precondition_1d": False}
    state_keys = ("exp_avg", "exp_avg_sq", *(f"GG_{i}" for i in range(MAX_FACTORS)),
                  *(f"Q_{i}" for i in range(MAX_FACTORS)))
    state_depends_on = ()
    needs_step = True

    @property
    def elementwise(self) -> bool:
        return False

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_betas(hp)
        check_unit_interval("shampoo_beta", hp["shampoo_beta"])
        check_number("eps", hp["eps"], low=0.0, low_open=True)
        check_int("precondition_frequency", hp["precondition_frequency"], low=1)
        check_int("max_precond_dim", hp["max_precond_dim"], low=1)
        check_bool("merge_dims", hp["merge_dims"])
        check_bool("precondition_1d", hp["precondition_1d"])

    # -- shapes and state ----------------------------------------------------------------------
    def _shape(self, param: Tensor, hp: Mapping[str, Any]) -> list[int]:
        if hp["merge_dims"]:
            return merged_shape(param.shape, hp["max_precond_dim"])
        return list(param.shape)

    def _factored_dims(self, shape: list[int], hp: Mapping[str, Any]) -> list[bool]:
        numel = 1
        for s in shape:
            numel *= s
        if numel <= 1 or not (len(shape) >= 2 or hp["precondition_1d"]):
            return [False] * len(shape)
        return [1 < s <= hp["max_precond_dim"] for s in shape]

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}

    def init_shaped_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        shape = self._shape(param, hp)
        if len(shape) > MAX_FACTORS:
            raise ValueError(f"SOAP handles at most {MAX_FACTORS} dimensions, got shape {tuple(param.shape)}")
        state = {}
        for i, (size, factored) in enumerate(zip(shape, self._factored_dims(shape, hp))):
            if factored:
                state[f"GG_{i}"] = param.new_zeros(1, size, size)
                state[f"Q_{i}"] = param.new_zeros(1, size, size)
        return state

    # -- the rule ------------------------------------------------------------------------------------
    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        beta1, beta2 = hp["betas"]
        if step == 1:
            return {"m": 0.0, "v": 0.0, "gg": 1.0, "refresh": False}
        # the weights (1 − β̂) of the new term: Adam counts the steps after the first
        return {"m": 1 - _debias(beta1, step - 1), "v": 1 - _debias(beta2, step - 1),
                "gg": 1 - _debias(hp["shampoo_beta"], step),
                "refresh": step % hp["precondition_frequency"] == 0}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        hp, c = ctx.hp, ctx.coef
        shape = self._shape(u, hp)
        factors = [(i, state[f"GG_{i}"], state[f"Q_{i}"]) for i in range(len(shape)) if f"GG_{i}" in state]
        g = u.reshape(1, *shape)  # a leading axis of one, as the reference's batched kernels
        if ctx.step == 1:
            for i, gg, q in factors:
                gg.copy_(_outer(g, i))
                eye = torch.eye(gg.shape[-1], dtype=gg.dtype, device=gg.device)
                q.copy_(torch.flip(torch.linalg.eigh(gg + 1e-30 * eye)[1], [-1]))
            return torch.zeros_like(u)
        m = state["exp_avg"].view(1, *shape)
        v = state["exp_avg_sq"].view(1, *shape)
        rotated = _project(g, factors, back=False)
        m.mul_(1 - c["m"]).add_(rotated * c["m"])  # m·(1 − a) + G'·a, in place
        v.mul_(1 - c["v"]).add_(rotated * rotated * c["v"])
        step = _project(m / v.clamp_min(0).sqrt().clamp(min=hp["eps"]), factors, back=True)
        for i, gg, _ in factors:
            gg.copy_(gg * (1 - c["gg"]) + _outer(g, i) * c["gg"])
        if c["refresh"] and factors:
            _refresh_basis(factors, m)
        return step.reshape(u.shape)


class SkipFirstStep(Transform):
    """``u ← 0`` on a parameter's first step, ``u`` afterwards: for rules whose first call only
    gathers statistics (SOAP's preconditioner), so that no other part of the chain (weight
    decay) moves the weights then either."""

    needs_step = True
    state_depends_on = ()

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        return {"keep": 0.0 if step == 1 else 1.0}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        return u * ctx.coef["keep"]


def _outer(g: Tensor, i: int) -> Tensor:
    """``G₍ᵢ₎·G₍ᵢ₎ᵀ`` for ``g`` of shape ``[1, n₁, …, n_d]``: the sum over every other dimension."""
    letters = _LETTERS[: g.dim() - 1]
    other = letters.replace(letters[i], letters[i].upper())
    return torch.einsum(f"...{letters},...{other}->...{letters[i]}{letters[i].upper()}", g, g)


def _project(x: Tensor, factors: list[tuple[int, Tensor, Tensor]], back: bool) -> Tensor:
    """``x ×ᵢ Q_iᵀ`` for every factored dimension i (``back``: ``x ×ᵢ Q_i``)."""
    if not factors:
        return x
    letters = _LETTERS[: x.dim() - 1]
    bases = ",".join("..." + (letters[i] + letters[i].upper())[:: -1 if back else 1] for i, _, _ in factors)
    out = "".join(c.upper() if c.upper() in bases else c for c in letters)
    return torch.einsum(f"...{letters},{bases}->...{out}", x, *[q for _, _, q in factors])


def _refresh_basis(factors: list[tuple[int, Tensor, Tensor]], m: Tensor) -> None:
    """One power-iteration and QR step per factor, then ``m`` re-expressed in the new bases."""
    new_bases = []
    for _, gg, q in factors:
        gram_basis = gg @ q
        eig = torch.einsum("...ij,...ij->...j", q, gram_basis)  # diag(Qᵀ·L·Q): eigenvalue estimates
        magnitude = eig.abs().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(gg.dtype).tiny)
        noise = min(64 * gg.shape[-1] * torch.finfo(gg.dtype).eps, 0.125)
        lift = torch.maximum(torch.as_tensor(QR_FLOOR, dtype=gg.dtype, device=gg.device),
                             torch.as_tensor(noise, dtype=gg.dtype, device=gg.device))
        work = gram_basis + (lift * magnitude).unsqueeze(-1) * q
        order = torch.argsort(eig, descending=True)
        index = order.unsqueeze(-2).expand_as(work)
        basis, triangular = torch.linalg.qr(work.gather(-1, index))
        signs = triangular.diagonal(dim1=-2, dim2=-1).sign()
        basis = basis * torch.where(signs != 0, signs, torch.ones_like(signs)).unsqueeze(-2)
        new_bases.append(work.scatter(-1, index, basis))  # each column back at its old position
    letters = _LETTERS[: m.dim() - 1]
    targets = _LETTERS[m.dim() - 1 : 2 * (m.dim() - 1)]
    dims = [i for i, _, _ in factors]
    old = ",".join(f"...{letters[i].upper()}{letters[i]}" for i in dims)
    new = ",".join(f"...{letters[i].upper()}{targets[i]}" for i in dims)
    out = "".join(targets[i] if i in dims else letters[i] for i in range(len(letters)))
    m.copy_(torch.einsum(f"...{letters},{old},{new}->...{out}", m, *[q for _, _, q in factors], *new_bases))
    for (_, _, q), fresh in zip(factors, new_bases):
        q.copy_(fresh)
