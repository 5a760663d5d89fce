"""Figures leave the user's matplotlib as they found it: backend, pyplot's figures and rcParams."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from descentlab import plots
from descentlab.lab import race

SRC = Path(__file__).resolve().parents[1] / "src"

DRAW_EVERYTHING = """
from descentlab import plots, report  # noqa: F401  (importing must change nothing either)
from descentlab.lab import race

result = race("two-minima", ["sgd(lr=0.05)", "adam(lr=0.1)"], steps=20, record=lambda o, p: 1.0)
for name, figure in [("race.png", plots.plot_race(result)),
                     ("recorded.png", plots.plot_recorded(result, "r")),
                     ("schedule.svg", plots.plot_schedule(lambda t: 0.1, 10)),
                     ("gallery.png", plots.plot_schedules({"c": lambda t: 0.1, "d": lambda t: 0.2}, 10))]:
    plots.save_figure(figure, out / name)
plots.animate_race(result, out / "race.gif", frames=3)
plots.render_equation("$x^2$")
"""


def _run(before: str, after: str, out: Path) -> None:
    """Run ``before``, draw every kind of figure into ``out``, run ``after``, in a fresh Python."""
    script = "\n".join([f"from pathlib import Path\nout = Path({str(out)!r})", textwrap.dedent(before),
                        DRAW_EVERYTHING, textwrap.dedent(after)])
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr


def test_the_users_backend_figures_and_rc_params_are_untouched(tmp_path):
    _run("""
        import matplotlib
        matplotlib.use("svg")  # the user's choice, which descentlab must not switch
        import matplotlib.pyplot as plt

        mine = plt.figure()
        rc = matplotlib.rcParams
        before = {key: rc[key] for key in rc.keys()}
        """, """
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
        assert plt.get_fignums() == [mine.number], plt.get_fignums()
        after = {key: rc[key] for key in rc.keys()}
        assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
        """, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "gallery.png", "race.gif", "race.png", "recorded.png", "schedule.svg"]


def test_pyplot_is_never_imported(tmp_path):
    _run("""
        import sys
        import matplotlib

        rc = matplotlib.rcParams
        before = {key: rc[key] for key in rc.keys() if key != "backend"}  # reading it would resolve it
        """, """
        assert "matplotlib.pyplot" not in sys.modules
        after = {key: rc[key] for key in rc.keys() if key != "backend"}
        assert after == before
        """, tmp_path)


def test_plot_recorded_draws_what_the_race_recorded(tmp_path):
    result = race("strongly-convex", ["sgd(lr=0.1)", "adam(lr=0.1)"], steps=30,
                  record=lambda optimizer, param: float(param.detach().norm()))
    figure = plots.plot_recorded(result, ylabel="‖w‖", title="norms", log=False)
    (ax,) = figure.axes
    assert [line.get_label() for line in ax.get_lines()] == [run.label for run in result.runs]
    for line, run in zip(ax.get_lines(), result.runs):
        np.testing.assert_array_equal(line.get_ydata(), run.recorded)
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 31))
    assert ax.get_title() == "norms" and ax.get_yscale() == "linear"
    with Image.open(plots.save_figure(figure, tmp_path / "norms.png")) as image:
        assert image.format == "PNG" and image.width > 300


@pytest.mark.parametrize("call,message", [
    (lambda r: plots.plot_recorded(r, "r"), "recorded nothing"),
    (lambda r: plots.plot_race("not a race"), "result must be a RaceResult"),
    (lambda r: plots.plot_schedule(0.1, 10), "schedule must be callable"),
    (lambda r: plots.plot_schedule(lambda t: 0.1, 0), "steps"),
    (lambda r: plots.plot_schedules({}, 10), "non-empty"),
    (lambda r: plots.animate_race(r, "x.gif", frames=0), "frames"),
    (lambda r: plots.render_equation(""), "latex"),
])
def test_bad_arguments_are_value_errors(call, message):
    result = race("strongly-convex", ["sgd(lr=0.1)"], steps=5)
    with pytest.raises(ValueError, match=message):
        call(result)
