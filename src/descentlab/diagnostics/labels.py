"""The diagnosis's vocabulary: labels, their default thresholds, the :class:`Flag` and the notes' advice.

Each label is a test on one measured number against one threshold; the measurement itself lives in
:mod:`.statistics` (one-shot) or :mod:`.monitor` (inside a training loop). The decisions here are
pure functions of numbers, so the one-shot functions and the monitor label the same evidence the
same way.

=======================  =====================================================================  ==========
label                    raised when                                                             severity
=======================  =====================================================================  ==========
``vanishing``            ‖∇W_first‖ / ‖∇W_last‖ < ``vanishing_ratio`` (1e-3)                    problem
``exploding``            that ratio > ``exploding_ratio`` (1e2), or a NaN/inf gradient or loss   problem
``saturated``            a tanh/sigmoid layer with > ``saturated_fraction`` (20 %) of its        problem
                         activations where |a| > 0.99 (tanh) or |2a − 1| > 0.99 (sigmoid)
``dead-relu``            a ReLU layer with > ``dead_fraction`` (25 %) of its units never         problem
                         active (output ≤ 0 for every example seen)
``update-ratio-high``    a layer with ‖Δw‖/‖w‖ > ``update_ratio_high`` (0.3)                    warning
``update-ratio-low``     a layer with ‖Δw‖/‖w‖ < ``update_ratio_low`` (1e-5)                    warning
``unstable-lr``          η·λ_max above the optimizer's stability bound (2 for GD, 2(1+β) heavy   problem
                         ball, …; see :mod:`.stability`): a *locally unstable step*
``plateau:saddle``       flat loss, tiny gradient, λ_min < 0 (and at the trivial loss if known) problem
``plateau:saturation``   flat loss with a saturated layer                                        problem
``plateau:lr-too-small`` flat loss, gradient not tiny, steps too short to make progress          problem
``converged``            flat loss, tiny gradient, below the trivial loss, no negative curvature info
``overfitting``          validation loss rising while the training loss falls                    problem
=======================  =====================================================================  ==========

The defaults were set from measurements on load_digits MLPs (``benchmarks/diagnostics_calibration.py``
reproduces them; the planted cases are in :mod:`.planted`): for each label the planted pathology and
the healthy controls sit at least 10× apart, and the threshold lies between them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..validation import check_int, check_number, check_positive

__all__ = ["Flag", "Thresholds", "DEFAULT_THRESHOLDS", "LABELS", "ADVICE", "SEVERITY"]

LABELS = (
    "vanishing",
    "exploding",
    "saturated",
    "dead-relu",
    "update-ratio-high",
    "update-ratio-low",
    "unstable-lr",
    "plateau:saddle",
    "plateau:saturation",
    "plateau:lr-too-small",
    "converged",
    "overfitting",
)

SEVERITY = {label: "problem" for label in LABELS}
SEVERITY.update({"update-ratio-high": "warning", "update-ratio-low": "warning", "converged": "info"})

# The cure for each label, in the words of the course notes (files in ../shared/course-notes/).
ADVICE = {
    "vanishing": (
        "Gradients shrink layer by layer towards the input, so the first layers train slowly "
        "(notes 002, 'Vanishing gradient problem' and 'Depth'). The notes' cures: orthogonal or "
        "fan-in-scaled initialisation (Xavier-Glorot, notes 000 'Weight initialization'), batch "
        "normalisation, skip connections, and ReLU-type units instead of sigmoids."
    ),
    "exploding": (
        "The gradient grows exponentially towards the input (notes 002, 'Exploding gradient "
        "problem'). Clip it by norm (notes 002 'Gradient clipping', Pascanu et al. 2012; "
        "descentlab.clipping), use a smaller learning rate, and a fan-in-scaled or orthogonal "
        "initialisation (notes 000, 002 'Depth')."
    ),
    "saturated": (
        "Units receive inputs so large that their slope is close to zero, which makes learning "
        "very slow (notes 002, 'Saturation'). Scale the initial weights by 1/sqrt(fan-in) "
        "(notes 000 'Weight initialization'), normalise the inputs or use batch normalisation, "
        "and keep the learning rate moderate (notes 000 'Hitting a plateau')."
    ),
    "dead-relu": (
        "These ReLU units never activate on the data seen, so their gradient is exactly zero and "
        "they cannot recover (the dying-ReLU problem, notes 002 'Depth' and 'Vanishing gradient "
        "problem'). Use a smaller learning rate, Kaiming initialisation, zero or small positive "
        "biases, or a leaky ReLU."
    ),
    "update-ratio-high": (
        "Each step changes these weights by a large fraction of their size: the learning rate "
        "is probably too large and overshoots (notes 000 'Learning rate': turn it down; notes 002 "
        "'Learning rate', cons of large rates). About 1e-3 is the usual healthy ratio."
    ),
    "update-ratio-low": (
        "These weights barely move: the learning rate is too small for this layer, or its "
        "gradient vanishes upstream (notes 000 'Learning rate'; notes 002 'Vanishing gradient "
        "problem', dying ReLUs)."
    ),
    "unstable-lr": (
        "A locally unstable step, not a prediction of divergence: on the local quadratic model "
        "the step overshoots along the sharpest direction, because lr x lambda_max is above the "
        "optimizer's stability bound (notes 000 'Learning rate': overshooting, turn it down; "
        "notes 003 on the Hessian's curvature). Training with large rates can still succeed "
        "(the 'catapult' of Lewkowycz et al. 2020; the edge of stability of Cohen et al. 2021). "
        "If the loss rises: lower the learning rate, add a warm-up, or clip (notes 002)."
    ),
    "plateau:saddle": (
        "Flat loss at the trivial predictor's value with a near-zero gradient and negative "
        "curvature: a saddle point (notes 002 'Saddle points', notes 003 'local minima and "
        "saddle points'). The noise of small mini-batches helps escape (notes 002), momentum "
        "rolls over plateaus (notes 000 'Momentum'), and a fan-in-scaled initialisation avoids "
        "starting at the symmetric saddle of tiny weights (notes 000)."
    ),
    "plateau:saturation": (
        "The loss stopped falling because units are saturated: a large learning rate drove the "
        "weights large, the error dropped fast and then stalled, which is easily mistaken for a "
        "minimum (notes 000 'Hitting a plateau'; notes 002 'Saturation'). Lower the learning rate "
        "and re-initialise with fan-in scaling."
    ),
    "plateau:lr-too-small": (
        "The gradient is not small, but the steps are too short to make progress: raise the "
        "learning rate (notes 000 'Learning rate': a small rate trades speed for accuracy), "
        "or use momentum or an adaptive method (notes 000, 003)."
    ),
    "converged": (
        "Near-zero gradient at a loss below the trivial predictor's and no significant negative "
        "curvature: a (local) minimum. Stop, keeping the best validation point (notes 002 "
        "'Early stopping'), or decay the learning rate to settle further (notes 002 'Learning "
        "rate decay')."
    ),
    "overfitting": (
        "The validation loss rises while the training loss still falls: halt and keep the best "
        "validation point (notes 002 'Early stopping'); regularise, add data, or train with a "
        "larger learning rate, which lowers the risk of overfitting (notes 002 'Learning rate')."
    ),
}


@dataclass(frozen=True)
class Flag:
    """One diagnosis: ``label`` raised at optimizer ``step`` for ``layer`` (``None``: the whole model).

    ``value`` is the measurement and ``threshold`` the bound it crossed; ``evidence`` says in words
    what was measured, ``advice`` the notes' cure. ``severity`` is ``"problem"``, ``"warning"``
    (the update-ratio labels) or ``"info"`` (``converged``).
    """

    label: str
    step: int | None
    layer: str | None
    value: float
    threshold: float
    evidence: str
    advice: str
    severity: str = "problem"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Flag:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def __str__(self) -> str:
        where = f" in {self.layer}" if self.layer is not None else ""
        at = f" at step {self.step}" if self.step is not None else ""
        return f"{self.label}{where}{at}: {self.evidence}"


def make_flag(
    label: str, step: int | None, layer: str | None, value: float, threshold: float, evidence: str
) -> Flag:
    """A :class:`Flag` with the label's advice and severity."""
    return Flag(label, step, layer, float(value), float(threshold), evidence, ADVICE[label], SEVERITY[label])


@dataclass(frozen=True)
class Thresholds:
    """Default thresholds of every label (overridable: ``Thresholds(dead_fraction=0.5)``).

    Gradient flow (per layer ``ℓ``: ``‖g_ℓ‖ = sqrt(Σ_{p∈ℓ} ‖∂L/∂p‖²)``; ratio ``r = ‖g_first‖/‖g_last‖``):

    * ``vanishing_ratio`` = 1e-3 — ``vanishing`` if ``r`` is below. Measured (load_digits, 20 layers,
      width 64, batch 256): sigmoid, torch default init, r = 3.9e-16; controls tanh + Xavier r = 1.8,
      ReLU + Kaiming r = 0.30 (300× above the threshold).
    * ``exploding_ratio`` = 1e2 — ``exploding`` if ``r`` is above: tanh with σ = 4/√fan_in gives
      r = 2.2e3 (22× above), tanh + Xavier 1.8 (55× below).

    Activations (``saturation_level`` = 0.99: |a| > 0.99 for tanh; for the sigmoid the same slope,
    ``|2a − 1| > 0.99``, since σ(x) = (1 + tanh(x/2))/2 and ``4σ'(x) = 1 − tanh²(x/2)``):

    * ``saturated_fraction`` = 0.2 — fraction of a layer's activations in the saturated zone.
      Sigmoid with σ = 8/√fan_in: 0.30–0.44 per layer; default-init and Xavier controls ≤ 0.006
      (≥ 50× apart).
    * ``dead_fraction`` = 0.25 — fraction of a layer's units never active on the examples seen.
      ReLU with bias −10: 1.0 in every layer; default init (3 hidden layers): ≤ 0.0625; Kaiming ≤ 0.016.

    Updates (per layer ``‖Δw_ℓ‖ / ‖w_ℓ‖``, Δw measured around ``optimizer.step()``; warnings only):

    * ``update_ratio_high`` = 0.3. The usual rule of thumb (~1e-3 healthy, CS231n) would suggest 1e-2,
      but the healthy run at the best learning rate reaches 0.078 in its last layer (Adam at 1e-3:
      0.0057), while 100 × that rate gives 1.8–5.2 in every layer at the first step: 0.3 sits
      between (planted/control 22×).
    * ``update_ratio_low`` = 1e-5: vanishing and dead-unit nets give exactly 0 in their first
      layers; the healthy runs ≥ 3.2e-3 (320× above).

    Plateaus (on the logged training loss):

    * ``plateau_window`` = 20 — number of last logged losses examined;
    * the loss is *flat* if the means of the window's two halves differ by less than
      ``plateau_rel_change`` (1 %) of the loss or ``plateau_abs_change`` (1e-3) of the loss scale
      (the trivial loss if known, else the first logged loss);
    * ``trivial_rel_gap`` = 1e-2 — "at the trivial predictor's loss" means within 1 %;
    * ``grad_tiny`` = 5e-2 — global gradient norm below which the gradient counts as tiny (an
      absolute value, for losses of order one: cross-entropy, MSE on standardised targets). Measured:
      tanh MLP with weights × 1e-3 (a saddle) 6.7e-3; default init 0.43–0.66; trained 3e-4;
    * ``slow_update_ratio`` = 1e-3 — ``plateau:lr-too-small`` also needs every layer's update ratio
      below this (the healthy ratio): a flat loss with large steps is an oscillation, not a slow
      descent (the 20-layer sigmoid net oscillates around the trivial loss with ratios up to 2e-2);
    * ``negative_curvature`` = 1e-3 — λ_min counts as negative below ``−negative_curvature·|λ_max|``.
      Measured λ_min/λ_max: saddle −6.7e-2, f = x² − y² −1, and a trained net −2e-2: a trained net
      has slightly negative directions too, which is why the saddle label also needs the loss at
      the trivial predictor's value whenever that can be computed.

    Overfitting: ``overfitting_rise`` = 0.05 — the last validation loss exceeds the best one by 5 %
    while the training loss is lower than it was at the best validation step.
    """

    vanishing_ratio: float = 1e-3
    exploding_ratio: float = 1e2
    saturation_level: float = 0.99
    saturated_fraction: float = 0.2
    dead_fraction: float = 0.25
    update_ratio_high: float = 0.3
    update_ratio_low: float = 1e-5
    plateau_window: int = 20
    plateau_rel_change: float = 1e-2
    plateau_abs_change: float = 1e-3
    trivial_rel_gap: float = 1e-2
    grad_tiny: float = 5e-2
    slow_update_ratio: float = 1e-3
    negative_curvature: float = 1e-3
    overfitting_rise: float = 0.05

    def __post_init__(self) -> None:
        check_positive("vanishing_ratio", self.vanishing_ratio)
        check_positive("exploding_ratio", self.exploding_ratio)
        if self.vanishing_ratio >= self.exploding_ratio:
            raise ValueError(
                f"vanishing_ratio must be below exploding_ratio ({self.exploding_ratio:g}), "
                f"got {self.vanishing_ratio:g}"
            )
        check_number(
            "saturation_level", self.saturation_level, low=0.0, high=1.0, low_open=True, high_open=True
        )
        for name in ("saturated_fraction", "dead_fraction"):
            check_number(name, getattr(self, name), low=0.0, high=1.0, high_open=True)
        check_positive("update_ratio_high", self.update_ratio_high)
        check_number(
            "update_ratio_low", self.update_ratio_low, low=0.0, high=self.update_ratio_high, high_open=True
        )
        check_int("plateau_window", self.plateau_window, low=4)
        for name in (
            "plateau_rel_change",
            "plateau_abs_change",
            "trivial_rel_gap",
            "grad_tiny",
            "slow_update_ratio",
            "overfitting_rise",
        ):
            check_positive(name, getattr(self, name))
        check_number("negative_curvature", self.negative_curvature, low=0.0, high=1.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_THRESHOLDS = Thresholds()


# -- decisions: pure functions of measured numbers ------------------------------------------
def gradient_ratio(norms: list[float]) -> float:
    """``‖g_first‖ / ‖g_last‖`` (``inf`` if only the last is zero, ``nan`` if both are)."""
    first, last = norms[0], norms[-1]
    if not (math.isfinite(first) and math.isfinite(last)):
        return math.nan
    if last == 0.0:
        return math.inf if first > 0.0 else math.nan
    return first / last


def gradient_labels(layers: list[str], norms: list[float], step: int | None, t: Thresholds) -> list[Flag]:
    """``exploding`` (non-finite or ratio > bound) or ``vanishing`` from per-layer gradient norms."""
    bad = [name for name, n in zip(layers, norms) if not math.isfinite(n)]
    if bad:
        return [
            make_flag(
                "exploding",
                step,
                bad[0],
                math.inf,
                t.exploding_ratio,
                f"non-finite gradient (NaN or inf) in {len(bad)} layer(s), first {bad[0]}",
            )
        ]
    if len(norms) < 2:
        return []
    ratio = gradient_ratio(norms)
    where = f"{layers[0]} vs {layers[-1]}"
    if ratio > t.exploding_ratio:
        return [
            make_flag(
                "exploding",
                step,
                layers[0],
                ratio,
                t.exploding_ratio,
                f"first/last layer gradient-norm ratio {ratio:.3g} > {t.exploding_ratio:g} ({where})",
            )
        ]
    if ratio < t.vanishing_ratio or (math.isnan(ratio) and norms[-1] == 0.0):
        value = 0.0 if math.isnan(ratio) else ratio
        return [
            make_flag(
                "vanishing",
                step,
                layers[0],
                value,
                t.vanishing_ratio,
                f"first/last layer gradient-norm ratio {value:.3g} < {t.vanishing_ratio:g} ({where})",
            )
        ]
    return []


def activation_labels(
    layers: list[str],
    kinds: list[str],
    dead: list[float],
    saturated: list[float],
    step: int | None,
    t: Thresholds,
) -> list[Flag]:
    """``dead-relu`` and ``saturated`` per activation layer."""
    out = []
    for name, kind, d, s in zip(layers, kinds, dead, saturated):
        if kind == "relu" and d > t.dead_fraction:
            out.append(
                make_flag(
                    "dead-relu",
                    step,
                    name,
                    d,
                    t.dead_fraction,
                    f"{d:.1%} of the units of {name} never active > {t.dead_fraction:.0%}",
                )
            )
        if kind in ("tanh", "sigmoid") and s > t.saturated_fraction:
            out.append(
                make_flag(
                    "saturated",
                    step,
                    name,
                    s,
                    t.saturated_fraction,
                    f"{s:.1%} of the {kind} activations of {name} saturated > {t.saturated_fraction:.0%}",
                )
            )
    return out


def update_labels(layers: list[str], ratios: list[float], step: int | None, t: Thresholds) -> list[Flag]:
    """``update-ratio-high`` / ``update-ratio-low`` per layer (warnings)."""
    out = []
    for name, r in zip(layers, ratios):
        if not math.isfinite(r):
            continue
        if r > t.update_ratio_high:
            out.append(
                make_flag(
                    "update-ratio-high",
                    step,
                    name,
                    r,
                    t.update_ratio_high,
                    f"update/parameter ratio of {name} {r:.3g} > {t.update_ratio_high:g}",
                )
            )
        elif r < t.update_ratio_low:
            out.append(
                make_flag(
                    "update-ratio-low",
                    step,
                    name,
                    r,
                    t.update_ratio_low,
                    f"update/parameter ratio of {name} {r:.3g} < {t.update_ratio_low:g}",
                )
            )
    return out


def stability_label(effective: float, threshold: float | None, rule: str, step: int | None) -> list[Flag]:
    """``unstable-lr`` if the effective sharpness is above the optimizer's bound."""
    if threshold is None or not math.isfinite(effective) or effective <= threshold:
        return []
    return [
        make_flag(
            "unstable-lr",
            step,
            None,
            effective,
            threshold,
            f"locally unstable step: {rule} violated, {effective:.3g} > {threshold:.3g}",
        )
    ]


def is_flat(losses: list[float], scale: float, t: Thresholds) -> tuple[bool, float]:
    """Flatness of the last ``plateau_window`` losses: ``(flat, |mean₁ − mean₂|)`` of the two halves."""
    window = [v for v in losses[-t.plateau_window :]]
    if len(window) < t.plateau_window or not all(math.isfinite(v) for v in window):
        return False, math.nan
    half = len(window) // 2
    first, second = sum(window[:half]) / half, sum(window[half:]) / (len(window) - half)
    change = abs(first - second)
    level = abs(first + second) / 2
    bound = max(t.plateau_rel_change * level, t.plateau_abs_change * abs(scale))
    return change <= bound, change


def plateau_label(
    losses: list[float],
    t: Thresholds,
    *,
    step: int | None = None,
    trivial_loss: float | None = None,
    grad_norm: float | None = None,
    saturated: float | None = None,
    lambda_min: float | None = None,
    lambda_max: float | None = None,
    descent: float | None = None,
    update_ratio: float | None = None,
) -> tuple[str | None, Flag | None, dict[str, Any]]:
    """Classify a flat loss: ``(label, flag, evidence)``; ``label`` is ``None`` if the loss is not flat.

    Decision, in order (each measurement optional; a missing one cannot support its label):

    1. not flat → ``None``;
    2. a saturated layer (fraction > ``saturated_fraction``) → ``plateau:saturation``;
    3. tiny gradient (‖g‖ < ``grad_tiny``): negative curvature (λ_min < −``negative_curvature``·|λ_max|)
       and, if the trivial loss is known, the loss within ``trivial_rel_gap`` of it →
       ``plateau:saddle``; otherwise, if the loss is not at the trivial loss (or curvature says
       no negative direction) → ``converged``;
    4. gradient not tiny, the first-order decrease predicted for the whole window,
       ``W·descent`` with ``descent = −g·Δw`` per step (η‖g‖² for gradient descent), below
       ``plateau_rel_change`` of the loss, and the largest layer update ratio (if known) below
       ``slow_update_ratio`` → ``plateau:lr-too-small``;
    5. otherwise ``"plateau"`` (flat, cause not identified from the evidence given).
    """
    loss = losses[-1] if losses else math.nan
    scale = trivial_loss if trivial_loss is not None else (losses[0] if losses else 1.0)
    flat, change = is_flat(losses, scale, t)
    evidence: dict[str, Any] = {
        "flat": flat,
        "change": change,
        "loss": loss,
        "trivial_loss": trivial_loss,
        "grad_norm": grad_norm,
        "saturated": saturated,
        "lambda_min": lambda_min,
        "lambda_max": lambda_max,
        "descent": descent,
        "update_ratio": update_ratio,
    }
    if not flat:
        return None, None, evidence
    gap = abs(loss - trivial_loss) / max(abs(trivial_loss), 1e-12) if trivial_loss is not None else None
    evidence["trivial_gap"] = gap
    at_trivial = gap is not None and gap <= t.trivial_rel_gap
    negative = None
    if lambda_min is not None and lambda_max is not None and math.isfinite(lambda_min):
        negative = lambda_min < -t.negative_curvature * abs(lambda_max)
    window = f"over the last {t.plateau_window} losses the loss changed by {change:.2g}"
    if saturated is not None and saturated > t.saturated_fraction:
        return (
            "plateau:saturation",
            make_flag(
                "plateau:saturation",
                step,
                None,
                saturated,
                t.saturated_fraction,
                f"{window}; {saturated:.1%} of a layer's activations saturated > {t.saturated_fraction:.0%}",
            ),
            evidence,
        )
    if grad_norm is not None and grad_norm < t.grad_tiny:
        if negative and (trivial_loss is None or at_trivial):
            where = f", within {gap:.2%} of the trivial loss {trivial_loss:.4g}" if at_trivial else ""
            return (
                "plateau:saddle",
                make_flag(
                    "plateau:saddle",
                    step,
                    None,
                    lambda_min,
                    -t.negative_curvature * abs(lambda_max),
                    f"{window}{where}; gradient norm {grad_norm:.2g} < {t.grad_tiny:g}; "
                    f"λ_min = {lambda_min:.3g} < 0 (λ_max = {lambda_max:.3g})",
                ),
                evidence,
            )
        if not at_trivial and (trivial_loss is not None or negative is False):
            curv = f"; λ_min = {lambda_min:.3g}" if lambda_min is not None else ""
            below = f", {gap:.0%} below the trivial loss {trivial_loss:.4g}" if gap is not None else ""
            return (
                "converged",
                make_flag(
                    "converged",
                    step,
                    None,
                    grad_norm,
                    t.grad_tiny,
                    f"{window}{below}; gradient norm {grad_norm:.2g} < {t.grad_tiny:g}{curv}",
                ),
                evidence,
            )
        return "plateau", None, evidence
    if grad_norm is not None and descent is not None and math.isfinite(descent):
        predicted = t.plateau_window * descent
        bound = t.plateau_rel_change * abs(loss)
        evidence["predicted_decrease"] = predicted
        slow = update_ratio is None or update_ratio < t.slow_update_ratio
        if predicted < bound and slow:
            return (
                "plateau:lr-too-small",
                make_flag(
                    "plateau:lr-too-small",
                    step,
                    None,
                    predicted,
                    bound,
                    f"{window}; gradient norm {grad_norm:.2g} ≥ {t.grad_tiny:g} but the steps predict a "
                    f"decrease of only {predicted:.2g} over the window (< {t.plateau_rel_change:.0%} of "
                    f"the loss)",
                ),
                evidence,
            )
    return "plateau", None, evidence


def overfitting_label(
    val: list[tuple[int, float]], train: list[tuple[int, float]], step: int | None, t: Thresholds
) -> list[Flag]:
    """``overfitting``: last validation loss ``overfitting_rise`` above the best, training loss lower.

    ``val`` and ``train`` are ``(step, loss)`` pairs in step order; the training loss at a step is
    the mean of the (up to) ``plateau_window`` logged training losses ending there.
    """
    val = [(s, v) for s, v in val if math.isfinite(v)]
    if len(val) < 2 or not train:
        return []
    best_step, best = min(val, key=lambda sv: sv[1])
    last_step, last = val[-1]
    if best <= 0 or last_step == best_step:
        return []
    rise = (last - best) / best

    def train_at(s: int) -> float:
        before = [v for st, v in train if st <= s and math.isfinite(v)][-t.plateau_window :]
        return sum(before) / len(before) if before else math.nan

    then, now = train_at(best_step), train_at(last_step)
    if rise > t.overfitting_rise and now < then:
        return [
            make_flag(
                "overfitting",
                step,
                None,
                rise,
                t.overfitting_rise,
                f"validation loss {last:.4g} is {rise:.1%} above its best {best:.4g} (step "
                f"{best_step}) while the training loss fell from {then:.4g} to {now:.4g}",
            )
        ]
    return []
