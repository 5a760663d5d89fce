"""descentlab.transforms — the algebra of update rules (one transform per idea of the notes).

A transform maps updates to updates with its own per-parameter state; :func:`chain`
composes them and :func:`descentlab.optim.from_chain` turns a chain into a torch optimizer.
"""

from .adam import ScaleByAdam, ScaleByAdamax, ScaleByNAdam
from .adam_variants import ScaleByAdaBelief, ScaleByRAdam, ScaleByYogi
from .adaptive import ScaleByAdaDelta, ScaleByAdaGrad, ScaleByRms
from .averaging import AveragedSGD
from .base import Chain, Context, Transform, chain
from .clipping import ClipByGlobalNorm, ClipByParamNorm, ClipByValue
from .distance import EstimateDistance, ScaleByDistance, ScaleByProdigyAdam
from .factored import ScaleByAdafactor
from .gains import ScaleByLocalGains
from .momentum import HeavyBall, Momentum, NesterovLookahead
from .orthogonal import EmaMomentum, Orthogonalize, ScaleByMatrixShape
from .scaling import Maximize, ScaleByLearningRate
from .schedule_free import ScaleByDebiasedRms, ScheduleFree
from .sign import ScaleByLion, ScaleByRprop
from .soap import ScaleBySoap, SkipFirstStep
from .staleness import DelayCompensation, ScaleByStaleness
from .trust_ratio import ScaleByLarsTrustRatio, ScaleByTrustRatio, ScaleByUncorrectedAdam
from .weight_decay import AddDecoupledWeightDecay, AddWeightDecay

__all__ = [
    "Transform",
    "Chain",
    "Context",
    "chain",
    "AddWeightDecay",
    "AddDecoupledWeightDecay",
    "Maximize",
    "ScaleByLearningRate",
    "Momentum",
    "HeavyBall",
    "NesterovLookahead",
    "ScaleByAdaGrad",
    "ScaleByRms",
    "ScaleByAdaDelta",
    "ScaleByAdam",
    "ScaleByAdamax",
    "ScaleByNAdam",
    "ScaleByLion",
    "ScaleByRprop",
    "ScaleByLocalGains",
    "ClipByValue",
    "ClipByGlobalNorm",
    "ClipByParamNorm",
    "AveragedSGD",
    "ScaleByStaleness",
    "DelayCompensation",
    "ScaleByRAdam",
    "ScaleByAdaBelief",
    "ScaleByYogi",
    "ScaleByAdafactor",
    "EmaMomentum",
    "Orthogonalize",
    "ScaleByMatrixShape",
    "ScaleByUncorrectedAdam",
    "ScaleByTrustRatio",
    "ScaleByLarsTrustRatio",
    "ScaleByDebiasedRms",
    "ScheduleFree",
    "EstimateDistance",
    "ScaleByProdigyAdam",
    "ScaleByDistance",
    "ScaleBySoap",
    "SkipFirstStep",
]
