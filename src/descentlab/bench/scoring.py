"""Scoring, AlgoPerf's way (Dahl et al. 2023, §4.5; Kasimbeg et al. 2025), scaled down.

From trials to one number per (optimizer, workload) — the **time to target** ``t_{s,w}``:

* ``external`` ruleset: each study's time is its *best* trial (the fastest to reach the target; ∞ if
  none did); the workload's time is the **median over studies** (AlgoPerf: 3 studies × 5 trials);
* ``self`` ruleset: the default configuration, the median over its seeds (one study per seed).

Time is counted in optimizer steps by default (``measure="steps"``), or gradient evaluations
(``"evals"``) or training seconds (``"seconds"``). A miss is ∞.

From times to a score — the **performance profile** of optimizer ``s``::

    r_{s,w} = t_{s,w} / min_s' t_{s',w}          (∞ if missed; ∞ when above r_max = 4)
    ρ_s(τ) = |{w : r_{s,w} ≤ τ}| / |W|,   τ ∈ [1, r_max]
    B_s = 1/(r_max − 1) ∫_1^{r_max} ρ_s(τ) dτ  =  1/|W| Σ_w max(0, r_max − r_{s,w})/(r_max − 1)

:func:`benchmark_score` computes the integral exactly; ``grid=100`` gives AlgoPerf's leaderboard number
instead (the trapezoidal rule on 100 points of ``[1, 4]``, ``scoring/performance_profile.py``), and
``variants={held-out: base}`` applies its held-out-workload rule (a base workload counts only if the
submission also reached its held-out variant's target, and vice versa). With them the published v0.5
leaderboard scores are reproduced from the per-workload times of its public logs (``tests/``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "R_MAX",
    "MEASURES",
    "quantile",
    "median_iqr",
    "study_bests",
    "workload_times",
    "performance_ratios",
    "performance_profile",
    "benchmark_score",
    "speedups",
    "expected_best",
    "reach_probability",
    "summarise",
]

R_MAX = 4.0
MEASURES = {"steps": "steps_to_target", "evals": "evals_to_target", "seconds": "seconds_to_target"}
Table = Mapping[str, Mapping[str, float]]


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (linear interpolation, NumPy's default) of values that may be ∞."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    a, b = ordered[low], ordered[high]
    if math.isinf(a) or math.isinf(b):
        return b if position > low else a
    return a + (b - a) * (position - low)


def median_iqr(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, first quartile, third quartile)."""
    return quantile(values, 0.5), quantile(values, 0.25), quantile(values, 0.75)


def _time(row: Mapping[str, Any], measure: str) -> float:
    value = row[MEASURES[measure]]
    return float(value) if row["status"] == "reached" else math.inf


def study_bests(
    rows: Iterable[Mapping[str, Any]], ruleset: str = "external", measure: str = "steps"
) -> dict[tuple[str, str], list[float]]:
    """``{(workload, optimizer): [best time of study 0, study 1, …]}``; for ``self`` only the
    default configuration (trial 0) counts."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    by_study: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for row in rows:
        if row["ruleset"] != ruleset or (ruleset == "self" and int(row["trial"]) != 0):
            continue
        slot = by_study[row["workload"], row["optimizer"]]
        study = int(row["study"])
        slot[study] = min(slot.get(study, math.inf), _time(row, measure))
    return {key: [studies[s] for s in sorted(studies)] for key, studies in by_study.items()}


def workload_times(
    rows: Iterable[Mapping[str, Any]], ruleset: str = "external", measure: str = "steps"
) -> dict[str, dict[str, float]]:
    """``{optimizer: {workload: median over studies of the study's best time}}``."""
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for (workload, optimizer), bests in study_bests(rows, ruleset, measure).items():
        table[optimizer][workload] = quantile(bests, 0.5)
    return dict(table)


def _workloads(times: Table) -> list[str]:
    names: list[str] = []
    for row in times.values():
        names.extend(w for w in row if w not in names)
    return names


def performance_ratios(
    times: Table, r_max: float = R_MAX, variants: Mapping[str, str] | None = None
) -> dict[str, dict[str, float]]:
    """``r_{s,w} = t_{s,w} / min_s' t_{s',w}``, ∞ for misses and above ``r_max``.

    ``variants`` maps held-out variant workloads to their base (AlgoPerf): a variant's time counts only
    when the base was reached; times above ``r_max`` × the fastest become ∞; a base's time counts only
    when its variant was reached; then only the base workloads are kept.
    """
    table = {
        s: {w: (math.inf if t is None or math.isnan(t) else float(t)) for w, t in row.items()}
        for s, row in times.items()
    }
    names = _workloads(table)
    for row in table.values():
        for w in names:
            row.setdefault(w, math.inf)
    variants = dict(variants or {})
    for variant, base in variants.items():
        for row in table.values():
            if math.isinf(row[base]):
                row[variant] = math.inf
    best = {w: min(row[w] for row in table.values()) for w in names}
    for row in table.values():
        for w in names:
            if row[w] > r_max * best[w]:
                row[w] = math.inf
    for variant, base in variants.items():
        for row in table.values():
            if math.isinf(row[variant]):
                row[base] = math.inf
    kept = [w for w in names if w not in variants]
    best = {w: min(row[w] for row in table.values()) for w in kept}
    return {
        s: {w: (row[w] / best[w] if math.isfinite(row[w]) else math.inf) for w in kept}
        for s, row in table.items()
    }


def performance_profile(
    times: Table, taus: Sequence[float], r_max: float = R_MAX, variants: Mapping[str, str] | None = None
) -> dict[str, list[float]]:
    """``{optimizer: [ρ(τ) for τ in taus]}``: the fraction of workloads within a factor τ of the best."""
    ratios = performance_ratios(times, r_max, variants)
    result = {}
    for s, row in ratios.items():
        count = len(row)
        result[s] = [sum(1 for r in row.values() if r <= tau) / count if count else 0.0 for tau in taus]
    return result


def benchmark_score(
    times: Table, r_max: float = R_MAX, grid: int | None = None, variants: Mapping[str, str] | None = None
) -> dict[str, float]:
    """``B_s``: the normalised area under ρ_s on ``[1, r_max]`` — exact, or AlgoPerf's trapezoid on
    ``grid`` points."""
    if r_max <= 1:
        raise ValueError(f"r_max must be > 1, got {r_max}")
    if grid is not None:
        taus = np.linspace(1.0, r_max, grid)
        profile = performance_profile(times, list(taus), r_max, variants)
        return {s: float(np.trapezoid(values, taus) / (r_max - 1)) for s, values in profile.items()}
    ratios = performance_ratios(times, r_max, variants)
    return {
        s: (
            sum(max(0.0, r_max - r) for r in row.values() if math.isfinite(r)) / ((r_max - 1) * len(row))
            if row
            else 0.0
        )
        for s, row in ratios.items()
    }


def speedups(times: Table, reference: str) -> dict[str, dict[str, float]]:
    """Geometric-mean speed-up ``t_ref / t_s`` over the workloads both reached, per optimizer:
    ``{"speedup": …, "workloads": n}`` (``speedup`` NaN when they share none)."""
    if reference not in times:
        return {}
    result = {}
    for s, row in times.items():
        shared = [
            w for w in row if math.isfinite(row[w]) and math.isfinite(times[reference].get(w, math.inf))
        ]
        logs = [math.log(times[reference][w] / row[w]) for w in shared]
        result[s] = {
            "speedup": math.exp(sum(logs) / len(logs)) if logs else math.nan,
            "workloads": len(shared),
        }
    return result


def expected_best(values: Sequence[float], k: int, mode: str) -> float:
    """The expected best of ``k`` values drawn without replacement from ``values`` — the tuning-budget
    curve, exactly (order statistics, no resampling noise): ``Σ_i v_(i) C(n−i, k−1)/C(n, k)`` over the
    values sorted from best to worst. NaN values (diverged) count as the worst."""
    n = len(values)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    worst = math.inf if mode == "min" else -math.inf
    clean = [worst if not math.isfinite(v) else float(v) for v in values]
    ordered = sorted(clean) if mode == "min" else sorted(clean, reverse=True)
    total = math.comb(n, k)
    expectation = 0.0
    for i, value in enumerate(ordered):  # value is the best of the draw when it is drawn and no better one
        weight = math.comb(n - i - 1, k - 1) / total
        if weight:
            if math.isinf(value):
                return value
            expectation += weight * value
    return expectation


def reach_probability(reached: Sequence[bool], k: int) -> float:
    """The probability that at least one of ``k`` trials drawn without replacement reached the target."""
    n, r = len(reached), sum(bool(x) for x in reached)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    return 1.0 - math.comb(n - r, k) / math.comb(n, k)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def summarise(
    rows: Sequence[Mapping[str, Any]],
    reference: str = "adamw",
    rulesets: Sequence[str] = ("external", "self"),
    taus: Sequence[float] | None = None,
) -> dict[str, Any]:
    """``summary.json``'s scores: per ruleset and measure, per workload and optimizer the median and
    IQR of the studies' best times and ``k/n reached target``; the performance profile, the score B
    and the geometric-mean speed-up over ``reference``. ∞ is written as ``null``."""
    taus = list(taus) if taus is not None else [1 + 0.05 * i for i in range(61)]
    summary: dict[str, Any] = {"r_max": R_MAX, "taus": taus, "reference": reference, "rulesets": {}}
    for ruleset in rulesets:
        if not any(r["ruleset"] == ruleset for r in rows) or ruleset == "explore":
            continue
        entry: dict[str, Any] = {}
        for measure in MEASURES:
            bests = study_bests(rows, ruleset, measure)
            times = workload_times(rows, ruleset, measure)
            cells = {}
            for (workload, optimizer), values in sorted(bests.items()):
                median, q1, q3 = median_iqr(values)
                reached = sum(1 for v in values if math.isfinite(v))
                cells.setdefault(workload, {})[optimizer] = {
                    "median": _finite(median),
                    "q1": _finite(q1),
                    "q3": _finite(q3),
                    "reached": reached,
                    "studies": len(values),
                    "label": f"{reached}/{len(values)} reached target",
                }
            profile = performance_profile(times, taus)
            score = benchmark_score(times)
            entry[measure] = {
                "workloads": cells,
                "profile": profile,
                "score": score,
                "speedup_vs_reference": {
                    s: {"speedup": _finite(v["speedup"]), "workloads": v["workloads"]}
                    for s, v in speedups(times, reference).items()
                },
            }
        summary["rulesets"][ruleset] = entry
    return summary


def read_times(path) -> dict[str, dict[str, float]]:
    """A time-to-target table from CSV: either wide — a first column of names (optimizers, submissions)
    and one column per workload, empty / ``inf`` / ``∞`` / ``nan`` for a miss — or a ``results.csv`` of
    ``descentlab bench`` (its external ruleset, in steps). ``ValueError`` for anything else."""
    import csv
    from pathlib import Path

    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            records = [r for r in csv.reader(handle) if r and not r[0].startswith("#")]
    except OSError as error:
        raise ValueError(f"cannot read {str(path)!r}: {error.strerror}") from None
    if len(records) < 2 or len(records[0]) < 2:
        raise ValueError(
            f"{str(path)!r} has no table: expected a header of names and workloads, then one row per "
            "optimizer"
        )
    header = records[0]
    if {"workload", "optimizer", "ruleset", "status", "steps_to_target"} <= set(header):
        rows = [dict(zip(header, r)) for r in records[1:] if r]
        for row in rows:
            row["study"], row["trial"] = int(row["study"]), int(row["trial"])
        rulesets = {r["ruleset"] for r in rows}
        return workload_times(rows, "external" if "external" in rulesets else "self", "steps")
    table: dict[str, dict[str, float]] = {}
    for line, record in enumerate(records[1:], start=2):
        if not record:
            continue
        if len(record) != len(header):
            raise ValueError(f"{str(path)!r} line {line}: {len(record)} cells, the header has {len(header)}")
        values = {}
        for workload, cell in zip(header[1:], record[1:]):
            text = cell.strip().lower()
            if text in ("", "inf", "∞", "nan", "infinity"):
                values[workload] = math.inf
                continue
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{str(path)!r} line {line}: {cell!r} ({workload}) is not a time") from None
            if value <= 0:
                raise ValueError(f"{str(path)!r} line {line}: times must be > 0, got {value} ({workload})")
            values[workload] = value
        table[record[0]] = values
    return table
