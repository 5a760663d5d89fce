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
"""

from .async_ps import ParameterServer, async_sgd, replay
from .hogwild import hogwild, share_flat_
from .problems import TeacherMLP
from .result import GradientWorker, Result
from .server import Event, ServerCore, with_staleness
from .simulate import (
    COMPUTE_TIMES,
    Constant,
    Exponential,
    NoisyQuadratic,
    Pareto,
    ShiftedExponential,
    finish_events,
    simulate_async,
    simulate_log,
    simulate_sync,
)
from .sync import (
    data_parallel,
    goyal_warmup,
    init,
    launch,
    load_checkpoint,
    save_checkpoint,
    scale_lr,
    shard,
    shutdown,
)

__all__ = [
    "init",
    "data_parallel",
    "shard",
    "scale_lr",
    "goyal_warmup",
    "save_checkpoint",
    "load_checkpoint",
    "shutdown",
    "launch",
    "async_sgd",
    "replay",
    "ParameterServer",
    "ServerCore",
    "Event",
    "Result",
    "GradientWorker",
    "with_staleness",
    "hogwild",
    "share_flat_",
    "simulate_async",
    "simulate_sync",
    "simulate_log",
    "finish_events",
    "Constant",
    "Exponential",
    "ShiftedExponential",
    "Pareto",
    "COMPUTE_TIMES",
    "NoisyQuadratic",
    "TeacherMLP",
]
