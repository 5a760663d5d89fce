"""Runs on disk: the plan of trials, Optuna's SQLite storage, worker processes, resuming after a kill.

A run directory ``DIR`` holds

* ``run.json`` — the run's options, the descentlab version, the exact command, the data hashes: what
  ``bench resume`` and ``bench report`` read (written once, atomically, before any trial);
* ``study.db`` — an Optuna ``RDBStorage`` on SQLite. Every trial of the plan is enqueued up front
  (``study.enqueue_trial``, its :class:`~descentlab.bench.runner.TrialSpec` in the trial's user
  attributes); workers pop them with ``study.optimize`` and a heartbeat every second. A trial whose
  worker was killed stops beating; ``RetryHeartbeatStaleTrialCallback`` re-enqueues exactly its
  configuration, so a resumed run repeats the killed trials only — no finished trial is lost or run
  twice;
* ``results.csv``, ``summary.json``, ``report.html`` — written atomically at the end
  (:mod:`~descentlab.bench.report`).

``--jobs N`` spawns N worker processes (``multiprocessing`` "spawn"), one torch thread each, that die
with the parent (``PR_SET_PDEATHSIG`` on Linux). An exclusive lock on ``DIR/.lock`` keeps two runs
out of one directory. Every check of the arguments and of ``DIR`` happens before anything is written:
bad input leaves ``DIR`` as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import platform
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._io import atomic_write
from ..validation import check_int
from .runner import TrialResult, TrialSpec, run_trial
from .spaces import (
    OPTIMIZERS,
    QUICK_OPTIMIZERS,
    SCHEDULES,
    closest,
    is_closure_solver,
    search_space,
    sobol_configurations,
    stable_seed,
)
from .workloads import TIERS, WORKLOADS, get_workload, tier_workloads

__all__ = [
    "RunOptions",
    "RULESETS",
    "NOTES_ADAM_LRS",
    "plan",
    "RunDirectory",
    "BenchError",
    "execute",
    "load_trials",
    "RUN_FORMAT",
]

RUN_FORMAT = "descentlab.bench.run/1"
RULESETS = ("external", "self", "explore")
#: the notes' (003) starting points for Adam, run with the ``self`` ruleset next to the defaults
NOTES_ADAM_LRS = (1e-3, 5e-4, 1e-4)
HEARTBEAT_SECONDS = 1
GRACE_SECONDS = 10


class BenchError(ValueError):
    """Bad input for a run (options, DIR): one line, exit status 2, nothing in DIR changed."""


@dataclass(frozen=True)
class RunOptions:
    """The options of a run; they decide its plan, so a resume must have the same ones.

    ``studies`` × ``trials`` is the external ruleset's grid (AlgoPerf: 3 × 5 at full scale), ``studies``
    alone the number of seeds of ``self``; ``explore`` runs ``studies × trials`` TPE trials per pair."""

    tier: str = "quick"
    workloads: tuple[str, ...] = ()
    optimizers: tuple[str, ...] = ()
    rulesets: tuple[str, ...] = ("external", "self")
    studies: int = 3
    trials: int = 4
    seed: int = 0
    schedule: str = "warmup-cosine"
    reference: str = "adamw"

    @classmethod
    def make(
        cls,
        *,
        tier: str = "quick",
        workloads: Sequence[str] | None = None,
        optimizers: Sequence[str] | None = None,
        rulesets: Sequence[str] = ("external", "self"),
        studies: int = 3,
        trials: int = 4,
        seed: int = 0,
        schedule: str = "warmup-cosine",
        reference: str = "adamw",
    ) -> RunOptions:
        """Checked options: every name known (with a suggestion otherwise), every count ≥ 1."""
        if tier not in TIERS:
            raise BenchError(f"--tier must be one of {', '.join(TIERS)}, got {tier!r}")
        names = list(workloads) if workloads else [w.name for w in tier_workloads(tier)]
        for name in names:
            if name not in WORKLOADS:
                raise BenchError(
                    f"unknown workload {name!r}; {closest(name, list(WORKLOADS))}valid: "
                    f"{', '.join(WORKLOADS)}"
                )
        chosen = list(optimizers) if optimizers else list(QUICK_OPTIMIZERS if tier == "quick" else OPTIMIZERS)
        for name in chosen:
            if name not in OPTIMIZERS:
                raise BenchError(
                    f"unknown optimizer {name!r}; {closest(name, list(OPTIMIZERS))}valid: "
                    f"{', '.join(OPTIMIZERS)}"
                )
        for ruleset in rulesets:
            if ruleset not in RULESETS:
                raise BenchError(
                    f"unknown ruleset {ruleset!r}; {closest(ruleset, list(RULESETS))}valid: "
                    f"{', '.join(RULESETS)}"
                )
        for label, value in (("--studies", studies), ("--trials", trials)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BenchError(f"{label} must be an integer ≥ 1, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise BenchError(f"--seed must be an integer ≥ 0, got {seed!r}")
        if schedule not in SCHEDULES:
            raise BenchError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        if reference not in OPTIMIZERS:
            raise BenchError(
                f"unknown reference optimizer {reference!r}; "
                f"{closest(reference, list(OPTIMIZERS))}valid: {', '.join(OPTIMIZERS)}"
            )
        for name in names:
            reason = get_workload(name).why_unavailable()
            if reason is not None and workloads:
                raise BenchError(f"workload {name!r} cannot run here: {reason}")
        return cls(
            tier,
            tuple(dict.fromkeys(names)),
            tuple(dict.fromkeys(chosen)),
            tuple(dict.fromkeys(rulesets)),
            studies,
            trials,
            seed,
            schedule,
            reference,
        )

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunOptions:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def runnable_workloads(self) -> tuple[list[str], dict[str, str]]:
        """(workloads that can run here, {skipped workload: one-line reason})."""
        runnable, skipped = [], {}
        for name in self.workloads:
            reason = get_workload(name).why_unavailable()
            if reason is None:
                runnable.append(name)
            else:
                skipped[name] = reason
        return runnable, skipped


def applies(workload: str, optimizer: str) -> bool:
    """Closure solvers run only on the full-batch workloads that declare them."""
    return not is_closure_solver(optimizer) or get_workload(workload).full_batch_solvers


def data_seed(seed: int, study: int, trial: int) -> int:
    """The seed of the initialisation and batch order of (study, trial): the same for every optimizer."""
    return stable_seed("data", seed, study, trial)


def plan(options: RunOptions, workloads: Sequence[str]) -> list[TrialSpec]:
    """Every trial of the external and self rulesets, in run order (interleaved, so that a partial run
    covers every optimizer alike). The explore ruleset is sequential (TPE) and not planned."""
    specs: list[TrialSpec] = []
    pairs = [(w, o) for w in workloads for o in options.optimizers if applies(w, o)]
    if "external" in options.rulesets:
        drawn = {}
        for w, o in pairs:
            for s in range(options.studies):
                seed = stable_seed(w, o, s, options.seed)
                drawn[w, o, s] = sobol_configurations(search_space(o), options.trials, seed, options.schedule)
        for s in range(options.studies):
            for t in range(options.trials):
                for w, o in pairs:
                    u, config = drawn[w, o, s][t]
                    specs.append(TrialSpec(w, o, "external", s, t, data_seed(options.seed, s, t), config, u))
    if "self" in options.rulesets:
        for s in range(options.studies):
            for w, o in pairs:
                config = search_space(o).default_configuration(options.schedule)
                specs.append(TrialSpec(w, o, "self", s, 0, data_seed(options.seed, s, 0), config))
                if o == "adam":  # the notes' other two starting points, for the report's claim
                    for t, lr in enumerate(NOTES_ADAM_LRS[1:], start=1):
                        specs.append(
                            TrialSpec(w, o, "self", s, t, data_seed(options.seed, s, 0), {**config, "lr": lr})
                        )
    return specs


# -- the run directory ------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    import numpy
    import optuna
    import torch

    from .. import __version__

    return {
        "descentlab": __version__,
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


@dataclass
class RunDirectory:
    """``DIR`` of a run: its manifest, storage and lock."""

    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return self.path / "study.db"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db.resolve()}"

    @staticmethod
    def check_new(path: str | os.PathLike, options: RunOptions) -> tuple[RunDirectory, bool]:
        """``(directory, existing)`` for ``bench run``: a new or empty folder, or one holding a run with
        the same options (continued as by ``bench resume``). Nothing is written here."""
        directory = Path(path)
        if directory.exists() and not directory.is_dir():
            raise BenchError(f"--out {str(directory)!r} exists and is not a directory")
        if directory.is_dir() and any(directory.iterdir()):
            existing = RunDirectory.open(directory)
            saved = RunOptions.from_json(existing.manifest["options"])
            if saved != options:
                different = [k for k in options.to_json() if saved.to_json()[k] != options.to_json()[k]]
                shown = "; ".join(
                    f"{k}: saved {saved.to_json()[k]!r}, now {options.to_json()[k]!r}" for k in different
                )
                raise BenchError(
                    f"{str(directory)!r} holds a run with other options ({shown}); use another "
                    f"--out, or `descentlab bench resume {directory}` to finish that run"
                )
            return existing, True
        _check_writable(directory)
        return RunDirectory(directory), False

    @staticmethod
    def open(path: str | os.PathLike) -> RunDirectory:
        """An existing run directory (for resume and report); ``BenchError`` if it is not one of this
        descentlab version's."""
        from .. import __version__

        directory = Path(path)
        if not directory.is_dir():
            raise BenchError(f"{str(directory)!r} is not a directory")
        manifest_path = directory / "run.json"
        if not manifest_path.is_file():
            raise BenchError(
                f"{str(directory)!r} is not a descentlab bench run (no run.json); it was left untouched"
            )
        try:
            manifest = json.loads(manifest_path.read_text("utf-8"))
        except (OSError, ValueError) as error:
            raise BenchError(
                f"{str(manifest_path)!r} cannot be read ({error}); it was left untouched"
            ) from None
        if not isinstance(manifest, dict) or manifest.get("format") != RUN_FORMAT:
            raise BenchError(
                f"{str(manifest_path)!r} is not a descentlab bench manifest ({RUN_FORMAT}); it "
                "was left untouched"
            )
        made_by = manifest.get("versions", {}).get("descentlab")
        if made_by != __version__:
            raise BenchError(
                f"{str(directory)!r} was made by descentlab {made_by}, this is {__version__}: "
                "resume or report it with that version, or start a new run"
            )
        return RunDirectory(directory, manifest)

    def write_manifest(
        self,
        options: RunOptions,
        command: str,
        workloads: Sequence[str],
        skipped: dict[str, str],
        hashes: dict[str, str],
    ) -> None:
        import torch

        self.path.mkdir(parents=True, exist_ok=True)
        self.manifest = {
            "format": RUN_FORMAT,
            "options": options.to_json(),
            "command": command,
            "workloads": list(workloads),
            "skipped": skipped,
            "data_sha256": hashes,
            "versions": _versions(),
            "machine": {
                "cpu": _cpu_name(),
                "cores": os.cpu_count(),
                "platform": platform.platform(),
                "torch_threads_per_trial": 1,
            },
            "git_commit": _git_commit(),
            "targets_version": _targets_version(),
        }
        del torch
        text = json.dumps(self.manifest, indent=2, sort_keys=True) + "\n"
        atomic_write(self.path / "run.json", lambda tmp: Path(tmp).write_text(text, "utf-8"))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold ``DIR/.lock`` exclusively; ``BenchError`` if another process runs this directory."""
        handle = open(self.path / ".lock", "a+")  # noqa: SIM115 - held for the whole run
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BenchError(
                    f"{str(self.path)!r} is being run by another process (its lock is held); "
                    "wait for it to finish"
                ) from None
            yield
        finally:
            handle.close()


def _check_writable(directory: Path) -> None:
    """That ``directory`` can be created and written, by writing (and removing) a probe file in its
    nearest existing ancestor — ``os.access`` says yes to root even where writing fails."""
    import tempfile

    probe = directory
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise BenchError(f"--out {str(directory)!r} cannot be created: {str(probe)!r} is not a directory")
    try:
        handle, name = tempfile.mkstemp(prefix=".descentlab-probe-", dir=probe)
        os.close(handle)
        os.unlink(name)
    except OSError as error:
        raise BenchError(
            f"--out {str(directory)!r} cannot be written ({str(probe)!r}: {error.strerror})"
        ) from None


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    import subprocess

    root = Path(__file__).resolve().parents[3]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout.strip()
    return commit + ("-dirty" if dirty else "")


def _targets_version() -> int:
    from .workloads import targets_registry

    return int(targets_registry()["version"])


# -- Optuna ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_optuna() -> Iterator[Any]:
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message=".*heartbeat.*")
            yield optuna
    finally:
        optuna.logging.set_verbosity(level)


def _storage(url: str):
    """Optuna's RDBStorage on the run's SQLite file, with a heartbeat and the stale-trial retry; WAL
    journal and ``synchronous=NORMAL`` (a commit survives ``kill -9``; only a power cut could lose the last
    ones), and state changes serialised by a file lock."""
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from sqlalchemy import event

    class SerialisedStates(RDBStorage):
        """SQLite does not lock rows (``SELECT … FOR UPDATE`` is ignored), so two workers could both
        pop one waiting trial; every state change goes through an exclusive file lock instead."""

        def set_trial_state_values(self, trial_id, state, values=None):
            with open(lock_path, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                return super().set_trial_state_values(trial_id, state, values)

    path = url.removeprefix("sqlite:///")
    lock_path = path + ".lock"
    if not Path(path).exists():
        import sqlite3

        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA journal_mode=WAL").fetchall()
    storage = SerialisedStates(
        url,
        engine_kwargs={"connect_args": {"timeout": 60}},
        heartbeat_interval=HEARTBEAT_SECONDS,
        grace_period=GRACE_SECONDS,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
    )

    @event.listens_for(storage.engine, "connect")
    def _pragmas(connection, _record) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    storage.engine.dispose()  # connections made from now on get the pragma
    return storage


def _study(url: str, name: str, create: bool = False, sampler=None, pruner=None, storage=None):
    import optuna

    storage = storage or _storage(url)
    if create:
        return optuna.create_study(
            storage=storage, study_name=name, load_if_exists=True, sampler=sampler, pruner=pruner
        )
    return optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner)


def load_trials(url: str) -> list[tuple[str, Any]]:
    """Every trial of the run, as ``(study name, frozen trial)`` sorted by study name and trial number."""
    with _quiet_optuna() as optuna:
        storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
        try:
            found = []
            for study in sorted(storage.get_all_studies(), key=lambda s: s.study_name):
                trials = storage.get_all_trials(study._study_id, deepcopy=False)
                found += [(study.study_name, t) for t in sorted(trials, key=lambda t: t.number)]
            return found
        finally:
            storage.engine.dispose()


def _objective_value(result: TrialResult) -> float:
    return result.steps_to_target if math.isfinite(result.steps_to_target) else float("inf")


def _summary(spec: TrialSpec, result: TrialResult) -> dict[str, Any]:
    return {
        "key": spec.key,
        "workload": spec.workload,
        "optimizer": spec.optimizer,
        "ruleset": spec.ruleset,
        "status": result.status,
        "steps_to_target": result.steps_to_target,
        "best": result.best_metric,
        "error": result.error,
    }


def _queue_objective(report: Callable[[dict[str, Any]], None]):
    def objective(trial) -> float:
        import optuna

        data = trial.user_attrs.get("spec")
        if data is None:  # the queue is empty: nothing more to do
            trial.study.stop()
            raise optuna.TrialPruned("no enqueued configuration left")
        spec = TrialSpec.from_json(data)
        result = run_trial(spec)
        trial.set_user_attr("result", result.to_json())
        report(_summary(spec, result))
        return _objective_value(result)

    return objective


def _die_with_parent(parent: int) -> None:
    """Linux: ask the kernel to SIGKILL this worker when its parent dies (``kill -9`` of the run)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


# -- executing --------------------------------------------------------------------------------------
def _pending_counts(study) -> tuple[int, int]:
    from optuna.trial import TrialState

    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    return waiting, running


def _fail_unbeaten(study, url: str) -> None:
    """Fail, as Optuna fails a stale trial, every RUNNING trial of ``study`` that never beat and started
    more than the grace period ago — the callback then re-enqueues its configuration.

    Optuna's ``ask`` marks a trial RUNNING *before* the heartbeat thread's first beat, and a trial
    without any heartbeat is never stale to ``fail_stale_trials``: a ``kill -9`` landing in between
    (a few milliseconds per trial) would leave it RUNNING for ever and the run unresumable."""
    import copy
    import datetime
    import sqlite3

    from optuna.trial import TrialState

    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=GRACE_SECONDS)
    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=60)) as db:
        found = db.execute(
            "SELECT t.trial_id, t.datetime_start FROM trials t "
            "JOIN studies s ON s.study_id = t.study_id "
            "LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
            "WHERE s.study_name = ? AND t.state = 'RUNNING' AND h.trial_id IS NULL",
            (study.study_name,),
        ).fetchall()
    storage = study._storage
    callback = storage.get_heartbeat_stale_trial_callback()
    for trial_id, started in found:
        if started is not None and datetime.datetime.fromisoformat(started) > cutoff:
            continue  # its worker may be about to beat
        if storage.set_trial_state_values(trial_id, state=TrialState.FAIL) and callback is not None:
            callback(study, copy.deepcopy(storage.get_trial(trial_id)))


def _fail_stale(study, wait: bool, url: str) -> int:
    """Fail the RUNNING trials of a dead run once their heartbeat is stale (or, if they never beat,
    once they are older than the grace period) — the callback re-enqueues each configuration as a
    waiting trial. Returns how many were re-enqueued; ``BenchError`` if some still beat after the grace
    period (another process is running them)."""
    import optuna
    from optuna.trial import TrialState

    running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    if not running:
        return 0
    deadline = time.monotonic() + GRACE_SECONDS + 2
    while True:
        optuna.storages.fail_stale_trials(study)
        _fail_unbeaten(study, url)
        left = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if not left or not wait:
            break
        if time.monotonic() > deadline:
            raise BenchError(
                f"{left} trial(s) of this run are still running in another process (their heartbeat "
                "is alive); wait for it to finish or stop it, then resume"
            )
        time.sleep(0.5)
    return running - left


def queue_study_name(spec: TrialSpec) -> str:
    """The Optuna study of a trial: one per (ruleset, workload, optimizer), so that popping a waiting
    trial reads a dozen waiting trials, not the whole run's."""
    return f"{spec.ruleset}/{spec.workload}/{spec.optimizer}"


def _cost(spec: TrialSpec) -> float:
    workload = get_workload(spec.workload)
    return (spec.budget or workload.budget) * workload.seconds_per_step


def execute(
    directory: RunDirectory,
    specs: Sequence[TrialSpec],
    jobs: int,
    progress: Callable[[dict[str, Any]], None] | None = None,
    started: Callable[[int, int], None] | None = None,
    workers: Workers | None = None,
) -> dict[str, Any]:
    """Enqueue the specs not yet stored, re-enqueue killed trials, run every waiting trial with ``jobs``
    workers (the costliest studies first; ``workers``: already started by :func:`early_workers`).
    Returns counts: ``done_before``, ``ran``, ``requeued``, ``failed_workers``, ``left``."""
    jobs = check_int("jobs", jobs)
    report = progress or (lambda _: None)
    groups: dict[str, list[TrialSpec]] = {}
    for spec in specs:
        groups.setdefault(queue_study_name(spec), []).append(spec)
    with _quiet_optuna() as optuna:
        storage = _storage(directory.url)
        queue_items, requeued, done_before = [], 0, 0
        for name, group in groups.items():
            study = _study(directory.url, name, create=True, storage=storage)
            trials = study.get_trials(deepcopy=False)
            known = {t.user_attrs.get("key") for t in trials}
            done_before += sum(1 for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
            requeued += _fail_stale(study, wait=True, url=directory.url)
            for spec in group:
                if spec.key not in known:
                    study.enqueue_trial({}, user_attrs={"key": spec.key, "spec": spec.to_json()})
            waiting, _ = _pending_counts(study)
            if waiting:
                queue_items.append({"name": name, "count": waiting, "cost": waiting * _cost(group[0])})
        queue_items.sort(key=lambda item: -item["cost"])
        total = sum(item["count"] for item in queue_items)
        if started is not None:
            started(done_before, total)
        failed_workers = 0
        if total and jobs == 1:
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                for item in queue_items:
                    study = _study(directory.url, item["name"], storage=storage)
                    study.optimize(_queue_objective(report), n_trials=item["count"], gc_after_trial=False)
            finally:
                torch.set_num_threads(threads)
        elif total:
            _write_json(directory.path / "queue.json", [{**item, "claimed": False} for item in queue_items])
            count = min(jobs, len(queue_items))
            if workers is None:
                failed_workers = _run_workers([["queue", str(directory.path)] for _ in range(count)], report)
            else:
                workers.release(count)
                failed_workers = workers.collect(report)
        left = 0
        for name in groups:
            waiting, running = _pending_counts(_study(directory.url, name, storage=storage))
            left += waiting + running
    return {
        "done_before": done_before,
        "ran": total - left,
        "requeued": requeued,
        "failed_workers": failed_workers,
        "left": left,
    }


def _write_json(path: Path, value: Any) -> None:
    text = json.dumps(value)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, "utf-8"))


def claim_next(path: Path) -> tuple[str, int] | None:
    """A worker's next study of ``queue.json`` (claimed under a file lock, so no study has two workers
    and each pops exactly its waiting trials), or ``None`` when every study is taken."""
    with open(path / "queue.json.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        items = json.loads((path / "queue.json").read_text("utf-8"))
        for item in items:
            if not item["claimed"]:
                item["claimed"] = True
                _write_json(path / "queue.json", items)
                return item["name"], int(item["count"])
    return None


def work_queue(path: Path, report: Callable[[dict[str, Any]], None]) -> None:
    """A worker's loop: claim a study, run its waiting trials, until none is left."""
    url = f"sqlite:///{(path / 'study.db').resolve()}"
    storage = _storage(url)
    while (claimed := claim_next(path)) is not None:
        name, count = claimed
        study = _study(url, name, storage=storage)
        study.optimize(_queue_objective(report), n_trials=count, gc_after_trial=False)


class Workers:
    """Worker processes ``python -m descentlab.bench._worker PARENT ARGS…``, started *before* the run
    has its plan: while the parent hashes the data, draws the configurations and fills the storage, each
    worker imports torch and Optuna and builds the data of the run's workloads — the start-up a worker
    pays once overlaps the parent's. A worker then waits for one line on its stdin: ``go`` (work the
    queue) or end of file (nothing to do: it exits without touching the run's directory)."""

    def __init__(self, arguments: list[list[str]]) -> None:
        import subprocess

        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "descentlab.bench._worker", str(os.getpid()), *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
            for args in arguments
        ]
        self.released = 0

    def __len__(self) -> int:
        return len(self.processes)

    def release(self, count: int) -> None:
        """Send ``go`` to the first ``count`` workers; the others get end of file and exit."""
        for index, worker in enumerate(self.processes):
            with contextlib.suppress(BrokenPipeError, OSError, ValueError):
                if index < count:
                    worker.stdin.write("go\n")
                    worker.stdin.flush()
                worker.stdin.close()
        self.released = min(count, len(self.processes))

    def collect(self, report: Callable[[dict[str, Any]], None]) -> int:
        """Pass on each JSON line the released workers print until they exit; return how many of them
        exited with a non-zero status."""
        import selectors
        import subprocess

        if not self.released:
            self.release(0)
        selector = selectors.DefaultSelector()
        for worker in self.processes:
            selector.register(worker.stdout, selectors.EVENT_READ)
        try:
            open_pipes = len(self.processes)
            while open_pipes:
                for key, _ in selector.select(timeout=1.0):
                    line = key.fileobj.readline()
                    if not line:
                        selector.unregister(key.fileobj)
                        open_pipes -= 1
                        continue
                    with contextlib.suppress(ValueError):
                        report(json.loads(line))
        finally:
            for worker in self.processes:
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
                worker.stdout.close()
        return sum(1 for w in self.processes[: self.released] if w.returncode != 0)

    def close(self) -> None:
        """Dismiss the workers that were never released (the run stopped before it had work for them)."""
        import subprocess

        if self.released == 0:
            self.release(0)
        for worker in self.processes:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            if worker.stdout is not None and not worker.stdout.closed:
                worker.stdout.close()


@contextlib.contextmanager
def early_workers(jobs: int, path: Path, workloads: Sequence[str]) -> Iterator[Workers | None]:
    """``jobs`` queue workers for the run in ``path``, started now (``None`` for ``jobs=1``); those the
    run never released are dismissed on exit, whatever happened."""
    if jobs <= 1:
        yield None
        return
    workers = Workers([["queue", str(path), *workloads] for _ in range(jobs)])
    try:
        yield workers
    finally:
        workers.close()


def _run_workers(arguments: list[list[str]], report: Callable[[dict[str, Any]], None]) -> int:
    """Start one worker per argument list, release them all, pass on what they print; return how many
    exited with a non-zero status."""
    workers = Workers(arguments)
    workers.release(len(arguments))
    return workers.collect(report)


# -- explore: TPE with pruning, never scored --------------------------------------------------------
def explore_study_name(workload: str, optimizer: str) -> str:
    return f"explore/{workload}/{optimizer}"


def _explore(
    url: str,
    names: list[str],
    count: int,
    report: Callable[[dict[str, Any]], None],
    seed: int,
    schedule: str = "warmup-cosine",
) -> None:
    import optuna

    from .runner import Pruned

    for name in names:
        _, workload, optimizer = name.split("/")
        sampler = optuna.samplers.TPESampler(seed=stable_seed(name, seed), n_startup_trials=min(5, count))
        study = _study(
            url,
            name,
            create=True,
            sampler=sampler,
            pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
        )
        _fail_stale(study, wait=True, url=url)
        done = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished())
        remaining = count - done
        if remaining <= 0:
            continue
        space = search_space(optimizer)
        mode = get_workload(workload).mode

        def objective(trial, workload=workload, optimizer=optimizer, space=space, mode=mode):
            u = [trial.suggest_float(d.name, 0.0, 1.0) for d in space.dimensions]
            spec = TrialSpec(
                workload,
                optimizer,
                "explore",
                0,
                trial.number,
                data_seed(seed, 0, trial.number),
                space.configuration(u, schedule),
                u,
            )
            trial.set_user_attr("key", spec.key)
            trial.set_user_attr("spec", spec.to_json())

            def on_eval(step: int, metric: float) -> None:
                trial.report(metric if mode == "min" else -metric, step)
                if trial.should_prune():
                    raise Pruned(f"pruned at step {step}")

            result = run_trial(spec, on_eval=on_eval)
            trial.set_user_attr("result", result.to_json())
            report(_summary(spec, result))
            if result.status == "pruned":
                raise optuna.TrialPruned(result.error)
            best = result.best_metric
            return float(best if mode == "min" else -best) if math.isfinite(best) else float("inf")

        study.optimize(objective, n_trials=remaining, gc_after_trial=False)


def run_explore(
    directory: RunDirectory,
    workloads: Sequence[str],
    options: RunOptions,
    jobs: int,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    names = [explore_study_name(w, o) for w in workloads for o in options.optimizers if applies(w, o)]
    count = options.studies * options.trials
    report = progress or (lambda _: None)
    with _quiet_optuna():
        if jobs == 1:
            _explore(directory.url, names, count, report, options.seed, options.schedule)
        else:
            groups = [names[i::jobs] for i in range(jobs)]
            _run_workers(
                [
                    ["explore", directory.url, str(count), str(options.seed), options.schedule, *group]
                    for group in groups
                    if group
                ],
                report,
            )
