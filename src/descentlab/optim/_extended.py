"""Two things a few optimizers need beyond the chain runner, built on top of it.

:class:`ExtendedChainOptimizer` is a :class:`~descentlab.optim.ChainOptimizer` that honours
two optional methods of the transforms in its chain:

* ``init_shaped_state(param, hp) -> dict[str, Tensor]`` — per-parameter state whose shape is
  not the parameter's (Adafactor's row and column factors, SOAP's Kronecker factors and
  eigenbases, Prodigy's flattened ``s`` and ``p0``). The bucket layout keeps only state shaped
  like the parameter, in flat buffers; these tensors live in ``optimizer.state[p]`` beside the
  layout's views, under their own keys (list them in the transform's ``state_keys``), so
  ``state_dict``/``load_state_dict`` carry them like any torch state. A transform that keeps
  such state is not elementwise: it runs on one parameter at a time and finds these tensors
  in the ``state`` mapping :meth:`~descentlab.transforms.Transform.update` receives.
* ``before_step(param_groups, state) -> bool`` — a pass over the whole parameter groups once
  per step, before the chain runs: for quantities that accumulate over steps per group
  (schedule-free's weight sum) or are reductions over parameters *and* their state
  (Prodigy's distance estimate). It may write group entries (which the chain then reads as
  hyperparameters, host-side) and the shaped state; returning ``False`` skips the step.
  Such a transform's hyperparameters must keep their plain names in the chain.

Cleaner, in the engine: the layout would accept per-parameter shapes for a state key, and
the runner would offer a statistic over (update, state, parameter) per unit and a group-level
scalar state; then these optimizers would need no subclass.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from ..transforms.base import Transform, _view
from .chain_optimizer import ChainOptimizer

__all__ = ["ExtendedChainOptimizer"]


class ExtendedChainOptimizer(ChainOptimizer):
    """A :class:`ChainOptimizer` whose transforms may keep non-parameter-shaped state and run a
    once-per-step pass over the parameter groups (see the module docstring)."""

    def __init__(self, params: Iterable[Any], transform: Transform, **kwargs: Any) -> None:
        for leaf, (hp_names, _) in zip(transform.leaves, transform.namespaces()):
            if hasattr(leaf, "before_step") and hp_names:
                raise ValueError(
                    f"{type(leaf).__name__} runs a pass over the parameter groups and must keep its "
                    f"hyperparameter names, but the chain renamed {sorted(hp_names)}"
                )
        super().__init__(params, transform, **kwargs)

    # -- shaped state ------------------------------------------------------------------------
    def _shaped_leaves(self) -> list[tuple[Transform, dict[str, str], dict[str, str]]]:
        return [
            (leaf, hp_names, state_names)
            for leaf, (hp_names, state_names) in zip(self.transform.leaves, self.transform.namespaces())
            if hasattr(leaf, "init_shaped_state")
        ]

    def _shaped_keys(self) -> set[str]:
        return {state_names.get(key, key) for leaf, _, state_names in self._shaped_leaves()
                for key in leaf.state_keys}

    def _build_layouts(self) -> None:
        """The engine's layouts, then each parameter's shaped state: kept from before (or from a
        loaded ``state_dict``), else initialised by its transform."""
        shaped = self._shaped_leaves()
        keys = self._shaped_keys()
        kept: dict[int, dict[str, Any]] = {}
        if shaped:
            for group in self.param_groups:
                for p in group["params"]:
                    entry = self.state.get(p)
                    if entry:
                        kept[id(p)] = {k: v for k, v in entry.items() if k in keys}
        super()._build_layouts()
        if not shaped:
            return
        for group, layouts in zip(self.param_groups, self._layouts):
            for layout in layouts:
                for p in layout.params:
                    entry, old = self.state[p], kept.get(id(p), {})
                    for leaf, hp_names, state_names in shaped:
                        fresh = leaf.init_shaped_state(p.detach(), _view(group, hp_names))
                        for key, value in fresh.items():
                            key = state_names.get(key, key)
                            # kept as it is (a checkpoint's may differ in shape: Prodigy's 0-d p0)
                            previous = old.get(key)
                            entry[key] = previous.to(value.dtype) if isinstance(previous, Tensor) else value

    # -- the once-per-step pass ----------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        """One update: the closure (if any), the transforms' passes over the groups, the chain."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        hooks = [leaf for leaf in self.transform.leaves if hasattr(leaf, "before_step")]
        if hooks and self._gradients_ok():
            self._current_layouts()  # state exists for every parameter with a gradient
            for leaf in hooks:
                if leaf.before_step(self.param_groups, self.state) is False:
                    return loss
        super().step()
        return loss

    def _gradients_ok(self) -> bool:
        """Whether the chain will run at all: with a non-finite policy, a non-finite gradient
        makes the engine raise or skip the step, and then no group pass may run either."""
        if self.nonfinite is None:
            return True
        return all(
            bool(torch.isfinite(p.grad).all())
            for group in self.param_groups
            for p in group["params"]
            if p.grad is not None
        )
