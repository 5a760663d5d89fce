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

RESULT_COLUMNS = ("workload", "optimizer", "ruleset", "study", "trial", "seed", "params", "status",
                  "steps_to_target", "evals_to_target", "seconds_to_target", "final_metric", "best_metric",
                  "final_train_loss", "metric", "target", "trial_seconds", "data_sha256", "descentlab", "torch")
#: the columns that depend on the machine's speed; everything else is reproducible bit for bit
WALL_CLOCK_COLUMNS = ("seconds_to_target", "trial_seconds")


def collect(directory) -> list[dict[str, Any]]:
    """One row per finished configuration of the run (sorted), with its curve under ``"curve"``."""
    from optuna.trial import TrialState

    from .runner import TrialResult, TrialSpec
    from .storage import explore_study_name, load_trials, study_names
    from .workloads import get_workload

    manifest = directory.manifest
    names = ["descentlab-bench"]
    if "explore" in manifest["options"]["rulesets"]:
        wanted = {explore_study_name(w, o) for w in manifest["workloads"] for o in manifest["options"]["optimizers"]}
        names += sorted(n for n in study_names(directory.url) if n in wanted)
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        for trial in load_trials(directory.url, name):
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
                "workload": spec.workload, "optimizer": spec.optimizer, "ruleset": spec.ruleset,
                "study": spec.study, "trial": spec.trial, "seed": spec.seed,
                "params": json.dumps(spec.config, sort_keys=True), "config": spec.config, "u": spec.u,
                "status": result.status, "steps_to_target": result.steps_to_target,
                "evals_to_target": result.evals_to_target, "seconds_to_target": result.seconds_to_target,
                "final_metric": result.final_metric, "best_metric": result.best_metric,
                "final_train_loss": result.final_train_loss, "metric": workload.metric,
                "target": workload.target, "trial_seconds": result.trial_seconds,
                "train_seconds": result.train_seconds, "eval_seconds": result.eval_seconds,
                "data_sha256": manifest["data_sha256"].get(spec.workload, ""),
                "descentlab": manifest["versions"]["descentlab"], "torch": manifest["versions"]["torch"],
                "curve": result.curve, "error": result.error,
            }
    order = {"external": 0, "self": 1, "explore": 2}
    return sorted(rows.values(), key=lambda r: (r["workload"], r["optimizer"], order[r["ruleset"]], r["study"],
                                                r["trial"]))


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
    from .pages import render_report

    page = render_report(rows, summary, directory.manifest)
    return atomic_write(directory.path / "report.html", lambda tmp: Path(tmp).write_text(page, "utf-8"))


def png_data_uri(figure, dpi: int = 100) -> str:
    """A figure as a ``data:image/png;base64,…`` URI (PNG without timestamps: the same bytes each time)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
