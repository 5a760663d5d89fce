"""descentlab.optim — drop-in torch optimizers built from :mod:`descentlab.transforms`."""

from .averaging import WeightAverage
from .chain_optimizer import ChainOptimizer, NonFiniteError, from_chain
from .first_order import (
    ASGD,
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    DeltaBarDelta,
    HeavyBall,
    Lion,
    NAdam,
    RMSprop,
    Rprop,
    SparseAdam,
)
from .grouping import MultiOptimizer as MultiOptimizer  # noqa: F401 (see the end of the file)
from .grouping import decay_groups, param_groups, partition
from .modern import SOAP, AdaBelief, Lamb, Lars, Prodigy, ScheduleFreeAdamW, ScheduleFreeSGD, Yogi
from .torch_extra import Adafactor, Muon, RAdam

__all__ = [
    "ChainOptimizer",
    "from_chain",
    "NonFiniteError",
    "SGD",
    "SparseAdam",
    "Adagrad",
    "RMSprop",
    "Adadelta",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "Rprop",
    "ASGD",
    "Lion",
    "HeavyBall",
    "DeltaBarDelta",
    "RAdam",
    "Adafactor",
    "Muon",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "Prodigy",
    "Lamb",
    "Lars",
    "SOAP",
    "AdaBelief",
    "Yogi",
    "WeightAverage",
    "partition",
    "param_groups",
    "decay_groups",
]
# MultiOptimizer (descentlab.optim.MultiOptimizer) is importable here but not listed: it combines
# optimizers rather than being one that a spec such as "adam(lr=0.1)" could build.
