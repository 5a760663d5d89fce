"""The outputs of a run: ``results.csv``, ``summary.json`` and ``report.html``, each written atomically.

Everything here reads the stored trials (``study.db``) and the manifest (``run.json``) only, so
``descentlab bench report DIR`` re-renders the same bytes without training: no clock, no random draw,
no absolute path enters the files (wall-clock seconds do, as measured and stored).

``report.html`` is one self-contained file built by the demo report's page code
(:mod:`descentlab.report.page`, template ``bench.html.j2`` next to the demo's): the figures are PNGs
inlined as data URIs, the CSS is inline, and nothing is fetched. Its sections:

1. the performance profile ρ(τ) and the score of every optimizer (steps, and gradient evaluations);
2. per workload, the metric against steps — median and IQR band over the studies' best trials, with
   the target line;
3. tuning-budget curves: the expected best metric after k trials (exact order statistics over the
   trial pool) and the probability that one of k trials reaches the target;
4. learning-rate sensitivity: best metric against lr per optimizer, and lr × β₁ (or momentum) heat
   maps with the diverged cells marked;
5. the notes' practical claims, each measured and stated as it came out;
6. the results table, the search spaces, and a provenance block (versions, CPU, threads, seeds, data
   hashes, git commit, the exact command).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write
from .scoring import MEASURES, summarise

__all__ = ["collect", "write_outputs", "RESULT_COLUMNS", "WALL_CLOCK_COLUMNS", "results_csv"]

RESULT_COLUMNS = (
    "workload",
    "optimizer",
    "ruleset",
    "study",
    "trial",
    "seed",
    "params",
    "status",
    "steps_to_target",
    "evals_to_target",
    "seconds_to_target",
    "final_metric",
    "best_metric",
    "final_train_loss",
    "metric",
    "target",
    "trial_seconds",
    "data_sha256",
    "descentlab",
    "torch",
)
#: the columns that depend on the machine's speed; everything else is reproducible bit for bit
WALL_CLOCK_COLUMNS = ("seconds_to_target", "trial_seconds")


def collect(directory) -> list[dict[str, Any]]:
    """One row per finished configuration of the run (sorted), with its curve under ``"curve"``."""
    from optuna.trial import TrialState

    from .runner import TrialResult, TrialSpec
    from .storage import load_trials
    from .workloads import get_workload

    manifest = directory.manifest
    wanted = set(manifest["options"]["rulesets"])
    rows: dict[str, dict[str, Any]] = {}
    for name, trial in load_trials(directory.url):
        if name.split("/")[0] not in wanted:
            continue
        if "spec" not in trial.user_attrs or "result" not in trial.user_attrs:
            continue
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        spec = TrialSpec.from_json(trial.user_attrs["spec"])
        if spec.key in rows:
            continue
        result = TrialResult.from_json(trial.user_attrs["result"])
        workload = get_workload(spec.workload)
        rows[spec.key] = {
            "workload": spec.workload,
            "optimizer": spec.optimizer,
            "ruleset": spec.ruleset,
            "study": spec.study,
            "trial": spec.trial,
            "seed": spec.seed,
            "params": json.dumps(spec.config, sort_keys=True),
            "config": spec.config,
            "u": spec.u,
            "status": result.status,
            "steps_to_target": result.steps_to_target,
            "evals_to_target": result.evals_to_target,
            "seconds_to_target": result.seconds_to_target,
            "final_metric": result.final_metric,
            "best_metric": result.best_metric,
            "final_train_loss": result.final_train_loss,
            "metric": workload.metric,
            "target": workload.target,
            "trial_seconds": result.trial_seconds,
            "train_seconds": result.train_seconds,
            "eval_seconds": result.eval_seconds,
            "data_sha256": manifest["data_sha256"].get(spec.workload, ""),
            "descentlab": manifest["versions"]["descentlab"],
            "torch": manifest["versions"]["torch"],
            "curve": result.curve,
            "error": result.error,
        }
    order = {"external": 0, "self": 1, "explore": 2}
    return sorted(
        rows.values(),
        key=lambda r: (r["workload"], r["optimizer"], order[r["ruleset"]], r["study"], r["trial"]),
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def results_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in RESULT_COLUMNS])
    return buffer.getvalue()


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def summary_json(rows: Sequence[Mapping[str, Any]], manifest: Mapping[str, Any]) -> dict[str, Any]:
    options = manifest["options"]
    summary = summarise(rows, reference=options["reference"], rulesets=options["rulesets"])
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        counts[f"{row['ruleset']}/{row['optimizer']}"][row["status"]] += 1
    summary["trials"] = {k: dict(sorted(v.items())) for k, v in sorted(counts.items())}
    summary["options"] = options
    summary["skipped_workloads"] = manifest.get("skipped", {})
    summary["measures"] = list(MEASURES)
    return _json_safe(summary)


def write_outputs(directory) -> Path:
    """Write the three outputs of ``directory`` (a :class:`~descentlab.bench.storage.RunDirectory`);
    return the path of ``report.html``."""
    rows = collect(directory)
    csv_text = results_csv(rows)
    atomic_write(directory.path / "results.csv", lambda tmp: Path(tmp).write_text(csv_text, "utf-8"))
    summary = summary_json(rows, directory.manifest)
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    atomic_write(directory.path / "summary.json", lambda tmp: Path(tmp).write_text(text, "utf-8"))
    page = render_report(rows, summary, directory.manifest)
    return atomic_write(directory.path / "report.html", lambda tmp: Path(tmp).write_text(page, "utf-8"))


def png_data_uri(figure, dpi: int = 100) -> str:
    """A figure as a ``data:image/png;base64,…`` URI (PNG without timestamps: the same bytes each time)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# -- the page ----------------------------------------------------------------------------------------
def _fmt_time(value: float | None) -> str:
    return "∞" if value is None or not math.isfinite(value) else f"{value:g}"


def _fmt_metric(value: float, metric: str) -> str:
    if not math.isfinite(value):
        return "—"
    if metric == "suboptimality":  # f* is a float64 solution: f − f* can be a rounding error below 0
        return "≤ 1e-15" if value < 1e-15 else f"{value:.2e}"
    return f"{value:.4g}"


def _join(names: Sequence[str]) -> str:
    names = list(names)
    if not names:
        return "none"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _external_cells(summary: Mapping[str, Any], measure: str = "steps") -> Mapping[str, Any]:
    return summary["rulesets"].get("external", {}).get(measure, {})


def _claim_starting_points(rows, workloads: Sequence[str]) -> tuple[str, list[list[str]]]:
    """Notes 003: Adam (β = 0.9, 0.999) with lr ∈ {1e-3, 5e-4, 1e-4} is a great starting point."""
    from .figures import best_per_study
    from .scoring import quantile
    from .storage import NOTES_ADAM_LRS
    from .workloads import get_workload

    tuned = best_per_study(rows, "external")
    table, good, fractions = [], [], []
    for w in workloads:
        spec = get_workload(w)
        starts = []
        for t, lr in enumerate(NOTES_ADAM_LRS):
            members = [
                r
                for r in rows
                if r["workload"] == w
                and r["optimizer"] == "adam"
                and r["ruleset"] == "self"
                and r["trial"] == t
            ]
            if not members:
                continue
            reached = sum(r["status"] == "reached" for r in members)
            steps = quantile(
                [r["steps_to_target"] if r["status"] == "reached" else math.inf for r in members], 0.5
            )
            starts.append((lr, reached, len(members), steps))
        tuned_rows = tuned.get((w, "adam"), [])
        tuned_steps = (
            quantile(
                [r["steps_to_target"] if r["status"] == "reached" else math.inf for r in tuned_rows], 0.5
            )
            if tuned_rows
            else math.nan
        )
        if not starts:
            continue
        best_start = min(starts, key=lambda s: s[3])
        if math.isfinite(best_start[3]):
            good.append(w)
            if math.isfinite(tuned_steps):
                fractions.append(best_start[3] / tuned_steps)
        table.append(
            [
                w,
                *[f"{reached}/{n} · {_fmt_time(steps)}" for _, reached, n, steps in starts],
                f"{_fmt_time(tuned_steps)}",
                spec.metric,
            ]
        )
    if not table:
        return "not measured: the run has no self-ruleset Adam trials", []
    verdict = "supported" if len(good) == len(table) else "partly supported" if good else "refuted"
    ratio = (
        f"; the best of the three needed {min(fractions):.2g}–{max(fractions):.2g}× the steps of tuned Adam"
        if fractions
        else ""
    )
    text = (
        f"{verdict}: at least one of the three rates reached the target (median over seeds) on "
        f"{len(good)} of {len(table)} workloads ({_join(good)}){ratio}."
    )
    return text, table


def _claim_sgd_momentum(rows, summary, workloads: Sequence[str]) -> tuple[str, list[list[str]]]:
    """Notes 003: SGD + momentum can outperform Adam but may require more tuning."""
    from .scoring import reach_probability

    cells = _external_cells(summary).get("workloads", {})
    defaults = summary["rulesets"].get("self", {}).get("steps", {}).get("workloads", {})
    table, faster, harder = [], [], []
    for w in workloads:
        sgd, adam = cells.get(w, {}).get("sgd"), cells.get(w, {}).get("adam")
        if sgd is None or adam is None:
            continue
        t_sgd = sgd["median"] if sgd["median"] is not None else math.inf
        t_adam = adam["median"] if adam["median"] is not None else math.inf
        if t_sgd < t_adam:
            faster.append(w)
        pools = {
            o: [
                r["status"] == "reached"
                for r in rows
                if r["workload"] == w and r["optimizer"] == o and r["ruleset"] == "external"
            ]
            for o in ("sgd", "adam")
        }
        p1 = {o: reach_probability(v, 1) if v else math.nan for o, v in pools.items()}
        d = {o: defaults.get(w, {}).get(o, {}).get("label", "—") for o in ("sgd", "adam")}
        if p1["sgd"] < p1["adam"]:
            harder.append(w)
        table.append(
            [
                w,
                _fmt_time(t_sgd),
                _fmt_time(t_adam),
                f"{p1['sgd']:.2f}",
                f"{p1['adam']:.2f}",
                d["sgd"],
                d["adam"],
            ]
        )
    if not table:
        return "not measured: the run needs both sgd and adam in the external ruleset", []
    first = (
        f"tuned SGD (its space includes momentum and Nesterov) reached the target in fewer steps than "
        f"tuned Adam on {len(faster)} of {len(table)} workloads ({_join(faster)})"
    )
    second = (
        f"a single random configuration of SGD was less likely to reach it than one of Adam on "
        f"{len(harder)} of {len(table)} ({_join(harder)})"
    )
    can, needs = bool(faster), len(harder) * 2 > len(table)
    verdict = {
        (True, True): "supported",
        (False, False): "refuted",
        (True, False): "half supported (SGD can outperform Adam, but did not need more tuning)",
        (False, True): "half supported (SGD needed more tuning, but never outperformed Adam)",
    }[can, needs]
    return f"{verdict}: {first}; {second}.", table


def _claim_generalisation(rows, workloads: Sequence[str]) -> tuple[str, list[list[str]]]:
    """Notes 001 (Bottou & Bousquet): SGD generalises best though it minimises the training loss worst."""
    from .figures import best_per_study
    from .scoring import quantile
    from .workloads import get_workload

    best = best_per_study(rows, "external")
    table, best_val, worst_train, considered = [], [], [], []
    for w in workloads:
        spec = get_workload(w)
        if not spec.held_out:  # measured on the training set: nothing to generalise to
            continue
        medians = {}
        for (ww, o), members in best.items():
            if ww != w:
                continue
            val = quantile(
                [
                    r["final_metric"]
                    if math.isfinite(r["final_metric"])
                    else (math.inf if spec.mode == "min" else -math.inf)
                    for r in members
                ],
                0.5,
            )
            train = quantile(
                [
                    r["final_train_loss"] if math.isfinite(r["final_train_loss"]) else math.inf
                    for r in members
                ],
                0.5,
            )
            medians[o] = (val, train)
        if "sgd" not in medians or len(medians) < 2:
            continue
        considered.append(w)
        by_val = sorted(medians, key=lambda o: medians[o][0], reverse=spec.mode == "max")
        by_train = sorted(medians, key=lambda o: medians[o][1])
        if by_val[0] == "sgd":
            best_val.append(w)
        if by_train[-1] == "sgd":
            worst_train.append(w)
        table.append(
            [
                w,
                f"{by_val.index('sgd') + 1} of {len(by_val)}",
                f"{by_train.index('sgd') + 1} of {len(by_train)}",
                by_val[0],
                by_train[0],
            ]
        )
    if not table:
        return (
            "not measured: the run needs sgd and another optimizer on a workload with a validation split",
            [],
        )
    both = [w for w in considered if w in best_val and w in worst_train]
    verdict = "supported" if len(both) == len(considered) else "partly supported" if both else "refuted"
    return (
        f"{verdict}: SGD had the best validation {('metric')} on {len(best_val)} of {len(considered)} "
        f"workloads ({_join(best_val)}) and the highest training loss on {len(worst_train)} "
        f"({_join(worst_train)}); both at once on {len(both)}."
    ), table


def render_report(
    rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], manifest: Mapping[str, Any]
) -> str:
    """The report page (see the module docstring) as one HTML string."""
    from ..report.page import render_page
    from ..report.section import Section
    from . import figures
    from .spaces import search_space
    from .storage import NOTES_ADAM_LRS
    from .workloads import get_workload

    options = manifest["options"]
    optimizers = list(options["optimizers"])
    workloads = [w for w in manifest["workloads"] if any(r["workload"] == w for r in rows)]
    rulesets = options["rulesets"]
    sections: list[Section] = []
    scored = [r for r in rulesets if r in summary["rulesets"]]

    def add(slug, title, equation, lead, finding, figure, headers=(), table=(), extra=None):
        image = png_data_uri(figure) if figure is not None else ""
        sections.append(
            Section(
                slug=slug,
                title=title,
                equation=equation,
                lead=lead,
                finding=finding,
                image=image,
                headers=list(headers),
                rows=[list(r) for r in table],
                extra_image=png_data_uri(extra) if extra is not None else None,
            )
        )

    # 1. performance profile and scores
    if scored:
        score_rows = []
        for o in optimizers:
            cells = [o]
            for ruleset in scored:
                entry = summary["rulesets"][ruleset]
                cells += [
                    f"{entry['steps']['score'].get(o, 0):.3f}",
                    f"{entry['evals']['score'].get(o, 0):.3f}",
                ]
                speed = entry["steps"]["speedup_vs_reference"].get(o, {})
                value = speed.get("speedup")
                cells.append("—" if value is None else f"{value:.2f}× ({speed.get('workloads', 0)})")
            score_rows.append(cells)
        headers = ["optimizer"] + [
            h
            for r in scored
            for h in (f"B {r} (steps)", f"B {r} (evals)", f"speed-up vs {options['reference']} ({r})")
        ]
        ranking = sorted(
            optimizers, key=lambda o: -summary["rulesets"][scored[0]]["steps"]["score"].get(o, 0)
        )
        top = summary["rulesets"][scored[0]]["steps"]["score"]
        add(
            "profile",
            "Performance profile: which optimizer wins, fairly tuned",
            r"$\rho_s(\tau)=\frac{1}{|W|}\,|\{w: t_{s,w}\leq\tau\,\min_{s'} t_{s',w}\}|,\quad "
            r"B_s=\frac{1}{3}\int_1^4 \rho_s(\tau)\,d\tau$",
            f"{len(workloads)} workloads × {len(optimizers)} optimizers; external: "
            f"{options['studies']} studies × "
            f"{options['trials']} Sobol' trials each (time = median over studies of the best trial), "
            f"self: the "
            f"defaults over {options['studies']} seeds. Time is counted in optimizer steps; ∞ for a miss.",
            f"By score B ({scored[0]}, steps): {_join([f'{o} {top.get(o, 0):.3f}' for o in ranking])}. "
            f"A curve at τ shows the fraction of workloads an optimizer reached within τ × the fastest time.",
            figures.profile_figure(rows, optimizers, rulesets),
            headers,
            score_rows,
        )

    # 2. metric against steps
    result_rows = []
    cells = _external_cells(summary).get("workloads", {})
    for w in workloads:
        spec = get_workload(w)
        for o in optimizers:
            cell = cells.get(w, {}).get(o)
            if cell is None:
                continue
            bests = [
                r["best_metric"]
                for r in rows
                if r["workload"] == w and r["optimizer"] == o and r["ruleset"] == "external"
            ]
            finite = [b for b in bests if math.isfinite(b)]
            best = (min(finite) if spec.mode == "min" else max(finite)) if finite else math.nan
            result_rows.append(
                [
                    w,
                    o,
                    _fmt_time(cell["median"]),
                    f"[{_fmt_time(cell['q1'])}, {_fmt_time(cell['q3'])}]",
                    cell["label"],
                    _fmt_metric(best, spec.metric),
                    str(
                        sum(
                            r["status"] == "diverged"
                            for r in rows
                            if r["workload"] == w and r["optimizer"] == o and r["ruleset"] == "external"
                        )
                    ),
                ]
            )
    reached_all = [
        o
        for o in optimizers
        if all((cells.get(w, {}).get(o) or {}).get("median") is not None for w in workloads)
    ]
    add(
        "curves",
        "Training curves: the metric against optimizer steps",
        r"$t_{s,w}=\mathrm{median}_{\mathrm{studies}}\ \min_{\mathrm{trials}}\ \{k : m_k\ "
        r"\mathrm{reaches\ the\ target}\}$",
        "Solid: median over studies of each study's best trial (band: interquartile range); dashed: the "
        "defaults (median over seeds); dotted: the frozen target.",
        f"Optimizers whose median study reached every workload's target: {_join(reached_all)}.",
        figures.curves_figure(rows, workloads, optimizers),
        [
            "workload",
            "optimizer",
            "median steps to target",
            "IQR",
            "studies",
            "best metric",
            "diverged trials",
        ],
        result_rows,
    )

    # 3. tuning budget
    add(
        "tuning",
        "Tuning budget: what k trials of the search buy",
        r"$E[\mathrm{best\ of\ }k]=\sum_i v_{(i)}\binom{n-i}{k-1}/\binom{n}{k}$",
        "Each optimizer's pool of external trials; k trials drawn without replacement; exact order "
        "statistics, "
        "no resampling noise. The second figure: the probability that one of k trials reaches the target.",
        _tuning_finding(rows, workloads, optimizers),
        figures.tuning_figure(rows, workloads, optimizers),
        extra=figures.reach_figure(rows, workloads, optimizers),
    )

    # 4. learning-rate sensitivity and heat maps
    add(
        "lr",
        "Learning-rate sensitivity: the most important hyperparameter (notes 001)",
        r"$\log_{10}\eta\ \sim\ \mathcal{U}[\log_{10}\eta_0-3,\ \log_{10}\eta_0+3]$",
        "Every trial's best metric against its learning rate (dots: external trials, stars: defaults, ×: "
        "diverged, drawn on the worse edge).",
        _lr_finding(rows, workloads, optimizers),
        figures.lr_figure(rows, workloads, optimizers),
    )
    for w in workloads:
        figure = figures.heatmap_figure(rows, w, optimizers)
        if figure is None:
            continue
        add(
            f"heat-{w}",
            f"Heat map {w}: lr × β₁ / momentum",
            r"$(\log_{10}\eta,\ \log_{10}(1-\beta_1))$",
            "Cells of the external trials: colour is the best metric of the trials in the cell; × "
            "marks cells "
            "where every trial diverged; blank cells had no trial.",
            _heat_finding(rows, w, optimizers),
            figure,
        )

    # 5. the notes' claims
    text, table = _claim_starting_points(rows, workloads)
    add(
        "claim-adam",
        "Claim 1 (notes 003): Adam with β = (0.9, 0.999) and lr ∈ {1e-3, 5e-4, 1e-4} is a great "
        "starting point",
        r"$\beta=(0.9,\,0.999),\ \eta\in\{10^{-3},\,5\cdot10^{-4},\,10^{-4}\}$",
        "The three starting points (self ruleset, defaults otherwise, the run's schedule) against "
        "tuned Adam: "
        "best metric reached (median and IQR over seeds or studies); the table gives 'seeds reaching "
        "the target "
        "· median steps'.",
        text,
        figures.starting_points_figure(rows, workloads, NOTES_ADAM_LRS),
        ["workload", *[f"lr {lr:g}" for lr in NOTES_ADAM_LRS], "tuned Adam: median steps", "metric"],
        table,
    )
    text, table = _claim_sgd_momentum(rows, summary, workloads)
    add(
        "claim-sgd",
        "Claim 2 (notes 003): SGD + momentum can outperform Adam but needs more tuning",
        r"$P(\mathrm{reach\ within\ }k)=1-\binom{n-r}{k}/\binom{n}{k}$",
        "Tuned times (median steps, external) and the chance that one random configuration reaches "
        "the target "
        "(k = 1); the defaults' record from the self ruleset.",
        text,
        figures.reach_figure(
            rows, workloads, [o for o in ("sgd", "adam", "heavyball") if o in optimizers], palette=optimizers
        ),
        ["workload", "SGD tuned", "Adam tuned", "SGD P(k=1)", "Adam P(k=1)", "SGD defaults", "Adam defaults"],
        table,
    )
    text, table = _claim_generalisation(rows, workloads)
    held_out = [w for w in workloads if get_workload(w).held_out]
    add(
        "claim-generalisation",
        "Claim 3 (notes 001): SGD generalises best though it is the worst at minimising the training loss",
        r"$\mathcal{E}=\mathcal{E}_{\mathrm{app}}+\mathcal{E}_{\mathrm{est}}+"
        r"\mathcal{E}_{\mathrm{opt}}$",
        "The best trial of each study: final training loss on the whole training set against the final "
        "validation metric (workloads with a held-out split).",
        text,
        figures.generalisation_figure(rows, held_out, optimizers) if held_out else None,
        [
            "workload",
            "SGD's rank: validation",
            "SGD's rank: training loss (1 = lowest)",
            "best validation",
            "lowest training loss",
        ],
        table,
    )

    # 6. search spaces
    space_rows = []
    for o in optimizers:
        space = search_space(o)
        for name, default, searched in space.rows():
            space_rows.append([o, name, default, searched])
        for name, why in space.excluded.items():
            space_rows.append([o, name, "—", f"not searched: {why}"])
    add(
        "spaces",
        "Search spaces: one rule for every optimizer",
        r"$g=|d-\mathrm{bound}|,\quad g'\sim\mathrm{LogUniform}[g/10^{w},\,10^{w}g]$",
        "Generated from each optimizer's defaults and the domain its own checks accept "
        "(descentlab.bench.spaces); "
        "w = 3 decades for lr, 1 for the rest; a default on a bound is 'off' half the time.",
        f"{sum(len(search_space(o).dimensions) for o in optimizers)} searched dimensions over "
        f"{len(optimizers)} "
        "optimizers; values without a numeric range stay at their default.",
        None,
        ["optimizer", "hyperparameter", "default", "searched over"],
        space_rows,
    )

    provenance = _provenance(manifest, rows)
    skipped = [f"{w}: {why}" for w, why in manifest.get("skipped", {}).items()]
    figures_index = [(s.slug, s.title) for s in sections if s.image]
    return render_page(
        sections,
        0.0,
        template="bench.html.j2",
        provenance=provenance,
        skipped=skipped,
        figures_index=figures_index,
        trials=len(rows),
        command=manifest["command"],
    )


def _tuning_finding(rows, workloads, optimizers) -> str:
    from .scoring import expected_best
    from .workloads import get_workload

    gains = []
    for o in optimizers:
        ratios = []
        for w in workloads:
            spec = get_workload(w)
            values = [
                r["best_metric"]
                for r in rows
                if r["workload"] == w and r["optimizer"] == o and r["ruleset"] == "external"
            ]
            if len(values) < 2:
                continue
            first, last = expected_best(values, 1, spec.mode), expected_best(values, len(values), spec.mode)
            if math.isfinite(first) and math.isfinite(last) and first > 0 and last > 0:
                ratios.append(abs(math.log10(first / last)))
        if ratios:
            gains.append((sum(ratios) / len(ratios), o))
    if not gains:
        return "Too few trials to draw tuning curves."
    gains.sort(reverse=True)
    return (
        f"Tuning mattered most for {gains[0][1]} (the best of all its trials is {gains[0][0]:.2f} "
        f"decades better "
        f"than one random trial, averaged over workloads) and least for {gains[-1][1]} ({gains[-1][0]:.2f})."
    )


def _lr_finding(rows, workloads, optimizers) -> str:
    diverged = defaultdict(lambda: [0, 0])
    for r in rows:
        if r["ruleset"] == "external" and r["optimizer"] in optimizers:
            diverged[r["optimizer"]][1] += 1
            diverged[r["optimizer"]][0] += r["status"] == "diverged"
    worst = sorted(diverged, key=lambda o: -diverged[o][0] / max(1, diverged[o][1]))
    shown = [f"{o} {diverged[o][0]}/{diverged[o][1]}" for o in worst]
    return f"Diverged external trials: {_join(shown)}."


def _heat_finding(rows, workload, optimizers) -> str:
    from .figures import momentum_key, rank_key

    parts = []
    for o in optimizers:
        pool = [
            r
            for r in rows
            if r["workload"] == workload and r["optimizer"] == o and r["ruleset"] == "external"
        ]
        if not pool or momentum_key(pool[0]["config"]) is None:
            continue
        best = min(pool, key=rank_key)
        key = momentum_key(best["config"])
        parts.append(f"{o} at lr {best['config']['lr']:.2g}, {key} {best['config'][key]:.3g}")
    return (
        f"Best trial of each optimizer: {_join(parts)}." if parts else "No trial with a momentum parameter."
    )


def _provenance(manifest: Mapping[str, Any], rows) -> list[tuple[str, str]]:
    options = manifest["options"]
    versions = manifest["versions"]
    machine = manifest["machine"]
    items = [
        ("command", manifest["command"]),
        (
            "descentlab / torch / optuna / numpy / python",
            " / ".join(versions[k] for k in ("descentlab", "torch", "optuna", "numpy", "python")),
        ),
        ("git commit", manifest.get("git_commit") or "unknown"),
        ("CPU", f"{machine['cpu']} ({machine['cores']} cores), {machine['platform']}"),
        ("torch threads per trial", str(machine["torch_threads_per_trial"])),
        (
            "seed",
            f"{options['seed']} (every trial's seed: sha256 of (seed, study, trial), the same for "
            f"every optimizer)",
        ),
        (
            "rulesets / studies / trials / schedule",
            f"{', '.join(options['rulesets'])} / {options['studies']} / "
            f"{options['trials']} / {options['schedule']}",
        ),
        ("targets registry", f"version {manifest.get('targets_version')}"),
        ("trials stored", str(len(rows))),
    ]
    items += [(f"data sha256: {w}", digest) for w, digest in sorted(manifest["data_sha256"].items())]
    return items
