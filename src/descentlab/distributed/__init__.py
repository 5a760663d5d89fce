"""descentlab.distributed — synchronous, asynchronous and Hogwild SGD, and a staleness simulator.

Notes 002: "gradient descent is a naturally sequential process … distributed training requires
algorithms written specifically for that purpose". descentlab's optimizers stay plain
``torch.optim.Optimizer``s; distribution is done by the engines built for it:

* **synchronous SGD** (:mod:`.sync`) on torch.distributed: :func:`init`, :func:`data_parallel`
  (DDP and its communication hooks), :func:`shard`, :func:`scale_lr` / :func:`goyal_warmup`,
  :func:`save_checkpoint` / :func:`load_checkpoint` (``torch.distributed.checkpoint``),
  :func:`shutdown`, :func:`launch`; ``descentlab.training.fit(..., distributed=True)``;
* **asynchronous SGD** (:mod:`.async_ps`) on a Ray parameter server (``pip install
  'descentlab[distributed]'``): :func:`async_sgd`, :func:`replay`, with η/τ, delay compensation and
  bounded staleness (:mod:`.server`, transforms in :mod:`descentlab.transforms.staleness`);
* **Hogwild** (:mod:`.hogwild`): :func:`hogwild`, :func:`share_flat_`;
* **the simulator** (:mod:`.simulate`): :func:`simulate_async`, :func:`simulate_sync`,
  :func:`simulate_log`, compute-time models, :class:`NoisyQuadratic`.

Names are imported on first use (``descentlab.distributed.cli`` stays light for the command line).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "sync": ("init", "data_parallel", "shard", "scale_lr", "goyal_warmup", "save_checkpoint",
             "load_checkpoint", "shutdown", "launch"),
    "async_ps": ("async_sgd", "replay", "ParameterServer"),
    "server": ("ServerCore", "Event", "with_staleness"),
    "result": ("Result", "GradientWorker"),
    "hogwild": ("hogwild", "share_flat_"),
    "simulate": ("simulate_async", "simulate_sync", "simulate_log", "finish_events", "Constant",
                 "Exponential", "ShiftedExponential", "Pareto", "COMPUTE_TIMES", "NoisyQuadratic"),
    "problems": ("TeacherMLP",),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [name for names in _WHERE.values() for name in names]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'descentlab.distributed' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
