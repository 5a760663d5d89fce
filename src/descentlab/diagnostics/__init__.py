"""descentlab.diagnostics — which of the notes' training pathologies is happening in *your* loop.

Watch a plain torch loop (public hooks only, all removed when the block ends)::

    with watch(model, optimizer, every=10) as monitor:
        for step in range(steps):
            ...                       # forward, backward, optimizer.step()
            monitor.log(loss=loss)
    print(monitor.report())           # flags with the notes' advice, measurements vs thresholds
    monitor.plot("diagnosis.png")     # six-panel dashboard

or measure one point with :func:`gradient_flow`, :func:`activation_stats`, :func:`update_ratios`,
:func:`sharpness`, :func:`classify_plateau` and :func:`diagnose`. Labels and their default
thresholds: :mod:`.labels`; the optimizers' stability bounds: :mod:`.stability`; the planted
pathologies the thresholds were set on: :mod:`.planted`.
"""

from .labels import ADVICE, LABELS, Flag, Thresholds
from .monitor import History, Monitor, watch
from .planted import diagnosis_figures
from .stability import StabilityRule, register_stability_rule, stability_rule
from .statistics import (
    ACTIVATION_KINDS,
    ActivationStats,
    GradientFlow,
    Plateau,
    Probe,
    Sharpness,
    UpdateRatios,
    activation_stats,
    classify_plateau,
    diagnose,
    gradient_flow,
    sharpness,
    trivial_loss,
    update_ratios,
)
from .summary import Diagnosis, Measurement

__all__ = [
    "watch",
    "Monitor",
    "History",
    "Flag",
    "Thresholds",
    "LABELS",
    "ADVICE",
    "Probe",
    "gradient_flow",
    "activation_stats",
    "update_ratios",
    "sharpness",
    "trivial_loss",
    "classify_plateau",
    "diagnose",
    "GradientFlow",
    "ActivationStats",
    "UpdateRatios",
    "Sharpness",
    "Plateau",
    "Diagnosis",
    "Measurement",
    "ACTIVATION_KINDS",
    "StabilityRule",
    "stability_rule",
    "register_stability_rule",
    "diagnosis_figures",
]
