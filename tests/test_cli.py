"""The ``descentlab`` command: tables, figures and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from descentlab.cli import main
from descentlab.lab import optimizer_registry, race
from descentlab.landscapes import LANDSCAPES


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_race_prints_the_table_and_writes_the_figure(capsys, tmp_path):
    out, gif = tmp_path / "race.png", tmp_path / "race.gif"
    code, stdout, stderr = run(capsys, "race", "two-minima", "--opt", "sgd(lr=0.05)", "--opt",
                               "SGD(lr=0.05, momentum=0.9)", "--opt", "sgd(lr=3)", "--steps", "120",
                               "--out", str(out), "--gif", str(gif))
    assert code == 0, stderr
    expected = race("two-minima", ["sgd(lr=0.05)", "SGD(lr=0.05, momentum=0.9)", "sgd(lr=3)"], steps=120)
    for row in expected.rows():
        assert row["optimizer"] in stdout
        assert row["final loss"] in stdout
    diverged = expected.runs[2].diverged_at
    assert diverged is not None and f"diverged at step {diverged}" in stdout
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 600
    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames > 10
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_schedule_writes_a_plot(capsys, tmp_path):
    pytest.importorskip("descentlab.schedules")
    out = tmp_path / "restarts.png"
    spec = "warm_restarts(T_0=10, T_mult=2, eta_min=0.01, eta_max=0.1)"
    code, stdout, stderr = run(capsys, "schedule", spec, "--steps", "70", "--out", str(out))
    assert code == 0, stderr
    assert out.exists() and "0.01" in stdout and "0.1" in stdout


def test_list_shows_every_optimizer_landscape_and_schedule(capsys):
    code, stdout, _ = run(capsys, "list")
    assert code == 0
    for name in optimizer_registry(include_torch=False):
        assert name in stdout
    for name in LANDSCAPES:
        assert name in stdout
    try:
        from descentlab.schedules import SCHEDULES
    except ImportError:
        return
    for name in SCHEDULES:
        assert name in stdout


@pytest.mark.parametrize("argv,message", [
    (["race", "two-minimum"], "did you mean 'two-minima'"),
    (["race", "two-minima", "--opt", "adma(lr=0.1)"], "did you mean"),
    (["race", "two-minima", "--opt", "adam(lr=0.1"], "column 5"),
    (["race", "two-minima", "--opt", "adam(lrr=0.1)"], "valid keys"),
    (["race", "two-minima", "--start", "5,5"], "outside the domain"),
    (["race", "two-minima", "--start", "a,b"], "--start"),
    (["race", "two-minima", "--steps", "0"], "--steps must be a positive integer"),
    (["race", "two-minima", "--steps", "-3"], "--steps must be a positive integer"),
    (["race", "two-minima", "--out", "race.txt"], "--out must end in"),
    (["schedule", "cosin(eta_max=0.1)"], "did you mean 'cosine'"),
    (["race"], "Missing argument"),
])
def test_bad_input_is_one_line_and_non_zero(capsys, argv, message):
    code, _, stderr = run(capsys, *argv)
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in stderr


def test_unwritable_output_directory(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, stderr = run(capsys, "demo", "--out", str(blocker))
    assert code == 2 and stderr.count("\n") == 1 and "not a directory" in stderr
    code, _, stderr = run(capsys, "race", "two-minima", "--out", str(blocker / "race.png"))
    assert code == 2 and stderr.count("\n") == 1 and "--out" in stderr


@pytest.mark.parametrize("command", ["race", "schedule", "list", "train", "demo"])
def test_every_subcommand_has_help_with_an_example(capsys, command):
    code, stdout, _ = run(capsys, command, "--help")
    assert code == 0
    assert "Example" in stdout and "descentlab" in stdout


def test_console_script_is_installed_and_answers():
    script = Path(sys.executable).parent / "descentlab"
    if not script.exists():
        pytest.skip("the descentlab console script is not installed next to this Python")
    done = subprocess.run([str(script), "race", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Example" in done.stdout and "--opt" in done.stdout
    done = subprocess.run([str(script), "race", "two-minima", "--steps", "0"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --steps must be a positive integer, got 0"


def _broken_race(*args, **kwargs):
    raise RuntimeError("boom: a bug deep inside\nsecond line")


def test_an_unexpected_error_is_one_line_pointing_to_debug(capsys, monkeypatch):
    monkeypatch.setattr("descentlab.lab.race", _broken_race)
    code, _, stderr = run(capsys, "race", "two-minima", "--steps", "5")
    assert code == 1
    assert stderr.strip().splitlines() == [
        "error: unexpected RuntimeError: boom: a bug deep inside (run with --debug for the traceback)"
    ]


def test_debug_shows_the_traceback(capsys, monkeypatch):
    monkeypatch.setattr("descentlab.lab.race", _broken_race)
    code, _, stderr = run(capsys, "--debug", "race", "two-minima", "--steps", "5")
    assert code == 1
    assert stderr.startswith("Traceback (most recent call last):")
    assert "_broken_race" in stderr and "second line" in stderr
    assert stderr.strip().splitlines()[-1] == "error: unexpected RuntimeError: boom: a bug deep inside"
    # bad input stays exit status 2, with the traceback on request
    code, _, stderr = run(capsys, "--debug", "race", "two-minima", "--steps", "0")
    assert code == 2 and "Traceback" in stderr
    assert stderr.strip().splitlines()[-1] == "error: --steps must be a positive integer, got 0"


def test_main_leaves_the_excepthook_alone(capsys):
    hook = sys.excepthook
    run(capsys, "list")
    assert sys.excepthook is hook
