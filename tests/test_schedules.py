"""Schedules against torch.optim.lr_scheduler, the notes' code sample and the papers' formulas."""

from __future__ import annotations

import io
import math
import pickle

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as tls

import descentlab.optim as dlo
from descentlab import schedules as S
from descentlab.schedules import SCHEDULES, ReduceOnPlateau, ScheduleLR

STEPS = 1000


def torch_lrs(make_scheduler, base_lr=0.1, steps=STEPS, metrics=None):
    """The lr torch uses at each of ``steps`` optimizer steps."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr, momentum=0.9)
    sched = make_scheduler(opt)
    lrs = []
    for t in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[t])
    return np.array(lrs)


def assert_close(ours, theirs, tol=1e-12):
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    assert ours.shape == theirs.shape
    err = np.max(np.abs(ours - theirs))
    assert err <= tol, f"max |Δlr| = {err:.3g}"


TORCH_CASES = {
    "step": (
        lambda o: tls.StepLR(o, step_size=30, gamma=0.5),
        S.StepDecay(eta_max=0.1, step_size=30, gamma=0.5),
    ),
    "exponential-gamma": (
        lambda o: tls.ExponentialLR(o, gamma=0.995),
        S.ExponentialDecay(eta_max=0.1, gamma=0.995),
    ),
    "exponential-rate": (
        lambda o: tls.ExponentialLR(o, gamma=math.exp(-0.004)),
        S.ExponentialDecay(eta_max=0.1, decay_rate=0.004),
    ),
    "polynomial": (
        lambda o: tls.PolynomialLR(o, total_iters=700, power=2.0),
        S.PolynomialDecay(eta_max=0.1, T_max=700, power=2.0),
    ),
    "linear": (
        lambda o: tls.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=200),
        S.LinearWarmup(eta_max=0.1, warmup_steps=200, eta_min=0.01),
    ),
    "cosine": (
        lambda o: tls.CosineAnnealingLR(o, T_max=STEPS, eta_min=0.001),
        S.CosineAnnealing(eta_max=0.1, T_max=STEPS, eta_min=0.001),
    ),
    "warm-restarts-mult2": (
        lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=0.01),
        S.CosineWarmRestarts(T_0=10, T_mult=2, eta_min=0.01, eta_max=0.1),
    ),
    "warm-restarts-mult1": (
        lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=37, eta_min=0.0),
        S.CosineWarmRestarts(T_0=37, eta_max=0.1),
    ),
    "warm-restarts-mult3": (
        lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=7, T_mult=3, eta_min=0.002),
        S.CosineWarmRestarts(T_0=7, T_mult=3, eta_min=0.002, eta_max=0.1),
    ),
    **{
        f"cyclic-{mode}": (
            lambda o, mode=mode: tls.CyclicLR(
                o,
                base_lr=0.01,
                max_lr=0.1,
                step_size_up=50,
                step_size_down=30,
                mode=mode,
                gamma=0.997,
                cycle_momentum=False,
            ),
            S.Cyclic(eta_min=0.01, eta_max=0.1, step_size_up=50, step_size_down=30, mode=mode, gamma=0.997),
        )
        for mode in ("triangular", "triangular2", "exp_range")
    },
    "one-cycle-cos": (
        lambda o: tls.OneCycleLR(o, max_lr=0.1, total_steps=STEPS, cycle_momentum=False),
        S.OneCycle(eta_max=0.1, T_max=STEPS),
    ),
    "one-cycle-linear-3phase": (
        lambda o: tls.OneCycleLR(
            o,
            max_lr=0.1,
            total_steps=STEPS,
            pct_start=0.25,
            anneal_strategy="linear",
            three_phase=True,
            div_factor=10.0,
            final_div_factor=100.0,
            cycle_momentum=False,
        ),
        S.OneCycle(
            eta_max=0.1,
            T_max=STEPS,
            pct_start=0.25,
            anneal_strategy="linear",
            three_phase=True,
            div_factor=10.0,
            final_div_factor=100.0,
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_matches_torch_scheduler_for_1000_steps(case):
    make_torch, schedule = TORCH_CASES[case]
    assert_close(schedule.values(STEPS), torch_lrs(make_torch))


def _metric_sequence(n=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (1.0 / (1 + 0.05 * t) + 0.02 * rng.standard_normal(n) + 0.3).tolist()


@pytest.mark.parametrize(
    "mode,threshold_mode", [("min", "rel"), ("min", "abs"), ("max", "rel"), ("max", "abs")]
)
def test_reduce_on_plateau_matches_torch(mode, threshold_mode):
    metrics = _metric_sequence()
    if mode == "max":
        metrics = [-m for m in metrics]
    kw = dict(mode=mode, factor=0.5, patience=5, threshold=1e-3, threshold_mode=threshold_mode, cooldown=3)
    theirs = torch_lrs(lambda o: tls.ReduceLROnPlateau(o, min_lr=1e-4, **kw), metrics=metrics)
    plateau = ReduceOnPlateau(eta_max=0.1, eta_min=1e-4, **kw)
    ours = [plateau(0)] + [plateau.step(m) for m in metrics[:-1]]
    assert_close(ours, theirs)
    assert len(set(ours)) > 3  # the test reduces the rate several times


def test_notes_warm_restart_sample_value_for_value():
    # notes 002, transcribed (indentation restored)
    t_i, t_mult, t_cur, min_lr, max_lr = 10, 2, 0, 0.01, 0.1
    notes = []
    for epoch in range(STEPS):
        if epoch > 0 and t_cur == t_i:
            t_cur = 0
            t_i *= t_mult
        notes.append(min_lr + 0.5 * (max_lr - min_lr) * (1 + np.cos(np.pi * t_cur / t_i)))
        t_cur += 1
    ours = SCHEDULES["warm_restarts"](T_0=10, T_mult=2, eta_min=0.01, eta_max=0.1).values(STEPS)
    assert_close(ours, notes, tol=1e-15)


def _sgdr_incremental(T_0, T_mult, eta_min, eta_max, peak_decay, steps):
    """SGDR as torch's step() updates it, with float periods and a decaying peak."""
    T_cur, T_i, i, out = 0.0, float(T_0), 0, []
    for _ in range(steps):
        peak = max(eta_max * peak_decay**i, eta_min)  # the peak never falls below the floor
        out.append(eta_min + (peak - eta_min) * (1 + math.cos(math.pi * T_cur / T_i)) / 2)
        T_cur += 1
        if T_cur >= T_i:
            T_cur -= T_i
            T_i *= T_mult
            i += 1
    return out


@pytest.mark.parametrize("T_mult,peak_decay", [(1.5, 1.0), (1.3, 0.8), (2, 0.5), (1, 0.9)])
def test_warm_restarts_float_t_mult_and_peak_decay(T_mult, peak_decay):
    s = S.CosineWarmRestarts(T_0=8, T_mult=T_mult, eta_min=0.001, eta_max=0.1, peak_decay=peak_decay)
    assert_close(s.values(STEPS), _sgdr_incremental(8, T_mult, 0.001, 0.1, peak_decay, STEPS))


def test_cyclic_equals_notes_triangular_formula_corrected():
    mu, lo, hi = 25, 0.01, 0.1
    t = np.arange(STEPS)
    # notes 004 with the floor fixed: ⌊T/(2μ)⌋ (the notes print ⌊T/μ⌋)
    smith = lo + (hi - lo) * np.maximum(0, 1 - np.abs(t / mu - 2 * np.floor(t / (2 * mu)) - 1))
    assert_close(S.Cyclic(eta_min=lo, eta_max=hi, step_size_up=mu).values(STEPS), smith, tol=1e-15)
    literal = lo + (hi - lo) * np.maximum(0, 1 - np.abs(t / mu - 2 * np.floor(t / mu) - 1))
    assert np.all(literal[2 * mu :] == lo)  # the notes' formula as printed is stuck at η_min


def test_warmup_cosine_is_the_transformer_recipe():
    w, total, peak = 100, 1000, 0.1
    # Hugging Face get_cosine_schedule_with_warmup, transcribed
    ref = [
        peak
        * (
            t / max(1, w)
            if t < w
            else max(0.0, 0.5 * (1.0 + math.cos(math.pi * (t - w) / max(1, total - w))))
        )
        for t in range(total)
    ]
    assert_close(SCHEDULES["warmup_cosine"](eta_max=peak, T_max=total, warmup_steps=w).values(total), ref)


def test_inverse_sqrt_is_noam_normalised_to_its_peak():
    d_model, w = 512, 400
    noam = [d_model**-0.5 * min(t**-0.5, t * w**-1.5) for t in range(1, STEPS)]
    peak = d_model**-0.5 * w**-0.5
    ours = SCHEDULES["inverse_sqrt"](eta_max=peak, warmup_steps=w).values(STEPS)[1:]
    assert_close(ours, noam)


def test_join_scale_and_with_warmup():
    a, b = S.Constant(eta_max=0.3), S.StepDecay(eta_max=0.2, step_size=5, gamma=0.5)
    joined = S.join([a, b], boundaries=[10])
    assert joined.values(30) == [0.3] * 10 + [0.2 * 0.5 ** (k // 5) for k in range(20)]
    assert (0.5 * b).values(12) == [0.5 * v for v in b.values(12)]
    warm = S.with_warmup(b, warmup_steps=4, eta_start=0.0)
    assert warm.values(4) == pytest.approx([0.0, 0.05, 0.1, 0.15], abs=1e-15)
    assert warm.values(20)[4:] == b.values(16)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_pickles_and_repr_rebuilds_it(name):
    s = SCHEDULES[name](**RESUME_KWARGS[name])
    clone = pickle.loads(pickle.dumps(s))
    assert clone == s and clone.values(50) == s.values(50)
    rebuilt = eval(repr(s), vars(S))  # noqa: S307 — the repr is the constructor call
    assert rebuilt.values(50) == s.values(50)


RESUME_KWARGS = {
    "constant": dict(eta_max=0.05),
    "step": dict(eta_max=0.1, step_size=7, gamma=0.5),
    "exponential": dict(eta_max=0.1, gamma=0.97),
    "polynomial": dict(eta_max=0.1, T_max=40, power=1.5, eta_min=0.001),
    "linear_warmup": dict(eta_max=0.1, warmup_steps=15, eta_min=0.001),
    "cosine": dict(eta_max=0.1, T_max=45, eta_min=0.001),
    "warm_restarts": dict(T_0=5, T_mult=1.5, eta_min=0.001, eta_max=0.1, peak_decay=0.7),
    "cyclic": dict(eta_min=0.001, eta_max=0.1, step_size_up=6, mode="triangular2"),
    "one_cycle": dict(eta_max=0.1, T_max=60),
    "warmup_cosine": dict(eta_max=0.1, T_max=60, warmup_steps=10),
    "inverse_sqrt": dict(eta_max=0.1, warmup_steps=8),
}


def _training_run(make_schedule, optimizer_cls, steps, stop_at=None):
    """Train a tiny model; optionally checkpoint at ``stop_at`` and resume in fresh objects."""
    torch.manual_seed(0)
    x, y = torch.randn(32, 3, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
    metrics = _metric_sequence(steps, seed=1)

    def build():
        torch.manual_seed(1)
        model = torch.nn.Linear(3, 1).double()
        opt = optimizer_cls(model.parameters(), lr=0.5, momentum=0.9)
        return model, opt, ScheduleLR(opt, make_schedule())

    model, opt, sched = build()
    lrs = []
    for t in range(steps):
        if t == stop_at:
            buffer = io.BytesIO()
            torch.save(
                {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, buffer
            )
            buffer.seek(0)
            ckpt = torch.load(buffer, weights_only=True)
            model, opt, sched = build()
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["opt"])
            sched.load_state_dict(ckpt["sched"])
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        is_plateau = isinstance(sched.schedules[0], ReduceOnPlateau)
        sched.step(metrics[t]) if is_plateau else sched.step()
    return lrs, [p.detach().clone() for p in model.parameters()]


RESUME_CASES = {
    **{name: (lambda n=name: SCHEDULES[n](**RESUME_KWARGS[n])) for name in SCHEDULES},
    "join": lambda: S.join(
        [S.CosineWarmRestarts(T_0=4, T_mult=2, eta_max=0.1), S.ExponentialDecay(eta_max=0.05, gamma=0.9)],
        boundaries=[28],
    ),
    "reduce_on_plateau": lambda: ReduceOnPlateau(eta_max=0.1, patience=2, factor=0.5),
}


@pytest.mark.parametrize("optimizer_cls", [torch.optim.SGD, dlo.SGD], ids=["torch", "descentlab"])
@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_resume_from_checkpoint_gives_the_same_rates(case, optimizer_cls):
    steps, stop = 60, 23
    make = RESUME_CASES[case]
    lrs, params = _training_run(make, optimizer_cls, steps)
    lrs_resumed, params_resumed = _training_run(make, optimizer_cls, steps, stop_at=stop)
    assert lrs_resumed == lrs
    for a, b in zip(params, params_resumed):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    if case != "reduce_on_plateau":
        assert lrs == make().values(steps)  # the k-th optimizer step uses schedule(k)
    else:
        assert len(set(lrs)) > 2


def test_schedule_lr_is_a_torch_scheduler_with_one_schedule_per_group():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=1.0)
    sched = ScheduleLR(opt, [S.Constant(eta_max=0.2), S.StepDecay(eta_max=0.1, step_size=1, gamma=0.5)])
    assert isinstance(sched, tls.LRScheduler)
    for _ in range(3):
        opt.step()
        sched.step()
    assert sched.get_last_lr() == [0.2, 0.1 * 0.5**3]
    with pytest.raises(ValueError, match="one per param group"):
        ScheduleLR(opt, [S.Constant(eta_max=0.2)] * 3)
    with pytest.raises(ValueError, match="metric-driven"):
        sched.step(0.5)


@pytest.mark.parametrize(
    "factory,kwargs,match",
    [
        ("step", dict(eta_max=0.1, step_size=-3), "step_size"),
        ("warm_restarts", dict(T_0=-1, eta_max=0.1), "T_0"),
        ("warm_restarts", dict(T_0=10, T_mult=0.5, eta_max=0.1), "T_mult"),
        ("warm_restarts", dict(T_0=10, eta_min=0.2, eta_max=0.1), "eta_min"),
        ("warm_restarts", dict(T_0=10, eta_max=0.1, peak_decay=0.0), "peak_decay"),
        ("cosine", dict(eta_max=0.1, T_max=0), "T_max"),
        ("cosine", dict(eta_max=0.1, T_max=10, eta_min=0.5), "eta_min"),
        ("cyclic", dict(eta_min=0.01, eta_max=0.1, step_size_up=5, mode="sawtooth"), "mode"),
        ("cyclic", dict(eta_min=0.01, eta_max=0.1, step_size_up=0), "step_size_up"),
        ("exponential", dict(eta_max=0.1), "exactly one"),
        ("exponential", dict(eta_max=0.1, gamma=1.5), "gamma"),
        ("polynomial", dict(eta_max=-0.1, T_max=10), "eta_max"),
        ("one_cycle", dict(eta_max=0.1, T_max=100, pct_start=1.2), "pct_start"),
        ("warmup_cosine", dict(eta_max=0.1, T_max=10, warmup_steps=10), "T_max"),
        ("inverse_sqrt", dict(eta_max=0.1, warmup_steps=-5), "warmup_steps"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_parameter(factory, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SCHEDULES[factory](**kwargs)


def test_bad_plateau_arguments_and_bad_steps():
    with pytest.raises(ValueError, match="mode"):
        ReduceOnPlateau(eta_max=0.1, mode="lowest")
    with pytest.raises(ValueError, match="factor"):
        ReduceOnPlateau(eta_max=0.1, factor=1.0)
    with pytest.raises(ValueError, match="t=-1"):
        S.Constant(eta_max=0.1)(-1)
    with pytest.raises(ValueError, match="boundar"):
        S.join([S.Constant(eta_max=0.1)], boundaries=[3])


@pytest.mark.parametrize("call,match", [
    (lambda: S.join([S.Constant(eta_max=0.1), 0.1], boundaries=[3]), r"schedules\[1\] must be callable"),
    (lambda: S.join([S.Constant(eta_max=0.1)] * 2, boundaries=[-1]), r"boundaries\[0\]"),
    (lambda: S.join(S.Constant(eta_max=0.1), boundaries=[]), "schedules must be a list or tuple"),
    (lambda: S.with_warmup(0.1, warmup_steps=10), "schedule must be callable"),
    (lambda: S.with_warmup(S.Constant(eta_max=0.1), warmup_steps=-1), "warmup_steps"),
    (lambda: S.with_warmup(S.Constant(eta_max=0.1), warmup_steps=5, eta_start=-1.0), "eta_start"),
    (lambda: S.Scaled(schedule="cosine", factor=0.5), "schedule must be callable"),
    (lambda: "cosine" * S.Constant(eta_max=0.1), "factor"),
    (lambda: S.Constant(eta_max=0.1).values(-1), "steps"),
    (lambda: S.OneCycle(eta_max=0.1, T_max=10, three_phase="yes"), "three_phase"),
    (lambda: S.OneCycle(eta_max=0.1, T_max=10, anneal_strategy="cosine"), "anneal_strategy"),
    (lambda: ReduceOnPlateau(eta_max=0.1, threshold_mode="relative"), "threshold_mode"),
])
def test_combinators_and_options_refuse_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_schedule_lr_checks_its_arguments():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(ValueError, match="schedule must be callable"):
        ScheduleLR(opt, 0.1)
    with pytest.raises(ValueError, match="optimizer must be a torch.optim.Optimizer"):
        ScheduleLR("sgd", S.Constant(eta_max=0.1))
    with pytest.raises(ValueError, match="last_epoch"):
        ScheduleLR(opt, S.Constant(eta_max=0.1), last_epoch=-2)
