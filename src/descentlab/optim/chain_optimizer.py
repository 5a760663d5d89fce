"""Turn any chain of transforms into a ``torch.optim.Optimizer``.

How a step runs
---------------
Parameters of a group that share dtype and device form a *bucket*. Each bucket keeps its
state in flat buffers (one per state key), and ``optimizer.state[p]`` holds views into
them, under torch's key names — so ``state_dict``/``load_state_dict`` behave exactly as
torch's, while a step can treat the whole bucket as one tensor:

* **flat unit** (the usual case: every parameter of the bucket has a dense gradient and
  all have taken the same number of steps): the gradients are gathered into one flat
  buffer (no copy for a single parameter), the chain runs once on it, and the step is
  subtracted from the parameters with one ``_foreach_add_`` (a final learning-rate scaling
  is folded into it, saving a pass);
* **per-parameter units** otherwise (some gradients missing, or a transform that needs
  each parameter on its own such as per-parameter norm clipping): the same chain runs on
  each parameter's views.

Either way the math is the transforms' single implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from ..transforms.base import Context, Transform, scalar_state_dtype
from . import fast as fastpath

__all__ = ["ChainOptimizer", "from_chain", "NonFiniteError"]

NonFinitePolicy = Literal["raise", "skip"] | None


class NonFiniteError(FloatingPointError):
    """A gradient contained NaN or ±inf and the optimizer's policy is ``"raise"``."""


@dataclass
class _Bucket:
    """Parameters of one group with one dtype and device, with flat state buffers."""

    params: list[Tensor]
    numels: list[int]
    flat_state: dict[str, Tensor] = field(default_factory=dict)
    scalars: dict[str, Tensor] = field(default_factory=dict)  # key -> [n_params]
    steps: Tensor | None = None  # [n_params], torch's scalar dtype
    step: int = 0  # valid while ``uniform``
    uniform: bool = True  # every parameter has taken the same number of steps
    flat_ok: bool = True  # contiguous dense parameters: can run as one flat unit
    flat_views: list[Tensor] = field(default_factory=list)
    # fast path: parameters and gradients stored in one flat buffer each
    fast: bool = False
    flat_param: Tensor | None = None
    flat_grad: Tensor | None = None
    grad_views: list[Tensor] = field(default_factory=list)


@dataclass
class _Unit:
    """One call of the chain: a flat bucket or a single parameter."""

    group: dict
    grad: Tensor
    state: dict[str, Tensor]
    step: int
    load_param: Callable[[], Tensor]
    apply: Callable[[Tensor, float], None]  # w ← w − factor·s
    finish: Callable[[], None]
    describe: Callable[[], list[tuple[str, Tensor]]]
    fused: Callable[[], None] | None = None  # fast path: runs chain and update in one call


class ChainOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose update rule is a :class:`~descentlab.transforms.Transform`.

    Args:
        params: parameters or param groups, as for any torch optimizer.
        transform: the update rule; usually ``chain(...)`` of transforms.
        nonfinite: ``None`` (default, no check, no cost), ``"raise"`` (raise
            :class:`NonFiniteError` naming the parameter) or ``"skip"`` (skip the whole
            step, leaving parameters and state untouched; counted in ``skipped_steps``).
        fast: the execution path. ``None`` (default): the compiled fast path for every
            bucket of at least ``2**20`` elements when ``torch.compile`` works here, eager
            otherwise; ``True``: fast path for every bucket (a warning and the eager path
            if compilation is unavailable); ``False``: always eager. See
            :mod:`descentlab.optim.fast`: in fast mode the parameters and gradients of a
            bucket are stored in one flat buffer (parameters become views into it), and
            :meth:`zero_grad` zeroes that buffer in place.
        extra_defaults: further param-group entries the chain does not read (kept for
            torch compatibility, e.g. Adam's ``decoupled_weight_decay``).
        **hyperparameters: overrides of the transform's defaults (e.g. ``lr=0.1``).

    Example — RMSprop with Nesterov momentum and clipping, which torch does not offer::

        from descentlab.transforms import chain, ClipByGlobalNorm, ScaleByRms, Momentum, ScaleByLearningRate
        rule = chain(ClipByGlobalNorm(max_norm=1.0), ScaleByRms(alpha=0.9),
                     Momentum(momentum=0.9, nesterov=True), ScaleByLearningRate(lr=1e-3))
        opt = ChainOptimizer(model.parameters(), rule)
    """

    #: keep ``state[p]["step"]`` (torch does for every optimizer but SGD).
    store_step: bool | None = None
    #: create state for every parameter up front (torch's Adagrad does), not at its first gradient.
    state_for_all_params: bool = False

    def __init__(
        self,
        params: Iterable[Any],
        transform: Transform,
        *,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
        extra_defaults: dict[str, Any] | None = None,
        **hyperparameters: Any,
    ) -> None:
        if not isinstance(transform, Transform):
            raise TypeError(f"transform must be a Transform, got {type(transform).__name__}")
        unknown = set(hyperparameters) - set(transform.defaults)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unknown hyperparameter(s) {sorted(unknown)}; "
                f"valid: {sorted(transform.defaults)}"
            )
        if nonfinite not in (None, "raise", "skip"):
            raise ValueError(f"nonfinite must be None, 'raise' or 'skip', got {nonfinite!r}")
        if fast not in (None, True, False):
            raise ValueError(f"fast must be None (auto), True or False, got {fast!r}")
        self.transform = transform
        self.nonfinite = nonfinite
        self.fast = fast
        self.skipped_steps = 0
        self._buckets: list[list[_Bucket]] | None = None
        self._bucketed: set[int] = set()
        self._all_bucketed = False
        defaults = {**transform.defaults, **(extra_defaults or {}), **hyperparameters}
        super().__init__(params, defaults)
        self.register_load_state_dict_post_hook(ChainOptimizer._after_load)

    # -- torch.optim.Optimizer API -----------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        merged = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        self.transform.validate(merged)
        super().add_param_group(param_group)
        self._buckets = None
        if any(torch.is_complex(p) for p in self.param_groups[-1]["params"]):
            self.param_groups.pop()
            raise ValueError(
                f"{type(self).__name__} does not support complex parameters; optimise "
                "torch.view_as_real(p) of a real parameter instead"
            )

    def zero_grad(self, set_to_none: bool = True) -> None:
        """As torch's, except that fast-path buckets zero their flat gradient buffer in place
        (their gradients stay views into it, so the next backward writes straight into it)."""
        fast_params: set[int] = set()
        for buckets in self._buckets or []:
            for bucket in buckets:
                if bucket.fast:
                    bucket.flat_grad.zero_()
                    for p, view in zip(bucket.params, bucket.grad_views):
                        p.grad = view
                        fast_params.add(id(p))
        if not fast_params:
            super().zero_grad(set_to_none)
            return
        for group in self.param_groups:
            for p in group["params"]:
                if id(p) not in fast_params and p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.detach_().requires_grad_(False).zero_()

    # torch's Optimizer pickles only defaults, state and param groups: keep the rule too,
    # so that copy.deepcopy and pickle give a working optimizer.
    _PICKLED = ("transform", "nonfinite", "fast", "skipped_steps")

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.update({name: getattr(self, name) for name in self._PICKLED})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._buckets = None

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one update; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        units = self._make_units()
        if not units:
            return loss
        if self.nonfinite is not None and not self._all_finite(units):
            self.skipped_steps += 1
            return loss
        self._run(units)
        return loss

    # -- running the chain ---------------------------------------------------------------
    def _run(self, units: list[_Unit]) -> None:
        for unit in units:
            if unit.fused is not None:
                unit.fused()
                unit.finish()
        units = [unit for unit in units if unit.fused is None]
        if not units:
            return
        updates = [unit.grad for unit in units]
        contexts = [Context(u.group, u.step, load_param=u.load_param) for u in units]
        leaves, last = self.transform.leaves, None
        if leaves and type(leaves[-1]).scale_factor is not Transform.scale_factor:
            # A final pure scaling (the learning rate) is folded into the update below.
            leaves, last = leaves[:-1], leaves[-1]
        for t in leaves:
            if t.has_statistic:
                stat = t.statistic(updates, units[0].group)
                for ctx in contexts:
                    ctx.stats[t] = stat
            for ctx in contexts:
                ctx.coef = t.coefficients(ctx.hp, ctx.step)
            updates = [
                t.update(u, unit.state, ctx) for u, unit, ctx in zip(updates, units, contexts)
            ]
        for unit, s, ctx in zip(units, updates, contexts):
            factor = 1.0
            if last is not None:
                ctx.coef = last.coefficients(ctx.hp, ctx.step)
                factor = last.scale_factor(ctx)
            unit.apply(s, factor)
            unit.finish()

    def _all_finite(self, units: list[_Unit]) -> bool:
        for unit in units:
            if bool(torch.isfinite(unit.grad).all()):
                continue
            if self.nonfinite == "skip":
                return False
            for name, grad in unit.describe():
                if not bool(torch.isfinite(grad).all()):
                    raise NonFiniteError(
                        f"{type(self).__name__}: non-finite gradient (NaN or inf) in "
                        f"parameter {name}"
                    )
        return True

    # -- buckets and units -----------------------------------------------------------------
    def _after_load(self) -> None:
        # A state_dict (possibly torch.optim's) may lack descentlab-only hyperparameters.
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        self._buckets = None

    @property
    def _stores_step(self) -> bool:
        return self.transform.needs_step if self.store_step is None else self.store_step

    def _make_units(self) -> list[_Unit]:
        if self._buckets is None or self._has_unbucketed_gradients() or self._state_keys_changed():
            self._rebuild_buckets()
        units: list[_Unit] = []
        flat_allowed = self.transform.elementwise
        for gi, (group, buckets) in enumerate(zip(self.param_groups, self._buckets)):
            for bucket in buckets:
                have = self._adopt_gradients(bucket) if bucket.fast else self._with_gradients(bucket)
                if not have:
                    continue
                # (a fast bucket whose gradients were all adopted has only dense gradients)
                for i in () if bucket.fast and isinstance(have, range) else have:
                    if bucket.params[i].grad.is_sparse:
                        raise RuntimeError(
                            f"{type(self).__name__} does not support sparse gradients "
                            f"(parameter {self._param_name(group, gi, bucket.params[i])})"
                        )
                complete = len(have) == len(bucket.params)
                if complete and bucket.uniform and bucket.fast:
                    units.append(self._fast_unit(group, gi, bucket))
                elif complete and bucket.uniform and bucket.flat_ok and flat_allowed:
                    units.append(self._flat_unit(group, gi, bucket))
                else:
                    bucket.uniform = bucket.uniform and complete
                    units.extend(self._param_unit(group, gi, bucket, i) for i in have)
        return units

    def _flat_unit(self, group: dict, gi: int, bucket: _Bucket) -> _Unit:
        params = bucket.params
        if bucket.fast:
            grad = bucket.flat_grad

            def load_param() -> Tensor:
                return bucket.flat_param

            def apply(s: Tensor, factor: float = 1.0) -> None:
                bucket.flat_param.add_(s, alpha=-factor)
        elif len(params) == 1:
            grad = params[0].grad.reshape(-1)

            def load_param() -> Tensor:
                return bucket.flat_views[0]

            def apply(s: Tensor, factor: float = 1.0) -> None:
                bucket.flat_views[0].add_(s, alpha=-factor)
        else:
            grad = torch.cat([p.grad.reshape(-1) for p in params])

            def load_param() -> Tensor:
                return torch.cat(bucket.flat_views)

            def apply(s: Tensor, factor: float = 1.0) -> None:
                torch._foreach_add_(bucket.flat_views, list(s.split(bucket.numels)), alpha=-factor)

        k = bucket.step + 1
        state = dict(bucket.flat_state)
        state.update({key: values[0] for key, values in bucket.scalars.items()})

        def finish() -> None:
            bucket.step = k
            bucket.steps.fill_(k)
            for values in bucket.scalars.values():
                if len(values) > 1:
                    values[1:].copy_(values[0].expand(len(values) - 1))

        def describe() -> list[tuple[str, Tensor]]:
            return [(self._param_name(group, gi, p), p.grad) for p in params]

        return _Unit(group, grad, state, k, load_param, apply, finish, describe)

    def _fast_unit(self, group: dict, gi: int, bucket: _Bucket) -> _Unit:
        unit = self._flat_unit(group, gi, bucket)
        step_fn = fastpath.compiled_step(self.transform.leaves)
        hp = fastpath.graph_hyperparameters(group)

        coefs = [t.coefficients(group, unit.step) for t in self.transform.leaves]

        def fused() -> None:
            step_fn(bucket.flat_grad, bucket.flat_param, unit.state, hp, float(unit.step), coefs)

        unit.fused = fused
        return unit

    @staticmethod
    def _with_gradients(bucket: _Bucket) -> range | list[int]:
        """Indices of the bucket's parameters that have a gradient."""
        have = [i for i, p in enumerate(bucket.params) if p.grad is not None]
        return range(len(bucket.params)) if len(have) == len(bucket.params) else have

    @staticmethod
    def _adopt_gradients(bucket: _Bucket) -> range | list[int]:
        """Make every gradient of a fast bucket a view into its flat gradient buffer (one
        that autograd allocated anew, e.g. after ``set_to_none``, is copied in); return the
        indices of the parameters that have a gradient."""
        missing = []
        for i, (p, view) in enumerate(zip(bucket.params, bucket.grad_views)):
            g = p.grad
            if g is view:  # the usual case: backward accumulated into the view
                continue
            if g is None:
                missing.append(i)
            elif g.is_sparse:
                return [i]  # reported by the caller
            elif g.data_ptr() != view.data_ptr():
                view.copy_(g)
                p.grad = view
        if not missing:
            return range(len(bucket.params))
        skip = set(missing)
        return [i for i in range(len(bucket.params)) if i not in skip]

    def _param_unit(self, group: dict, gi: int, bucket: _Bucket, i: int) -> _Unit:
        p = bucket.params[i]
        state = {key: v for key, v in self.state[p].items() if key != "step"}
        for key, values in bucket.scalars.items():
            state[key] = values[i]
        k = int(bucket.steps[i].item()) + 1

        def apply(s: Tensor, factor: float = 1.0) -> None:
            p.add_(s, alpha=-factor)

        def finish() -> None:
            bucket.steps[i] = k

        def describe() -> list[tuple[str, Tensor]]:
            return [(self._param_name(group, gi, p), p.grad)]

        return _Unit(group, p.grad, state, k, lambda: p, apply, finish, describe)

    def _rebuild_buckets(self) -> None:
        self._buckets = [self._build_buckets(g) for g in self.param_groups]
        self._all_bucketed = len(self._bucketed) == sum(len(g["params"]) for g in self.param_groups)

    def _state_keys_changed(self) -> bool:
        """A hyperparameter edit now needs state the buckets lack (e.g. momentum raised
        from 0): the buckets are rebuilt, keeping the existing state."""
        probe = torch.empty(0, device="meta")
        for group, buckets in zip(self.param_groups, self._buckets):
            needed = self.transform.init_state(probe, group).keys()
            if any(not needed <= bucket.flat_state.keys() for bucket in buckets):
                return True
        return False

    def _has_unbucketed_gradients(self) -> bool:
        """A parameter got its first gradient since the buckets were built."""
        if self._all_bucketed:
            return False
        return any(
            p.grad is not None and id(p) not in self._bucketed
            for group in self.param_groups
            for p in group["params"]
        )

    def _build_buckets(self, group: dict) -> list[_Bucket]:
        """Buckets of the parameters that have a gradient or state: like torch, a parameter
        that never received a gradient gets no state."""
        if group is self.param_groups[0]:
            self._bucketed = set()
        by_kind: dict[tuple, list[Tensor]] = {}
        for p in group["params"]:
            if p.grad is None and not self.state.get(p) and not self.state_for_all_params:
                continue
            by_kind.setdefault((p.device, p.dtype), []).append(p)
            self._bucketed.add(id(p))
        return [self._build_bucket(group, params) for params in by_kind.values()]

    def _build_bucket(self, group: dict, params: list[Tensor]) -> _Bucket:
        """Flat state for ``params``: existing per-parameter state is copied in, the rest
        initialised by the transform; ``self.state[p]`` then holds views into it."""
        bucket = _Bucket(params=params, numels=[p.numel() for p in params])
        bucket.flat_ok = all(p.is_contiguous() for p in params)
        bucket.fast = self._wants_fast(params) and bucket.flat_ok
        if bucket.fast:
            self._flatten_storage(bucket)
        bucket.flat_views = [p.view(-1) if p.is_contiguous() else p for p in params]
        tensors: dict[str, list[Tensor]] = {}
        scalars: dict[str, list[float]] = {}
        steps: list[float] = []
        for p in params:
            old = self.state.get(p, {})
            fresh = self.transform.init_state(p.detach(), group)
            for key, value in fresh.items():
                existing = old.get(key)
                tensors.setdefault(key, []).append(
                    existing.detach().to(value.dtype).reshape(-1)
                    if isinstance(existing, Tensor) and existing.numel() == p.numel()
                    else value.reshape(-1)
                )
            for key, value in self.transform.init_scalars(group).items():
                scalars.setdefault(key, []).append(float(old.get(key, value)))
            steps.append(float(old["step"]) if "step" in old else (1.0 if old else 0.0))
        dtype, device = scalar_state_dtype(), params[0].device
        bucket.flat_state = {key: torch.cat(parts) for key, parts in tensors.items()}
        bucket.scalars = {
            key: torch.tensor(vals, dtype=dtype, device=device) for key, vals in scalars.items()
        }
        bucket.steps = torch.tensor(steps, dtype=dtype, device=device)
        bucket.uniform = len(set(steps)) == 1
        bucket.step = int(steps[0])
        offset = 0
        for i, p in enumerate(params):
            n = p.numel()
            entry = {key: flat[offset : offset + n].view_as(p) for key, flat in bucket.flat_state.items()}
            entry.update({key: vals[i] for key, vals in bucket.scalars.items()})
            if self._stores_step:
                entry["step"] = bucket.steps[i]
            self.state[p] = entry
            offset += n
        return bucket

    def _wants_fast(self, params: list[Tensor]) -> bool:
        if self.fast is False or any(p.is_sparse for p in params):
            return False
        if self.fast is None and sum(p.numel() for p in params) < fastpath.FAST_MIN_NUMEL:
            return False
        if self.transform.elementwise is False:
            return False
        has_statistic = any(t.has_statistic for t in self.transform.leaves)
        if has_statistic and (len(self.param_groups) > 1 or len(
            {(p.device, p.dtype) for g in self.param_groups for p in g["params"]}
        ) > 1):
            return False  # a global statistic needs every update at once: eager path
        ok, reason = fastpath.fast_path_available()
        if not ok and self.fast is True:
            fastpath.warn_unavailable(reason)
        return ok

    @staticmethod
    def _flatten_storage(bucket: _Bucket) -> None:
        """Move the bucket's parameters (and gradients) into one flat buffer each."""
        params = bucket.params
        bucket.flat_param = torch.cat([p.detach().reshape(-1) for p in params])
        bucket.flat_grad = torch.zeros_like(bucket.flat_param)
        bucket.grad_views = []
        offset = 0
        for p in params:
            n = p.numel()
            p.data = bucket.flat_param[offset : offset + n].view_as(p)
            view = bucket.flat_grad[offset : offset + n].view_as(p)
            if p.grad is not None:
                view.copy_(p.grad)
                p.grad = view
            bucket.grad_views.append(view)
            offset += n

    def _param_name(self, group: dict, gi: int, p: Tensor) -> str:
        index = next(i for i, q in enumerate(group["params"]) if q is p)
        names = group.get("param_names")
        if names:
            return f"{names[index]!r} (group {gi}, index {index})"
        return f"#{index} of group {gi} (shape {tuple(p.shape)})"


def from_chain(
    params: Iterable[Any], transform: Transform, **hyperparameters: Any
) -> ChainOptimizer:
    """Make a torch optimizer from any transform: ``from_chain(model.parameters(), chain(...))``."""
    return ChainOptimizer(params, transform, **hyperparameters)
