"""Turn any chain of transforms into a ``torch.optim.Optimizer``.

How a step runs
---------------
The optimizer is three small layers:

* **layout** (:class:`~descentlab.optim.layout.BucketLayout`): the parameters of a group
  that share dtype and device form a *bucket*, whose state lives in flat buffers while
  ``optimizer.state[p]`` holds views into them under torch's key names — so
  ``state_dict``/``load_state_dict`` behave exactly as torch's;
* **executors** (:mod:`~descentlab.optim.executors`, :mod:`~descentlab.optim.fast`): each
  step, a bucket runs

  - *compiled* when it owns its storage (fast mode) and every parameter has a gradient
    and the same step count: one compiled call of the chain over its flat buffers;
  - *flat eager* when its parameters are plain contiguous tensors with gradients and one
    step count: the chain once on the concatenated gradients, the step applied with one
    ``_foreach_add_`` (a final learning-rate scaling folded into it);
  - *per parameter* otherwise (missing gradients, different step counts, tensor subclasses
    such as ``DTensor``, rules that need each parameter alone);
* **the runner** (:func:`~descentlab.transforms.base.run_chain`): the one loop over the
  chain's transforms that every executor calls.

Either way the math is the transforms' single implementation.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from ..transforms.base import Transform, _same_default
from ..validation import NonFiniteError, NonFinitePolicy, check_choice, check_nonfinite_policy
from . import executors
from . import fast as fastpath
from . import fused as fusedpath
from .executors import Unit, parameter_units, piece_units, run_units, sparse_units
from .layout import BucketLayout

__all__ = ["ChainOptimizer", "from_chain", "NonFiniteError", "constructor_arguments"]

#: torch.optim's execution flags; descentlab accepts them so constructors keep torch's signatures
TORCH_FLAGS = ("foreach", "fused", "capturable", "differentiable")
_WARNED: set[tuple[str, str]] = set()


class ChainOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose update rule is a :class:`~descentlab.transforms.Transform`.

    Args:
        params: parameters or param groups, as for any torch optimizer.
        transform: the update rule; usually ``chain(...)`` of transforms.
        nonfinite: ``None`` (default, no check, no cost), ``"raise"`` (raise
            :class:`~descentlab.validation.NonFiniteError` naming the parameter) or ``"skip"``
            (skip the whole step, leaving parameters and state untouched; counted in
            ``skipped_steps``).
        fast: the execution path. ``None`` (default): no compilation — torch's fused kernel
            where one implements the chain (see ``fused``), else the chain runner on flat
            buckets or in cache-sized chunks; ``True``: the compiled fast path for every bucket
            (one pass over memory per step, after a compilation of seconds on the first step;
            a warning and the eager path if compilation is unavailable); ``False``: always the
            chain runner (the reference path). See :mod:`descentlab.optim.fast`: in fast mode
            the parameters and gradients of a bucket are stored in one flat buffer
            (parameters become views into it), and :meth:`zero_grad` zeroes that buffer in
            place.
        fused: torch's fused kernels (``torch._fused_adam_`` and friends, see
            :mod:`descentlab.optim.fused`) for the chains they implement exactly — Adam, AdamW,
            SGD, Adagrad. ``None`` (default): used whenever they apply in auto mode
            (``fast=None``); ``True``: always (``ValueError`` if the chain has no kernel);
            ``False``: never.
        foreach: accepted so that the named optimizers keep torch's signatures; it has no
            effect (descentlab picks its own path) and says so once.
        capturable: not supported (``ValueError`` when True).
        differentiable: not supported (``ValueError`` when True).
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
    #: param-group keys of a named optimizer that its chain does not read (torch compatibility).
    group_extras: tuple[str, ...] = ()
    #: how sparse gradients are applied — ``None`` (refused), ``"rows"`` or ``"dense"`` (see
    #: :meth:`sparse_mode`)
    sparse_gradients: str | None = None
    #: the error message for a dense gradient, for optimizers that take sparse ones only (SparseAdam)
    refuses_dense: str | None = None

    def __init__(
        self,
        params: Iterable[Any],
        transform: Transform,
        *,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        extra_defaults: dict[str, Any] | None = None,
        **hyperparameters: Any,
    ) -> None:
        name = type(self).__name__
        if not isinstance(transform, Transform):
            raise TypeError(f"transform must be a Transform, got {type(transform).__name__}")
        extras = {key: hyperparameters.pop(key) for key in self.group_extras if key in hyperparameters}
        extras.update(extra_defaults or {})
        unknown = set(hyperparameters) - set(transform.defaults)
        if unknown:
            raise TypeError(
                f"{name} got unknown hyperparameter(s) {sorted(unknown)}; valid: {sorted(transform.defaults)}"
            )
        check_nonfinite_policy(nonfinite)
        check_choice("fast", fast, (None, True, False))
        check_choice("fused", fused, (None, True, False))
        _check_torch_flags(name, foreach=foreach, capturable=capturable, differentiable=differentiable)
        kernel = fusedpath.kernel_for(transform)
        if fused and kernel is None:
            raise ValueError(
                f"{name}: fused=True, but torch has no fused kernel for this chain ({transform!r}); "
                "torch fuses Adam, AdamW, SGD and Adagrad"
            )
        if fused and fast:
            raise ValueError(f"{name}: fused=True and fast=True ask for two different executors; pick one")
        self.transform = transform
        self.nonfinite = nonfinite
        self.fast = fast
        self.fused = fused
        self._kernel = kernel if fused or (fused is None and fast is None) else None
        self.skipped_steps = 0
        self._layouts: list[list[BucketLayout]] | None = None
        self._retired: list[BucketLayout] = []
        self._storages_we_own: set[int] = set()
        self._seen_hyperparameters: list[dict[str, Any]] = []
        self._watched = sorted(transform.state_hyperparameters())
        super().__init__(params, {**transform.defaults, **extras, **hyperparameters})
        self.register_load_state_dict_post_hook(ChainOptimizer._after_load)
        if self.state_for_all_params:
            self._build_layouts()

    # -- torch.optim.Optimizer API -----------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        merged = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        self.transform.validate(merged)
        super().add_param_group(param_group)
        self._forget_layouts()
        if any(torch.is_complex(p) for p in self.param_groups[-1]["params"]):
            self.param_groups.pop()
            raise ValueError(
                f"{type(self).__name__} does not support complex parameters; optimise "
                "torch.view_as_real(p) of a real parameter instead"
            )

    def zero_grad(self, set_to_none: bool = True) -> None:
        """As torch's, except that buckets owning their storage (fast mode) zero their flat
        gradient buffer in place (their gradients stay views into it, so the next backward
        writes straight into it)."""
        owned = [layout for layout in self._all_layouts() if layout.owns_storage]
        if not owned:
            super().zero_grad(set_to_none)
            return
        kept: set[int] = set()
        for layout in owned:
            layout.reset_owned_gradients()
            kept.update(id(p) for p in layout.params)
        for group in self.param_groups:
            for p in group["params"]:
                if id(p) not in kept and p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.detach_().requires_grad_(False).zero_()

    # torch's Optimizer pickles only defaults, state and param groups: keep the rule too,
    # so that copy.deepcopy and pickle give a working optimizer.
    _PICKLED = ("transform", "nonfinite", "fast", "fused", "skipped_steps")

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.update({name: getattr(self, name) for name in self._PICKLED})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._kernel = fusedpath.kernel_for(self.transform) if self.fused or (
            self.fused is None and self.fast is None) else None
        # (load_state_dict comes through here too: the layouts are retired, not lost)
        self._retired = getattr(self, "_retired", [])
        self._layouts = getattr(self, "_layouts", None)
        self._forget_layouts()
        self._storages_we_own = set()
        self._seen_hyperparameters = []
        self._watched = sorted(self.transform.state_hyperparameters())

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one update; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        compiled, fused, units = self._plan()
        if self.nonfinite is not None and not self._gradients_finite(compiled + fused, units):
            self.skipped_steps += 1
            return loss
        for group, layout in compiled:
            fastpath.run_compiled(self.transform, layout, group)
        for group, layout in fused:
            fusedpath.run_fused(self._kernel, layout, group)
        run_units(self.transform, units)
        return loss

    def describe_execution(self) -> list[dict[str, Any]]:
        """How each bucket is stored and would run now: one dict per bucket with ``group``,
        ``dtype``, ``device``, ``parameters``, ``numel`` and ``path``: ``"compiled"`` (it owns
        its storage), ``"fused"`` (a torch fused kernel) or ``"eager"`` (the chain runner)."""
        rows = []
        for gi, (group, layouts) in enumerate(zip(self.param_groups, self._current_layouts())):
            for layout in layouts:
                path = "fused" if self._fusable(layout, group) else "eager"
                path = "compiled" if layout.owns_storage else path
                rows.append({
                    "group": gi, "dtype": layout.params[0].dtype, "device": layout.params[0].device,
                    "parameters": len(layout.params), "numel": sum(layout.numels), "path": path,
                })
        return rows

    # -- planning a step -------------------------------------------------------------------
    def _plan(self) -> tuple[list[tuple[dict, BucketLayout]], list[tuple[dict, BucketLayout]], list[Unit]]:
        """Which buckets run compiled, which with a fused kernel, and the eager units of the others."""
        compiled: list[tuple[dict, BucketLayout]] = []
        fused: list[tuple[dict, BucketLayout]] = []
        units: list[Unit] = []
        elementwise = self.transform.elementwise
        for gi, (group, layouts) in enumerate(zip(self.param_groups, self._current_layouts())):
            for layout in layouts:
                if layout.owns_storage and not layout.storage_intact():
                    self._storage_replaced(layout)
                present = layout.with_gradients()
                if not present:
                    continue
                if self.refuses_dense and any(not layout.params[i].grad.is_sparse for i in present):
                    raise RuntimeError(self.refuses_dense)
                if not layout.dense_gradients(present):
                    sparse = [i for i in present if layout.params[i].grad.is_sparse]
                    if sparse:  # this bucket runs per parameter this step
                        mode = self._sparse_mode(group, gi, layout, sparse)
                        units.extend(sparse_units(layout, group, sparse, mode))
                        dense = [i for i in present if i not in sparse]
                        units.extend(parameter_units(layout, group, dense, self.state))
                        continue
                uniform = len(present) == len(layout.params) and layout.step is not None
                if uniform and layout.owns_storage:
                    compiled.append((group, layout))
                elif uniform and self._fusable(layout, group):
                    fused.append((group, layout))
                elif layout.contiguous and elementwise:
                    chunk = executors.CHUNK_ELEMENTS
                    units.extend(piece_units(self.transform, layout, group, present, chunk))
                else:
                    units.extend(parameter_units(layout, group, present, self.state))
        return compiled, fused, units

    def _fusable(self, layout: BucketLayout, group: dict) -> bool:
        kernel = self._kernel
        return kernel is not None and kernel.takes(group) and fusedpath.layout_supported(kernel, layout)

    def sparse_mode(self, group: dict) -> str | None:
        """How this optimizer applies a sparse gradient (see
        :func:`~descentlab.optim.executors.sparse_units`): ``"rows"``, ``"dense"``, or ``None`` —
        not supported (``RuntimeError``). Default: the class's :attr:`sparse_gradients`."""
        return self.sparse_gradients

    def _sparse_mode(self, group: dict, gi: int, layout: BucketLayout, sparse: list[int]) -> str:
        mode = self.sparse_mode(group)
        if mode is None:
            raise RuntimeError(
                f"{type(self).__name__} does not support sparse gradients "
                f"(parameter {self._param_name(group, gi, layout.params[sparse[0]])}); "
                "SGD, Adagrad and SparseAdam do"
            )
        return mode

    def _storage_replaced(self, layout: BucketLayout) -> None:
        """Other code (e.g. ZeroRedundancyOptimizer with parameters_as_bucket_view=True) gave
        the parameters new storage: run them where they are now, never update an orphan."""
        layout.release_storage()
        warnings.warn(
            f"{type(self).__name__}: parameters were given new storage after the optimizer flattened "
            "them (param.data was reassigned); their bucket leaves the fast path and is updated in place",
            RuntimeWarning,
            stacklevel=4,
        )

    def _gradients_finite(self, buckets: list[tuple[dict, BucketLayout]], units: list[Unit]) -> bool:
        grads = [p.grad for _, layout in buckets for p in layout.params] + [unit.grad for unit in units]
        if all(bool(torch.isfinite(g).all()) for g in grads):
            return True
        if self.nonfinite == "skip":
            return False
        for gi, group in enumerate(self.param_groups):
            for p in group["params"]:
                if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                    raise NonFiniteError(
                        f"{type(self).__name__}: non-finite gradient (NaN or inf) in parameter "
                        f"{self._param_name(group, gi, p)}"
                    )
        return True  # pragma: no cover - a non-finite unit always has a non-finite parameter

    # -- layouts ------------------------------------------------------------------------------
    def _all_layouts(self) -> list[BucketLayout]:
        return [layout for layouts in self._layouts or [] for layout in layouts]

    def _current_layouts(self) -> list[list[BucketLayout]]:
        """The layouts, rebuilt (keeping the state) when a parameter got its first gradient or a
        hyperparameter edit needs state they lack (e.g. momentum raised from 0)."""
        if self._layouts is None or self._new_gradients() or self._needs_new_state():
            self._build_layouts()
        return self._layouts

    def _forget_layouts(self) -> None:
        """Drop the layouts (they are rebuilt at the next step), remembering the flat buffers they
        owned: parameters still living in them may be flattened again."""
        self._retired += [layout for layout in self._all_layouts() if layout.owns_storage]
        self._layouts = None

    def _build_layouts(self) -> None:
        ours = {layout.flat_param.untyped_storage().data_ptr()
                for layout in [*self._all_layouts(), *self._retired] if layout.owns_storage}
        self._storages_we_own = ours
        self._layouts = [self._group_layouts(group) for group in self.param_groups]
        self._retired = []
        self._in_layouts = {id(layout_p) for layout in self._all_layouts() for layout_p in layout.params}
        total = sum(len(g["params"]) for g in self.param_groups)
        self._everything_in_layouts = len(self._in_layouts) == total
        self._seen_hyperparameters = [self._state_hyperparameters(group) for group in self.param_groups]

    def _group_layouts(self, group: dict) -> list[BucketLayout]:
        """Buckets of the parameters that have a gradient or state: like torch, a parameter that
        never received a gradient gets no state."""
        by_kind: dict[tuple, list[Tensor]] = {}
        for p in group["params"]:
            if p.grad is None and not self.state.get(p) and not self.state_for_all_params:
                continue
            sparse = p.grad is not None and p.grad.is_sparse  # (sparse gradients: a bucket of their own)
            by_kind.setdefault((p.device, p.dtype, sparse), []).append(p)
        layouts = []
        for params in by_kind.values():
            layout = BucketLayout.build(params, self.transform, group, self.state)
            sparse = any(p.grad is not None and p.grad.is_sparse for p in params)
            if self._wants_compiled(layout) and not sparse:
                layout.own_storage()
            for i, p in enumerate(params):
                self.state[p] = layout.parameter_state(i, self._stores_step)
            layouts.append(layout)
        return layouts

    def _wants_compiled(self, layout: BucketLayout) -> bool:
        if self.fast is not True or not layout.can_own_storage(self._storages_we_own):
            return False
        if not self.transform.elementwise:
            return False
        if any(t.has_statistic for t in self.transform.leaves) and (
            len(self.param_groups) > 1
            or len({(p.device, p.dtype) for g in self.param_groups for p in g["params"]}) > 1
        ):
            return False  # a global statistic needs every update at once: the eager runner
        ok, reason = fastpath.fast_path_available()
        if not ok and self.fast is True:
            fastpath.warn_unavailable(reason)
        return ok

    def _new_gradients(self) -> bool:
        """A parameter got its first gradient since the layouts were built."""
        if self._everything_in_layouts:
            return False
        return any(
            p.grad is not None and id(p) not in self._in_layouts
            for group in self.param_groups
            for p in group["params"]
        )

    def _needs_new_state(self) -> bool:
        """Whether an edited hyperparameter now needs state keys the layouts lack (only the
        hyperparameters that decide the state are watched, so a scheduled ``lr`` costs nothing)."""
        changed = False
        for gi, group in enumerate(self.param_groups):
            seen = self._seen_hyperparameters[gi]
            if all(_same_default(value, group.get(key)) for key, value in seen.items()):
                continue
            self._seen_hyperparameters[gi] = self._state_hyperparameters(group)
            probe = torch.empty(0, device="meta")
            needed = self.transform.init_state(probe, group).keys()
            changed = changed or any(not layout.has_state_for(needed) for layout in self._layouts[gi])
        return changed

    def _after_load(self) -> None:
        # A state_dict (possibly torch.optim's) may lack descentlab-only hyperparameters; add those
        # the chain reads, and nothing else (torch's own defaults, e.g. "differentiable", stay out).
        for group in self.param_groups:
            for key in self.transform.defaults:
                group.setdefault(key, self.defaults[key])
        self._forget_layouts()

    def _state_hyperparameters(self, group: Mapping[str, Any]) -> dict[str, Any]:
        return {key: group.get(key) for key in self._watched}

    @property
    def _stores_step(self) -> bool:
        return self.transform.needs_step if self.store_step is None else self.store_step

    def _param_name(self, group: dict, gi: int, p: Tensor) -> str:
        index = next(i for i, q in enumerate(group["params"]) if q is p)
        names = group.get("param_names")
        if names:
            return f"{names[index]!r} (group {gi}, index {index})"
        return f"#{index} of group {gi} (shape {tuple(p.shape)})"


def _check_torch_flags(
    optimizer: str, *, foreach: bool | None, capturable: bool, differentiable: bool
) -> None:
    """``foreach`` is accepted (torch's signatures) and has no effect: say so once per optimizer
    class; ``capturable`` and ``differentiable`` are not supported."""
    check_choice("foreach", foreach, (None, True, False))
    if capturable:
        raise ValueError(f"{optimizer}: capturable=True (CUDA graphs) is not supported")
    if differentiable:
        raise ValueError(f"{optimizer}: differentiable=True is not supported")
    if foreach is not None and (optimizer, "foreach") not in _WARNED:
        _WARNED.add((optimizer, "foreach"))
        warnings.warn(
            f"descentlab.optim.{optimizer}: foreach={foreach!r} has no effect; descentlab chooses its own "
            "execution path (see the `fast` and `fused` arguments and ChainOptimizer.describe_execution())",
            UserWarning,
            stacklevel=4,
        )


def constructor_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A named optimizer's constructor arguments, to forward to :class:`ChainOptimizer`:
    ``super().__init__(params, rule, **constructor_arguments(locals()))`` — everything the
    constructor was given but ``self``, ``params`` and Python's ``__class__`` cell."""
    return {k: v for k, v in arguments.items() if k not in ("self", "params", "__class__")}


def from_chain(
    params: Iterable[Any], transform: Transform, **hyperparameters: Any
) -> ChainOptimizer:
    """Make a torch optimizer from any transform: ``from_chain(model.parameters(), chain(...))``."""
    return ChainOptimizer(params, transform, **hyperparameters)
