"""The demo report's benchmark section: one quick workload, four optimizers, a handful of trials.

``bench_section(directory, options)`` runs ``descentlab bench`` on ``cancer-logreg`` (AdamW, Adam, SGD,
heavy ball; one study of three Sobol' trials, and the defaults) into ``directory/bench`` — a complete
run with its own ``report.html``, which the section links to — and draws the performance profile next to
the demo page. About ten seconds on one core.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["bench_section", "DEMO_RUN"]

DEMO_RUN = {
    "workloads": ["cancer-logreg"],
    "optimizers": ["adamw", "adam", "sgd", "heavyball"],
    "studies": 1,
    "trials": 3,
    "rulesets": ["external", "self"],
}


def bench_section(directory: Path, options):
    """Run the small benchmark and return the demo page's section about it."""
    from .._io import save_figure
    from ..report.section import Section
    from . import run_bench
    from .figures import profile_figure
    from .report import collect
    from .storage import BenchError, RunDirectory
    from .workloads import get_workload

    target = Path(directory) / "bench"
    try:
        out = run_bench(target, **DEMO_RUN, jobs=1, command="descentlab demo (bench section)")
    except BenchError:
        if not (target / "run.json").is_file():  # not a run the demo made: leave it alone
            raise
        import shutil

        shutil.rmtree(target)  # the demo's own run from another version or with other options: redo it
        out = run_bench(target, **DEMO_RUN, jobs=1, command="descentlab demo (bench section)")
    rows = collect(RunDirectory.open(out))
    save_figure(
        profile_figure(rows, DEMO_RUN["optimizers"], DEMO_RUN["rulesets"]), Path(directory) / "bench.png"
    )
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    external = summary["rulesets"]["external"]["steps"]
    defaults = summary["rulesets"]["self"]["steps"]
    workload = get_workload("cancer-logreg")
    table = []
    for name in sorted(DEMO_RUN["optimizers"], key=lambda o: -external["score"].get(o, 0)):
        tuned = external["workloads"]["cancer-logreg"][name]
        plain = defaults["workloads"]["cancer-logreg"][name]
        table.append(
            [name, _steps(tuned["median"]), _steps(plain["median"]), f"{external['score'][name]:.3f}"]
        )
    winners = [row[0] for row in table if row[1] != "missed"]
    finding = (
        f"Tuned on 3 Sobol' trials, {_list(winners) if winners else 'no optimizer'} reached "
        f"f − f* ≤ {workload.target:g} within {workload.budget} steps; with their defaults "
        f"{_list([r[0] for r in table if r[2] != 'missed']) or 'none did'}. The full run, with every figure, "
        "is in its own report."
    )
    return Section(
        slug="bench",
        title="Benchmark: which optimizer reaches the target first, fairly tuned",
        equation=r"$B_s=\frac{1}{3}\int_1^4 \rho_s(\tau)\,d\tau$",
        lead="descentlab bench on the convex workload (L2 logistic regression on breast cancer, full batch): "
        "every optimizer gets the same seeds, budget and a search space made by one rule.",
        finding=finding,
        image="bench.png",
        headers=["optimizer", "steps to target (tuned)", "steps to target (defaults)", "score B"],
        rows=table,
        link="bench/report.html",
        link_text="open the benchmark's own report",
    )


def _steps(value) -> str:
    return (
        "missed" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:g}"
    )


def _list(names: list[str]) -> str:
    if not names:
        return ""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
