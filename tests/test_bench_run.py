"""Runs of descentlab bench end to end: resume after SIGKILL, reproducibility, bad input, offline."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from descentlab.bench import report_bench, resume_bench, run_bench
from descentlab.bench.report import WALL_CLOCK_COLUMNS
from descentlab.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "workloads": ["cancer-logreg"],
    "optimizers": ["adam", "heavyball"],
    "studies": 2,
    "trials": 3,
    "rulesets": ["external", "self"],
}
SMALL_ARGS = [
    "--workloads",
    "cancer-logreg",
    "--optimizers",
    "adam,heavyball",
    "--studies",
    "2",
    "--trials",
    "3",
    "--ruleset",
    "external,self",
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _rows(directory: Path, drop_wall_clock: bool = True) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO((directory / "results.csv").read_text("utf-8"))))
    if drop_wall_clock:
        for row in rows:
            for column in WALL_CLOCK_COLUMNS:
                del row[column]
    return rows


def _states(directory: Path) -> dict[str, int]:
    with sqlite3.connect(directory / "study.db") as db:
        return dict(db.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())


def _snapshot(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(directory.rglob("*"))
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of the small configuration."""
    out = tmp_path_factory.mktemp("bench") / "reference"
    run_bench(out, **SMALL, jobs=1)
    return out


def test_a_run_writes_its_outputs(reference):
    names = {p.name for p in reference.iterdir()}
    assert {"run.json", "study.db", "results.csv", "summary.json", "report.html"} <= names
    rows = _rows(reference)
    assert (
        len(rows) == 2 * 2 * 3 + 2 * 3 + 2
    )  # external grid + self (adam: its defaults and the notes' two rates)
    assert {r["status"] for r in rows} <= {"reached", "missed", "diverged"}
    summary = json.loads((reference / "summary.json").read_text("utf-8"))
    assert set(summary["rulesets"]) == {"external", "self"}
    page = (reference / "report.html").read_text("utf-8")
    assert "Provenance" in page and "data:image/png;base64," in page
    assert re.findall(r'(?:src|href)="(?!#|data:image/png;base64,)([^"]*)"', page) == []  # self-contained


def test_resume_after_sigkill_repeats_only_the_killed_trials(reference, tmp_path):
    out = tmp_path / "killed"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "descentlab.cli",
            "bench",
            "run",
            *SMALL_ARGS,
            "--jobs",
            "2",
            "--out",
            str(out),
        ],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if (out / "study.db").exists():
                try:
                    if _states(out).get("COMPLETE", 0) >= 3:
                        break
                except sqlite3.OperationalError:  # locked for a moment by a worker
                    pass
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("the run never completed 3 trials")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    with sqlite3.connect(out / "study.db") as db:
        before = dict(
            db.execute(
                "SELECT t.trial_id, a.value_json FROM trials t JOIN trial_user_attributes a "
                "ON a.trial_id = t.trial_id WHERE t.state = 'COMPLETE' AND a.key = 'result'"
            )
        )
    assert len(before) >= 3
    time.sleep(1.0)  # the workers die with their parent (PR_SET_PDEATHSIG)
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and str(out) in _cmdline(p)]
    assert leftovers == []
    resume_bench(out, jobs=1)
    states = _states(out)
    assert "RUNNING" not in states and "WAITING" not in states
    with sqlite3.connect(out / "study.db") as db:
        after = dict(
            db.execute(
                "SELECT t.trial_id, a.value_json FROM trials t JOIN trial_user_attributes a "
                "ON a.trial_id = t.trial_id WHERE t.state = 'COMPLETE' AND a.key = 'result'"
            )
        )
    assert all(after[trial] == value for trial, value in before.items())  # nothing finished was re-run
    rows, expected = _rows(out), _rows(reference)
    assert rows == expected  # every (configuration, seed) and every result as in the uninterrupted run
    assert {(r["params"], r["seed"]) for r in rows} == {(r["params"], r["seed"]) for r in expected}
    counts = {}
    for r in rows:
        if r["ruleset"] == "external":
            counts[r["optimizer"]] = counts.get(r["optimizer"], 0) + 1
    assert set(counts.values()) == {6}
    assert states["COMPLETE"] == len(rows)  # each configuration completed exactly once


def test_a_trial_killed_before_its_first_heartbeat_is_rerun(reference, tmp_path):
    # Optuna's ask marks a trial RUNNING before the heartbeat thread's first beat; a kill -9 in between
    # leaves a RUNNING trial without a heartbeat, which Optuna never finds stale. Made here by hand.
    import shutil

    copy = tmp_path / "unbeaten"
    shutil.copytree(reference, copy)
    with sqlite3.connect(copy / "study.db") as db:
        (trial_id,) = db.execute(
            "SELECT t.trial_id FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "WHERE s.study_name = 'external/cancer-logreg/adam' AND t.state = 'COMPLETE' "
            "ORDER BY t.number LIMIT 1"
        ).fetchone()
        db.execute(
            "UPDATE trials SET state = 'RUNNING', datetime_complete = NULL, "
            "datetime_start = datetime('now', 'localtime', '-1 minute') WHERE trial_id = ?",
            (trial_id,),
        )
        db.execute("DELETE FROM trial_values WHERE trial_id = ?", (trial_id,))
        db.execute("DELETE FROM trial_user_attributes WHERE trial_id = ? AND key = 'result'", (trial_id,))
        db.execute("DELETE FROM trial_heartbeats WHERE trial_id = ?", (trial_id,))
    began = time.monotonic()
    resume_bench(copy, jobs=1)
    assert time.monotonic() - began < 60
    states = _states(copy)
    assert "RUNNING" not in states and "WAITING" not in states and states["FAIL"] == 1
    assert _rows(copy) == _rows(reference)  # the killed configuration ran again, with the same result


def _cmdline(process: Path) -> str:
    try:
        return (process / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_the_same_seed_gives_the_same_results_and_report_is_byte_identical(reference, tmp_path):
    again = tmp_path / "again"
    run_bench(again, **SMALL, jobs=1)
    assert _rows(again) == _rows(reference)
    assert _rows(again, False) != _rows(reference, False)  # the wall-clock columns are what differs
    first = {name: (reference / name).read_bytes() for name in ("results.csv", "summary.json", "report.html")}
    report_bench(reference)
    second = {name: (reference / name).read_bytes() for name in first}
    assert first == second


def test_another_seed_gives_other_trials(reference, tmp_path):
    other = tmp_path / "seed1"
    run_bench(other, **{**SMALL, "optimizers": ["adam"], "studies": 1, "rulesets": ["external"]}, seed=1)
    assert {r["params"] for r in _rows(other)}.isdisjoint({r["params"] for r in _rows(reference)})


def _bench(capsys, *args: str) -> tuple[int, str]:
    code = main(["bench", *args])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--workloads", "digits-mpl"], "error: unknown workload 'digits-mpl'; did you mean 'digits-mlp'"),
        (["--optimizers", "adma"], "error: unknown optimizer 'adma'; did you mean 'adamax' or 'adam'?"),
        (["--studies", "0"], "error: --studies must be an integer ≥ 1, got 0"),
        (["--trials", "-1"], "error: --trials must be an integer ≥ 1, got -1"),
        (["--jobs", "0", "--workloads", "cancer-logreg"], "error: --jobs must be an integer ≥ 1, got 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, args, message):
    out = tmp_path / "run"
    code, err = _bench(capsys, "run", "--out", str(out), *args)
    assert code == 2
    assert err.startswith(message) and "\n" not in err
    assert not out.exists()


def test_an_unwritable_or_foreign_directory_is_refused_untouched(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    code, err = _bench(capsys, "run", "--workloads", "cancer-logreg", "--out", str(blocker / "run"))
    assert code == 2 and "is not a directory" in err and "\n" not in err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine", encoding="utf-8")
    before = _snapshot(foreign)
    for command in (
        ["run", "--workloads", "cancer-logreg", "--out", str(foreign)],
        ["resume", str(foreign)],
        ["report", str(foreign)],
    ):
        code, err = _bench(capsys, *command)
        assert code == 2 and "is not a descentlab bench run" in err and "\n" not in err
    assert _snapshot(foreign) == before
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, err = _bench(capsys, "run", "--workloads", "cancer-logreg", "--out", str(locked / "run"))
        assert code == 2 and "cannot be written" in err


def test_resuming_with_other_options_or_another_version_is_refused_untouched(capsys, reference, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    before = _snapshot(copy)
    code, err = _bench(
        capsys, "run", *SMALL_ARGS[:-4], "--trials", "2", "--ruleset", "external,self", "--out", str(copy)
    )
    assert code == 2 and "holds a run with other options (trials: saved 3, now 2)" in err and "\n" not in err
    assert _snapshot(copy) == before
    manifest = json.loads((copy / "run.json").read_text("utf-8"))
    manifest["versions"]["descentlab"] = "0.0.1"
    (copy / "run.json").write_text(json.dumps(manifest), encoding="utf-8")
    before = _snapshot(copy)
    for command in (["resume", str(copy)], ["report", str(copy)], ["run", *SMALL_ARGS, "--out", str(copy)]):
        code, err = _bench(capsys, *command)
        assert code == 2 and "was made by descentlab 0.0.1, this is" in err and "\n" not in err
    assert _snapshot(copy) == before


def test_rerunning_the_same_command_continues_without_training(reference, capsys):
    before = _states(reference)
    code = main(["bench", "run", *SMALL_ARGS, "--out", str(reference)])
    assert code == 0
    assert _states(reference) == before


OFFLINE = """
import socket

def refuse(*args, **kwargs):
    raise OSError("the network is disabled in this test")

def connect(self, address, _connect=socket.socket.connect):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        refuse()
    return _connect(self, address)

socket.socket.connect = connect
socket.socket.connect_ex = lambda self, address: refuse()
socket.create_connection = refuse
socket.getaddrinfo = refuse
"""


def test_the_quick_tier_runs_with_sockets_disabled(tmp_path):
    # sitecustomize runs in every interpreter that sees it: the run and its --jobs 2 worker processes
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(OFFLINE, encoding="utf-8")
    env = _env()
    env["PYTHONPATH"] = str(site) + os.pathsep + env["PYTHONPATH"]
    probe = subprocess.run(
        [sys.executable, "-c", "import socket; socket.create_connection(('127.0.0.1', 9))"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert probe.returncode != 0 and "the network is disabled in this test" in probe.stderr
    out = tmp_path / "offline"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "descentlab.cli",
            "bench",
            "run",
            "--tier",
            "quick",
            "--optimizers",
            "adam,sgd",
            "--studies",
            "1",
            "--trials",
            "1",
            "--ruleset",
            "external",
            "--jobs",
            "2",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = _rows(out)
    assert {r["workload"] for r in rows} == {
        "cancer-logreg",
        "digits-mlp",
        "mnist1d-cnn",
        "digits-autoencoder",
    }
    assert len(rows) == 8 and all(r["status"] != "failed" for r in rows)


def test_the_explore_ruleset_runs_tpe_and_is_never_scored(tmp_path):
    out = tmp_path / "explore"
    run_bench(
        out, workloads=["cancer-logreg"], optimizers=["adam"], rulesets=["explore"], studies=1, trials=5
    )
    rows = _rows(out)
    assert len(rows) == 5 and {r["ruleset"] for r in rows} == {"explore"}
    assert {r["status"] for r in rows} <= {"reached", "missed", "diverged", "pruned"}
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert summary["rulesets"] == {}
    with sqlite3.connect(out / "study.db") as db:
        names = {n for (n,) in db.execute("SELECT study_name FROM studies")}
    assert "explore/cancer-logreg/adam" in names


def test_workers_started_early_and_given_no_work_exit_and_leave_the_directory_alone(tmp_path):
    from descentlab.bench.storage import early_workers

    path = tmp_path / "run"
    began = time.monotonic()
    with early_workers(2, path, ["cancer-logreg"]) as workers:
        assert len(workers) == 2 and all(w.poll() is None for w in workers.processes)  # starting up
    assert [w.returncode for w in workers.processes] == [0, 0]  # dismissed, not killed after a timeout
    assert time.monotonic() - began < 30
    assert not path.exists()


def test_the_claim_figure_keeps_the_runs_colours_and_coinciding_curves_stay_visible(reference):
    from descentlab.bench.figures import colors_for, reach_figure
    from descentlab.bench.report import collect
    from descentlab.bench.storage import RunDirectory

    rows = collect(RunDirectory.open(reference))
    run = ["adam", "heavyball"]
    (line,) = reach_figure(rows, ["cancer-logreg"], ["heavyball"], palette=run).axes[0].get_lines()
    assert line.get_color() == colors_for(run)["heavyball"] != colors_for(["heavyball"])["heavyball"]
    first, second = reach_figure(rows, ["cancer-logreg"], run).axes[0].get_lines()
    assert first.get_marker() != second.get_marker() and first.get_linewidth() > second.get_linewidth()


def test_an_empty_profile_says_whether_single_runs_reached_a_target(reference):
    from descentlab.bench.figures import profile_figure
    from descentlab.bench.report import collect
    from descentlab.bench.storage import RunDirectory

    rows = [dict(r, status="missed", steps_to_target=math.inf) for r in collect(RunDirectory.open(reference))]
    rows[0]["status"], rows[0]["steps_to_target"] = "reached", 100.0  # one study or seed of three
    figure = profile_figure(rows, ["adam", "heavyball"], [rows[0]["ruleset"]])
    (text,) = figure.axes[0].texts
    assert text.get_text().startswith("no optimizer's median run reached a target")
    for row in rows:
        row["status"] = "missed"
    (text,) = profile_figure(rows, ["adam", "heavyball"], [rows[0]["ruleset"]]).axes[0].texts
    assert text.get_text() == "no optimizer reached any target"
