"""Trials: what one configuration of one optimizer does on one workload, trained by ``training.fit``.

A :class:`TrialSpec` is everything that decides a trial's numbers — workload, optimizer, ruleset, study,
trial index, seed and configuration (the hyperparameters and the schedule). :func:`run_trial` trains
it for the workload's whole step budget through :func:`descentlab.training.fit` (one "epoch" of ``fit``
is one evaluation interval of :class:`~descentlab.bench.workloads.StepBatches`), with a
:class:`Recorder` as ``fit``'s monitor: after every step it counts steps, gradient evaluations and
training time; after every validation it records the metric, the validation loss and the full
training loss, and the first evaluation at which the target is reached.

Time-to-target is counted in **optimizer steps** and **gradient evaluations** (for the closure solvers,
their iterations and closure calls); wall-clock seconds of training (evaluations excluded) are recorded
too, but they depend on the machine. Trials always run the full budget, so every optimizer gets the same
budget and the curves are complete; a trial whose training or validation loss is not finite stops
there as ``diverged`` (``NonFiniteError``, the one exception treated as divergence); any other
exception is a ``failed`` trial whose message is kept — a bug to look at, never counted as divergence.

The seed decides the model's initialisation and the batch order and nothing else, so every optimizer
sees the same seeds, the same batches and the same budget. One torch thread per trial (a worker
process each, see :mod:`~descentlab.bench.storage`).
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..validation import NonFiniteError
from .spaces import build_optimizer, build_scheduler, is_closure_solver
from .workloads import StepBatches, Workload, get_workload

__all__ = ["TrialSpec", "TrialResult", "Recorder", "run_trial", "STATUSES", "Pruned"]

#: a trial's outcome; ``pruned`` exists only in the explore ruleset (Optuna's pruner stopped it)
STATUSES = ("reached", "missed", "diverged", "failed", "pruned")


class Pruned(Exception):  # noqa: N818 - an outcome, like optuna.TrialPruned
    """Raised by an ``on_eval`` hook to stop a trial early (the explore ruleset's pruning)."""


@dataclass(frozen=True)
class TrialSpec:
    """One trial to run. ``study``/``trial`` index the ruleset's grid (for ``self``: the seed's index);
    ``u`` is the configuration's point in the unit cube (``None`` for default configurations)."""

    workload: str
    optimizer: str
    ruleset: str
    study: int
    trial: int
    seed: int
    config: dict[str, Any]
    u: list[float] | None = None
    budget: int | None = None  # None: the workload's; set-targets runs at 3/4 of it

    @property
    def key(self) -> str:
        return f"{self.workload}/{self.optimizer}/{self.ruleset}/{self.study}/{self.trial}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrialSpec:
        return cls(**dict(data))


@dataclass
class TrialResult:
    """What a trial measured. ``curve`` holds, per evaluation, ``step``, ``evals``, ``seconds``,
    ``metric`` and ``val_loss``; ``final_train_loss`` is the loss on the whole training set at the end."""

    status: str
    steps_to_target: float = math.inf
    evals_to_target: float = math.inf
    seconds_to_target: float = math.inf
    final_metric: float = math.nan
    best_metric: float = math.nan
    final_train_loss: float = math.nan
    steps: int = 0
    evals: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    trial_seconds: float = 0.0
    error: str | None = None
    curve: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrialResult:
        return cls(**dict(data))


class ClosureStep:
    """A closure solver inside ``fit``: ``train_step`` (``fit(train_step=…)``) runs the solver's step on
    the batch — its closure evaluates the loss, the solver differentiates it as often as its line search
    needs — and returns the loss; ``step()``, which ``fit`` calls afterwards, has nothing left to do.
    Steps and gradient evaluations are the solver's own iterations and closure calls. One call may run
    ``max_iter`` iterations, so the budget is counted in iterations: once the solver has done ``budget``
    of them, the remaining calls only report the loss (every optimizer gets the same number of steps)."""

    def __init__(self, solver: torch.optim.Optimizer, loss_fn, budget: int) -> None:
        self.solver, self.loss_fn, self.budget = solver, loss_fn, budget

    @property
    def param_groups(self):
        return self.solver.param_groups

    def state_dict(self) -> dict[str, Any]:
        return self.solver.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.solver.load_state_dict(state)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.solver.zero_grad(set_to_none)

    def train_step(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
        if self.counts()[0] >= self.budget:
            with torch.no_grad():
                return self.loss_fn(model(x), y)

        def objective():
            return self.loss_fn(model(x), y)

        return self.solver.step(objective)

    def step(self, closure=None) -> None:
        return None

    def counts(self) -> tuple[int, int]:
        state = self.solver.solver_state
        return int(state["n_iter"]), int(state["func_evals"])


class Evaluated:
    """The validation data for ``fit``, evaluated where the optimizer says the model is: optimizers with
    ``train()`` / ``eval()`` modes (schedule-free AdamW and SGD) switch to their averaged point for the
    evaluation and back afterwards — ``fit`` itself does not know about the modes."""

    def __init__(self, batches: list, optimizer) -> None:
        self.batches, self.optimizer = batches, optimizer
        self.modes = callable(getattr(optimizer, "eval", None)) and callable(
            getattr(optimizer, "train", None)
        )

    def __iter__(self):
        if self.modes:
            self.optimizer.eval()
        try:
            yield from self.batches
        finally:
            if self.modes:
                self.optimizer.train()


class Recorder:
    """``fit``'s monitor for a trial: counts, times, the curve and the target (see the module docstring).

    After a training step (``log(step, loss=…, lr=…)``) it adds the step's time to the training time;
    after a validation (``log(step, val_loss=…, val_target=…)``) it checks both values are finite (else
    :class:`NonFiniteError`: the trial diverged) and records the evaluation; at the last one it also
    computes the loss on the whole training set (for a workload measured on its training set that is the
    validation loss itself). The time spent evaluating is kept apart from the training time."""

    def __init__(
        self,
        workload: Workload,
        model: torch.nn.Module,
        train: tuple[torch.Tensor, torch.Tensor],
        adapter: ClosureStep | None = None,
        on_eval=None,
        final_step: int | None = None,
        optimizer=None,
    ) -> None:
        self.workload, self.model, self.train, self.adapter = workload, model, train, adapter
        self.optimizer = optimizer
        self.on_eval, self.final_step = on_eval, final_step
        self.curve: dict[str, list[float]] = {
            k: [] for k in ("step", "evals", "seconds", "metric", "val_loss")
        }
        self.final_train_loss = math.nan
        self.steps = self.evals = 0
        self.train_seconds = self.eval_seconds = 0.0
        self.reached_at: tuple[int, int, float] | None = None
        self.best = math.nan
        self._mark = time.perf_counter()

    def start(self) -> None:
        self._mark = time.perf_counter()

    def _counts(self) -> tuple[int, int]:
        if self.adapter is not None:
            return self.adapter.counts()
        return self.steps, self.steps

    @torch.no_grad()
    def _train_loss(self) -> float:
        was_training = self.model.training
        self.model.eval()
        try:
            for x, y in Evaluated([self.train], self.optimizer):  # at the point the optimizer evaluates
                return float(self.workload.loss(self.model(x), y))
        finally:
            self.model.train(was_training)

    def log(self, step: int | None = None, **scalars: float) -> list:
        now = time.perf_counter()
        if "val_loss" not in scalars:  # after an optimizer step
            self.train_seconds += now - self._mark
            self.steps = int(step) if step is not None else self.steps + 1
            self._mark = now
            return []
        metric, val_loss = float(scalars["val_target"]), float(scalars["val_loss"])
        if not (math.isfinite(metric) and math.isfinite(val_loss)):
            raise NonFiniteError(f"the validation loss is {val_loss} and the metric {metric} at step {step}")
        if step == self.final_step:
            self.final_train_loss = self._train_loss() if self.workload.held_out else val_loss
        steps, evals = self._counts()
        for key, value in (
            ("step", steps),
            ("evals", evals),
            ("seconds", self.train_seconds),
            ("metric", metric),
            ("val_loss", val_loss),
        ):
            self.curve[key].append(value)
        if self.workload.better(metric, self.best):
            self.best = metric
        if self.reached_at is None and self.workload.reached(metric):
            self.reached_at = (steps, evals, self.train_seconds)
        done = time.perf_counter()
        self.eval_seconds += done - self._mark
        self._mark = done
        if self.on_eval is not None:
            self.on_eval(steps, metric)
        return []

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def run_trial(spec: TrialSpec, on_eval=None) -> TrialResult:
    """Train ``spec`` for the workload's budget and return what it measured (never raises for a trial
    that diverges or fails: the status says so). ``on_eval(step, metric)`` is called after every
    evaluation; it may raise :class:`Pruned` to stop the trial (status ``pruned``)."""
    from ..training import fit

    began = time.perf_counter()
    workload = get_workload(spec.workload)
    budget = spec.budget or workload.budget
    recorder: Recorder | None = None
    try:
        data = workload.data()
        model = workload.model(spec.seed)
        optimizer = build_optimizer(spec.optimizer, model.parameters(), spec.config)
        adapter = scheduler = None
        if is_closure_solver(spec.optimizer):
            adapter = ClosureStep(optimizer, workload.loss, budget)
            driven = adapter
        else:
            scheduler = build_scheduler(optimizer, spec.config, budget)
            driven = optimizer
        generator = torch.Generator().manual_seed(spec.seed)
        batches = StepBatches(*data.train, workload.batch_size, workload.eval_every, generator)
        steps = budget - budget % workload.eval_every
        recorder = Recorder(
            workload, model, data.train, adapter, on_eval, final_step=steps, optimizer=optimizer
        )
        recorder.start()
        status, note = "missed", ""
        try:
            fit(
                model,
                driven,
                batches,
                epochs=budget // workload.eval_every,
                loss_fn=workload.loss,
                val=Evaluated([data.val], optimizer),
                train_step=None if adapter is None else adapter.train_step,
                metrics={"target": workload.score},
                scheduler=scheduler,
                scheduler_interval="step",
                monitor=recorder,
                progress=False,
                nonfinite="raise",
            )
        except NonFiniteError:
            status = "diverged"
        except Pruned as pruned:
            status, note = "pruned", str(pruned)
    except Exception as error:  # a bug or a broken configuration: recorded as such, never as divergence
        result = TrialResult(
            status="failed",
            error=f"{type(error).__name__}: {error}".splitlines()[0],
            trial_seconds=time.perf_counter() - began,
        )
        result.curve = recorder.curve if recorder is not None else {}
        result.error += " | " + traceback.format_exc(limit=-2).strip().splitlines()[-3].strip()
        return result
    curve = recorder.curve
    result = TrialResult(
        status=status,
        curve=curve,
        steps=recorder._counts()[0],
        evals=recorder._counts()[1],
        train_seconds=recorder.train_seconds,
        eval_seconds=recorder.eval_seconds,
        best_metric=recorder.best,
        error=note if status == "pruned" else None,
    )
    if status not in ("diverged", "pruned") and curve["metric"]:
        result.final_metric = curve["metric"][-1]
        result.final_train_loss = recorder.final_train_loss
    if recorder.reached_at is not None:  # reached, even if it diverged afterwards: the time is what counts
        result.steps_to_target, result.evals_to_target, result.seconds_to_target = map(
            float, recorder.reached_at
        )
        if status != "pruned":
            result.status = "reached"
    result.trial_seconds = time.perf_counter() - began
    return result
