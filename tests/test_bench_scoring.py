"""Scoring of descentlab.bench: performance profiles and the score B against hand computation and against
AlgoPerf v0.5's published leaderboard."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from descentlab.bench.scoring import (
    benchmark_score,
    expected_best,
    median_iqr,
    performance_profile,
    performance_ratios,
    reach_probability,
    read_times,
    speedups,
    study_bests,
    workload_times,
)

DATA = Path(__file__).parent / "data"
INF = math.inf

# A toy table, by hand: three optimizers, three workloads.
#            w1     w2     w3
#   a        10     40     ∞
#   b        20     10     30
#   c        50     ∞      15
# fastest: w1 10 (a), w2 10 (b), w3 15 (c)
# ratios:  a: 1, 4, ∞     b: 2, 1, 2     c: 5 → ∞ (above r_max = 4), ∞, 1
TOY = {
    "a": {"w1": 10, "w2": 40, "w3": INF},
    "b": {"w1": 20, "w2": 10, "w3": 30},
    "c": {"w1": 50, "w2": INF, "w3": 15},
}


def test_toy_ratios_by_hand():
    ratios = performance_ratios(TOY)
    assert ratios == {
        "a": {"w1": 1.0, "w2": 4.0, "w3": INF},
        "b": {"w1": 2.0, "w2": 1.0, "w3": 2.0},
        "c": {"w1": INF, "w2": INF, "w3": 1.0},
    }


def test_toy_profile_by_hand():
    taus = [1.0, 1.5, 2.0, 3.99, 4.0]
    profile = performance_profile(TOY, taus)
    assert profile["a"] == [1 / 3, 1 / 3, 1 / 3, 1 / 3, 2 / 3]
    assert profile["b"] == [1 / 3, 1 / 3, 1.0, 1.0, 1.0]
    assert profile["c"] == [1 / 3, 1 / 3, 1 / 3, 1 / 3, 1 / 3]


def test_toy_score_by_hand():
    # B = 1/3 ∫_1^4 ρ dτ = (1/|W|) Σ_w (4 − r)/3 over r ≤ 4
    expected = {
        "a": ((4 - 1) + (4 - 4)) / 3 / 3,
        "b": ((4 - 2) + (4 - 1) + (4 - 2)) / 3 / 3,
        "c": (4 - 1) / 3 / 3,
    }
    assert benchmark_score(TOY) == pytest.approx(expected, abs=1e-15)
    assert expected == pytest.approx({"a": 1 / 3, "b": 7 / 9, "c": 1 / 3})
    # AlgoPerf's trapezoid on a grid converges to the exact integral
    fine = benchmark_score(TOY, grid=30001)
    assert fine == pytest.approx(expected, abs=1e-4)
    assert benchmark_score(TOY, grid=100) != pytest.approx(expected, abs=1e-6)


def test_a_workload_nobody_reached_counts_as_zero_for_everyone():
    times = {"a": {"w1": 5.0, "w2": INF}, "b": {"w1": 10.0, "w2": INF}}
    assert benchmark_score(times) == pytest.approx({"a": 0.5, "b": (4 - 2) / 3 / 2})


def test_speedup_is_the_geometric_mean_over_shared_workloads():
    result = speedups(TOY, "b")
    assert result["a"]["workloads"] == 2
    assert result["a"]["speedup"] == pytest.approx(math.sqrt((20 / 10) * (10 / 40)))
    assert result["b"]["speedup"] == pytest.approx(1.0)


def _rows():
    rows = []
    times = {0: [30, INF], 1: [INF, INF], 2: [50, 20]}  # study → trials (∞: missed)
    for study, trials in times.items():
        for trial, t in enumerate(trials):
            rows.append(
                {
                    "workload": "w",
                    "optimizer": "o",
                    "ruleset": "external",
                    "study": study,
                    "trial": trial,
                    "status": "reached" if math.isfinite(t) else "missed",
                    "steps_to_target": t,
                    "evals_to_target": t,
                    "seconds_to_target": t,
                }
            )
    return rows


def test_time_is_the_median_over_studies_of_the_best_trial():
    assert study_bests(_rows()) == {("w", "o"): [30, INF, 20]}
    assert workload_times(_rows()) == {"o": {"w": 30}}
    assert median_iqr([30, INF, 20]) == (30, 25.0, INF)


def test_expected_best_matches_enumeration_of_every_subset():
    values = [0.9, 0.5, math.nan, 0.7, 0.95, 0.6]
    clean = [-INF if math.isnan(v) else v for v in values]
    for k in range(1, len(values) + 1):
        subsets = list(itertools.combinations(clean, k))
        brute = sum(max(s) for s in subsets) / len(subsets)
        if math.isinf(brute):
            assert expected_best(values, k, "max") == brute
        else:
            assert expected_best(values, k, "max") == pytest.approx(brute, rel=1e-12)
    losses = [0.3, 0.1, 0.2, 0.5]
    for k in range(1, 5):
        subsets = list(itertools.combinations(losses, k))
        assert expected_best(losses, k, "min") == pytest.approx(sum(min(s) for s in subsets) / len(subsets))


def test_reach_probability_matches_enumeration():
    reached = [True, False, False, True, False]
    for k in range(1, 6):
        subsets = list(itertools.combinations(reached, k))
        assert reach_probability(reached, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))


def test_read_times_rejects_what_is_not_a_table(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,w1\na,fast\n", encoding="utf-8")
    with pytest.raises(ValueError, match="is not a time"):
        read_times(bad)
    with pytest.raises(ValueError, match="cannot read"):
        read_times(tmp_path / "missing.csv")
    good = tmp_path / "good.csv"
    good.write_text("optimizer,w1,w2\na,10,\nb,20,∞\n", encoding="utf-8")
    assert read_times(good) == {"a": {"w1": 10.0, "w2": INF}, "b": {"w1": 20.0, "w2": INF}}


# AlgoPerf v0.5 ------------------------------------------------------------------------------------
# Published scores: previous_leaderboards/algoperf_v05/README.md of
# https://github.com/mlcommons/submissions_algorithms (leaderboard version 0.5, 2023-12-18; Kasimbeg et al.,
# ICLR 2025). Per-workload times: tests/data/algoperf_v05_times_*.csv, computed from the same repository's
# public logs (previous_leaderboards/algoperf_v05/logs, commit 12c8e4ea) by benchmarks/algoperf_v05_times.py.
# AlgoPerf's leaderboard integrates ρ with the trapezoidal rule on 100 points of [1, 4]
# (scoring/performance_profile.py) and scores the 8 base workloads with its held-out variants.
PUBLISHED_EXTERNAL = {
    "shampoo_submission": 0.7784,
    "schedule_free_adamw": 0.7077,
    "generalized_adam": 0.6383,
    "cyclic_lr": 0.6301,
    "nadamp": 0.5909,
    "baseline": 0.5707,
    "amos": 0.4918,
    "caspr_adaptive": 0.4722,
    "lawa_queue": 0.3699,
    "lawa_ema": 0.3384,
    "schedule_free_prodigy": 0.0000,
}
PUBLISHED_SELF = {
    "schedule_free_adamw": 0.8542,
    "baseline": 0.8194,
    "nadamw_sequential": 0.3308,
    "sinv6_75": 0.1420,
    "sinv6": 0.0903,
    "adamg": 0.0000,
}
HELD_OUT = {
    "criteo1tb_embed_init": "criteo1tb",
    "fastmri_tanh": "fastmri",
    "imagenet_resnet_large_bn_init": "imagenet_resnet",
    "librispeech_conformer_layernorm": "librispeech_conformer",
    "ogbg_model_size": "ogbg",
    "wmt_glu_tanh": "wmt",
}


@pytest.mark.parametrize("ruleset,published", [("external", PUBLISHED_EXTERNAL), ("self", PUBLISHED_SELF)])
def test_algoperf_v05_scores_are_reproduced_from_its_per_workload_times(ruleset, published):
    times = read_times(DATA / f"algoperf_v05_times_{ruleset}.csv")
    assert set(times) == set(published)
    scores = benchmark_score(times, r_max=4.0, grid=100, variants=HELD_OUT)
    for name, value in published.items():
        assert scores[name] == pytest.approx(value, abs=1e-4), name
    # without the held-out rule, or with the exact integral, the numbers are not the leaderboard's
    plain = benchmark_score(times, grid=100)  # held-out variants scored as workloads of their own
    assert max(abs(plain[n] - published[n]) for n in published) > 1e-4
    exact = benchmark_score(times, variants=HELD_OUT)
    assert max(abs(exact[n] - published[n]) for n in published) > 1e-4


def test_bench_score_prints_the_leaderboard_numbers(capsys):
    from descentlab.cli import main

    args = ["bench", "score", str(DATA / "algoperf_v05_times_external.csv"), "--grid", "100"]
    args += [a for variant, base in HELD_OUT.items() for a in ("--variant", f"{variant}={base}")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "0.7784" in out and "0.7077" in out and "0.3384" in out
    table = str(DATA / "algoperf_v05_times_external.csv")
    assert main(["bench", "score", table, "--variant", "nope=wmt"]) == 2
    assert "--variant names workloads the table does not have: nope" in capsys.readouterr().err
