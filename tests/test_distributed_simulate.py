"""The staleness simulator and the server's update code, against NumPy transcriptions and the notes' claims.

Asynchronous SGD with delays τ_k (Zhang et al. 2016; Zheng et al. 2017), as the references below
transcribe it:

    w_{k+1} = w_k − η_k · g(w_{k−τ_k}),   η_k = η (constant) or η / max(τ_k, 1) (staleness-aware)
    DC-ASGD:  g̃ = g(w_read) + λ g⊙g⊙(w_k − w_read)   (exact Hessian H: g(w_read) + H(w_k − w_read))
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from descentlab import optim
from descentlab.distributed import (
    COMPUTE_TIMES,
    Constant,
    Event,
    Exponential,
    NoisyQuadratic,
    Pareto,
    ServerCore,
    ShiftedExponential,
    TeacherMLP,
    async_sgd,
    finish_events,
    replay,
    simulate_async,
    simulate_log,
    simulate_sync,
    with_staleness,
)
from descentlab.transforms import DelayCompensation, Momentum, ScaleByLearningRate, ScaleByStaleness, chain


def sgd(lr):
    return lambda params: optim.SGD(params, lr=lr)


# -- NumPy references ------------------------------------------------------------------------------------
def numpy_gradient(problem: NoisyQuadratic, worker, k, w):
    g = problem.h.numpy() * (w - problem.optimum.numpy())
    if problem.noise:
        g = g + problem.noise * np.random.default_rng((problem.seed, worker, k)).standard_normal(problem.d)
    return g


def numpy_delayed_sgd(problem, log, lr, policy):
    """Delayed SGD from an event log in NumPy: every version kept, each gradient taken at its read version."""
    versions = [np.zeros(problem.d)]
    for event in log:
        tau = event.version - event.read_version
        rate = lr if policy == "constant" else lr / max(tau, 1)
        g = numpy_gradient(problem, event.worker, event.k, versions[event.read_version])
        versions.append(versions[-1] - rate * g)
    return versions[-1]


# -- the simulator --------------------------------------------------------------------------------------
def test_one_worker_has_no_staleness_and_is_serial_sgd():
    problem = NoisyQuadratic(20, noise=0.1)
    result = simulate_async(problem.gradient, problem.initial(), sgd(0.3), num_workers=1, updates=200)
    assert set(result.staleness().tolist()) == {0}
    w = torch.zeros(20, dtype=torch.float64, requires_grad=True)
    reference = torch.optim.SGD([w], lr=0.3)
    for k in range(200):
        w.grad = problem.gradient(0, k, [w.detach()])[0]
        reference.step()
    assert torch.allclose(result.params[0], w.detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("policy", ["constant", "staleness_aware"])
def test_delayed_sgd_matches_a_numpy_transcription(policy):
    problem = NoisyQuadratic(30, condition=5, noise=0.05, seed=3)
    result = simulate_async(problem.gradient, problem.initial(), sgd(0.2), num_workers=8, updates=400,
                            lr_policy=policy, seed=1)
    assert result.staleness().max() > 3  # the delays are real
    reference = numpy_delayed_sgd(problem, result.applied, 0.2, policy)
    np.testing.assert_allclose(result.params[0].numpy(), reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("workers", [4, 16, 64])
@pytest.mark.parametrize("model", [Exponential(), Constant(), ShiftedExponential(1.0, 0.5)])
def test_mean_staleness_is_workers_minus_one(workers, model):
    """Little's law: M always-busy workers of one speed ⇒ M − 1 updates land while one computes."""
    problem = NoisyQuadratic(2)
    result = simulate_async(problem.gradient, problem.initial(), sgd(0.1), num_workers=workers,
                            updates=3000 + 20 * workers, compute_time=model)
    tau = result.staleness()[5 * workers :]  # past the start-up, when every worker still reads version 0
    assert tau.mean() == pytest.approx(workers - 1, rel=0.04)


def test_at_lr_one_over_L_staleness_makes_constant_lr_diverge_and_eta_over_tau_converge():
    problem = NoisyQuadratic(50, L=1.0, condition=10)
    start = problem.loss(problem.initial())
    runs = {
        policy: simulate_async(problem.gradient, problem.initial(), sgd(1.0 / problem.L), num_workers=8,
                               updates=3000, compute_time=Exponential(), lr_policy=policy,
                               loss_fn=problem.loss)
        for policy in ("constant", "staleness_aware")
    }
    constant, aware = runs["constant"].losses, runs["staleness_aware"].losses
    assert not math.isfinite(constant[-1]) or constant[-1] > 1e6 * start
    assert aware[-1] < 1e-8 * start


def test_delay_compensation_with_the_exact_hessian_is_serial_gradient_descent():
    problem = NoisyQuadratic(40, condition=20)
    result = simulate_async(problem.gradient, problem.initial(), sgd(0.5), num_workers=16, updates=500,
                            hessian_diagonal=problem.hessian_diagonal)
    assert result.staleness().mean() > 10
    w = problem.initial()[0]
    for k in range(500):
        w = w - 0.5 * problem.gradient(0, k, [w])[0]
    assert torch.allclose(result.params[0], w, rtol=0, atol=1e-12)


def test_delay_compensation_transform_is_the_dc_asgd_formula():
    """g̃ = g + λ g⊙g⊙(w − w_read), one step by hand."""
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    opt = optim.from_chain([w], chain(DelayCompensation(delay_compensation=0.5), ScaleByLearningRate(lr=0.1)))
    g = torch.tensor([0.2, 0.4, -1.0], dtype=torch.float64)
    w.grad = g.clone()
    opt.step()  # first push: w_read = w, no correction
    assert torch.allclose(w.detach(), torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64) - 0.1 * g)
    read = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    opt.state[w]["read_param"].copy_(read)
    now = w.detach().clone()
    w.grad = g.clone()
    opt.step()
    assert torch.allclose(w.detach(), now - 0.1 * (g + 0.5 * g * g * (now - read)), rtol=0, atol=1e-15)


def test_staleness_aware_lr_composes_with_momentum():
    """η/τ scales the step whatever the chain did before: momentum's p is unchanged, the step divided."""
    w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    rule = chain(Momentum(momentum=0.9), ScaleByLearningRate(lr=1.0), ScaleByStaleness())
    opt = optim.from_chain([w], rule)
    for tau, expected in ((0, [-1.0, -1.0]), (4, [-1.0 - 1.9 / 4] * 2)):
        opt.param_groups[0]["staleness"] = tau
        w.grad = torch.ones(2, dtype=torch.float64)
        opt.step()
        assert w.detach().tolist() == pytest.approx(expected)


def test_with_staleness_keeps_namespaced_hyperparameters():
    params = [torch.nn.Parameter(torch.zeros(3))]
    rule = chain(Momentum(momentum=0.9), Momentum(momentum=0.5), ScaleByLearningRate(lr=0.1))
    base = optim.from_chain(params, rule, **{"momentum:1": 0.6})
    new = with_staleness(base, "staleness_aware", delay_compensation=0.1)
    group = new.param_groups[0]
    assert (group["momentum:1"], group["momentum:2"], group["staleness"], group["delay_compensation"]) == (
        0.9, 0.6, 0, 0.1)
    with pytest.raises(ValueError, match="need a descentlab optimizer"):
        with_staleness(torch.optim.SGD(params, lr=0.1), "staleness_aware")


def test_bounded_staleness_drops_the_stale_pushes():
    problem = NoisyQuadratic(10)
    result = simulate_async(problem.gradient, problem.initial(), sgd(0.2), num_workers=8, updates=300,
                            max_staleness=2)
    assert result.staleness().max() <= 2 and len(result.applied) == 300
    assert result.dropped > 0 and all(e.staleness > 2 for e in result.log if not e.applied)


def test_a_recorded_log_replays_bit_for_bit():
    problem = NoisyQuadratic(25, noise=0.1)
    options = {"lr_policy": "staleness_aware", "delay_compensation": 0.3, "max_staleness": 4}
    run = simulate_async(problem.gradient, problem.initial(), sgd(0.4), num_workers=6, updates=300, **options)
    again = simulate_log(problem.gradient, problem.initial(), sgd(0.4), run.log, **options)
    assert torch.equal(run.params[0], again.params[0]) and again.log == run.log
    with pytest.raises(ValueError, match="does not replay"):
        simulate_log(problem.gradient, problem.initial(), sgd(0.4), [Event(0, 0, 3, 0)])


def test_async_sgd_on_a_model_with_the_simulated_backend_replays_bit_for_bit():
    problem = TeacherMLP(hidden=16)
    opt = lambda p: optim.Adam(p, lr=1e-2)  # noqa: E731
    result = async_sgd(problem.model, problem.loss, problem.batch, opt, num_workers=4, updates=120,
                       backend="simulate", lr_policy="staleness_aware", delay_compensation=0.05)
    again = replay(result.log, problem.model, problem.loss, problem.batch, opt, lr_policy="staleness_aware",
                   delay_compensation=0.05)
    assert all(torch.equal(a, b) for a, b in zip(result.params, again.params))
    assert sum(result.staleness_histogram().values()) == 120 and max(result.staleness_histogram()) > 0
    assert np.mean(result.losses[-20:]) < np.mean(result.losses[:20])


def test_synchronous_sgd_waits_for_the_slowest_worker_unless_backups_drop_it():
    problem = NoisyQuadratic(10, noise=0.5)
    run = lambda backup: simulate_sync(problem.gradient, problem.initial(), sgd(0.3), num_workers=8,  # noqa: E731
                                       rounds=50, compute_time=Constant(1.0), stragglers=1, slowdown=10.0,
                                       backup=backup, loss_fn=problem.loss)
    waiting, backed_up = run(0), run(1)
    assert waiting.times[-1] == pytest.approx(500.0)  # every round lasts as long as the straggler
    assert backed_up.times[-1] == pytest.approx(50.0)
    assert {e.worker for e in backed_up.log} == set(range(7))  # the straggler's gradients never used
    # the same mean gradient as 8 (or 7) workers' noise averaged: one update per round, at τ = 0
    w = problem.initial()[0]
    for r in range(50):
        w = w - 0.3 * sum(problem.gradient(m, r, [w])[0] for m in range(8)) / 8
    assert torch.allclose(waiting.params[0], w, rtol=0, atol=1e-12)


def test_512_workers_run_on_one_core():
    problem = NoisyQuadratic(100)
    result = simulate_async(problem.gradient, problem.initial(), sgd(0.01), num_workers=512, updates=4096,
                            compute_time=Exponential())
    assert result.staleness()[2048:].mean() == pytest.approx(511, rel=0.05)


def test_compute_time_models_and_stragglers():
    rng = np.random.default_rng(0)
    assert Pareto(alpha=3.0, scale=1.0).sample(rng, 200_000).mean() == pytest.approx(1.5, rel=0.02)
    assert ShiftedExponential(2.0, 0.5).sample(rng, 200_000).mean() == pytest.approx(2.5, rel=0.01)
    assert set(COMPUTE_TIMES) == {"constant", "exponential", "shifted_exponential", "pareto"}
    events = finish_events(4, Constant(1.0), stragglers=1, slowdown=4.0)
    first = [next(events) for _ in range(13)]
    assert [m for _, m in first].count(3) == 1  # the straggler finishes once while the others do 4 each


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: Exponential(mean=0), "mean must be in"),
        (lambda: finish_events(4, stragglers=5).__next__(), "stragglers must be an integer in"),
        (lambda: ServerCore([torch.zeros(2)], sgd(0.1), lr_policy="inverse"), "lr_policy must be one of"),
        (lambda: ServerCore([torch.zeros(2)], sgd(0.1), max_staleness=-1), "max_staleness must be"),
        (lambda: ServerCore([torch.zeros(2)], lambda p: None), "must return a torch.optim.Optimizer"),
        (lambda: simulate_sync(lambda *a: None, [torch.zeros(1)], sgd(0.1), num_workers=4, rounds=1,
                               backup=4), "backup must be an integer in"),
    ],
)
def test_bad_arguments_are_refused_with_their_name(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_push_from_the_future_is_refused():
    core = ServerCore([torch.zeros(2)], sgd(0.1))
    with pytest.raises(ValueError, match="read_version must be in"):
        core.push(0, 0, 5, [torch.zeros(2)])


def test_without_ray_the_error_names_the_extra(monkeypatch, capsys):
    import sys

    from descentlab.cli import main
    from descentlab.distributed.async_ps import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'descentlab\[distributed\]'"):
        require_ray()
    problem = TeacherMLP(hidden=4)
    with pytest.raises(ImportError, match="descentlab\\[distributed\\]"):
        async_sgd(problem.model, problem.loss, problem.batch, sgd(0.1), 2, 5, backend="ray")
    assert main(["distributed", "--backend", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'descentlab[distributed]'" in err[0]


def test_the_command_line_simulates_by_default(tmp_path, capsys):
    from descentlab.cli import main

    out = tmp_path / "staleness.png"
    arguments = ["distributed", "--workers", "2,8", "--updates", "200", "--stragglers", "1"]
    assert main([*arguments, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "async, η/τ" in text and "sync, 1 backup" in text and out.stat().st_size > 10_000
    assert main(["distributed", "--workers", "two"]) == 2
    assert "--workers must be integers" in capsys.readouterr().err
