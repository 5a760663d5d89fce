"""Per-workload times of the AlgoPerf v0.5 leaderboard, from its public logs (maintainers only, offline).

Reads ``previous_leaderboards/algoperf_v05/logs/{external_tuning,self_tuning}/<submission>/study_*/
<workload>_<framework>/trial_*/eval_measurements.csv`` of https://github.com/mlcommons/submissions_algorithms
(a clone or its git directory) and computes each submission's per-workload time exactly as the repository's
``scoring/performance_profile.py`` does: per study, the trial that reaches the validation target
(``scoring/workload_targets_v05.json``) at the earliest evaluation, its ``score`` (accumulated submission
time, seconds) there; the median over studies (∞ when a study never reached it).

Writes ``tests/data/algoperf_v05_times_{external,self}.csv``, which ``tests/test_bench_scoring.py`` turns
into the published leaderboard scores with :func:`descentlab.bench.scoring.benchmark_score`
(``grid=100``, the held-out variants). Usage::

    python benchmarks/algoperf_v05_times.py PATH/TO/submissions_algorithms[/.git]
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

LOGS = "previous_leaderboards/algoperf_v05/logs"
TARGETS = "scoring/workload_targets_v05.json"
MINIMISED = ("ce_loss", "error_rate", "ctc_loss", "wer", "l1_loss", "loss", "ppl")
OUT = Path(__file__).resolve().parents[1] / "tests" / "data"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={repo}", *args], check=True, capture_output=True, text=True
    ).stdout


def _git_dir(path: Path) -> Path:
    return path / ".git" if (path / ".git").exists() else path


def main(argv: list[str]) -> int:
    repo = _git_dir(Path(argv[0]))
    commit = _git(repo, "rev-parse", "HEAD").strip()
    config = json.loads(_git(repo, "show", f"HEAD:{TARGETS}"))
    base, held_out = config["base_workloads"], config["held_out_workloads"]
    files = [
        line.split("\t", 1)[1]
        for line in _git(repo, "ls-tree", "-r", "HEAD", LOGS).splitlines()
        if line.endswith("/eval_measurements.csv")
    ]
    # one `git cat-file --batch` for all files
    batch = subprocess.run(
        ["git", f"--git-dir={repo}", "cat-file", "--batch"],
        check=True,
        capture_output=True,
        input="".join(f"HEAD:{f}\n" for f in files).encode(),
    )
    contents, data = {}, batch.stdout
    position = 0
    for name in files:
        header_end = data.index(b"\n", position)
        size = int(data[position:header_end].split()[2])
        contents[name] = data[header_end + 1 : header_end + 1 + size].decode()
        position = header_end + 1 + size + 1
    pattern = re.compile(
        rf"{LOGS}/(\w+?)/([^/]+)/study_(\d+)/(\w+?)_(jax|pytorch)/trial_(\d+)/eval_measurements.csv"
    )
    studies: dict[tuple[str, str, str, str], dict[int, list[tuple[int, float]]]] = defaultdict(dict)
    for name, text in contents.items():
        match = pattern.fullmatch(name)
        if (
            match is None
        ):  # e.g. study_0/trial_1/ without a workload folder: the scoring code reads no trial there
            continue
        ruleset, submission, study, workload, _, trial = match.groups()
        if workload not in config["workloads"]:
            continue
        spec = config["workloads"][workload]
        column = f"validation/{spec['target_metric_name']}"
        rows = list(csv.DictReader(io.StringIO(text)))
        if not rows or column not in rows[0]:
            continue
        minimised = any(m in column for m in MINIMISED)
        reached = [
            i
            for i, r in enumerate(rows)
            if r[column] not in ("", "nan")
            and (
                float(r[column]) <= spec["validation_target_value"]
                if minimised
                else float(r[column]) >= spec["validation_target_value"]
            )
        ]
        key = (ruleset, submission, workload, study)
        if reached:
            studies[key][int(trial)] = (reached[0], float(rows[reached[0]]["score"]))
        else:
            studies[key].setdefault(int(trial), None)
    times: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (ruleset, submission, workload, _), trials in sorted(studies.items()):
        hits = [v for _, v in sorted(trials.items()) if v is not None]
        # the earliest evaluation index wins (ties: the first trial), as in get_best_trial_index
        times[ruleset, submission][workload].append(min(hits, key=lambda v: v[0])[1] if hits else math.inf)
    OUT.mkdir(parents=True, exist_ok=True)
    for ruleset, label in (("external_tuning", "external"), ("self_tuning", "self")):
        path = OUT / f"algoperf_v05_times_{label}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            handle.write(
                f"# AlgoPerf v0.5 per-workload times (seconds, median over studies) computed by "
                f"benchmarks/algoperf_v05_times.py from mlcommons/submissions_algorithms@{commit} {LOGS}\n"
            )
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["submission", *base, *held_out])
            for (r, submission), by_workload in sorted(times.items()):
                if r != ruleset:
                    continue
                row = [
                    statistics.median(by_workload[w]) if by_workload.get(w) else math.inf
                    for w in base + held_out
                ]
                writer.writerow([submission, *[repr(float(v)) for v in row]])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
