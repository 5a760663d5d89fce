"""What ``descentlab train`` runs: a built-in problem trained by :func:`descentlab.training.fit`.

Two problems, each small enough for a laptop's CPU:

* ``digits`` — an MLP 64-128-128-10 (ReLU) on scikit-learn's ``load_digits``: a fixed, seeded split of
  1,200 training and 597 validation images; cross-entropy, validation accuracy;
* ``char-rnn`` — a character LSTM (embedding 32, 128 units) on the source of a few modules of the
  Python standard library (the interpreter's own files; the corpus's SHA-256 is recorded, since it
  changes with the Python version). The text is cut into windows of ``seq_len`` characters; each
  batch of windows is trained with truncated BPTT — :func:`~descentlab.training.tbptt` cuts it into
  chunks of ``bptt`` steps, back-propagates each on its own and carries the detached LSTM state
  over; the chunks' gradients add up and ``fit`` takes one optimizer step per batch. The last 10 %
  of the text is the validation set (loss in bits per character, next-character accuracy).

:func:`check_settings` checks every option before any work (a ``ValueError`` naming the option);
:func:`run` then optionally runs the learning-rate range test, trains with ``fit`` (progress bar,
checkpoints, early stopping) and writes the figures and ``summary.json``.

**Resuming.** With ``--checkpoint PATH`` the settings of the run are written next to it
(``PATH.json``) and ``fit`` checkpoints every ``CHECKPOINT_EVERY`` steps and every epoch. The same
command again continues where the last checkpoint left off — bit-identically, since ``fit`` restores
the model, optimizer, early stopping, every RNG and the position in the epoch — and skips the range
test (the first run's learning rate is in ``PATH.json``). A command whose settings differ from the
checkpoint's is refused, and the files are left untouched.
"""

from __future__ import annotations

import difflib
import json
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._io import atomic_write, writable_directory

__all__ = ["TrainSettings", "PROBLEMS", "check_settings", "run", "SETTINGS_FORMAT", "CHECKPOINT_EVERY"]

SETTINGS_FORMAT = "descentlab.train/1"
CHECKPOINT_EVERY = 25  # optimizer steps between checkpoints (and at the end of every epoch)
_DIGITS_TRAIN = 1200


@dataclass(frozen=True)
class _Problem:
    """A built-in problem's defaults."""

    description: str
    opt: str
    epochs: int
    batch_size: int
    seq_len: int | None = None
    bptt: int | None = None


PROBLEMS: dict[str, _Problem] = {
    "digits": _Problem(
        "an MLP 64-128-128-10 on scikit-learn's load_digits (1,200 train / 597 validation images)",
        opt="sgd(lr=0.1, momentum=0.9)",
        epochs=20,
        batch_size=64,
    ),
    "char-rnn": _Problem(
        "a character LSTM (128 units) on Python standard-library source, truncated BPTT",
        opt="adam(lr=0.01)",
        epochs=3,
        batch_size=32,
        seq_len=128,
        bptt=32,
    ),
}


@dataclass(frozen=True)
class TrainSettings:
    """The options of one ``descentlab train`` call (``None``: the problem's default)."""

    problem: str
    opt: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr_find: bool = False
    early_stopping: int | None = None
    checkpoint: Path | None = None
    out: Path | None = None
    seed: int = 0
    seq_len: int | None = None
    bptt: int | None = None


@dataclass
class _Checked:
    """Settings with the defaults filled in and the optimizer spec resolved."""

    problem: str
    registry_key: str
    opt_kwargs: dict[str, Any]
    epochs: int
    batch_size: int
    lr_find: bool
    early_stopping: int | None
    checkpoint: Path | None
    out: Path | None
    seed: int
    seq_len: int | None
    bptt: int | None
    opt_given: bool = True  # --opt was on the command line (else the problem's default spec)
    resume: dict[str, Any] | None = None  # the settings file of the checkpoint being resumed

    def command(self) -> dict[str, Any]:
        """What must be equal for a checkpoint to be resumed (the output folder may change)."""
        from .specs import format_spec

        return {
            "problem": self.problem,
            "opt": format_spec(self.registry_key, self.opt_kwargs),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr_find": self.lr_find,
            "early_stopping": self.early_stopping,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "bptt": self.bptt,
        }


def _positive(option: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{option} must be a positive integer, got {value}")


_OPTION = {
    "opt": "--opt",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "lr_find": "--lr-find",
    "early_stopping": "--early-stopping",
    "seed": "--seed",
    "seq_len": "--seq-len",
    "bptt": "--bptt",
    "corpus_sha256": "the corpus",
}


def _settings_file(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".json")


def _read_resume(checkpoint: Path, command: dict[str, Any]) -> dict[str, Any] | None:
    """The settings file of an existing checkpoint, checked against this command; ``None`` when the
    checkpoint does not exist yet (a fresh run)."""
    if not checkpoint.exists():
        return None
    settings = _settings_file(checkpoint)
    try:
        saved = json.loads(settings.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"--checkpoint {str(checkpoint)!r} exists but {settings.name!r} next to it does not: it was not "
            "written by descentlab train; pass a new --checkpoint path"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"--checkpoint: cannot read the settings file {str(settings)!r}: {error}") from None
    if not isinstance(saved, dict) or saved.get("format") != SETTINGS_FORMAT:
        raise ValueError(f"--checkpoint: {str(settings)!r} is not a descentlab train settings file")
    differ = [
        f"{_OPTION[key]} {saved['command'].get(key)!r} there, {value!r} here"
        for key, value in command.items()
        if saved["command"].get(key) != value
    ]
    if differ:
        raise ValueError(
            f"--checkpoint {str(checkpoint)!r} belongs to another command ({'; '.join(differ)}); run the "
            "same command to resume it, or pass a new --checkpoint path (nothing was changed)"
        )
    return saved


def _position(checkpoint: Path) -> dict[str, Any] | None:
    """Where the checkpoint's run stands (``fit``'s ``position``), or ``None`` if it cannot be read —
    then ``fit`` refuses it with the reason."""
    import pickle

    import torch

    try:
        return dict(torch.load(checkpoint, weights_only=True)["position"])
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError, KeyError, TypeError):
        return None  # truncated or foreign: fit raises the CheckpointError that says why


def _optimizer_registry() -> dict[str, type]:
    from .lab import optimizer_registry

    return optimizer_registry()


def _needs_closure(cls: type) -> bool:
    """A solver that must re-evaluate the loss inside ``step`` (the second-order ones, torch's L-BFGS)."""
    import torch

    return cls.__module__.startswith("descentlab.second_order") or issubclass(cls, torch.optim.LBFGS)


def check_settings(settings: TrainSettings) -> _Checked:
    """Every option checked — names, ranges, the optimizer spec, the output paths, a checkpoint to
    resume — before any work; a one-line ``ValueError`` naming the option otherwise."""
    if settings.problem not in PROBLEMS:
        close = difflib.get_close_matches(settings.problem, list(PROBLEMS), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown problem {settings.problem!r}; {hint}valid: {', '.join(PROBLEMS)}")
    problem = PROBLEMS[settings.problem]
    for option, value in (("--epochs", settings.epochs), ("--batch-size", settings.batch_size),
                          ("--early-stopping", settings.early_stopping), ("--seq-len", settings.seq_len),
                          ("--bptt", settings.bptt)):
        _positive(option, value)
    if settings.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {settings.seed}")
    if problem.bptt is None:
        for option, value in (("--seq-len", settings.seq_len), ("--bptt", settings.bptt)):
            if value is not None:
                raise ValueError(f"{option} applies to the char-rnn problem only, not {settings.problem}")
    seq_len = settings.seq_len or problem.seq_len
    bptt = settings.bptt or problem.bptt
    if bptt is not None and seq_len is not None and bptt > seq_len:
        raise ValueError(f"--bptt ({bptt}) must be at most --seq-len ({seq_len})")
    batch_size = settings.batch_size or problem.batch_size
    if settings.problem == "digits" and batch_size > _DIGITS_TRAIN:
        raise ValueError(f"--batch-size {batch_size} exceeds the {_DIGITS_TRAIN} training images of digits")

    from .specs import build_from_spec, check_keywords, format_spec, parse_spec, resolve_name

    spec = settings.opt or problem.opt
    registry = _optimizer_registry()
    name, kwargs = parse_spec(spec, "optimizer")
    key = resolve_name(name, registry, "optimizer", spec)
    cls = registry[key]
    if _needs_closure(cls):
        raise ValueError(
            f"--opt {spec!r}: {cls.__name__} re-evaluates the loss inside step() (a closure); descentlab "
            "train steps first-order optimizers once per batch — see descentlab list"
        )
    check_keywords(cls, kwargs, "optimizer", key, spec, skip=1)
    if settings.lr_find and "lr" not in kwargs:
        check_keywords(cls, {"lr": 1.0}, "optimizer", key, spec, skip=1)  # --lr-find sets lr
    import torch

    build_from_spec(format_spec(key, kwargs), registry, "optimizer", [torch.zeros(2, requires_grad=True)])

    out = None if settings.out is None else writable_directory(settings.out, "--out")
    checkpoint = settings.checkpoint
    if checkpoint is not None:
        if checkpoint.exists() and not checkpoint.is_file():
            raise ValueError(f"--checkpoint must be a file path, got the directory {str(checkpoint)!r}")
        writable_directory(checkpoint.parent if str(checkpoint.parent) else Path("."), "--checkpoint")
    checked = _Checked(
        problem=settings.problem,
        registry_key=key,
        opt_kwargs=kwargs,
        epochs=settings.epochs or problem.epochs,
        batch_size=batch_size,
        lr_find=settings.lr_find,
        early_stopping=settings.early_stopping,
        checkpoint=checkpoint,
        out=out,
        seed=settings.seed,
        seq_len=seq_len,
        bptt=bptt,
        opt_given=settings.opt is not None,
    )
    if checkpoint is not None:
        checked.resume = _read_resume(checkpoint, checked.command())
    return checked


# -- the problems ------------------------------------------------------------------------------------
@dataclass
class _Built:
    """A problem ready for ``fit``."""

    model: Any
    train: Any
    val: Any
    loss_fn: Any
    metrics: dict[str, Any]
    range_batches: Any
    probe: Any = None
    train_step: Any = None
    facts: dict[str, Any] = field(default_factory=dict)  # for the summary: data sizes, corpus hash


def _digits(checked: _Checked) -> _Built:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from .training import accuracy
    from .training._problems import batches, digits, mlp

    x, y, xv, yv = digits(_DIGITS_TRAIN)
    loader = DataLoader(TensorDataset(x, y), batch_size=checked.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(checked.seed))
    per_epoch = len(y) // checked.batch_size
    return _Built(
        model=mlp([64, 128, 128, 10], seed=checked.seed),
        train=loader,
        val=[(xv, yv)],
        loss_fn=nn.functional.cross_entropy,
        metrics={"acc": accuracy},
        # the range test draws its own batches, so the training loader's shuffles are untouched
        range_batches=batches(x, y, checked.batch_size, seed=checked.seed + 1,
                              epochs=max(1, math.ceil(100 / max(per_epoch, 1)))),
        probe=(x[:512], y[:512]),
        facts={"model": "MLP 64-128-128-10 (ReLU)",
               "data": f"load_digits, {len(y)} train / {len(yv)} validation images"},
    )


def _char_rnn(checked: _Checked) -> _Built:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from .training import accuracy, tbptt
    from .training._problems import (
        CORPUS_MODULES,
        CharLSTM,
        char_windows,
        sequence_cross_entropy,
        stdlib_corpus,
    )

    text, sha256 = stdlib_corpus()
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    codes = torch.tensor([index[c] for c in text], dtype=torch.int64)
    split = int(0.9 * len(codes))
    x, y = char_windows(codes[:split], checked.seq_len)
    xv, yv = char_windows(codes[split:], checked.seq_len)
    if checked.batch_size > len(x):
        raise ValueError(f"--batch-size {checked.batch_size} exceeds the {len(x)} training windows of "
                         f"{checked.seq_len} characters")
    def shuffled(seed: int) -> DataLoader:
        return DataLoader(TensorDataset(x, y), batch_size=checked.batch_size, shuffle=True, drop_last=True,
                          generator=torch.Generator().manual_seed(seed))

    loader = shuffled(checked.seed)
    range_loader = shuffled(checked.seed + 1)  # the range test's own order: training's is untouched
    k = checked.bptt

    def train_step(model, inputs, targets):
        """Truncated BPTT over one batch: chunks of k steps, gradients summed over the chunks."""
        n = targets.numel()

        def step(chunk, hidden):
            chunk_x, chunk_y = chunk
            logits, hidden = model.step(chunk_x, hidden)
            return sequence_cross_entropy(logits, chunk_y) * (chunk_y.numel() / n), hidden

        return tbptt(step, (inputs, targets), k).loss

    val = [(xv[i : i + 64], yv[i : i + 64]) for i in range(0, len(xv), 64)]
    return _Built(
        model=CharLSTM(len(vocab), seed=checked.seed),
        train=loader,
        val=val,
        loss_fn=sequence_cross_entropy,
        metrics={"acc": accuracy},
        range_batches=range_loader,
        train_step=train_step,
        facts={
            "model": f"character LSTM (embedding 32, 128 units, {len(vocab)} symbols)",
            "data": f"{len(x)} train / {len(xv)} validation windows of {checked.seq_len} characters",
            "corpus": f"{', '.join(CORPUS_MODULES)} ({len(text):,} characters, Python "
            f"{platform.python_version()})",
            "corpus_sha256": sha256,
            "truncated BPTT": f"chunks of k = {k} of each window of T = {checked.seq_len} "
            f"({math.ceil(checked.seq_len / k)} backward passes, one optimizer step per batch)",
        },
    )


_BUILDERS = {"digits": _digits, "char-rnn": _char_rnn}


# -- the run -----------------------------------------------------------------------------------------
def _build_optimizer(checked: _Checked, params, lr: float | None):
    from .specs import build_from_spec, format_spec

    kwargs = dict(checked.opt_kwargs)
    if lr is not None:
        kwargs["lr"] = lr
    return build_from_spec(format_spec(checked.registry_key, kwargs), _optimizer_registry(), "optimizer",
                           list(params))


def _spec_text(checked: _Checked, lr: float | None) -> str:
    from .specs import format_spec

    kwargs = dict(checked.opt_kwargs)
    if lr is not None and "lr" not in kwargs:
        kwargs["lr"] = float(f"{lr:.3g}")
    return format_spec(_optimizer_registry()[checked.registry_key].__name__, kwargs)


def run(settings: TrainSettings, console) -> dict[str, Any]:
    """Check ``settings``, train, print the summary table on ``console`` (rich) and return the summary.

    Runs on one torch intra-op thread (put back afterwards): the problems are too small to gain from
    more (see :mod:`descentlab._threads`)."""
    checked = check_settings(settings)
    from ._threads import intra_op_threads

    with intra_op_threads(1):
        return _train(checked, console)


def _train(checked: _Checked, console) -> dict[str, Any]:
    began = time.perf_counter()
    import torch
    from rich.markup import escape

    from .training import EarlyStopping, fit, lr_range_test
    from .training._problems import CORPUS_MODULES

    torch.manual_seed(checked.seed)
    built = _BUILDERS[checked.problem](checked)
    facts = dict(built.facts)
    resume = checked.resume
    if resume is not None and resume.get("corpus_sha256") != facts.get("corpus_sha256"):
        raise ValueError(
            f"--checkpoint {str(checked.checkpoint)!r} was trained on another corpus (sha256 "
            f"{resume.get('corpus_sha256')}, this Python's is {facts.get('corpus_sha256')}); pass a new "
            "--checkpoint path (nothing was changed)"
        )
    console.print(f"[bold]{checked.problem}[/bold]: {escape(facts['model'])}; {escape(facts['data'])}",
                  highlight=False)
    if "corpus" in facts:
        console.print(f"corpus: {len(CORPUS_MODULES)} standard-library modules, sha256 "
                      f"{facts['corpus_sha256']}", highlight=False)

    given = "lr" in checked.opt_kwargs
    if given:
        lr_source = "--opt" if checked.opt_given else f"the default --opt '{PROBLEMS[checked.problem].opt}'"
    else:
        lr_source = "the optimizer's default"
    lr, range_test = None, None
    written: list[str] = []
    position = None
    if resume is not None:  # the first run's learning rate (fit restores the optimizer's state anyway)
        lr, lr_source, range_test = resume["lr"], resume["lr_source"], resume.get("range_test")
        position = _position(checked.checkpoint)
        where = "" if position is None else (
            ", which had finished" if position["finished"] else
            f" at epoch {position['epoch'] + 1}, step {position['step']}")
        console.print(f"resuming from [bold]{escape(str(checked.checkpoint))}[/bold]{where} "
                      f"(lr {lr:.3g} from {lr_source})", highlight=False)
    elif checked.lr_find:
        result = lr_range_test(built.model, _build_optimizer(checked, built.model.parameters(), None),
                               built.loss_fn, built.range_batches, probe=built.probe)
        suggested = result.suggest()
        range_test = {"suggested": suggested, "suggestions": result.suggestions(),
                      "curvature_lr": result.curvature_lr, "steps": len(result.lrs),
                      "stopped_by": result.runs[0].stopped_by}
        curvature = "" if result.curvature_lr is None else f"; 2/λ_max {result.curvature_lr:.3g}"
        others = ", ".join(f"{rule} {value:.2g}" for rule, value in result.suggestions().items()
                           if rule != "combined")
        if given:
            note = f"training with --opt's lr={checked.opt_kwargs['lr']:g}"
        else:
            lr, lr_source = suggested, "the range test"
            note = f"training with lr={suggested:.3g}"
        console.print(f"range test ({len(result.lrs)} steps): lr {suggested:.3g} by the 'combined' rule; "
                      f"{others}{curvature}", highlight=False)
        console.print(note, highlight=False)
        if checked.out is not None:
            result.plot(checked.out / "range_test.png",
                        title=f"Range test, {checked.problem}, {_spec_text(checked, None)}")
            written.append(str(checked.out / "range_test.png"))
    optimizer = _build_optimizer(checked, built.model.parameters(), lr)
    used_lr = float(optimizer.param_groups[0]["lr"])
    stopper = None if checked.early_stopping is None else EarlyStopping(patience=checked.early_stopping)

    if checked.checkpoint is not None and resume is None:
        record = {"format": SETTINGS_FORMAT, "command": checked.command(), "lr": used_lr,
                  "lr_source": lr_source, "range_test": range_test,
                  "corpus_sha256": facts.get("corpus_sha256")}
        atomic_write(_settings_file(checked.checkpoint),
                     lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2), encoding="utf-8"))
    history = fit(
        built.model,
        optimizer,
        built.train,
        epochs=checked.epochs,
        loss_fn=built.loss_fn,
        val=built.val,
        metrics=built.metrics,
        early_stopping=stopper,
        checkpoint=checked.checkpoint,
        checkpoint_every=CHECKPOINT_EVERY if checked.checkpoint is not None else None,
        train_step=built.train_step,
        progress=True,
    )
    seconds = time.perf_counter() - began
    summary = _summary(checked, facts, history, used_lr, lr_source, range_test, seconds)
    summary["resumed_from"] = None if position is None else position["step"]
    summary["already_finished"] = position is not None and position["finished"]
    if checked.out is not None:
        from .training.plots import plot_history

        label = "validation accuracy" if checked.problem == "digits" else "next-character accuracy"
        plot_history(history, checked.out / "loss.png", metric="val_acc", metric_label=label,
                     title=f"descentlab train {checked.problem}: {_spec_text(checked, used_lr)}")
        written.insert(0, str(checked.out / "loss.png"))
        summary["figures"] = written
        atomic_write(checked.out / "summary.json",
                     lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2), encoding="utf-8"))
        written.append(str(checked.out / "summary.json"))
    _print_summary(console, summary, written)
    return summary


def _summary(checked, facts, history, lr, lr_source, range_test, seconds) -> dict[str, Any]:
    """What the run did; epochs are counted from 1 here (fit's History counts from 0)."""
    epochs = history.epochs
    final = epochs[history.best_epoch] if history.best_epoch is not None else epochs[-1]

    def one_based(index: int | None) -> int | None:
        return None if index is None else index + 1

    return {
        "problem": checked.problem,
        **facts,
        "optimizer": _spec_text(checked, lr),
        "lr": lr,
        "lr_source": lr_source,
        "range_test": range_test,
        "epochs_run": len(epochs),
        "epochs": checked.epochs,
        "steps": len(history.steps),
        "best_epoch": one_based(history.best_epoch),
        "stopped_epoch": one_based(history.stopped_epoch),
        "final_epoch": final["epoch"] + 1,
        "train_loss": epochs[-1]["train_loss"],
        "val_loss": final["val_loss"],
        "val_acc": final["val_acc"],
        "resumed_at": list(history.resumed_at),
        "checkpoint": None if checked.checkpoint is None else str(checked.checkpoint),
        "seed": checked.seed,
        "seconds": seconds,
        "history": [{**e, "epoch": int(e["epoch"]) + 1} for e in epochs],
    }


def _print_summary(console, summary: dict[str, Any], written: list[str]) -> None:
    from rich.markup import escape
    from rich.table import Table

    rows = [("optimizer", f"{summary['optimizer']}  (lr from {summary['lr_source']})")]
    if summary["range_test"] is not None:
        rt = summary["range_test"]
        curvature = "" if rt["curvature_lr"] is None else f", 2/λ_max = {rt['curvature_lr']:.3g}"
        rows.append(("range test", f"suggested {rt['suggested']:.3g} ('combined'){curvature}"))
    ran = f"{summary['epochs_run']} of {summary['epochs']}, {summary['steps']} steps"
    if summary["stopped_epoch"] is not None:
        ran += f"; early stopping after epoch {summary['stopped_epoch']}"
    rows.append(("epochs", ran))
    which = (f"epoch {summary['final_epoch']} (the best, restored)" if summary["best_epoch"] is not None
             else f"epoch {summary['final_epoch']} (the last)")
    rows.append(("train loss", f"{summary['train_loss']:.4f} (last epoch's mean)"))
    if summary["problem"] == "char-rnn":
        rows.append(("validation", f"{summary['val_loss'] / math.log(2):.3f} bits/char, next-character "
                     f"accuracy {summary['val_acc']:.1%} at {which}"))
    else:
        rows.append(("validation", f"loss {summary['val_loss']:.4f}, accuracy {summary['val_acc']:.1%} "
                     f"at {which}"))
    if "truncated BPTT" in summary:
        rows.append(("truncated BPTT", summary["truncated BPTT"]))
    if "corpus" in summary:
        rows.append(("corpus", f"{summary['corpus']}; sha256 {summary['corpus_sha256']}"))
    if summary["checkpoint"] is not None:
        if summary["already_finished"]:
            resumed = "; the run had already finished, nothing left to train"
        elif summary["resumed_from"] is not None:
            resumed = f"; resumed at step {summary['resumed_from']}"
        else:
            resumed = ""
        rows.append(("checkpoint", f"{summary['checkpoint']}{resumed}"))
    if written:
        rows.append(("written", ", ".join(written)))
    rows.append(("time", f"{summary['seconds']:.1f} s"))
    table = Table(title=f"descentlab train {summary['problem']}", title_justify="left", show_header=False)
    table.add_column(style="cyan", no_wrap=True)
    table.add_column()
    for name, value in rows:
        table.add_row(name, escape(value))
    console.print(table)
