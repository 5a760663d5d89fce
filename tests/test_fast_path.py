"""The compiled fast path agrees with the eager path, does not recompile, and swaps state.

The reference here is the eager path, itself checked against torch.optim and NumPy
transcriptions of the papers in the other optimizer tests.
"""

from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch
import torch._dynamo.testing

import descentlab.optim as dl
from descentlab.optim import fast

pytestmark = pytest.mark.skipif(
    not fast.fast_path_available()[0], reason=f"torch.compile unavailable: {fast.fast_path_available()[1]}"
)



@pytest.fixture(autouse=True)
def no_silent_fallback():
    """Past its recompilation limit torch.compile would silently run the eager code,
    which would make these comparisons vacuous: make that an error here."""
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        yield


# Every optimizer, with its options switched on (one compiled chain per line).
CONFIGS = [
    ("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.01, "momentum": 0.9, "dampening": 0.3, "maximize": True}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01, "initial_accumulator_value": 0.1}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
    ("Adadelta", {"lr": 1.0, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adamax", {"lr": 0.01, "weight_decay": 0.01}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.01}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.01, "decoupled_weight_decay": True}),
    ("Rprop", {"lr": 0.01}),
    ("ASGD", {"lr": 0.01, "t0": 20, "lambd": 1e-3, "weight_decay": 0.01}),
    ("Lion", {"lr": 1e-3, "weight_decay": 0.1}),
    ("HeavyBall", {"lr": 0.01, "momentum": 0.9}),
    ("DeltaBarDelta", {"lr": 0.01, "momentum": 0.5}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.01}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.01, "decoupled_weight_decay": True}),
    ("AdaBelief", {"lr": 0.01, "weight_decay": 0.01, "ams_bound": True}),
    ("Yogi", {"lr": 0.01, "weight_decay": 0.01, "weight_decouple": False}),
    ("ScheduleFreeAdamW", {"lr": 0.01, "warmup_steps": 5, "weight_decay": 0.01}),
    ("ScheduleFreeSGD", {"lr": 0.1, "warmup_steps": 5, "weight_decay": 0.01}),
    ("Prodigy", {"weight_decay": 0.01}),
]
SIZES = (300, 7, 2000)


def make_params(dtype: torch.dtype) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(n, generator=g, dtype=dtype)) for n in SIZES]


def run(opt: torch.optim.Optimizer, params, steps: int, seed: int = 1) -> None:
    """``steps`` steps with the same pseudo-random gradients whatever the path."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        grads = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]
        opt.zero_grad()
        for p, grad in zip(params, grads):
            if p.grad is None:
                p.grad = grad
            else:
                p.grad.copy_(grad)
        opt.step()


def path(opt) -> str:
    """How the optimizer's first bucket runs."""
    return opt.describe_execution()[0]["path"]


def max_rel_err(a, b) -> float:
    return max(((x - y).abs().max() / y.abs().max()).item() for x, y in zip(a, b))


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)], ids=["f32", "f64"])
@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_fast_matches_eager(name, kwargs, dtype, tol):
    fast_params, eager_params = make_params(dtype), make_params(dtype)
    fast_opt = getattr(dl, name)(fast_params, fast=True, **kwargs)
    eager_opt = getattr(dl, name)(eager_params, fast=False, **kwargs)
    run(fast_opt, fast_params, 100)
    run(eager_opt, eager_params, 100)
    assert path(fast_opt) == "compiled" and path(eager_opt) == "eager"
    assert max_rel_err(fast_params, eager_params) <= tol
    for pf, pe in zip(fast_params, eager_params):
        assert sorted(fast_opt.state[pf]) == sorted(eager_opt.state[pe])


def test_no_recompilation_under_a_cosine_schedule(monkeypatch):
    counter = torch._dynamo.testing.CompileCounter()
    monkeypatch.setattr(fast, "BACKEND", counter)
    torch._dynamo.reset()
    params = make_params(torch.float32)
    opt = dl.Adam(params, lr=0.1, fast=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)
    lrs = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(1000):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
        lrs.add(opt.param_groups[0]["lr"])
        sched.step()
    assert len(lrs) > 900  # the learning rate really changed at (almost) every step
    # One graph for every step, the first included: no recompilation on the second step.
    assert counter.frame_count == 1, counter.frame_count


@pytest.mark.parametrize("name, kwargs", [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9}),
    ("DeltaBarDelta", {"lr": 0.01, "momentum": 0.5}),
    ("NAdam", {"lr": 0.01}),
    ("RAdam", {"lr": 0.01}),  # momentum SGD until ρ_k > 5, then adaptive: one expression
    ("ScheduleFreeAdamW", {"lr": 0.01, "warmup_steps": 3}),  # averaging weights change every step
    ("Prodigy", {}),  # the D estimate changes every step
    ("ScheduleFreeSGD", {"lr": 0.1, "warmup_steps": 3}),
    ("AdaBelief", {"lr": 0.01}),
    ("Yogi", {"lr": 0.01}),
])
def test_first_steps_compile_once(name, kwargs, monkeypatch):
    """Rules with a first-step special case (momentum's p₁ = u₁, the gains' missing previous
    gradient) express it through host-side coefficients: one graph for steps 1, 2, 3, ..."""
    counter = torch._dynamo.testing.CompileCounter()
    monkeypatch.setattr(fast, "BACKEND", counter)
    torch._dynamo.reset()
    params = make_params(torch.float32)
    opt = getattr(dl, name)(params, fast=True, **kwargs)
    run(opt, params, 5)
    assert counter.frame_count == 1, counter.frame_count


def test_checkpoint_moves_between_paths():
    """A state_dict saved from the fast path loads in the eager path and vice versa."""
    ref_params = make_params(torch.float64)
    ref = dl.Adam(ref_params, lr=0.01, amsgrad=True)
    run(ref, ref_params, 60, seed=3)
    for first, second in ((True, False), (False, True)):
        params = make_params(torch.float64)
        opt = dl.Adam(params, lr=0.01, amsgrad=True, fast=first)
        run(opt, params, 30, seed=3)
        buf = io.BytesIO()
        torch.save({"params": [p.detach().clone() for p in params], "opt": opt.state_dict()}, buf)
        buf.seek(0)
        ckpt = torch.load(buf)
        resumed_params = [torch.nn.Parameter(p) for p in ckpt["params"]]
        resumed = dl.Adam(resumed_params, lr=0.01, amsgrad=True, fast=second)
        resumed.load_state_dict(ckpt["opt"])
        # replay the gradients of steps 31..60 of the reference run
        g = torch.Generator().manual_seed(3)
        for step in range(60):
            grads = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in resumed_params]
            if step < 30:
                continue
            for p, grad in zip(resumed_params, grads):
                p.grad = grad
            resumed.step()
        assert max_rel_err(resumed_params, ref_params) <= 1e-12


def test_fast_path_keeps_torch_semantics_for_missing_gradients():
    """After model.zero_grad() (grads set to None) a parameter without gradient is skipped."""
    params = make_params(torch.float64)
    opt = dl.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1, fast=True)
    run(opt, params, 3)
    frozen = params[1].detach().clone()
    for p in params:
        p.grad = None
    params[0].grad = torch.ones_like(params[0])
    params[2].grad = torch.ones_like(params[2])
    opt.step()
    assert torch.equal(params[1].detach(), frozen)


def test_parameters_share_one_flat_buffer_and_still_train():
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    x, y = torch.randn(64, 8), torch.randn(64, 1)
    opt = dl.Adam(model.parameters(), lr=0.01, fast=True)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    assert len(ptrs) == 1
    assert losses[-1] < 0.8 * losses[0]


def test_clear_fallback_when_compilation_is_unavailable(monkeypatch):
    monkeypatch.setattr(fast, "fast_path_available", lambda: (False, "no C++ compiler (test)"))
    params = make_params(torch.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt = dl.Adam(params, fast=True)
        run(opt, params, 2)
    assert any("no C++ compiler (test)" in str(w.message) for w in caught)
    assert path(opt) == "eager"


def test_auto_mode_does_not_compile_small_models():
    params = make_params(torch.float32)
    for cls in (dl.Adam, dl.RMSprop):
        opt = cls(copy.deepcopy(params))
        run(opt, opt.param_groups[0]["params"], 1)
        assert path(opt) == ("fused" if cls is dl.Adam else "eager")
