"""Snapshots of everything a training step can change: RNG states, model and optimizer state.

Used by the range test (to put everything back in a ``finally`` block) and by :func:`fit` (to
checkpoint and resume). Every snapshot is made of tensors and plain Python values only, so a
checkpoint holding one loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn


# -- random number generators --------------------------------------------------------------
def rng_state(generators: Iterable[torch.Generator] = ()) -> dict[str, Any]:
    """The state of torch's CPU (and, once initialised, CUDA) RNG, NumPy's and Python's global RNG,
    and of the given ``torch.Generator`` objects (in order)."""
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)  # noqa: NPY002 - the legacy global RNG is what we save
    state = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss],
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "generators": [g.get_state() for g in generators],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generators: Iterable[torch.Generator] = ()) -> None:
    """Put back a state taken by :func:`rng_state` (the same generators, in the same order)."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002 - and restore
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    generators = list(generators)
    if len(generators) != len(state["generators"]):
        raise ValueError(
            f"the RNG snapshot holds {len(state['generators'])} generator states, "
            f"got {len(generators)} generators"
        )
    for generator, saved in zip(generators, state["generators"]):
        generator.set_state(saved)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- model and optimizer -----------------------------------------------------------------------
def clone_state(state: Any) -> Any:
    """A deep copy in which every tensor is a detached clone (state dicts share storage with the model)."""
    return copy.deepcopy(state)


class ModelSnapshot:
    """Parameters, buffers, gradients and train/eval mode of a module, to restore bit for bit.

    Parameters and buffers are restored in place (``load_state_dict`` copies into the existing
    tensors), so optimizers and hooks that hold them keep working.
    """

    def __init__(self, model: nn.Module) -> None:
        self.state = clone_state(model.state_dict())
        self.grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
        self.modes = [m.training for m in model.modules()]

    def restore(self, model: nn.Module) -> None:
        model.load_state_dict(self.state)
        with torch.no_grad():
            for p, saved in zip(model.parameters(), self.grads):
                if saved is None:
                    p.grad = None
                elif p.grad is not None and p.grad.shape == saved.shape:
                    p.grad.copy_(saved)
                else:
                    p.grad = saved.clone()
        for module, mode in zip(model.modules(), self.modes):
            module.training = mode


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)``, then every param group's entries exactly as saved: some
    optimizers' ``load_state_dict`` adds keys (descentlab's adds torch's ``"differentiable"`` default),
    which would make a resumed optimizer's ``state_dict`` differ from an uninterrupted one."""
    optimizer.load_state_dict(state)
    for group, saved in zip(optimizer.param_groups, state["param_groups"]):
        for key in [k for k in group if k != "params" and k not in saved]:
            del group[key]
        group.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})


class OptimizerSnapshot:
    """Optimizer state and hyperparameters (every param-group entry), through the public
    ``state_dict`` / ``load_state_dict`` so any torch-compatible optimizer works."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.state = clone_state(optimizer.state_dict())

    def restore(self, optimizer: torch.optim.Optimizer) -> None:
        load_optimizer_state(optimizer, clone_state(self.state))
