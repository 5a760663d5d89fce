"""One-shot measurements at a single point, no training loop: the evidence behind every label.

* :func:`gradient_flow` — per-layer gradient norms ``‖g_ℓ‖ = sqrt(Σ_{p∈ℓ} ‖∂L/∂p‖²)`` and the
  first-to-last ratio (vanishing / exploding gradients, notes 002);
* :func:`activation_stats` — per activation layer, the fraction of ReLU units never active and the
  fraction of tanh/sigmoid activations in the saturated zone (notes 002 'Saturation', dying ReLUs);
* :func:`update_ratios` — per layer ``‖Δw_ℓ‖ / ‖w_ℓ‖`` between two snapshots of the parameters;
* :func:`sharpness` — λ_max and λ_min of the loss's Hessian by Lanczos (robust where power
  iteration is not, e.g. near diverged points), and the optimizer's stability bound
  (:mod:`.stability`);
* :func:`trivial_loss` — the loss of the best constant prediction (the class-prior entropy for
  cross-entropy, the variance for squared error);
* :func:`classify_plateau` — saddle, saturation, too small a learning rate, or converged;
* :func:`diagnose` — all of them on one batch, as a :class:`~.summary.Diagnosis`.

A *layer* is a module holding parameters directly (``Linear``, ``LayerNorm``, ``MultiheadAttention``'s
input projection, ...), in registration order — the forward order for ``Sequential`` models. An
*activation layer* is a module of :data:`ACTIVATION_KINDS` (``ReLU``, ``ReLU6``, ``Tanh``,
``Sigmoid``); activations applied functionally (``F.relu`` inside ``forward``) are not seen. A *unit*
is one index of the feature dimension: the last one for 2-d and 3-d outputs (``Linear``, sequence
models), dimension 1 for 4-d and 5-d outputs (convolutions).

Nothing here changes the model: gradients are taken with ``torch.autograd.grad`` (``.grad`` is left
alone), buffers (BatchNorm's running statistics) are restored after our own forward passes, the
random start of Lanczos comes from a private generator, and a ``torch.compile``d model is run
eagerly for these passes (``torch.compiler.set_stance("force_eager")``) so that forward hooks fire.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..curvature import CurvatureOperator, hessian_operator, lanczos
from ..validation import check_callable, check_int
from .labels import (
    DEFAULT_THRESHOLDS,
    Flag,
    Thresholds,
    activation_labels,
    gradient_labels,
    gradient_ratio,
    plateau_label,
    stability_label,
    update_labels,
)
from .stability import stability_rule

__all__ = [
    "ACTIVATION_KINDS",
    "Probe",
    "GradientFlow",
    "ActivationStats",
    "UpdateRatios",
    "Sharpness",
    "Plateau",
    "gradient_flow",
    "activation_stats",
    "update_ratios",
    "sharpness",
    "trivial_loss",
    "classify_plateau",
    "diagnose",
    "parameter_layers",
    "activation_layers",
]

#: Activation modules watched, and how: ``"relu"`` units can die, ``"tanh"``/``"sigmoid"`` saturate.
ACTIVATION_KINDS: dict[type, str] = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
}


# -- the model's layers ------------------------------------------------------------------
def _display(name: str) -> str:
    # A torch.compile'd model wraps the original one as the submodule "_orig_mod".
    name = name.removeprefix("_orig_mod").removeprefix(".")
    return name or "(model)"


def parameter_layers(model: nn.Module) -> list[tuple[str, list[Tensor]]]:
    """``(name, parameters)`` of every module that holds trainable parameters directly."""
    seen: set[int] = set()
    layers = []
    for name, module in model.named_modules():
        params = [p for p in module.parameters(recurse=False) if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for p in params)
        if params:
            layers.append((_display(name), params))
    return layers


def activation_layers(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """``(name, module, kind)`` of every activation module of :data:`ACTIVATION_KINDS`."""
    out = []
    for name, module in model.named_modules():
        for cls in type(module).__mro__:
            if cls in ACTIVATION_KINDS:
                out.append((_display(name), module, ACTIVATION_KINDS[cls]))
                break
    return out


def check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not parameter_layers(model):
        raise ValueError(
            f"model must have at least one trainable parameter, got {type(model).__name__} with none"
        )
    return model


@contextlib.contextmanager
def own_forward(model: nn.Module) -> Iterator[None]:
    """Our own passes through the user's model: eager (hooks fire under torch.compile), buffers kept,
    and attention by the "math" kernel of ``scaled_dot_product_attention`` — the fused CPU/GPU kernels
    have no double backward, which Hessian-vector products need."""
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        with torch.compiler.set_stance("force_eager"), sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)


# -- probe -------------------------------------------------------------------------------
@dataclass
class Probe:
    """A fixed batch the diagnosis may run itself: ``inputs`` for activations; with ``targets`` and
    ``loss_fn(outputs, targets) -> scalar`` also for curvature, gradients and the trivial loss.

    ``inputs`` is whatever the model takes (a tensor, a dict of tensors, ...)."""

    inputs: Any
    targets: Any = None
    loss_fn: Callable[[Any, Any], Tensor] | None = None

    def __post_init__(self) -> None:
        if self.loss_fn is not None:
            check_callable("probe.loss_fn", self.loss_fn, "loss_fn(outputs, targets) -> scalar tensor")

    @property
    def has_loss(self) -> bool:
        return self.loss_fn is not None

    @classmethod
    def coerce(cls, value: Any) -> Probe | None:
        """``None``, a :class:`Probe`, a tuple ``(inputs, targets, loss_fn)``, or bare inputs."""
        if value is None or isinstance(value, Probe):
            return value
        if isinstance(value, tuple) and len(value) == 3 and callable(value[2]):
            return cls(*value)
        return cls(value)

    def loss(self, model: nn.Module) -> Tensor:
        return self.loss_fn(model(self.inputs), self.targets)


def check_probe(model: nn.Module, probe: Probe) -> None:
    """Run the probe once: ``ValueError`` naming it if it does not fit the model (or its loss)."""
    try:
        with torch.no_grad(), own_forward(model):
            outputs = model(probe.inputs)
            if probe.has_loss:
                loss = probe.loss_fn(outputs, probe.targets)
                if not isinstance(loss, Tensor) or loss.numel() != 1:
                    raise ValueError(
                        f"loss_fn must return a scalar tensor, got {type(loss).__name__} "
                        f"of shape {tuple(getattr(loss, 'shape', ()))}"
                    )
    except Exception as error:  # the user's model decides what does not fit; say so with its message
        raise ValueError(
            f"probe does not match the model {type(model).__name__}: {type(error).__name__}: {error}"
        ) from error


# -- gradients ---------------------------------------------------------------------------
def _norm(t: Tensor | None) -> float:
    """‖t‖₂ as a Python float; recomputed in float64 if the tensor's own precision overflowed."""
    if t is None:
        return 0.0
    t = t.detach()
    if t.is_sparse:
        t = t.coalesce().values()
    value = float(torch.linalg.vector_norm(t))
    if math.isinf(value) and t.dtype != torch.float64:
        value = float(torch.linalg.vector_norm(t, dtype=torch.float64))
    return value


def layer_norms(groups: list[list[Tensor | None]]) -> list[float]:
    """``sqrt(Σ ‖t‖²)`` per group of tensors (float64, so exploding values do not overflow early)."""
    return [math.sqrt(sum(_norm(t) ** 2 for t in tensors)) for tensors in groups]


@dataclass
class GradientFlow:
    """Per-layer gradient norms (``norms[i]`` for ``layers[i]``), their first/last ``ratio``, the global
    ``total`` norm, and whether all were finite."""

    layers: list[str]
    norms: list[float]
    ratio: float
    total: float
    finite: bool

    def flags(self, thresholds: Thresholds = DEFAULT_THRESHOLDS, step: int | None = None) -> list[Flag]:
        return gradient_labels(self.layers, self.norms, step, thresholds)


def _flow(layers: list[tuple[str, list[Tensor]]], grads: list[list[Tensor | None]]) -> GradientFlow:
    norms = layer_norms(grads)
    total = math.sqrt(sum(n * n for n in norms))
    return GradientFlow(
        [name for name, _ in layers],
        norms,
        gradient_ratio(norms),
        total,
        all(math.isfinite(n) for n in norms),
    )


def gradient_flow(model: nn.Module, loss: Tensor | None = None) -> GradientFlow:
    """Per-layer gradient norms of ``loss`` (by ``torch.autograd.grad``; ``.grad`` is not touched), or,
    with ``loss=None``, of the gradients already in ``.grad``.

    ``vanishing`` when ``ratio = ‖g_first‖/‖g_last‖ < 1e-3``, ``exploding`` when it is above 1e2 or a
    gradient is not finite (notes 002: the gradient shrinks or grows geometrically with depth).
    """
    layers = parameter_layers(check_model(model))
    if loss is None:
        grads = [[p.grad for p in params] for _, params in layers]
    else:
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError(f"loss must be a scalar tensor, got {type(loss).__name__}")
        flat = [p for _, params in layers for p in params]
        got = iter(torch.autograd.grad(loss, flat, allow_unused=True))
        grads = [[next(got) for _ in params] for _, params in layers]
    return _flow(layers, grads)


# -- activations -------------------------------------------------------------------------
def _unit_dim(t: Tensor) -> int:
    return 1 if t.dim() >= 4 else t.dim() - 1


class ActivationRecorder:
    """Forward hooks on activation modules that pool statistics over every forward they see.

    Per layer: ``ever_active`` (ReLU units with output > 0 on at least one example) and the count of
    saturated activations (|a| > level for tanh, |2a − 1| > level for the sigmoid). The hooks are
    removable handles (:meth:`attach` / :meth:`detach`) and record only while ``enabled()`` is true.
    """

    def __init__(
        self,
        layers: list[tuple[str, nn.Module, str]],
        level: float,
        enabled: Callable[[], bool] = lambda: True,
    ) -> None:
        self.layers = layers
        self.level = level
        self.enabled = enabled
        self.handles: list[Any] = []
        self._hooks = [self._hook(i) for i in range(len(layers))]
        self.reset()

    def reset(self) -> None:
        self.ever_active: list[Tensor | None] = [None] * len(self.layers)
        self.saturated = [0] * len(self.layers)
        self.total = [0] * len(self.layers)
        self.calls = 0

    def attach(self) -> None:
        if not self.handles:
            self.handles = [
                module.register_forward_hook(hook) for (_, module, _), hook in zip(self.layers, self._hooks)
            ]

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def _hook(self, i: int) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if isinstance(output, Tensor) and output.is_floating_point() and self.enabled():
                self.record(i, output.detach())

        return hook

    def record(self, i: int, a: Tensor) -> None:
        self.calls += 1
        kind = self.layers[i][2]
        if kind == "relu":
            dim = _unit_dim(a)
            others = [d for d in range(a.dim()) if d != dim]
            active = (a > 0).any(dim=others) if others else a > 0
            previous = self.ever_active[i]
            same = previous is not None and previous.shape == active.shape
            self.ever_active[i] = (previous | active) if same else active
        else:
            centred = a if kind == "tanh" else 2 * a - 1
            self.saturated[i] += int((centred.abs() > self.level).sum())
            self.total[i] += a.numel()

    def result(self) -> tuple[list[float], list[float]]:
        """``(dead, saturated)`` fractions per layer (``nan`` where not applicable or not seen)."""
        dead, saturated = [], []
        for i, (_, _, kind) in enumerate(self.layers):
            ever = self.ever_active[i]
            dead.append(1.0 - float(ever.float().mean()) if kind == "relu" and ever is not None else math.nan)
            saturated.append(self.saturated[i] / self.total[i] if self.total[i] else math.nan)
        return dead, saturated


@dataclass
class ActivationStats:
    """Per activation layer: its ``kinds`` entry, the fraction of ``dead`` units (ReLU) and of
    ``saturated`` activations (tanh, sigmoid); ``nan`` where a statistic does not apply."""

    layers: list[str]
    kinds: list[str]
    dead: list[float]
    saturated: list[float]

    def flags(self, thresholds: Thresholds = DEFAULT_THRESHOLDS, step: int | None = None) -> list[Flag]:
        return activation_labels(self.layers, self.kinds, self.dead, self.saturated, step, thresholds)

    @property
    def max_saturated(self) -> float | None:
        values = [s for s in self.saturated if math.isfinite(s)]
        return max(values) if values else None


def activation_stats(
    model: nn.Module, inputs: Any, *, level: float = Thresholds.saturation_level
) -> ActivationStats:
    """Run ``model(inputs)`` once (no gradient) and measure its activation layers.

    ``dead`` = fraction of a ReLU layer's units whose output is ≤ 0 for *every* example of the
    batch (the dying-ReLU problem: their gradient is exactly zero); ``saturated`` = fraction of a
    tanh (sigmoid) layer's activations with |a| > ``level`` (|2a − 1| > ``level``), where the slope
    is below 2 % of its maximum (notes 002 'Saturation').
    """
    check_model(model)
    layers = activation_layers(model)
    recorder = ActivationRecorder(layers, level)
    recorder.attach()
    try:
        with torch.no_grad(), own_forward(model):
            model(inputs)
    finally:
        recorder.detach()
    dead, saturated = recorder.result()
    return ActivationStats([n for n, _, _ in layers], [k for _, _, k in layers], dead, saturated)


# -- updates -----------------------------------------------------------------------------
def _named(snapshot: Mapping[str, Tensor] | nn.Module, what: str) -> dict[str, Tensor]:
    if isinstance(snapshot, nn.Module):
        return {n: p.detach() for n, p in snapshot.named_parameters() if p.requires_grad}
    if not isinstance(snapshot, Mapping):
        raise ValueError(
            f"{what} must be a mapping name -> tensor or an nn.Module, got {type(snapshot).__name__}"
        )
    return dict(snapshot)


@dataclass
class UpdateRatios:
    """``ratios[i] = ‖Δw‖/‖w‖`` of ``layers[i]`` (parameters grouped by the module that holds them)."""

    layers: list[str]
    ratios: list[float]

    def flags(self, thresholds: Thresholds = DEFAULT_THRESHOLDS, step: int | None = None) -> list[Flag]:
        return update_labels(self.layers, self.ratios, step, thresholds)


def ratio(change: float, size: float) -> float:
    if size == 0.0:
        return math.inf if change > 0 else 0.0
    return change / size


def update_ratios(
    before: Mapping[str, Tensor] | nn.Module, after: Mapping[str, Tensor] | nn.Module
) -> UpdateRatios:
    """Per-layer ``‖w_after − w_before‖ / ‖w_before‖`` from two snapshots name → tensor (for instance
    ``{n: p.detach().clone() for n, p in model.named_parameters()}`` before the step, the model after).

    A ratio near 1e-3 is the usual healthy value; > 1e-2 suggests too large a learning rate, < 1e-5
    too small a one (or a vanishing gradient upstream)."""
    b, a = _named(before, "before"), _named(after, "after")
    if set(b) != set(a):
        raise ValueError(
            f"before and after must name the same parameters, got {sorted(set(b) ^ set(a))} "
            "in only one of them"
        )
    groups: dict[str, list[str]] = {}
    for name in b:
        groups.setdefault(name.rpartition(".")[0], []).append(name)
    layers, ratios = [], []
    for layer, names in groups.items():
        change = math.sqrt(sum(_norm(a[n].detach() - b[n].detach()) ** 2 for n in names))
        size = math.sqrt(sum(_norm(b[n]) ** 2 for n in names))
        layers.append(_display(layer))
        ratios.append(ratio(change, size))
    return UpdateRatios(layers, ratios)


# -- curvature ---------------------------------------------------------------------------
@dataclass
class Sharpness:
    """The Hessian's extreme eigenvalues and the optimizer's stability test.

    ``effective`` is ``λ_max(S^{1/2}(H + λ_wd)S^{1/2})`` — ``η·λ_max`` for gradient descent, the
    preconditioned sharpness for Adam/RMSprop — compared to ``bound`` (2 for GD, 2(1+β) for heavy
    ball, ...). ``covered`` is false (``effective``/``bound`` ``nan``/``None``) when no optimizer was
    given or it has no rule (``note`` says why). ``unstable`` means a *locally unstable step*."""

    lambda_max: float
    lambda_min: float
    effective: float = math.nan
    bound: float | None = None
    formula: str = ""
    preconditioned: bool = False
    note: str = ""

    @property
    def covered(self) -> bool:
        return self.bound is not None

    @property
    def unstable(self) -> bool:
        return self.covered and math.isfinite(self.effective) and self.effective > self.bound

    @property
    def lr_threshold(self) -> float | None:
        """The bound on λ_max alone, ``bound·λ_max/effective`` (2/η for GD), when covered."""
        if not self.covered or not self.effective or not math.isfinite(self.effective):
            return None
        return self.bound * self.lambda_max / self.effective

    def flags(self, step: int | None = None) -> list[Flag]:
        return stability_label(self.effective, self.bound, self.formula, step)


def _extremes(op: CurvatureOperator, num_steps: int, seed: int) -> tuple[float, float]:
    generator = torch.Generator().manual_seed(seed)
    t, _ = lanczos(op, min(num_steps, op.size), generator=generator)
    if not bool(torch.isfinite(t).all()):
        return math.nan, math.nan
    try:
        theta = torch.linalg.eigvalsh(t)
    except torch.linalg.LinAlgError:
        return math.nan, math.nan
    return float(theta[0]), float(theta[-1])


def sharpness(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], Tensor],
    inputs: Any,
    targets: Any,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    num_steps: int = 20,
    seed: int = 0,
) -> Sharpness:
    """λ_max and λ_min of the Hessian of ``loss_fn(model(inputs), targets)`` by Lanczos (``num_steps``
    Hessian-vector products, exact when ``num_steps`` ≥ the number of parameters), and the
    optimizer's stability bound (:mod:`.stability`).

    Lanczos rather than power iteration: it converges to both ends of the spectrum at once, does
    not stall when λ_max ≈ −λ_min (a saddle), and non-finite products are detected and reported as
    ``nan`` instead of an eigenvalue.
    """
    check_model(model)
    check_callable("loss_fn", loss_fn, "loss_fn(outputs, targets) -> scalar tensor")
    check_int("num_steps", num_steps, low=1)
    with own_forward(model), torch.enable_grad():
        with torch.no_grad():
            value = float(loss_fn(model(inputs), targets))
        if not math.isfinite(value):
            return Sharpness(math.nan, math.nan, note=f"the loss is not finite ({value}): no curvature")
        op = hessian_operator(model, loss_fn, inputs, targets)
        lam_min, lam_max = _extremes(op, num_steps, seed)
        result = Sharpness(lam_max, lam_min)
        if optimizer is None:
            result.note = "no optimizer given: no stability bound"
            return result
        rule, note = stability_rule(optimizer)
        if rule is None:
            result.note = note
            return result
        params = [p for p in model.parameters() if p.requires_grad]
        scale, decay = rule.flat_scale(params)
        if rule.uniform:
            s, wd = float(scale[0]), float(decay[0])
            effective = s * (lam_max + wd) if math.isfinite(lam_max) else math.nan
        else:
            root = scale.clamp_min(0).sqrt()
            effective_op = CurvatureOperator(
                lambda v: root * (op.matvec(root * v) + decay * (root * v)), op.size, op.dtype, op.device
            )
            effective = _extremes(effective_op, num_steps, seed)[1]
    return Sharpness(lam_max, lam_min, effective, rule.bound, rule.formula, rule.preconditioned, note)


def trivial_loss(
    loss_fn: Callable[[Any, Any], Tensor], outputs: Tensor, targets: Any, *, steps: int = 50
) -> float | None:
    """The loss of the best *constant* prediction ``c`` (one value per output, the same for every
    example), minimised by L-BFGS in float64: the class-prior entropy ``−Σ_k π_k log π_k`` for
    cross-entropy, the targets' variance for squared error. ``None`` if the outputs have no batch
    dimension."""
    if not isinstance(outputs, Tensor) or outputs.dim() < 1 or not outputs.is_floating_point():
        return None
    c = outputs.detach().double().mean(dim=0).clone().requires_grad_(True)
    targets = targets.double() if isinstance(targets, Tensor) and targets.is_floating_point() else targets
    shape = outputs.shape
    solver = torch.optim.LBFGS([c], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        solver.zero_grad()
        loss = loss_fn(c.expand(shape), targets)
        loss.backward()
        return loss

    with torch.enable_grad():
        solver.step(closure)
        with torch.no_grad():
            return float(loss_fn(c.expand(shape), targets))


# -- plateaus ----------------------------------------------------------------------------
@dataclass
class Plateau:
    """``label``: ``None`` (not flat), ``"plateau:saddle"``, ``"plateau:saturation"``,
    ``"plateau:lr-too-small"``, ``"converged"`` or ``"plateau"`` (flat, cause not identified);
    ``flag`` the corresponding :class:`Flag`; ``evidence`` every number used."""

    label: str | None
    flag: Flag | None
    evidence: dict[str, Any] = field(default_factory=dict)


def _check_losses(losses: Any) -> list[float]:
    try:
        values = [float(v) for v in losses]
    except (TypeError, ValueError):
        raise ValueError(f"losses must be a sequence of numbers, got {type(losses).__name__}") from None
    return values


def point_evidence(model: nn.Module, probe: Probe, *, num_steps: int = 20) -> dict[str, Any]:
    """Gradient norm, maximal saturated fraction, λ_min/λ_max and trivial loss on the probe."""
    evidence: dict[str, Any] = {}
    with own_forward(model), torch.enable_grad():
        outputs = model(probe.inputs)
        loss = probe.loss_fn(outputs, probe.targets)
        params = [p for p in model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    evidence["grad_norm"] = math.sqrt(sum(_norm(g) ** 2 for g in grads))
    evidence["saturated"] = activation_stats(model, probe.inputs).max_saturated
    sharp = sharpness(model, probe.loss_fn, probe.inputs, probe.targets, num_steps=num_steps)
    evidence["lambda_min"], evidence["lambda_max"] = sharp.lambda_min, sharp.lambda_max
    evidence["trivial_loss"] = trivial_loss(probe.loss_fn, outputs.detach(), probe.targets)
    return evidence


def classify_plateau(
    losses: Any,
    *,
    model: nn.Module | None = None,
    probe: Probe | Any = None,
    trivial_loss: float | None = None,
    lr: float | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Plateau:
    """Is the loss on a plateau, and which one? (decision list: :func:`.labels.plateau_label`).

    ``losses`` are the last training losses (at least ``thresholds.plateau_window``). With a
    ``model`` and a ``probe`` carrying ``targets`` and ``loss_fn``, the gradient norm, saturation,
    λ_min/λ_max and — unless given — the trivial loss are measured on the probe; with ``lr`` the
    first-order decrease per step ``η‖g‖²`` tells a too-small learning rate. Without them only
    flatness can be judged (label ``"plateau"``).
    """
    values = _check_losses(losses)
    evidence: dict[str, Any] = {}
    probe = Probe.coerce(probe)
    if model is not None:
        check_model(model)
        if probe is None or not probe.has_loss:
            raise ValueError(
                f"probe must be a Probe with targets and loss_fn when model is given, got {probe!r}"
            )
        check_probe(model, probe)
        evidence = point_evidence(model, probe)
    if trivial_loss is not None:
        evidence["trivial_loss"] = float(trivial_loss)
    descent = update_ratio = None
    if lr is not None and evidence.get("grad_norm") is not None:
        # one gradient-descent step: Δw = −η g, so −g·Δw = η‖g‖² and ‖Δw‖/‖w‖ = η‖g‖/‖w‖
        descent = float(lr) * evidence["grad_norm"] ** 2
        size = math.sqrt(sum(_norm(p) ** 2 for p in model.parameters() if p.requires_grad))
        update_ratio = ratio(float(lr) * evidence["grad_norm"], size)
    label, flag, found = plateau_label(
        values, thresholds, descent=descent, update_ratio=update_ratio, **evidence
    )
    return Plateau(label, flag, found)


# -- everything at once ------------------------------------------------------------------
def diagnose(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], Tensor],
    inputs: Any,
    targets: Any,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    losses: Any = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    num_steps: int = 20,
):
    """Every one-shot test on one batch: gradient flow, activations, sharpness (with the optimizer's
    bound if given) and, with the recent ``losses``, the plateau classification.

    Returns a :class:`~.summary.Diagnosis` (``print`` it, or ``.to_dict()``); ``.flags`` lists the
    labels raised."""
    from .summary import Diagnosis, Measurement

    check_model(model)
    check_callable("loss_fn", loss_fn, "loss_fn(outputs, targets) -> scalar tensor")
    probe = Probe(inputs, targets, loss_fn)
    check_probe(model, probe)
    with own_forward(model), torch.enable_grad():
        loss = loss_fn(model(inputs), targets)
        flow = gradient_flow(model, loss)
    acts = activation_stats(model, inputs, level=thresholds.saturation_level)
    sharp = sharpness(model, loss_fn, inputs, targets, optimizer, num_steps=num_steps)
    flags = flow.flags(thresholds) + acts.flags(thresholds) + sharp.flags()
    measurements = [Measurement.gradient(flow.layers, flow.norms, thresholds)]
    measurements += Measurement.activations(acts.layers, acts.kinds, acts.dead, acts.saturated, thresholds)
    measurements.append(Measurement.curvature(sharp))
    if losses is not None:
        plateau = classify_plateau(
            losses, model=model, probe=probe, thresholds=thresholds, lr=_first_lr(optimizer)
        )
        if plateau.flag is not None:
            flags.append(plateau.flag)
    return Diagnosis(flags, [m for m in measurements if m is not None], observed_steps=1)


def _first_lr(optimizer: torch.optim.Optimizer | None) -> float | None:
    if optimizer is None:
        return None
    return float(optimizer.param_groups[0]["lr"])
