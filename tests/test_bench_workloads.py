"""The workloads of descentlab.bench: data against the registry's hashes, f* against an independent solver,
the user's RNGs left alone, one-line reasons where data are missing — and the sanity of the frozen targets."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from descentlab.bench import workloads as W
from descentlab.bench.runner import TrialSpec, run_trial
from descentlab.bench.workloads import StepBatches, get_workload, targets_registry, tier_workloads

QUICK = [w.name for w in tier_workloads("quick")]


@pytest.mark.parametrize("name", QUICK)
def test_quick_data_match_the_registry_hash(name):
    workload = get_workload(name)
    data = workload.data()
    assert data.sha256 == targets_registry()["workloads"][name]["data_sha256"]
    assert len(data.train[0]) == len(data.train[1]) and len(data.val[0]) == len(data.val[1])


def test_the_registry_is_versioned_and_every_workload_has_a_frozen_target():
    registry = targets_registry()
    assert isinstance(registry["version"], int) and registry["version"] >= 1
    for name, workload in W.WORKLOADS.items():
        record = registry["workloads"][name]
        assert record["target"] == workload.target and record["source"]


def test_f_star_agrees_with_newtons_method_in_float64():
    (x, y), _ = W._cancer()
    theta = torch.zeros(x.shape[1] + 1, dtype=torch.float64)

    def f(t):
        z = x @ t[:-1] + t[-1]
        return (
            torch.nn.functional.binary_cross_entropy_with_logits(z, y) + 0.5 * W.L2_CANCER * t[:-1] @ t[:-1]
        )

    for _ in range(30):  # strongly convex (λ = 1e-2): Newton converges quadratically
        g = torch.autograd.functional.jacobian(f, theta)
        h = torch.autograd.functional.hessian(f, theta)
        theta = theta - torch.linalg.solve(h, g)
    assert float(f(theta)) == pytest.approx(
        targets_registry()["workloads"]["cancer-logreg"]["f_star"], abs=1e-12
    )


def test_mnist1d_is_generated_not_downloaded_and_the_global_rngs_are_put_back(monkeypatch):
    import mnist1d.data

    def no_download(*args, **kwargs):
        raise AssertionError("get_dataset downloads; the bench must use make_dataset")

    monkeypatch.setattr(mnist1d.data, "get_dataset", no_download)
    random.seed(123)
    np.random.seed(321)  # noqa: NPY002 - the legacy global RNG is what mnist1d reseeds
    before = random.random(), np.random.random()  # noqa: NPY002
    random.seed(123)
    np.random.seed(321)  # noqa: NPY002
    (x, y), (xv, yv) = W._mnist1d()
    assert (random.random(), np.random.random()) == before  # noqa: NPY002
    assert x.shape == (4000, 1, 40) and xv.shape == (1000, 1, 40)


def test_models_are_initialised_from_the_seed_alone_and_leave_the_global_rng():
    workload = get_workload("digits-mlp")
    state = torch.get_rng_state()
    a, b, c = workload.model(7), workload.model(7), workload.model(8)
    assert torch.equal(torch.get_rng_state(), state)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_batches_depend_on_the_seed_only():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    take = lambda seed: [b[1].tolist() for b in StepBatches(x, y, 4, 5, torch.Generator().manual_seed(seed))]  # noqa: E731
    assert take(0) == take(0) != take(1)
    epoch = take(0)[:2]
    assert len(set(epoch[0]) | set(epoch[1])) == 8  # within an epoch, no example twice


def test_missing_fashion_mnist_is_a_one_line_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(W, "FASHION_MNIST_DIR", tmp_path / "absent")
    reason = get_workload("fashion-mlp").why_unavailable()
    assert reason is not None and "\n" not in reason and "dataset-fashion-mnist" in reason


def test_the_char_lstm_corpus_hash_is_recorded_not_enforced():
    workload = get_workload("char-lstm")
    assert workload.why_unavailable() is None and workload.hash_enforced is False
    (x, y), (xv, _) = W._chars()
    assert x.shape[1] == W.SEQUENCE and torch.equal(x[0, 1:], y[0, :-1]) and int(x.max()) < 128


def test_an_unknown_workload_suggests_the_closest():
    with pytest.raises(ValueError, match="unknown workload 'mnist1d'; did you mean 'mnist1d-cnn'"):
        get_workload("mnist1d")


# -- sanity of the frozen targets --------------------------------------------------------------------
def _tuned(workload: str, optimizer: str, seed: int) -> TrialSpec:
    config = targets_registry()["workloads"][workload]["tuned"][optimizer]
    return TrialSpec(workload, optimizer, "sanity", seed, 0, 10_000 + seed, config)


@pytest.mark.parametrize("name", QUICK)
def test_tuned_adam_reaches_every_quick_target_in_two_of_three_seeds(name):
    results = [run_trial(_tuned(name, "adam", seed)) for seed in range(3)]
    assert all(r.status != "failed" for r in results), [r.error for r in results]
    reached = sum(r.status == "reached" for r in results)
    assert reached >= 2, (
        f"{name}: tuned Adam reached {get_workload(name).target} in {reached}/3 seeds "
        f"(best {[round(r.best_metric, 5) for r in results]})"
    )


def test_tuned_sgd_reaches_f_star_plus_1e_4_on_the_convex_problem():
    result = run_trial(_tuned("cancer-logreg", "sgd", 0))
    assert result.status == "reached" and result.best_metric <= 1e-4


def test_closure_solvers_train_through_fit_and_count_their_evaluations():
    spec = TrialSpec("cancer-logreg", "lbfgs", "external", 0, 0, 1, {"schedule": "warmup-cosine"})
    result = run_trial(spec)
    assert result.status == "reached", result.error
    assert result.evals_to_target >= result.steps_to_target > 0  # line-search evaluations counted
    assert result.curve["evals"] == sorted(result.curve["evals"])
