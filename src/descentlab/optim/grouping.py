"""Validated parameter partitions: param groups from a model and a rule, one optimizer per label.

Two things users keep writing by hand, and getting subtly wrong:

* **no weight decay on biases and norm layers** (nanoGPT's ``configure_optimizers``): decay
  shrinks a LayerNorm gain towards 0 and a bias towards 0, neither of which is a prior
  anybody wants;
* **a different rule per kind of parameter** — Muon for the hidden weight matrices and AdamW
  for the rest (torch's Muon documentation), or a smaller learning rate for embeddings
  (optax's ``multi_transform`` is the nearest thing).

:func:`partition` labels every parameter of a model with a dictionary of *selectors* —
by module type, parameter name pattern and number of dimensions, combined with ``&``, ``|``
and ``~`` — and refuses a parameter that no label or two labels select, so a new layer
cannot silently fall in the wrong group. :func:`param_groups` turns the labels into torch
param groups for one optimizer; :class:`MultiOptimizer` steps one optimizer per label as a
single ``torch.optim.Optimizer`` (schedulers, ``zero_grad`` and checkpoints see all of them)::

    groups = partition(model, {"decay": ndim(2) & ~module_type(nn.Embedding),
                               "no_decay": ~(ndim(2) & ~module_type(nn.Embedding))})
    opt = AdamW(param_groups(groups, {"decay": {"weight_decay": 0.1}, "no_decay": {"weight_decay": 0.0}}))
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

__all__ = [
    "Selector",
    "module_type",
    "name",
    "ndim",
    "everything",
    "NORM_LAYERS",
    "partition",
    "param_groups",
    "decay_groups",
    "MultiOptimizer",
]

#: the normalisation layers of torch.nn (their weights and biases are usually not decayed)
NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.RMSNorm,
)


class Selector:
    """A predicate on a parameter — ``selector(name, module, param) -> bool``, ``module`` being
    the module that owns it — with ``a & b``, ``a | b`` and ``~a``."""

    def __init__(self, test: Callable[[str, nn.Module, torch.Tensor], bool], description: str) -> None:
        self.test, self.description = test, description

    def __call__(self, name: str, module: nn.Module, param: torch.Tensor) -> bool:
        return bool(self.test(name, module, param))

    def __and__(self, other: Selector) -> Selector:
        return Selector(lambda *a: self(*a) and other(*a), f"({self.description} & {other.description})")

    def __or__(self, other: Selector) -> Selector:
        return Selector(lambda *a: self(*a) or other(*a), f"({self.description} | {other.description})")

    def __invert__(self) -> Selector:
        return Selector(lambda *a: not self(*a), f"~{self.description}")

    def __repr__(self) -> str:
        return self.description


def module_type(*types: type[nn.Module]) -> Selector:
    """Parameters owned directly by a module of one of these types (``module_type(*NORM_LAYERS)``)."""
    if not types or not all(isinstance(t, type) and issubclass(t, nn.Module) for t in types):
        raise ValueError(f"module_type() takes nn.Module subclasses, got {types!r}")
    names = ", ".join(t.__name__ for t in types)
    return Selector(lambda n, module, p: isinstance(module, types), f"module_type({names})")


def name(*patterns: str) -> Selector:
    """Parameters whose full name (``"blocks.0.attn.weight"``) matches one of these shell-style
    patterns (``"*.bias"``, ``"head.*"``, ``"blocks.[0-3].*"``)."""
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ValueError(f"name() takes non-empty pattern strings, got {patterns!r}")
    return Selector(lambda n, module, p: any(fnmatch.fnmatchcase(n, pat) for pat in patterns),
                    f"name({', '.join(map(repr, patterns))})")


def ndim(*dims: int) -> Selector:
    """Parameters with one of these numbers of dimensions (``ndim(2)``: matrices; ``ndim(0, 1)``:
    scalars and vectors)."""
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise ValueError(f"ndim() takes non-negative integers, got {dims!r}")
    return Selector(lambda n, module, p: p.dim() in dims, f"ndim({', '.join(map(str, dims))})")


def everything() -> Selector:
    """Every parameter (for a one-label partition, or ``~selector``'s complement written out)."""
    return Selector(lambda n, module, p: True, "everything()")


def _owned_parameters(model: nn.Module) -> Iterable[tuple[str, nn.Module, nn.Parameter]]:
    """Every distinct parameter with its full name and owning module (a shared parameter once,
    under its first name, as ``named_parameters`` gives it)."""
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for local, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            yield (f"{module_name}.{local}" if module_name else local), module, param


def partition(
    model: nn.Module, rules: Mapping[str, Selector], *, trainable_only: bool = True
) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Label every parameter of ``model`` with exactly one rule.

    Args:
        model: the model.
        rules: label → :class:`Selector`; a parameter must be selected by exactly one of them.
        trainable_only: leave out parameters with ``requires_grad=False`` (frozen layers).

    Returns:
        label → ``[(name, parameter), ...]`` in the model's order (every label present, maybe
        empty) — named parameters, which torch optimizers accept and keep as ``param_names``.

    Raises:
        ValueError: naming every parameter selected by no rule or by several, and which.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"partition() needs an nn.Module, got {type(model).__name__}")
    if not rules:
        raise ValueError("partition() needs at least one rule")
    for label, rule in rules.items():
        if not isinstance(label, str) or not isinstance(rule, Selector):
            raise ValueError(f"rules must map labels (str) to selectors, got {label!r}: {rule!r}")
    out: dict[str, list[tuple[str, nn.Parameter]]] = {label: [] for label in rules}
    unmatched, overlaps = [], []
    for full_name, module, param in _owned_parameters(model):
        if trainable_only and not param.requires_grad:
            continue
        labels = [label for label, rule in rules.items() if rule(full_name, module, param)]
        if not labels:
            unmatched.append(f"{full_name} ({type(module).__name__}, shape {tuple(param.shape)})")
        elif len(labels) > 1:
            overlaps.append(f"{full_name} by {labels}")
        else:
            out[labels[0]].append((full_name, param))
    problems = []
    if unmatched:
        problems.append("selected by no rule: " + "; ".join(unmatched))
    if overlaps:
        problems.append("selected by several rules: " + "; ".join(overlaps))
    if problems:
        raise ValueError("partition(): " + ". ".join(problems) + f". Rules: {dict(rules)}")
    return out


def param_groups(
    labelled: Mapping[str, list[tuple[str, nn.Parameter]]],
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Torch param groups, one per non-empty label: ``{"params": [(name, p), ...], **options[label]}``.

    Raises ``ValueError`` for options of a label the partition does not have."""
    options = dict(options or {})
    unknown = set(options) - set(labelled)
    if unknown:
        raise ValueError(f"param_groups(): options for unknown label(s) {sorted(unknown)}; "
                         f"the labels are {sorted(labelled)}")
    return [{"params": list(params), **options.get(label, {})}
            for label, params in labelled.items() if params]


def decay_groups(
    model: nn.Module, weight_decay: float, *, exclude: Selector | None = None
) -> list[dict[str, Any]]:
    """The usual two groups: weight decay on the weight matrices (and higher-dimensional kernels)
    of every layer but norm layers and embeddings, none on biases, norm layers and embeddings
    (``exclude``: further parameters without decay)::

        AdamW(decay_groups(model, weight_decay=0.1), lr=3e-4)
    """
    no_decay = ndim(0, 1) | module_type(*NORM_LAYERS, nn.Embedding, nn.EmbeddingBag)
    if exclude is not None:
        no_decay = no_decay | exclude
    labelled = partition(model, {"decay": ~no_decay, "no_decay": no_decay})
    options = {"decay": {"weight_decay": weight_decay}, "no_decay": {"weight_decay": 0.0}}
    return param_groups(labelled, options)


class MultiOptimizer(torch.optim.Optimizer):
    """One optimizer per label, stepped as one (optax's ``multi_transform`` for torch).

    ``param_groups`` is every child's groups (the same dicts), so torch LR schedulers,
    hand edits and :meth:`zero_grad` reach all of them; :meth:`state_dict` holds each child's.
    The children's parameters must be disjoint. Example — Muon for the hidden matrices, AdamW
    for the rest, as torch's Muon documentation recommends::

        hidden = ndim(2) & ~name("head.*") & ~module_type(nn.Embedding)
        groups = partition(model, {"muon": hidden, "adamw": ~hidden})
        opt = MultiOptimizer({"muon": Muon(groups["muon"], lr=0.02),
                              "adamw": AdamW(groups["adamw"], lr=3e-4, weight_decay=0.01)})
    """

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
        if not optimizers:
            raise ValueError("MultiOptimizer needs at least one optimizer")
        for label, opt in optimizers.items():
            if not isinstance(label, str) or not isinstance(opt, torch.optim.Optimizer):
                raise ValueError(f"MultiOptimizer maps labels (str) to optimizers, got {label!r}: {opt!r}")
        self.optimizers = dict(optimizers)
        owner: dict[int, str] = {}
        for label, opt in self.optimizers.items():
            for group in opt.param_groups:
                for p in group["params"]:
                    if id(p) in owner and owner[id(p)] != label:
                        raise ValueError(f"MultiOptimizer: a parameter of shape {tuple(p.shape)} is in both "
                                         f"{owner[id(p)]!r} and {label!r}")
                    owner[id(p)] = label
        self._assembling = True
        super().__init__([g for opt in self.optimizers.values() for g in opt.param_groups], {})
        self._assembling = False

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not getattr(self, "_assembling", False):
            raise TypeError("MultiOptimizer.add_param_group: add the group to one of its optimizers "
                            "(multi.optimizers[label].add_param_group(...)), then build a new MultiOptimizer")
        self.param_groups.append(param_group)  # a child's own dict: edits reach the child

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """The closure (once), then every optimizer's step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for opt in self.optimizers.values():
            opt.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": {label: opt.state_dict() for label, opt in self.optimizers.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict["optimizers"]
        if saved.keys() != self.optimizers.keys():
            raise ValueError(f"MultiOptimizer.load_state_dict: labels {sorted(saved)} saved, "
                             f"{sorted(self.optimizers)} here")
        for label, opt in self.optimizers.items():
            opt.load_state_dict(saved[label])

    def __repr__(self) -> str:
        inner = ", ".join(f"{label!r}: {type(opt).__name__}" for label, opt in self.optimizers.items())
        return f"MultiOptimizer({{{inner}}})"
