"""descentlab.training — how to train, as small pieces that work in a plain torch loop with any optimizer.

* :func:`lr_range_test` — the learning-rate range test (Smith 2017), restoring everything afterwards;
* :class:`EarlyStopping` — patience, best weights restored whatever ended the run, checkpointable;
* :func:`tbptt`, :func:`chunks`, :func:`detach_state`, :class:`SavedTensorMemory` — truncated BPTT;
* :class:`StratifiedBatchSampler`, :func:`class_weights` — balanced mini-batches;
* :class:`CurriculumSampler`, pacing functions, :func:`loss_difficulty` — curriculum learning;
* :func:`gradient_noise`, :func:`batch_gradient_variance` — gradient variance against batch size;
* :func:`fit` — a thin training loop that resumes bit-identically from a checkpoint;
* :func:`training_practice_figures` — the figures (and measured findings) for the report.
"""

from .curriculum import (
    PACINGS,
    Competence,
    Constant,
    CurriculumSampler,
    Exponential,
    Linear,
    Pacing,
    Quadratic,
    Root,
    Step,
    loss_difficulty,
)
from .early_stopping import EarlyStopping
from .loop import CheckpointError, History, Monitor, accuracy, evaluate, fit
from .noise import GradientNoise, batch_gradient_variance, gradient_noise, per_example_gradients
from .range_test import DEFAULT_RULE, RULES, RangeRun, RangeTest, lr_range_test
from .samplers import StratifiedBatchSampler, class_weights
from .tbptt import SavedTensorMemory, TBPTTResult, chunks, detach_state, tbptt


def training_practice_figures(directory):
    """The report's training-practice figures and their measured findings (see :mod:`.figures`);
    imported on call, so that ``import descentlab.training`` does not load matplotlib."""
    from .figures import training_practice_figures as draw

    return draw(directory)


__all__ = [
    "lr_range_test",
    "RangeTest",
    "RangeRun",
    "RULES",
    "DEFAULT_RULE",
    "EarlyStopping",
    "tbptt",
    "TBPTTResult",
    "chunks",
    "detach_state",
    "SavedTensorMemory",
    "StratifiedBatchSampler",
    "class_weights",
    "CurriculumSampler",
    "Pacing",
    "Constant",
    "Linear",
    "Root",
    "Quadratic",
    "Step",
    "Exponential",
    "Competence",
    "PACINGS",
    "loss_difficulty",
    "gradient_noise",
    "GradientNoise",
    "per_example_gradients",
    "batch_gradient_variance",
    "fit",
    "History",
    "CheckpointError",
    "Monitor",
    "evaluate",
    "accuracy",
    "training_practice_figures",
]
