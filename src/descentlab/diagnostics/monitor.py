"""Watch the user's own training loop, do not own it: ``with watch(model, optimizer) as monitor:``.

The monitor sees the loop only through public torch hooks, each a removable handle taken off when
the ``with`` block ends (or at :meth:`Monitor.close`):

* ``Optimizer.register_step_pre_hook`` — before step ``t``: the gradients ``∂L/∂w`` the step will
  use (per-layer norms, finiteness), a copy of the parameters, and, every ``curvature_every``
  steps, λ_max/λ_min on the probe batch with the optimizer's stability bound;
* ``Optimizer.register_step_post_hook`` — after step ``t``: the real update ``Δw = w_{t+1} − w_t``,
  whatever the optimizer (torch's or descentlab's), hence ``‖Δw‖/‖w‖`` per layer and the first-order
  decrease ``−g·Δw``; the learning rate of every step;
* ``Module.register_forward_hook`` on the activation modules, *sampled*: attached only between the
  step before an observed step and that step, so the forwards (all of them, with gradient
  accumulation) that produce an observed step's gradient are measured and the others run hook-free.
  With a ``probe`` the activations are measured on that fixed batch instead.

Steps ``t`` with ``t % every == 0`` are *observed*; the others cost two Python calls and a counter.
An observed step copies the parameters and their gradients once (transiently twice the model's size)
to measure the real update; curvature estimates use the optimizer's state as it is before the step.
A ``torch.compile``d model ignores forward hooks added after compilation, so for compiled models pass
a ``probe`` (run eagerly by the monitor) to get activation statistics; everything else works as is.

The loop tells the monitor its losses with :meth:`Monitor.log` (``descentlab.training.fit`` does so
after every optimizer step and after each validation): the loss history feeds the plateau,
``converged`` and ``overfitting`` labels. All state is in :meth:`Monitor.state_dict`.
"""

from __future__ import annotations

import bisect
import math
import os
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..validation import check_bool, check_int
from .labels import (
    DEFAULT_THRESHOLDS,
    Flag,
    Thresholds,
    activation_labels,
    gradient_labels,
    make_flag,
    overfitting_label,
    plateau_label,
    update_labels,
)
from .statistics import (
    ActivationRecorder,
    Probe,
    _flow,
    _norm,
    activation_layers,
    activation_stats,
    check_model,
    check_probe,
    own_forward,
    parameter_layers,
    ratio,
    sharpness,
    trivial_loss,
)
from .summary import Diagnosis, Measurement

__all__ = ["watch", "Monitor", "History"]

_VERSION = 1
_LAYER_KEYS = ("grad_norm", "update_ratio")
_ACTIVATION_KEYS = ("dead", "saturated")


def watch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    every: int = 10,
    activations: bool = True,
    probe: Probe | Any = None,
    curvature_every: int | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    trivial_loss: float | None = None,
    lanczos_steps: int = 20,
) -> Monitor:
    """Start watching ``model`` trained by ``optimizer``; use as ``with watch(model, opt) as monitor:``.

    ``every`` — observe every ``every``-th optimizer step (gradients, updates, activations);
    ``activations`` — measure dead and saturated units (forward hooks, sampled); ``probe`` — a
    :class:`Probe` (fixed batch; with ``targets`` and ``loss_fn`` it also gives the curvature and
    the trivial loss); ``curvature_every`` — estimate λ_max, λ_min by Lanczos (``lanczos_steps``
    Hessian-vector products on the probe) every so many steps, opt-in because each estimate costs
    about as much as ``2·lanczos_steps`` backward passes; ``thresholds`` — the labels' bounds;
    ``trivial_loss`` — the loss of the best constant predictor (computed from the probe if omitted).

    Arguments are checked here: a bad one raises ``ValueError`` naming it, its value and the range.
    Without a ``with`` block, call :meth:`Monitor.close` to remove the hooks. Forwards run with
    gradients enabled between the step before an observed step and that step are all pooled into
    its activation statistics (validation under ``torch.no_grad()`` is not).
    """
    monitor = Monitor(
        model,
        optimizer,
        every=every,
        activations=activations,
        probe=probe,
        curvature_every=curvature_every,
        thresholds=thresholds,
        trivial_loss=trivial_loss,
        lanczos_steps=lanczos_steps,
    )
    return monitor.attach()


def _scalar(name: str, value: Any) -> float:
    if type(value) is float:
        return value
    if isinstance(value, Tensor) and value.numel() == 1:
        return value.detach().item()
    if isinstance(value, Real) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{name} must be a number or a one-element tensor, got {type(value).__name__} {value!r}")


class History:
    """What the monitor measured, by optimizer step.

    ``records[step]`` is a dict with any of: the logged scalars (``loss``, ``val_loss``, metrics,
    ``lr``), ``grad_norm`` (list over :attr:`layers`), ``grad_ratio``, ``grad_total``,
    ``update_ratio`` (list over :attr:`layers`), ``descent`` (−g·Δw), ``dead`` and ``saturated``
    (lists over :attr:`activation_layers`), ``lambda_max``, ``lambda_min``, ``sharpness`` (the
    effective η·λ_max), ``sharpness_bound``, ``momentum``. :attr:`lr` holds the learning rate of
    every optimizer step (group 0).
    """

    def __init__(
        self,
        layers: list[str],
        activation_layers: list[str],
        activation_kinds: list[str],
        records: dict[int, dict[str, Any]],
        lr: list[float],
    ) -> None:
        self.layers = layers
        self.activation_layers = activation_layers
        self.activation_kinds = activation_kinds
        self.records = records
        self.lr = lr

    @property
    def steps(self) -> list[int]:
        return sorted(self.records)

    def __getitem__(self, step: int) -> dict[str, Any]:
        return self.records[step]

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """``(steps, values)`` of a scalar ``key`` (``"loss"``, ``"lambda_max"``, ...)."""
        steps = [s for s in self.steps if key in self.records[s]]
        return steps, [self.records[s][key] for s in steps]

    def layer_series(self, key: str) -> tuple[list[int], np.ndarray]:
        """``(steps, array[layer, step])`` of a per-layer ``key`` (``"grad_norm"``, ``"dead"``, ...)."""
        steps = [s for s in self.steps if key in self.records[s]]
        width = len(self.layers) if key in _LAYER_KEYS else len(self.activation_layers)
        values = np.array([self.records[s][key] for s in steps], dtype=float).reshape(len(steps), width)
        return steps, values.T

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers),
            "activation_layers": list(self.activation_layers),
            "activation_kinds": list(self.activation_kinds),
            "records": {s: dict(r) for s, r in self.records.items()},
            "lr": list(self.lr),
        }


class Monitor:
    """Diagnosis of a training run; made by :func:`watch` (see there for the arguments).

    After the loop: :attr:`flags` (every :class:`Flag` raised, in order), :attr:`history`,
    :meth:`report` (a :class:`~.summary.Diagnosis`: ``print`` it) and :meth:`plot` (the dashboard).
    A flag is raised when its condition *starts* to hold (for each label and layer), not at every
    step it persists.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        every: int = 10,
        activations: bool = True,
        probe: Probe | Any = None,
        curvature_every: int | None = None,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        trivial_loss: float | None = None,
        lanczos_steps: int = 20,
    ) -> None:
        self.model = check_model(model)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.every = check_int("every", every, low=1)
        self.activations = check_bool("activations", activations)
        self.curvature_every = (
            None if curvature_every is None else check_int("curvature_every", curvature_every, low=1)
        )
        if not isinstance(thresholds, Thresholds):
            raise ValueError(f"thresholds must be a Thresholds, got {type(thresholds).__name__}")
        self.thresholds = thresholds
        self.lanczos_steps = check_int("lanczos_steps", lanczos_steps, low=1)
        self._layers = parameter_layers(model)
        optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if not any(id(p) in optimised for _, params in self._layers for p in params):
            raise ValueError("optimizer must optimise parameters of model, got one that holds none of them")
        self.probe = Probe.coerce(probe)
        if self.probe is not None:
            check_probe(model, self.probe)
        if self.curvature_every is not None and (self.probe is None or not self.probe.has_loss):
            raise ValueError(
                f"curvature_every={self.curvature_every} needs a probe with targets and "
                f"loss_fn (Probe(inputs, targets, loss_fn)), got probe={probe!r}"
            )
        if trivial_loss is not None:
            self.trivial_loss: float | None = _scalar("trivial_loss", trivial_loss)
        elif self.probe is not None and self.probe.has_loss:
            with torch.no_grad(), own_forward(model):
                outputs = model(self.probe.inputs)
            self.trivial_loss = _trivial(self.probe, outputs)
        else:
            self.trivial_loss = None
        self._act = activation_layers(model) if activations else []
        self._recorder = ActivationRecorder(
            self._act, thresholds.saturation_level, enabled=torch.is_grad_enabled
        )
        self._handles: list[Any] = []
        self._step = 0
        self._records: dict[int, dict[str, Any]] = {}
        self._lr: list[float] = []
        self._train: list[tuple[int, float]] = []
        self._val: list[tuple[int, float]] = []
        self.flags: list[Flag] = []
        self._active: dict[str, set[tuple[str, str | None]]] = {}
        self._unreported: list[Flag] = []
        self._snapshot: list[list[Tensor]] | None = None
        self._grads: list[list[Tensor | None]] | None = None
        self._notes: dict[str, str] = {}

    # -- hooks -------------------------------------------------------------------------
    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def attach(self) -> Monitor:
        """Register the hooks (done by :func:`watch` and on entering ``with``); returns ``self``."""
        if not self._handles:
            self._handles = [
                self.optimizer.register_step_pre_hook(self._pre_step),
                self.optimizer.register_step_post_hook(self._post_step),
            ]
            if self._samples_forwards and self._observed(self._step):
                self._recorder.attach()
        return self

    def close(self) -> None:
        """Remove every hook this monitor registered (on the optimizer and on the model)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._recorder.detach()
        self._snapshot = self._grads = None

    def __enter__(self) -> Monitor:
        return self.attach()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def _samples_forwards(self) -> bool:
        return bool(self._act) and self.probe is None

    def _observed(self, step: int) -> bool:
        return step % self.every == 0

    def _curvature_due(self, step: int) -> bool:
        return self.curvature_every is not None and step % self.curvature_every == 0

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        t = self._step
        observed, curvature = self._observed(t), self._curvature_due(t)
        if not (observed or curvature):
            return
        record = self._record(t)
        if observed:
            self._observe_gradients(t, record)
            if self._act:
                self._observe_activations(t, record)
        if curvature:
            self._observe_curvature(t, record)

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        t = self._step
        group = optimizer.param_groups[0]
        self._lr.append(float(group["lr"]))
        if self._snapshot is not None:
            self._observe_update(t, self._record(t), group)
        self._step = t + 1
        if self._samples_forwards and self._observed(t + 1):
            self._recorder.attach()

    # -- observations ------------------------------------------------------------------
    def _observe_gradients(self, t: int, record: dict[str, Any]) -> None:
        grads = [[p.grad for p in params] for _, params in self._layers]
        flow = _flow(self._layers, grads)
        record.update(grad_norm=flow.norms, grad_ratio=flow.ratio, grad_total=flow.total)
        self._family("gradient", gradient_labels(flow.layers, flow.norms, t, self.thresholds))
        self._snapshot = [[p.detach().clone() for p in params] for _, params in self._layers]
        self._grads = [[None if g is None else g.detach().clone() for g in layer] for layer in grads]

    def _observe_update(self, t: int, record: dict[str, Any], group: dict[str, Any]) -> None:
        ratios, descent = [], 0.0
        for (_, params), before, grads in zip(self._layers, self._snapshot, self._grads):
            change = size = 0.0
            for p, b, g in zip(params, before, grads):
                delta = p.detach() - b
                change += _norm(delta) ** 2
                size += _norm(b) ** 2
                if g is not None:  # first-order decrease −g·Δw
                    descent -= _dot(g, delta)
            ratios.append(ratio(math.sqrt(change), math.sqrt(size)))
        self._snapshot = self._grads = None
        momentum = group.get("momentum", group.get("betas", (None,))[0])
        record.update(update_ratio=ratios, descent=descent)
        if momentum is not None:
            record["momentum"] = float(momentum)
        names = [name for name, _ in self._layers]
        self._family("update", update_labels(names, ratios, t, self.thresholds))

    def _observe_activations(self, t: int, record: dict[str, Any]) -> None:
        if self.probe is not None:
            stats = activation_stats(self.model, self.probe.inputs, level=self.thresholds.saturation_level)
            dead, saturated = stats.dead, stats.saturated
        else:
            self._recorder.detach()
            if self._recorder.calls == 0:
                self._notes["activations"] = (
                    "no forward hook fired before the observed steps, so there are no activation "
                    "statistics (a torch.compile'd model ignores hooks added after compilation): pass "
                    "probe= to measure them on a fixed batch"
                )
                return
            dead, saturated = self._recorder.result()
            self._recorder.reset()
        record.update(dead=dead, saturated=saturated)
        names, kinds = [n for n, _, _ in self._act], [k for _, _, k in self._act]
        self._family("activation", activation_labels(names, kinds, dead, saturated, t, self.thresholds))

    def _observe_curvature(self, t: int, record: dict[str, Any]) -> None:
        p = self.probe
        sharp = sharpness(
            self.model, p.loss_fn, p.inputs, p.targets, self.optimizer, num_steps=self.lanczos_steps
        )
        record.update(lambda_max=sharp.lambda_max, lambda_min=sharp.lambda_min, sharpness=sharp.effective)
        if sharp.bound is not None:
            record["sharpness_bound"] = sharp.bound
        if sharp.note:
            self._notes["curvature"] = sharp.note
        self._family("stability", sharp.flags(t))

    # -- bookkeeping -------------------------------------------------------------------
    def _record(self, step: int) -> dict[str, Any]:
        record = self._records.get(step)
        if record is None:
            record = self._records[step] = {}
        return record

    def _family(self, family: str, flags: list[Flag]) -> None:
        """Raise the flags of ``family`` whose (label, layer) was not already active."""
        active = self._active.get(family, set())
        for flag in flags:
            if (flag.label, flag.layer) not in active:
                self.flags.append(flag)
                self._unreported.append(flag)
        self._active[family] = {(f.label, f.layer) for f in flags}

    @staticmethod
    def _append(series: list[tuple[int, float]], step: int, value: float) -> None:
        """Keep ``series`` sorted by step, one value per step (the common case: append at the end)."""
        if not series or series[-1][0] < step:
            series.append((step, value))
            return
        i = bisect.bisect_left(series, step, key=lambda sv: sv[0])
        if i < len(series) and series[i][0] == step:
            series[i] = (step, value)
        else:
            series.insert(i, (step, value))

    # -- the loop's side ---------------------------------------------------------------
    @property
    def steps(self) -> int:
        """Optimizer steps seen so far."""
        return self._step

    def log(self, step: int | None = None, **scalars: Any) -> list[Flag]:
        """Record the loop's scalars for an optimizer step and return the flags raised since the
        last call (by the hooks or by these scalars).

        ``step`` defaults to the step just taken (``steps − 1``; 0 before the first). Several calls
        for the same step merge (``log(loss=...)`` after the step, ``log(val_loss=...)`` after
        validation). ``loss`` is the training loss whose gradient drove the step: a non-finite one
        raises ``exploding``; it feeds the plateau labels. ``val_loss`` feeds ``overfitting``.
        """
        # This runs after every optimizer step: keep the common path (a float loss, no flag) short.
        if step is None:
            step = self._step - 1 if self._step else 0
        else:
            step = check_int("step", step, low=0)
        record = self._records.get(step)
        if record is None:
            record = self._records[step] = {}
        for name, value in scalars.items():
            record[name] = _scalar(name, value)
        if "loss" in scalars:
            loss = record["loss"]
            self._append(self._train, step, loss)
            finite = math.isfinite(loss)
            if not finite or self._active.get("loss"):
                flag = make_flag(
                    "exploding", step, None, loss, math.inf, f"training loss is not finite ({loss})"
                )
                self._family("loss", [] if finite else [flag])
            if finite and step % self.every == 0:
                self._check_plateau(step)
        if "val_loss" in scalars:
            self._append(self._val, step, record["val_loss"])
            self._family("overfitting", overfitting_label(self._val, self._train, step, self.thresholds))
        if not self._unreported:
            return []
        out, self._unreported = self._unreported, []
        return out

    def _window(self, since: int) -> list[dict[str, Any]]:
        """The records of steps ≥ ``since``, newest first. Records are created in step order, so this
        reads only the newest ones (a few records logged late for an earlier step are skipped over)."""
        out, older = [], 0
        for s in reversed(self._records):
            if s >= since:
                out.append(self._records[s])
            else:
                older += 1
                if older > 4:
                    break
        return out

    def _latest(self, key: str, since: int = 0) -> Any:
        for record in self._window(since):
            if key in record:
                return record[key]
        return None

    def _check_plateau(self, step: int) -> None:
        t = self.thresholds
        losses = [v for _, v in self._train[-t.plateau_window :]]
        if len(losses) < t.plateau_window:
            return
        start = self._train[-t.plateau_window][0]
        saturated = self._latest("saturated", start)
        saturated = max((s for s in saturated if math.isfinite(s)), default=None) if saturated else None
        window = self._window(start)
        descents = [r["descent"] for r in window if "descent" in r]
        # the first-order decrease per step, from the observed steps in the window
        descent = sum(descents) / len(descents) if descents else None
        ratios = [v for r in window for v in r.get("update_ratio", ()) if math.isfinite(v)]
        evidence = dict(
            trivial_loss=self.trivial_loss,
            grad_norm=self._latest("grad_total", start),
            saturated=saturated,
            lambda_min=self._latest("lambda_min", start),
            lambda_max=self._latest("lambda_max", start),
            descent=descent,
            update_ratio=max(ratios) if ratios else None,
        )
        label, flag, _ = plateau_label(losses, t, step=step, **evidence)
        needs_curvature = (
            label in ("plateau", "converged")
            and evidence["lambda_min"] is None
            and self.probe is not None
            and self.probe.has_loss
        )
        if needs_curvature:  # a plateau is rare: one curvature estimate now tells saddle from minimum
            p = self.probe
            sharp = sharpness(self.model, p.loss_fn, p.inputs, p.targets, num_steps=self.lanczos_steps)
            self._record(step).update(lambda_max=sharp.lambda_max, lambda_min=sharp.lambda_min)
            evidence.update(lambda_min=sharp.lambda_min, lambda_max=sharp.lambda_max)
            label, flag, _ = plateau_label(losses, t, step=step, **evidence)
        self._family("plateau", [flag] if flag is not None else [])

    # -- results -----------------------------------------------------------------------
    @property
    def history(self) -> History:
        return History(
            [n for n, _ in self._layers],
            [n for n, _, _ in self._act],
            [k for _, _, k in self._act],
            self._records,
            self._lr,
        )

    def report(self) -> Diagnosis:
        """The flags raised and the worst value of every measurement over the run."""
        t, h = self.thresholds, self.history
        measurements: list[Measurement] = []
        observed = [s for s in h.steps if "grad_norm" in h[s]]
        if observed:

            def distance(s: int) -> float:
                r = h[s]["grad_ratio"]
                return math.inf if not (math.isfinite(r) and r > 0) else abs(math.log10(r))

            worst = max(observed, key=distance)
            measurements.append(Measurement.gradient(h.layers, h[worst]["grad_norm"], t, worst))
        for key, quantity, bound, pick in (
            ("dead", "largest dead-unit fraction", f"dead-relu > {t.dead_fraction:g}", max),
            ("saturated", "largest saturated fraction", f"saturated > {t.saturated_fraction:g}", max),
            (
                "update_ratio",
                "largest update/parameter ratio",
                f"update-ratio-high > {t.update_ratio_high:g}",
                max,
            ),
            (
                "update_ratio",
                "smallest update/parameter ratio",
                f"update-ratio-low < {t.update_ratio_low:g}",
                min,
            ),
        ):
            names = h.layers if key in _LAYER_KEYS else h.activation_layers
            cells = [
                (v, names[i], s)
                for s in h.steps
                if key in h[s]
                for i, v in enumerate(h[s][key])
                if math.isfinite(v)
            ]
            if cells:
                v, layer, s = pick(cells, key=lambda c: c[0])
                measurements.append(Measurement(quantity, v, bound, layer, s))
        steps, values = h.series("sharpness")
        finite = [(v, s) for s, v in zip(steps, values) if math.isfinite(v)]
        lsteps, lam = h.series("lambda_max")
        raw = [(v, s) for s, v in zip(lsteps, lam) if math.isfinite(v)]
        if finite:
            v, s = max(finite)
            bound = f"unstable-lr > {h[s]['sharpness_bound']:.4g}"
            measurements.append(Measurement("effective sharpness (η·λ_max)", v, bound, None, s))
        elif raw:
            v, s = max(raw)
            bound = self._notes.get("curvature", "no stability bound")
            measurements.append(Measurement("λ_max of the Hessian", v, bound, None, s))
        notes = list(self._notes.values())
        if self.curvature_every is None:
            notes.append("curvature not estimated (curvature_every=None): no unstable-lr test")
        return Diagnosis(list(self.flags), measurements, observed_steps=len(observed), notes=tuple(notes))

    def plot(self, path: str | os.PathLike) -> Path:
        """Write the six-panel dashboard (:func:`.dashboard.plot_dashboard`) to ``path``, atomically."""
        from .dashboard import plot_dashboard

        return plot_dashboard(self, path)

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: step count, history, flags, active conditions, loss series
        (plain Python values: loads with ``torch.load(weights_only=True)``)."""
        return {
            "version": _VERSION,
            "step": self._step,
            "layers": [n for n, _ in self._layers],
            "activation_layers": [n for n, _, _ in self._act],
            "records": {
                s: {k: (list(v) if isinstance(v, list) else v) for k, v in r.items()}
                for s, r in self._records.items()
            },
            "lr": list(self._lr),
            "train": [list(sv) for sv in self._train],
            "val": [list(sv) for sv in self._val],
            "flags": [f.to_dict() for f in self.flags],
            "unreported": [f.to_dict() for f in self._unreported],
            "active": {
                family: [list(key) for key in sorted(keys, key=str)] for family, keys in self._active.items()
            },
            "trivial_loss": self.trivial_loss,
            "notes": dict(self._notes),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; ``ValueError`` if it was saved for different layers."""
        if not isinstance(state, dict) or state.get("version") != _VERSION:
            raise ValueError(
                f"state must be a Monitor.state_dict() of version {_VERSION}, got "
                f"{type(state).__name__} with version {getattr(state, 'get', lambda k: None)('version')!r}"
            )
        layers = [n for n, _ in self._layers]
        acts = [n for n, _, _ in self._act]
        if state["layers"] != layers or state["activation_layers"] != acts:
            raise ValueError(
                f"state was saved for layers {state['layers']} / activations "
                f"{state['activation_layers']}, this monitor watches {layers} / {acts}"
            )
        self._step = int(state["step"])
        self._records = {
            int(s): dict(r) for s, r in sorted(state["records"].items(), key=lambda sr: int(sr[0]))
        }
        self._lr = [float(v) for v in state["lr"]]
        self._train = [(int(s), float(v)) for s, v in state["train"]]
        self._val = [(int(s), float(v)) for s, v in state["val"]]
        self.flags = [Flag.from_dict(f) for f in state["flags"]]
        self._unreported = [Flag.from_dict(f) for f in state["unreported"]]
        self._active = {
            family: {(label, layer) for label, layer in keys} for family, keys in state["active"].items()
        }
        self.trivial_loss = state["trivial_loss"]
        self._notes = dict(state.get("notes", {}))
        if self._samples_forwards and self.attached:
            self._recorder.detach()
            self._recorder.reset()
            if self._observed(self._step):
                self._recorder.attach()


def _dot(g: Tensor, delta: Tensor) -> float:
    """Re(g·Δw), for dense or sparse gradients and real or complex parameters."""
    if g.is_sparse:
        return float(torch.real((g.coalesce() * delta).sum()))
    return float(torch.real(torch.vdot(g.reshape(-1), delta.reshape(-1))))


def _trivial(probe: Probe, outputs: Any) -> float | None:
    return trivial_loss(probe.loss_fn, outputs, probe.targets) if isinstance(outputs, Tensor) else None
