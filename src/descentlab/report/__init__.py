"""The demo report: the course notes' comparisons, raced and drawn, as one offline HTML page.

Three small parts:

* :mod:`~descentlab.report.experiments` — the experiments, each ``experiment(directory, options) ->
  Section``: the two-minima race of notes 001, SGD against Adam on a strongly convex function,
  gradient descent / momentum / Nesterov / Adam at κ = 100, online vs mini-batch vs full-batch SGD,
  a saddle, a plateau, AdaGrad's vanishing step against RMSprop, Rosenbrock and a gallery of
  learning-rate schedules; their figures come from :mod:`descentlab.plots`; then the training
  practice of :mod:`descentlab.training` and the diagnosis of planted pathologies by
  :mod:`descentlab.diagnostics` (:mod:`~descentlab.report.practice`);
* :class:`Section` — what an experiment returns: a figure (or a gallery of captioned
  :class:`Figure` objects), an equation, a table and what it shows;
* :mod:`~descentlab.report.page` — the page, a Jinja2 template shipped in the package
  (``descentlab/report/templates/``), autoescaped.

:func:`build_report` runs every :data:`EXPERIMENTS` entry and writes ``DIR/index.html`` with its PNG
figures next to it. Equations are rendered by matplotlib's mathtext into inline SVG, so the page needs
no network. Figures are written first and the page last, each atomically (temporary file, then
``os.replace``), so a crash never leaves a half-written page.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from .._io import atomic_write, writable_directory
from ..validation import check_bool, check_callable
from . import experiments
from .experiments import *  # noqa: F403  (every experiment, as report.two_minima, ...)
from .experiments import EXPERIMENTS, Experiment, ReportOptions
from .page import render_page
from .section import Figure, Section

__all__ = ["Section", "Figure", "build_report", "render_page", "check_output_dir", *experiments.__all__]


def check_output_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and make sure files can be written there; ``ValueError`` otherwise."""
    return writable_directory(path, "out")


def _selected(only: Sequence[str] | None) -> list[tuple[str, Experiment]]:
    if only is None:
        return list(EXPERIMENTS)
    known = [name for name, _ in EXPERIMENTS]
    if isinstance(only, str) or not isinstance(only, (list, tuple, set, frozenset)):
        raise ValueError(f"only must be a list of experiment names ({', '.join(known)}), got {only!r}")
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ValueError(f"only: unknown experiment {unknown[0]!r}; valid: {', '.join(known)}")
    return [(name, experiment) for name, experiment in EXPERIMENTS if name in only]


def build_report(
    out: str | os.PathLike = "runs/demo",
    progress: Callable[[str], None] | None = None,
    gif: bool = True,
    only: Sequence[str] | None = None,
) -> tuple[Path, list[Section]]:
    """Run every experiment, write the figures and ``out/index.html``; return the page's path and sections.

    ``progress(name)`` is called after each experiment (for a progress bar); ``gif`` also writes the
    animations; ``only`` restricts the report to the experiments with those names (see
    :data:`EXPERIMENTS`).
    """
    if progress is not None:
        check_callable("progress", progress, "progress(name)")
    options = ReportOptions(gif=check_bool("gif", gif))
    experiments = _selected(only)
    directory = check_output_dir(out)
    began = time.perf_counter()
    sections = []
    for name, experiment in experiments:
        tick = time.perf_counter()
        section = experiment(directory, options)
        sections.append(replace(section, seconds=time.perf_counter() - tick))
        if progress is not None:
            progress(name)
    page = render_page(sections, time.perf_counter() - began)
    index = atomic_write(directory / "index.html", lambda tmp: Path(tmp).write_text(page, "utf-8"))
    return index, sections
