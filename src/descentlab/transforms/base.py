"""The algebra of update rules: a :class:`Transform` turns updates into updates.

A transform is one idea of the course notes (momentum, RMS scaling, weight decay, ...)
written once, for one tensor. It receives the current *updates* ``u`` (initially the
gradient), reads its hyperparameters from the parameter group at every step, keeps its
own per-parameter state, and returns the transformed updates. :func:`chain` composes
transforms; an optimizer is a chain plus defaults (see :mod:`descentlab.optim`).

Sign convention (the one of ``torch.optim``): the chain turns the gradient into a
*step* ``s`` and the optimizer applies ``w ← w − s``. A chain that ends with
:class:`~descentlab.transforms.ScaleByLearningRate` therefore performs ``w ← w − η·u``.

Rules every transform follows, so that the same code can run on one parameter tensor or
on a flat buffer holding a whole parameter group (the fast path):

* it never modifies ``u`` in place (``u`` may be the ``.grad`` tensor itself); it may
  modify its own state tensors in place;
* its math is elementwise, unless it declares a global statistic with
  :meth:`Transform.statistic` (e.g. the global gradient norm), which the runner computes
  over every update of the optimizer before calling :meth:`Transform.update`;
* hyperparameters come from ``ctx.hp`` (the param group), never from attributes, so torch
  LR schedulers and hand edits of ``group["lr"]`` take effect at the next step.

The chain runs in one place, :func:`run_chain`: the optimizer's eager paths call it on
per-parameter or flat tensors and its compiled path compiles it, so the loop that the
algebra tests exercise is the loop that trains models.

Names in a chain. A hyperparameter or state key read by one transform keeps its plain
name — torch's names, so ``group["lr"]``, ``group["betas"]``, torch schedulers and
``torch.optim`` checkpoints work. When two transforms of a chain use the same name they
*collide*, and each of them gets its own namespaced copy ``"<name>:<i>"``, ``i`` being the
transform's position in ``chain.leaves``: in ``chain(Momentum(momentum=0.9),
Momentum(momentum=0.5), ScaleByLearningRate())`` the group holds ``"momentum:0"`` (0.9) and
``"momentum:1"`` (0.5), and each transform keeps its own ``"momentum_buffer:0"`` /
``"momentum_buffer:1"``. Hyperparameters read by several transforms with the *same*
default (say ``error_if_nonfinite``) are one shared key. :meth:`Chain.namespaces` lists
the renamings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..validation import check_bool, check_number, check_unit_interval

__all__ = [
    "Transform",
    "Chain",
    "chain",
    "Context",
    "Deferred",
    "materialize",
    "subtract",
    "run_chain",
    "chain_coefficients",
    "overwrite_",
    "scalar_state_dtype",
    "check_number",
    "check_unit_interval",
    "check_bool",
]


def scalar_state_dtype() -> torch.dtype:
    """dtype torch.optim uses for scalar state such as ``step`` (float64 only if default)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def overwrite_(target: Tensor, value: Tensor | float) -> Tensor:
    """``target ← value`` in place, written so that a compiled step keeps it correct.

    The one home of the inductor workarounds: under ``torch.compile`` a ``copy_`` from a tensor
    that the same compiled step updates later may be reordered after that update, and ``fill_``
    with a Python float would bake the value into the graph, so it is written ``target·0 + value``;
    eagerly it is a plain ``copy_`` / ``fill_`` (one pass).
    """
    if torch.compiler.is_compiling():
        return target.mul_(0).add_(value)
    return target.copy_(value) if isinstance(value, Tensor) else target.fill_(value)


_ONE = 1.0  # the default scale of a quotient (compared by identity: no guard on a traced value)


class Deferred:
    """An update left unevaluated: ``s = Σᵢ cᵢ·aᵢ/bᵢ`` (``bᵢ`` may be ``None``: ``cᵢ·aᵢ``).

    A rule whose update ends with a division (RMSprop's ``g/(√v + ε)``, Adam's ``m̂/(√v̂ + ε)``)
    may return it deferred, ``Deferred.quotient(a, b)``: the division then fuses into the
    parameter update ``w ← w − η·s`` as one ``addcdiv_`` pass, the way torch's own loops apply it,
    instead of a division pass and an update pass. The math is the same; only when it is
    evaluated changes. Whoever needs the tensor — the next transform, a global statistic, a
    compiled step, :meth:`Chain.update` — gets :meth:`materialize`d values; :func:`run_chain`
    does that, so transforms always receive tensors.
    """

    __slots__ = ("terms",)

    def __init__(self, terms: Sequence[tuple[Any, Tensor, Tensor | None, bool]]) -> None:
        #: ``(c, a, b, scratch)``: ``scratch`` means ``b`` is a temporary the evaluation may overwrite
        self.terms = tuple(terms)

    @staticmethod
    def quotient(a: Tensor, b: Tensor, scale: Any = _ONE, *, scratch: bool = False) -> Deferred:
        return Deferred(((scale, a, b, scratch),))

    def __add__(self, other: Deferred) -> Deferred:
        return Deferred(self.terms + other.terms)

    def materialize(self) -> Tensor:
        total = None
        for c, a, b, scratch in self.terms:
            scaled = a if _is_one(c) else a * c
            if b is None:
                term = scaled
            elif scratch and scaled is a:
                term = torch.div(a, b, out=b)
            else:
                term = scaled.div_(b) if scaled is not a else torch.div(a, b)
            total = term if total is None else total.add_(term)
        return total

    def subtract_from(self, w: Tensor, factor: Any) -> None:
        """``w ← w − factor·s``, one pass per term (``addcdiv_`` / ``add_``)."""
        for c, a, b, _ in self.terms:
            value = -float(factor) * float(c)
            if b is None:
                w.add_(a, alpha=value)
            else:
                w.addcdiv_(a, b, value=value)

    def subtract_from_pieces(self, ws: list[Tensor], sizes: list[int], factor: Any) -> None:
        """The same for a flat step over consecutive tensors ``ws`` of ``sizes`` elements."""
        for c, a, b, _ in self.terms:
            value = -float(factor) * float(c)
            if b is None:
                torch._foreach_add_(ws, list(a.split(sizes)), alpha=value)
            else:
                torch._foreach_addcdiv_(ws, list(a.split(sizes)), list(b.split(sizes)), value=value)


def _is_one(c: Any) -> bool:
    return c is _ONE



def materialize(u: Tensor | Deferred) -> Tensor:
    """The update as a tensor (a :class:`Deferred` evaluated)."""
    return u.materialize() if isinstance(u, Deferred) else u


def subtract(w: Tensor, s: Tensor | Deferred, factor: Any) -> None:
    """``w ← w − factor·s`` in place, for a tensor or a :class:`Deferred` step."""
    if isinstance(s, Deferred):
        s.subtract_from(w, factor)
    else:
        w.add_(s, alpha=-factor)


class Context:
    """What a transform sees besides the updates.

    Attributes:
        group: the whole parameter group.
        hp: the group as the current transform reads it (its namespaced keys translated to
            plain names); hyperparameters are read from it at every step.
        step: 1-based number of the step being taken for these parameters.
        statistic: the current transform's :meth:`Transform.statistic`, if it has one.
        coef: the current transform's :meth:`Transform.coefficients` for this step.
        coefficients: optional precomputed coefficients, one mapping per leaf of the chain
            (the compiled path computes them on the host and passes them in).
    """

    __slots__ = ("group", "hp", "step", "statistic", "coef", "coefficients", "_param", "_load_param")

    def __init__(
        self,
        hp: Mapping[str, Any],
        step: int | float,
        param: Tensor | None = None,
        load_param: Callable[[], Tensor] | None = None,
        coefficients: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self.group = hp
        self.hp = hp
        self.step = step
        self.statistic: Any = None
        self.coef: Mapping[str, Any] = {}
        self.coefficients = coefficients
        self._param = param
        self._load_param = load_param

    @property
    def param(self) -> Tensor:
        """The current parameter values (gathered on first use for a flat group)."""
        if self._param is None:
            if self._load_param is None:
                raise RuntimeError("this context has no parameter attached")
            self._param = self._load_param()
        return self._param


class _Renamed(Mapping):
    """A mapping read through a renaming: ``view[name] = base[names.get(name, name)]``."""

    __slots__ = ("base", "names")

    def __init__(self, base: Mapping[str, Any], names: Mapping[str, str]) -> None:
        self.base, self.names = base, names

    def __getitem__(self, name: str) -> Any:
        return self.base[self.names.get(name, name)]

    def __contains__(self, name: object) -> bool:
        return self.names.get(name, name) in self.base  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        inverse = {key: name for name, key in self.names.items()}
        return (inverse.get(key, key) for key in self.base)

    def __len__(self) -> int:
        return len(self.base)


def _view(base: Mapping[str, Any], names: Mapping[str, str]) -> Mapping[str, Any]:
    return _Renamed(base, names) if names else base


class Transform:
    """One update rule with per-parameter state.

    Subclasses set :attr:`defaults` (hyperparameter name → default, merged into the
    optimizer's param-group defaults), declare the names of their state in
    :attr:`state_keys`, and override :meth:`update`; they may override :meth:`init_state`
    (tensors shaped like the parameter), :meth:`init_scalars` (one number per parameter
    tensor, stored like torch's ``step``), :meth:`coefficients`, :meth:`validate` and
    :meth:`statistic`.
    """

    #: hyperparameter name → default value; constructor keyword arguments override them.
    defaults: Mapping[str, Any] = {}
    #: every key this rule may keep in a parameter's state (tensors and scalars).
    state_keys: tuple[str, ...] = ()
    #: the hyperparameters that decide *which* state keys exist (e.g. ``momentum != 0``);
    #: ``None``: possibly any of them. An optimizer re-checks its state when these change.
    state_depends_on: tuple[str, ...] | None = None
    #: constructor options (attributes) that change the rule's code, part of :meth:`structure`.
    options: tuple[str, ...] = ()
    #: whether the rule reads ``ctx.step`` (then ``state["step"]`` is kept, as torch does).
    needs_step: bool = False

    def __init__(self, **defaults: Any) -> None:
        unknown = set(defaults) - set(type(self).defaults)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unknown hyperparameter(s) {sorted(unknown)}; "
                f"it reads {sorted(type(self).defaults) or 'none'}"
            )
        self.defaults = {**type(self).defaults, **defaults}
        self.validate(self.defaults)

    # -- the rule ---------------------------------------------------------------------
    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        """Initial state tensors for ``param`` (same shape); none by default."""
        return {}

    def init_scalars(self, hp: Mapping[str, Any]) -> dict[str, float]:
        """Initial per-parameter scalar state (kept as 0-d tensors); none by default."""
        return {}

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        """Scalars that depend only on the hyperparameters and the step, such as Adam's
        bias corrections: computed once per step on the host (in Python floats) and read
        in :meth:`update` as ``ctx.coef[name]``, so a compiled step never evaluates them
        per element."""
        return {}

    def scale_factor(self, ctx: Context) -> float:
        """Only for rules that are a pure scaling ``u ↦ c·u`` with no state: return ``c``.

        Then an eager runner may fold the scaling into the parameter update
        (``w ← w − c·s`` in one pass) instead of calling :meth:`update`."""
        raise NotImplementedError

    def statistic(self, updates: list[Tensor], hp: Mapping[str, Any]) -> Tensor | None:
        """A global quantity over every update of the optimizer (e.g. the total norm)."""
        return None

    def is_identity(self, hp: Mapping[str, Any]) -> bool:
        """Whether, with these hyperparameters, the rule returns its updates unchanged and touches
        no state (``maximize=False``, ``weight_decay=0``, ``momentum=0``): the runner then skips it."""
        return False

    def update(self, u: Tensor, state: Mapping[str, Tensor], ctx: Context) -> Tensor | Deferred:
        """The transformed updates: a tensor, or a :class:`Deferred` quotient whose division the
        parameter update may fuse (the runner evaluates it for whoever needs a tensor)."""
        raise NotImplementedError

    def validate(self, hp: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming any hyperparameter outside its allowed range."""

    # -- structure --------------------------------------------------------------------
    @property
    def has_statistic(self) -> bool:
        """Whether the rule needs a global statistic (it overrides :meth:`statistic`)."""
        return type(self).statistic is not Transform.statistic

    @property
    def is_pure_scaling(self) -> bool:
        """Whether the rule is a stateless scaling ``u ↦ c·u`` (it overrides :meth:`scale_factor`)."""
        return type(self).scale_factor is not Transform.scale_factor

    @property
    def leaves(self) -> tuple[Transform, ...]:
        return (self,)

    def namespaces(self) -> tuple[tuple[dict[str, str], dict[str, str]], ...]:
        """Per leaf, ``(hyperparameter renames, state renames)``: plain name → group/state key."""
        return (({}, {}),)

    def state_hyperparameters(self) -> set[str]:
        """The group keys whose values decide which state keys the rule keeps."""
        keys: set[str] = set()
        for leaf, (hp_names, _) in zip(self.leaves, self.namespaces()):
            stateful = leaf.state_keys or type(leaf).init_state is not Transform.init_state
            if stateful:
                names = leaf.defaults if leaf.state_depends_on is None else leaf.state_depends_on
                keys.update(hp_names.get(name, name) for name in names)
        return keys

    @property
    def elementwise(self) -> bool:
        """True when the rule can run on a flat buffer of several parameters."""
        return True

    def structure(self) -> tuple:
        """What the compiled code of the rule depends on: its type and its :attr:`options`
        (not its hyperparameters, which are read from the group at every step)."""
        return (type(self), tuple(getattr(self, name) for name in self.options))

    def __repr__(self) -> str:
        args = [f"{k}={v!r}" for k, v in self.defaults.items()]
        args += [f"{name}={getattr(self, name)!r}" for name in self.options]
        return f"{type(self).__name__}({', '.join(args)})"


class Chain(Transform):
    """Transforms applied one after the other: ``chain(a, b)(u) = b(a(u))``.

    Nested chains are flattened, so composition is associative and ``chain()`` is the
    identity. Names that two leaves share are namespaced (see the module docstring).
    """

    def __init__(self, *transforms: Transform) -> None:
        leaves: list[Transform] = []
        for t in transforms:
            if not isinstance(t, Transform):
                raise TypeError(f"chain() takes Transform objects, got {type(t).__name__}")
            leaves.extend(t.leaves)
        self._leaves = tuple(leaves)
        self._namespaces = _namespaces(self._leaves)
        merged: dict[str, Any] = {}
        for leaf, (hp_names, _) in zip(self._leaves, self._namespaces):
            for name, value in leaf.defaults.items():
                merged.setdefault(hp_names.get(name, name), value)
        self.defaults = merged
        self.needs_step = any(t.needs_step for t in self._leaves)

    @property
    def leaves(self) -> tuple[Transform, ...]:
        return self._leaves

    def namespaces(self) -> tuple[tuple[dict[str, str], dict[str, str]], ...]:
        return self._namespaces

    @property
    def elementwise(self) -> bool:
        return all(t.elementwise for t in self._leaves)

    def structure(self) -> tuple:
        return tuple(t.structure() for t in self._leaves) + (_frozen(self._namespaces),)

    def validate(self, hp: Mapping[str, Any]) -> None:
        for leaf, (hp_names, _) in zip(self._leaves, self._namespaces):
            leaf.validate(_view(hp, hp_names))

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return self._merged(lambda leaf, leaf_hp: leaf.init_state(param, leaf_hp), hp)

    def init_scalars(self, hp: Mapping[str, Any]) -> dict[str, float]:
        return self._merged(lambda leaf, leaf_hp: leaf.init_scalars(leaf_hp), hp)

    def _merged(self, initial: Callable[[Transform, Mapping[str, Any]], dict], hp: Mapping[str, Any]) -> dict:
        merged: dict = {}
        for leaf, (hp_names, state_names) in zip(self._leaves, self._namespaces):
            for key, value in initial(leaf, _view(hp, hp_names)).items():
                key = state_names.get(key, key)
                if key in merged:
                    raise ValueError(
                        f"chain(): two transforms keep state under the same key {key!r}; list it in "
                        f"{type(leaf).__name__}.state_keys so that the chain can give each its own"
                    )
                merged[key] = value
        return merged

    def update(self, u: Tensor, state: Mapping[str, Tensor], ctx: Context) -> Tensor:
        """The chain on one tensor: :func:`run_chain` with a single update."""
        (step,), _ = run_chain(self, [u], [state], [ctx])
        return step

    def __repr__(self) -> str:
        return "chain(" + ", ".join(repr(t) for t in self._leaves) + ")"


def chain(*transforms: Transform) -> Chain:
    """Compose transforms left to right (see :class:`Chain`)."""
    return Chain(*transforms)


def _same_default(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor) or isinstance(a, bool) != isinstance(b, bool):
        return a is b
    try:
        return bool(a == b)
    except Exception:  # an object whose == does not give a truth value
        return a is b


def _namespaces(leaves: tuple[Transform, ...]) -> tuple[tuple[dict[str, str], dict[str, str]], ...]:
    """Which names of which leaves collide, and the key each colliding leaf uses instead.

    A hyperparameter collides when two leaves read it with different defaults; a state key
    collides whenever two leaves may keep it."""
    readers: dict[str, list[int]] = {}
    keepers: dict[str, list[int]] = {}
    for i, leaf in enumerate(leaves):
        for name in leaf.defaults:
            readers.setdefault(name, []).append(i)
        for key in leaf.state_keys:
            keepers.setdefault(key, []).append(i)
    hp_names: list[dict[str, str]] = [{} for _ in leaves]
    state_names: list[dict[str, str]] = [{} for _ in leaves]
    for name, users in readers.items():
        first = leaves[users[0]].defaults[name]
        if any(not _same_default(first, leaves[i].defaults[name]) for i in users[1:]):
            for i in users:
                hp_names[i][name] = f"{name}:{i}"
    for key, users in keepers.items():
        if len(users) > 1:
            for i in users:
                state_names[i][key] = f"{key}:{i}"
    return tuple(zip(hp_names, state_names))


def _frozen(namespaces) -> tuple:
    return tuple((tuple(sorted(h.items())), tuple(sorted(s.items()))) for h, s in namespaces)


# -- the runner --------------------------------------------------------------------------
def chain_coefficients(rule: Transform, group: Mapping[str, Any], step: int | float) -> list[dict[str, Any]]:
    """Every leaf's host-side :meth:`Transform.coefficients` for one step, in chain order."""
    return [
        leaf.coefficients(_view(group, hp_names), step)
        for leaf, (hp_names, _) in zip(rule.leaves, rule.namespaces())
    ]


def run_chain(
    rule: Transform,
    updates: Sequence[Tensor],
    states: Sequence[Mapping[str, Tensor]],
    contexts: Sequence[Context],
    *,
    fold_scaling: bool = False,
) -> tuple[list[Tensor], list[Any]]:
    """Run a chain on one or several units (a parameter, or a flat buffer of parameters).

    For each leaf, in order: (1) its global statistic over the updates of *every* unit, if
    it declares one; (2) its coefficients for each unit's step (precomputed ones from
    ``ctx.coefficients`` when given); (3) its update of each unit, reading its
    hyperparameters and state through its namespace.

    With ``fold_scaling``, a final pure scaling (the learning rate) is not applied: its
    factor is returned instead, so that the caller can apply ``w ← w − c·s`` in one pass.
    Returns ``(steps, factors)``, one of each per unit (factors are 1.0 when nothing is folded).
    With ``fold_scaling`` a step may be a :class:`Deferred` (apply it with :func:`subtract`), whether
    or not the chain ends with a scaling; without, steps are tensors.
    """
    leaves, namespaces = rule.leaves, rule.namespaces()
    folded = fold_scaling and bool(leaves) and leaves[-1].is_pure_scaling
    updates = list(updates)
    for index in range(len(leaves) - int(folded)):
        leaf, (hp_names, state_names) = leaves[index], namespaces[index]
        _enter(leaf, index, hp_names, contexts)
        if leaf.has_statistic:
            updates = [materialize(u) for u in updates]
            value = leaf.statistic(updates, contexts[0].hp)
            for ctx in contexts:
                ctx.statistic = value
        updates = [
            u if leaf.is_identity(ctx.hp) else leaf.update(materialize(u), _view(state, state_names), ctx)
            for u, state, ctx in zip(updates, states, contexts)
        ]
    factors: list[Any] = [1.0] * len(updates)
    if folded:
        index = len(leaves) - 1
        _enter(leaves[index], index, namespaces[index][0], contexts)
        factors = [leaves[index].scale_factor(ctx) for ctx in contexts]
    if fold_scaling:  # the caller applies the steps with subtract(): a Deferred stays deferred
        return updates, factors
    return [materialize(u) for u in updates], factors


def _enter(leaf: Transform, index: int, hp_names: Mapping[str, str], contexts: Sequence[Context]) -> None:
    """Point every context at ``leaf``: its view of the group, its coefficients."""
    for ctx in contexts:
        ctx.hp = _view(ctx.group, hp_names)
        ctx.statistic = None
        ctx.coef = (
            ctx.coefficients[index] if ctx.coefficients is not None else leaf.coefficients(ctx.hp, ctx.step)
        )
