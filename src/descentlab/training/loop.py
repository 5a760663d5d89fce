"""A thin, resumable training loop: ``fit(model, optimizer, train, epochs=…, loss_fn=…)``.

For demos, the command line and the benchmarks — every piece of :mod:`descentlab.training` works in a
plain loop without it. One epoch is::

    for (inputs, targets) in train:              # any re-iterable: a DataLoader, a list of batches
        loss = loss_fn(model(inputs), targets);  loss.backward();  optimizer.step()
                                                  # or: loss = train_step(model, inputs, targets)
        scheduler.step()                          # scheduler_interval="step"
        monitor.log(step=s, loss=loss, lr=η)      # after every optimizer step
        checkpoint every ``checkpoint_every`` steps
    validate on ``val`` → val_loss and val_<metric>;  monitor.log(step=s, val_loss=…, val_<metric>=…)
    scheduler.step() (or .step(val metric));  early_stopping.step(val metric, model);  checkpoint

**Resuming.** ``checkpoint=PATH`` writes — atomically (a temporary file, then a rename), every
``checkpoint_every`` optimizer steps, at the end of every epoch and at the end — the model, optimizer,
scheduler, early-stopping and monitor state, the history, every RNG (torch CPU and CUDA, NumPy,
Python, and the ``torch.Generator`` of the train and val loaders and their samplers) and the position
(epoch, batch, step). Called again with the same arguments it continues from there: it restores
the RNGs as they were at the start of the epoch, re-creates the epoch's iterator (so the loader
reshuffles identically), skips the batches already done, then restores the RNGs as they were at
the checkpoint. A run killed with SIGKILL and started again therefore ends **bit-identical** to an
uninterrupted run on CPU (tested with a subprocess). Samplers must draw their randomness from their
own generator or once per pass, as torch's and descentlab's samplers do.

A checkpoint that cannot be read (truncated, not a checkpoint), that comes from another descentlab
version, another model (parameter names, shapes, dtypes), another optimizer or another number of
epochs raises :class:`CheckpointError` before anything is written: the file is left as it was.
A checkpoint of a finished run returns its history at once.

The progress bar (rich) shows the epoch, step, loss, validation metric, learning rate and ETA; it is
quiet when ``progress=False`` or the console is not a terminal. ``log_dir`` writes TensorBoard
event files through ``torch.utils.tensorboard`` (``pip install 'descentlab[tensorboard]'``); they are
append-only streams, not written atomically; a resumed run purges events after its restart step.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from .._io import atomic_write
from ..validation import (
    NonFiniteError,
    check_bool,
    check_callable,
    check_choice,
    check_int,
    check_nonfinite_policy,
)
from ._state import load_optimizer_state, rng_state, set_rng_state
from .early_stopping import EarlyStopping

__all__ = ["fit", "History", "CheckpointError", "Monitor", "evaluate", "accuracy", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "descentlab.training.fit/1"
_EARLY_STOPPING_SETTINGS = (
    "monitor",
    "mode",
    "patience",
    "min_delta",
    "restore_best",
    "check_finite",
    "start_from",
)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used to resume this run; the file is left untouched."""


class Monitor(Protocol):
    """What ``fit(monitor=…)`` needs (the diagnostics issue's ``watch(model, opt)`` returns one)."""

    def log(self, step: int | None = None, **scalars: float) -> list: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class History:
    """What a :func:`fit` run recorded. Per optimizer step: ``steps`` (1, 2, …), ``loss`` (the training
    batch's loss) and ``lr`` (``param_groups[0]["lr"]`` used by the step). Per epoch: ``epochs``, dicts
    with ``epoch``, ``step``, ``train_loss`` (mean of the epoch's batch losses) and, with validation,
    ``val_loss`` and ``val_<metric>``. ``stopped_epoch`` / ``best_epoch`` come from early stopping.
    ``resumed_at`` (steps at which the run was resumed) does not take part in ``==``."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    stopped_epoch: int | None = None
    best_epoch: int | None = None
    resumed_at: list[int] = field(default_factory=list, compare=False)

    def state_dict(self) -> dict[str, Any]:
        return {
            "steps": list(self.steps),
            "loss": list(self.loss),
            "lr": list(self.lr),
            "epochs": [dict(e) for e in self.epochs],
            "stopped_epoch": self.stopped_epoch,
            "best_epoch": self.best_epoch,
            "resumed_at": list(self.resumed_at),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> History:
        return cls(
            **{
                k: state[k]
                for k in ("steps", "loss", "lr", "epochs", "stopped_epoch", "best_epoch", "resumed_at")
            }
        )

    def metric(self, name: str) -> list[float]:
        """One per-epoch value (``"val_loss"``, ``"train_loss"``, ``"val_acc"``, …) as a list."""
        return [e[name] for e in self.epochs if name in e]


def accuracy(outputs: Tensor, targets: Tensor) -> Tensor:
    """The fraction of rows whose arg-max is the target class."""
    return (outputs.argmax(dim=-1) == targets).float().mean()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Iterable,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    metrics: Mapping[str, Callable[[Tensor, Tensor], Tensor]] | None = None,
) -> dict[str, float]:
    """``{"val_loss": …, "val_<name>": …}``: batch values weighted by batch size (the dataset mean when
    ``loss_fn`` and the metrics average over the batch), in eval mode; the mode is put back after."""
    was_training = model.training
    model.eval()
    try:
        totals: dict[str, float] = {}
        count = 0
        for inputs, targets in data:
            outputs = model(inputs)
            n = len(targets)
            values = {"val_loss": loss_fn(outputs, targets)}
            values.update({f"val_{name}": fn(outputs, targets) for name, fn in (metrics or {}).items()})
            for key, value in values.items():
                totals[key] = totals.get(key, 0.0) + float(value) * n
            count += n
        if count == 0:
            raise ValueError("val yielded no batches")
        return {key: total / count for key, total in totals.items()}
    finally:
        model.train(was_training)


# -- checkpoints -----------------------------------------------------------------------------------
def _generators(*loaders: Any) -> list[torch.Generator]:
    """The torch.Generator objects of loaders and their samplers (each once, in a fixed order)."""
    found: list[torch.Generator] = []
    for loader in loaders:
        if loader is None:
            continue
        candidates = [loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)]
        candidates.append(getattr(candidates[2], "sampler", None))
        for obj in candidates:
            generator = getattr(obj, "generator", None)
            if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
                found.append(generator)
    return found


def _signature(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    return {
        "model": {name: [list(t.shape), str(t.dtype)] for name, t in model.state_dict().items()},
        "optimizer": type(optimizer).__name__,
        "groups": [len(group["params"]) for group in optimizer.param_groups],
    }


def _load_checkpoint(path: Path, model, optimizer, epochs: int, parts: dict[str, Any]) -> dict[str, Any]:
    from .. import __version__

    try:
        state = torch.load(path, weights_only=True)
    except Exception as error:  # torch raises RuntimeError / EOFError / UnpicklingError for bad files
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({type(error).__name__}: {error}); it may be "
            "truncated or not a checkpoint — it was left untouched; delete it or pass another path"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is not a descentlab fit checkpoint (format {CHECKPOINT_FORMAT!r}); it was left "
            "untouched"
        )
    if state.get("descentlab_version") != __version__:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written by descentlab {state.get('descentlab_version')}, this is "
            f"{__version__}; resume with that version or start a new run (the file was left untouched)"
        )
    saved, here = state["signature"], _signature(model, optimizer)
    if saved["model"] != here["model"]:
        names = sorted(set(saved["model"]) | set(here["model"]))
        diff = [n for n in names if saved["model"].get(n) != here["model"].get(n)]
        shown = "; ".join(
            f"{n}: saved {saved['model'].get(n)}, model {here['model'].get(n)}" for n in diff[:3]
        )
        raise CheckpointError(
            f"checkpoint {str(path)!r} is from another model ({len(diff)} tensors differ: {shown}); "
            "it was left untouched"
        )
    if (saved["optimizer"], saved["groups"]) != (here["optimizer"], here["groups"]):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is from another optimizer (saved {saved['optimizer']} with groups of "
            f"{saved['groups']} tensors, here {here['optimizer']} with {here['groups']}); "
            "it was left untouched"
        )
    for name, obj in parts.items():
        if (obj is None) != (state[name] is None):
            had = "with" if state[name] is not None else "without"
            raise CheckpointError(
                f"checkpoint {str(path)!r} was written by a run {had} {name.replace('_', ' ')}, this call "
                f"{'has one' if obj is not None else 'has none'}; use the same call to resume "
                "(file left untouched)"
            )
    stopper = parts["early_stopping"]
    if stopper is not None:
        saved_settings = state["early_stopping"]
        different = [k for k in _EARLY_STOPPING_SETTINGS if saved_settings.get(k) != getattr(stopper, k)]
        if different:
            shown = ", ".join(
                f"{k}: saved {saved_settings.get(k)!r}, here {getattr(stopper, k)!r}" for k in different
            )
            raise CheckpointError(
                f"checkpoint {str(path)!r} has early stopping with other settings ({shown}); use the same "
                "call to resume (file left untouched)"
            )
    if state["epochs"] != epochs:
        raise CheckpointError(
            f"checkpoint {str(path)!r} belongs to a run with epochs={state['epochs']}, this call has "
            f"epochs={epochs}; use the same call to resume, or a new checkpoint path (file left untouched)"
        )
    return state


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def _progress(enabled: bool, total_steps: int | None, epochs: int):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("epoch {task.fields[epoch]}/" + str(epochs)),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  {task.fields[val]}  lr {task.fields[lr]}"),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and console.is_terminal),
        transient=False,
    )


# -- the loop ----------------------------------------------------------------------------------------
def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Iterable,
    *,
    epochs: int,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    val: Iterable | None = None,
    metrics: Mapping[str, Callable[[Tensor, Tensor], Tensor]] | None = None,
    scheduler: Any = None,
    scheduler_interval: str = "epoch",
    scheduler_monitor: str | None = None,
    early_stopping: EarlyStopping | None = None,
    monitor: Monitor | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    log_dir: str | os.PathLike | None = None,
    progress: bool = True,
    nonfinite: str | None = "raise",
    train_step: Callable[[nn.Module, Any, Any], Tensor | float] | None = None,
    distributed: bool = False,
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train`` (see the module docstring); returns the
    :class:`History`.

    ``train`` / ``val``: re-iterables of ``(inputs, targets)`` (a DataLoader, a list of batches); the loss
    is ``loss_fn(model(inputs), targets)``. ``metrics``: ``{name: fn(outputs, targets)}`` evaluated on
    ``val`` and reported as ``val_<name>`` (e.g. ``{"acc": accuracy}``). ``scheduler``: any object with
    ``step()`` and ``state_dict()``, stepped after every optimizer step (``scheduler_interval="step"``,
    e.g. :class:`descentlab.schedules.ScheduleLR`) or every epoch; with ``scheduler_monitor`` (automatic
    ``"val_loss"`` for ``ReduceLROnPlateau``) it is stepped with that validation value.
    ``early_stopping`` reads the validation value named by its ``monitor``; its best weights are
    restored at the end whatever ended the run (when ``restore_best``). ``monitor``: an object with
    ``log(step, **scalars)``, ``state_dict()`` and ``load_state_dict()``. ``nonfinite``: a non-finite
    training loss raises :class:`~descentlab.validation.NonFiniteError` (``"raise"``), skips that
    batch's update (``"skip"``) or is not checked (``None``).

    ``train_step(model, inputs, targets) -> loss`` replaces the default forward and backward of a
    training batch (``loss_fn(model(inputs), targets).backward()``): it computes the loss *and its
    gradients* itself — e.g. truncated BPTT, ``tbptt(step, (inputs, targets), k)`` without an
    optimizer, whose chunk gradients add up in ``.grad`` — and returns the loss (a float or a
    0-dim tensor). ``fit`` still zeroes the gradients before it and steps the optimizer after it;
    with ``nonfinite="skip"`` a non-finite loss discards the gradients it left. Validation still uses
    ``loss_fn(model(inputs), targets)``.

    ``distributed=True`` runs the same loop on every rank of a torch.distributed process group (under
    torchrun, after :func:`descentlab.distributed.init`): the model is wrapped in DDP unless it already
    is DDP or FSDP, ``train`` should be each rank's shard (:func:`descentlab.distributed.shard`, whose
    sampler gets ``set_epoch`` every epoch), the recorded losses and validation values are the means
    over the ranks (so every rank keeps the same history and makes the same early-stopping and
    non-finite decisions), and only rank 0 shows progress and writes the checkpoint and event files;
    every rank resumes from that checkpoint (one file system), with rank 0's RNG states. A ``train_step``
    then receives the DDP-wrapped model, so that its backward averages the gradients.
    """
    # -- arguments, all checked before any work -------------------------------------------------
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not hasattr(optimizer, "param_groups") or not hasattr(optimizer, "state_dict"):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    for name, data in (("train", train), ("val", val)):
        if data is None and name == "val":
            continue
        if not isinstance(data, Iterable) or iter(data) is data:
            raise ValueError(
                f"{name} must be a re-iterable of (inputs, targets) batches (a DataLoader, a list),"
                f" got {type(data).__name__}"
            )
    epochs = check_int("epochs", epochs, low=1)
    check_callable("loss_fn", loss_fn, "loss_fn(outputs, targets) -> loss")
    metrics = dict(metrics or {})
    for name, fn in metrics.items():
        check_callable(f"metrics[{name!r}]", fn, "fn(outputs, targets) -> value")
    val_names = {"val_loss", *(f"val_{name}" for name in metrics)} if val is not None else set()
    scheduler_interval = check_choice("scheduler_interval", scheduler_interval, ("epoch", "step"))
    if scheduler is not None:
        if not callable(getattr(scheduler, "step", None)) or not callable(
            getattr(scheduler, "state_dict", None)
        ):
            raise ValueError(f"scheduler must have step() and state_dict(), got {type(scheduler).__name__}")
        if scheduler_monitor is None and isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler_monitor = "val_loss"
    if scheduler_monitor is not None:
        if scheduler_monitor not in val_names:
            raise ValueError(
                f"scheduler_monitor must be one of the validation values {sorted(val_names)} "
                f"(val and metrics given), got {scheduler_monitor!r}"
            )
        scheduler_interval = "epoch"
    if early_stopping is not None:
        if not isinstance(early_stopping, EarlyStopping):
            raise ValueError(f"early_stopping must be an EarlyStopping, got {type(early_stopping).__name__}")
        if early_stopping.monitor not in val_names:
            raise ValueError(
                f"early_stopping.monitor must be one of the validation values {sorted(val_names)} "
                f"(it needs val=, and metrics= for val_<metric>), got {early_stopping.monitor!r}"
            )
    if monitor is not None:
        for method in ("log", "state_dict", "load_state_dict"):
            if not callable(getattr(monitor, method, None)):
                raise ValueError(
                    f"monitor must have log(), state_dict() and load_state_dict(); "
                    f"{type(monitor).__name__} has no {method}()"
                )
    path = None if checkpoint is None else Path(checkpoint)
    if path is not None and path.exists() and not path.is_file():
        raise ValueError(f"checkpoint must be a file path, got the directory {str(path)!r}")
    if checkpoint_every is not None:
        checkpoint_every = check_int("checkpoint_every", checkpoint_every, low=1)
        if path is None:
            raise ValueError("checkpoint_every needs checkpoint=PATH")
    progress = check_bool("progress", progress)
    nonfinite = check_nonfinite_policy(nonfinite)
    distributed = check_bool("distributed", distributed)
    if train_step is not None:
        check_callable("train_step", train_step, "train_step(model, inputs, targets) -> loss")
    writer_class = None
    if log_dir is not None:
        try:
            from torch.utils.tensorboard import SummaryWriter as writer_class
        except ImportError:
            raise ImportError("log_dir needs tensorboard: pip install 'descentlab[tensorboard]'") from None
    coordinator = None  # fit(distributed=True): DDP, means over the ranks, rank 0 writes
    if distributed:
        from ..distributed.sync import FitSupport

        coordinator = FitSupport(model)
    forward = model if coordinator is None else coordinator.model
    main_rank = coordinator is None or coordinator.is_main

    generators = _generators(train, val)
    parts = {"scheduler": scheduler, "early_stopping": early_stopping, "monitor": monitor}
    saved = None
    if path is not None and path.exists():
        saved = _load_checkpoint(path, model, optimizer, epochs, parts)

    # -- state: fresh or resumed ------------------------------------------------------------------
    was_training = model.training
    history = History()
    epoch, batch, step, epoch_first_step, finished = 0, 0, 0, 0, False
    epoch_rng = None
    if saved is not None:
        model.load_state_dict(saved["model"])
        load_optimizer_state(optimizer, saved["optimizer"])
        if scheduler is not None and saved["scheduler"] is not None:
            scheduler.load_state_dict(saved["scheduler"])
        if early_stopping is not None and saved["early_stopping"] is not None:
            early_stopping.load_state_dict(saved["early_stopping"])
        if monitor is not None and saved["monitor"] is not None:
            monitor.load_state_dict(saved["monitor"])
        history = History.from_state_dict(saved["history"])
        position = saved["position"]
        epoch, batch, step = position["epoch"], position["batch"], position["step"]
        epoch_first_step, finished = position["epoch_first_step"], position["finished"]
        epoch_rng = saved["epoch_rng"]
        if finished:
            set_rng_state(saved["rng"], generators)
            return history
        history.resumed_at.append(step)

    def write_checkpoint() -> None:
        from .. import __version__

        state = {
            "format": CHECKPOINT_FORMAT,
            "descentlab_version": __version__,
            "signature": _signature(model, optimizer),
            "epochs": epochs,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": None if scheduler is None else scheduler.state_dict(),
            "early_stopping": None if early_stopping is None else early_stopping.state_dict(),
            "monitor": None if monitor is None else monitor.state_dict(),
            "history": history.state_dict(),
            "rng": rng_state(generators),
            "epoch_rng": epoch_rng,
            "position": {
                "epoch": epoch,
                "batch": batch,
                "step": step,
                "epoch_first_step": epoch_first_step,
                "finished": finished,
            },
        }
        if main_rank:
            atomic_write(path, lambda tmp: torch.save(state, tmp))
        if coordinator is not None:
            coordinator.barrier()

    writer = None
    if writer_class is not None and main_rank:
        writer = writer_class(str(log_dir), purge_step=step if step else None)
    try:
        total = len(train) * epochs if hasattr(train, "__len__") else None  # type: ignore[arg-type]
    except TypeError:
        total = None
    bar = _progress(progress and main_rank, total, epochs)
    last_val = ""
    try:
        with bar:
            task = bar.add_task("fit", total=total, completed=step, epoch=epoch + 1, loss="-", val="", lr="-")
            while epoch < epochs:
                if coordinator is not None:  # before the iterator: DistributedSampler reshuffles per epoch
                    coordinator.set_epoch(train, epoch)
                # the epoch's iterator: fresh, or re-created as it was and advanced to the checkpoint
                if batch == 0:
                    if saved is not None:  # resumed at the end of an epoch
                        set_rng_state(saved["rng"], generators)
                    epoch_rng = rng_state(generators)
                    epoch_first_step = step
                    batches = iter(train)
                else:  # resumed inside an epoch
                    set_rng_state(epoch_rng, generators)
                    batches = iter(train)
                    for _ in range(batch):
                        next(batches)
                    set_rng_state(saved["rng"], generators)
                saved = None
                model.train()
                for inputs, targets in batches:
                    optimizer.zero_grad()
                    if train_step is None:
                        loss = loss_fn(forward(inputs), targets)
                    else:  # the gradients are already in .grad (through DDP under distributed=True)
                        loss = train_step(forward, inputs, targets)
                    value = float(loss.detach() if isinstance(loss, Tensor) else loss)
                    if coordinator is not None:
                        value = coordinator.mean({"loss": value})["loss"]
                    lr = _lr(optimizer)
                    finite = math.isfinite(value)
                    if not finite and nonfinite == "raise":
                        raise NonFiniteError(
                            f"the training loss is {value} at epoch {epoch}, step {step + 1}"
                            + (f"; the last checkpoint in {str(path)!r} is intact" if path else "")
                        )
                    if not finite and nonfinite == "skip" and train_step is not None:
                        optimizer.zero_grad()
                    if finite or nonfinite is None:
                        if train_step is None:
                            loss.backward()
                        optimizer.step()
                        if scheduler is not None and scheduler_interval == "step":
                            scheduler.step()
                    step += 1
                    batch += 1
                    history.steps.append(step)
                    history.loss.append(value)
                    history.lr.append(lr)
                    if monitor is not None:
                        monitor.log(step=step, loss=value, lr=lr)
                    if writer is not None:
                        writer.add_scalar("train/loss", value, step)
                        writer.add_scalar("train/lr", lr, step)
                    bar.update(
                        task, advance=1, epoch=epoch + 1, loss=f"{value:.4g}", val=last_val, lr=f"{lr:.3g}"
                    )
                    if checkpoint_every is not None and step % checkpoint_every == 0:
                        write_checkpoint()
                # end of the epoch: validation, scheduler, early stopping
                losses = history.loss[epoch_first_step:step]
                record: dict[str, float] = {
                    "epoch": epoch,
                    "step": step,
                    "train_loss": sum(losses) / len(losses) if losses else math.nan,
                }
                stop = False
                if val is not None:
                    results = evaluate(model, val, loss_fn, metrics)
                    if coordinator is not None:
                        results = coordinator.mean(results)
                    record.update(results)
                    if monitor is not None:
                        monitor.log(step=step, **results)
                    if writer is not None:
                        for key, v in results.items():
                            writer.add_scalar(f"val/{key[4:]}", v, step)
                    shown = early_stopping.monitor if early_stopping is not None else "val_loss"
                    last_val = f"{shown} {results[shown]:.4g}"
                if writer is not None:
                    writer.add_scalar("train/epoch_loss", record["train_loss"], step)
                history.epochs.append(record)
                if scheduler is not None and scheduler_interval == "epoch":
                    if scheduler_monitor is not None:
                        scheduler.step(record[scheduler_monitor])
                    else:
                        scheduler.step()
                if early_stopping is not None:
                    stop = early_stopping.step(record[early_stopping.monitor], model)
                    history.best_epoch = early_stopping.best_step
                    if stop:
                        history.stopped_epoch = epoch
                epoch += 1
                batch = 0
                bar.update(task, epoch=min(epoch + 1, epochs), val=last_val)
                if stop:
                    break
                if path is not None and epoch < epochs:
                    write_checkpoint()
            if (
                early_stopping is not None
                and early_stopping.restore_best
                and early_stopping.best_state is not None
            ):
                early_stopping.restore(model)
            finished = True
            if path is not None:
                write_checkpoint()
    finally:
        if writer is not None:
            writer.close()
        model.train(was_training)
    return history
