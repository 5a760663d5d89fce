"""descentlab.optim against torch.optim, side by side, on the same gradients.

Every configuration torch.optim implements is run for ``STEPS`` steps on a small MLP in
float64; both optimizers receive the same gradients (computed at the torch model) and the
parameters must agree to ``1e-10`` relative (per tensor: ``max|a − b| / max|b|``).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import descentlab.optim as dl
from _optim_helpers import (
    FLOAT64_RTOL,
    assert_params_close,
    batch,
    loss_fn,
    make_data,
    make_mlp,
    max_relative_error,
    set_grads_from,
    state_bytes,
    twin,
)

STEPS = 100
TORCH_NAMES = ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam", "Rprop", "ASGD",
               "RAdam", "Adafactor"]  # Muon (2-D parameters only): tests/test_optim_torch_extra.py

# (optimizer name, keyword arguments) — each configuration torch.optim implements.
CONFIGS: list[tuple[str, dict]] = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, maximize=True)),
    ("SGD", dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1, eps=1e-6, maximize=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.05)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, momentum=0.8, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, eps=1e-4, weight_decay=0.1, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5)),
    ("Adadelta", dict(lr=1.0, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.3, maximize=True)),
    ("Adamax", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-4, weight_decay=0.1)),
    ("Adamax", dict(lr=0.01, maximize=True)),
    ("NAdam", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, momentum_decay=0.01, weight_decay=0.1)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("NAdam", dict(lr=0.01, betas=(0.8, 0.99), maximize=True)),
    ("Rprop", dict(lr=0.01)),
    ("Rprop", dict(lr=0.001, etas=(0.3, 1.5), step_sizes=(1e-4, 0.05))),
    ("Rprop", dict(lr=0.01, maximize=True)),
    ("ASGD", dict(lr=0.05)),
    ("ASGD", dict(lr=0.05, lambd=0.01, alpha=0.5, t0=20.0)),
    ("ASGD", dict(lr=0.05, t0=0.0, weight_decay=0.1)),
    ("ASGD", dict(lr=0.05, t0=10.0, maximize=True)),
    ("RAdam", dict(lr=0.01)),
    ("RAdam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.05, maximize=True)),
    ("Adafactor", dict()),
    ("Adafactor", dict(lr=0.05, weight_decay=0.1)),
    # eps[0] given: with None, torch takes ε₁ from the *first* parameter's dtype for the whole group
    ("Adafactor", dict(lr=0.01, beta2_decay=-0.5, eps=(1e-30, 1e-3), d=2.0, maximize=True)),
    ("Adafactor", dict(lr=0.5)),
    ("Adafactor", dict(lr=0.02, eps=(1e-12, 1e-2), d=1.2, weight_decay=0.01)),
]


def side_by_side(name: str, kwargs: dict):
    """The same MLP twice, with torch's and descentlab's optimizer ``name``, and data."""
    model_t = make_mlp()
    model_d = twin(model_t)
    x, y = make_data()
    opt_t = getattr(torch.optim, name)(model_t.parameters(), **kwargs)
    opt_d = getattr(dl, name)(model_d.parameters(), **kwargs)
    return model_t, model_d, opt_t, opt_d, x, y

def _config_id(config: tuple[str, dict]) -> str:
    name, kwargs = config
    return name + "(" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


def _maximizing(kwargs: dict) -> bool:
    return bool(kwargs.get("maximize"))


def run_side_by_side(
    name: str,
    kwargs: dict,
    *,
    steps: int = STEPS,
    groups=None,
    dtype=torch.float64,
    seed: int = 0,
    only_descentlab: dict | None = None,
):
    """Train a torch model, giving both optimizers its gradients; return both models and optimizers.
    ``only_descentlab``: further arguments for descentlab's optimizer (e.g. ``fast=False``)."""
    model_t = make_mlp(seed, dtype)
    model_d = twin(model_t)
    x, y = make_data(dtype=dtype)
    if groups is None:
        opt_t = getattr(torch.optim, name)(model_t.parameters(), **kwargs)
        opt_d = getattr(dl, name)(model_d.parameters(), **kwargs, **(only_descentlab or {}))
    else:
        opt_t = getattr(torch.optim, name)(groups(model_t), **kwargs)
        opt_d = getattr(dl, name)(groups(model_d), **kwargs, **(only_descentlab or {}))
    sign = -1.0 if _maximizing(kwargs) else 1.0
    for k in range(steps):
        xb, yb = batch(k, x, y)
        # With maximize, ascend −loss (so the run stays bounded).
        for p in model_t.parameters():
            p.grad = None
        (sign * loss_fn(model_t, xb, yb)).backward()
        for p, q in zip(model_t.parameters(), model_d.parameters()):
            q.grad = p.grad.clone()
        opt_t.step()
        opt_d.step()
    return model_t, model_d, opt_t, opt_d


@pytest.mark.parametrize("config", CONFIGS, ids=_config_id)
def test_matches_torch_float64(config):
    name, kwargs = config
    model_t, model_d, opt_t, opt_d = run_side_by_side(name, kwargs)
    assert_params_close(model_d, model_t, what=_config_id(config))
    # the run actually moved the parameters
    assert any(
        not torch.equal(p, q) for p, q in zip(model_t.parameters(), make_mlp(0).parameters())
    )


@pytest.mark.parametrize("executor", ["runner", "chunks", "packs"])
@pytest.mark.parametrize("config", CONFIGS, ids=_config_id)
def test_every_eager_executor_matches_torch_float64(config, executor, monkeypatch):
    """The chain runner itself (``fast=False``: no fused kernel, no compilation), on the whole
    bucket as one piece, in pieces of 7 elements (boundaries inside tensors) and of 50 (tensors packed)."""
    from descentlab.optim import executors

    name, kwargs = config
    if executor in ("chunks", "packs"):  # 7: every tensor cut up; 50: (40 + 8) and (24 + 3) packed
        monkeypatch.setattr(executors, "CHUNK_ELEMENTS", 7 if executor == "chunks" else 50)
    model_t, model_d, opt_t, opt_d = run_side_by_side(name, kwargs, only_descentlab={"fast": False})
    assert opt_d.describe_execution()[0]["path"] == "eager"
    assert_params_close(model_d, model_t, what=f"{_config_id(config)} {executor}")
    for p_t, p_d in zip(model_t.parameters(), model_d.parameters()):
        for key, value in opt_t.state[p_t].items():
            if isinstance(value, torch.Tensor) and value.dim() == 0:  # scalars updated once per step
                assert math.isclose(float(opt_d.state[p_d][key]), float(value), rel_tol=1e-12), key


def _two_groups(name: str):
    def groups(model: nn.Sequential):
        return [
            {"params": model[0].parameters()},
            {"params": model[2].parameters(), **PER_GROUP_OVERRIDES[name]},
        ]

    return groups


# per-group overrides of hyperparameters for the second group
PER_GROUP_OVERRIDES = {
    "SGD": dict(lr=0.02, momentum=0.5, weight_decay=0.2),
    "Adagrad": dict(lr=0.05, lr_decay=0.1, eps=1e-8),
    "RMSprop": dict(lr=0.003, alpha=0.9, centered=True),
    "Adadelta": dict(lr=0.5, rho=0.7),
    "Adam": dict(lr=0.002, betas=(0.7, 0.95), amsgrad=True),
    "AdamW": dict(lr=0.002, weight_decay=0.5),
    "Adamax": dict(lr=0.003, betas=(0.5, 0.9)),
    "NAdam": dict(lr=0.003, momentum_decay=0.02),
    "Rprop": dict(lr=0.002, etas=(0.4, 1.1)),
    "ASGD": dict(lr=0.02, t0=5.0, lambd=0.001),
    "RAdam": dict(lr=0.002, betas=(0.7, 0.95), weight_decay=0.05),
    "Adafactor": dict(lr=0.02, beta2_decay=-0.6, d=1.5),
}
GROUP_BASE = {
    "SGD": dict(lr=0.05, momentum=0.9),
    "Adagrad": dict(lr=0.1),
    "RMSprop": dict(lr=0.01, momentum=0.5),
    "Adadelta": dict(),
    "Adam": dict(lr=0.01),
    "AdamW": dict(lr=0.01),
    "Adamax": dict(lr=0.01),
    "NAdam": dict(lr=0.01),
    "Rprop": dict(lr=0.01),
    "ASGD": dict(lr=0.05, t0=10.0),
    "RAdam": dict(lr=0.01),
    "Adafactor": dict(lr=0.01),
}


@pytest.mark.parametrize("name", sorted(PER_GROUP_OVERRIDES))
def test_param_groups_with_per_group_hyperparameters(name):
    groups = _two_groups(name)
    model_t, model_d, opt_t, opt_d = run_side_by_side(name, GROUP_BASE[name], groups=groups)
    assert_params_close(model_d, model_t, what=f"{name} with two groups")
    for group_t, group_d in zip(opt_t.param_groups, opt_d.param_groups):
        for key, value in group_t.items():
            if key != "params" and key in group_d:
                assert group_d[key] == value, key


# float32: the two implementations order floating-point operations differently, so
# rounding errors (≈ 6e-8 per operation) accumulate over the run (largest seen: 2e-6). 1e-5 after
# STEPS steps is loose enough for that and far below any real difference in the rule
# (a wrong bias correction, decay or sign changes parameters by ≥ 1e-3 relative here).
FLOAT32_RTOL = 1e-5
FLOAT32_CONFIGS = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Adadelta", dict(weight_decay=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01)),
    ("ASGD", dict(lr=0.05, t0=10.0)),
    ("Rprop", dict(lr=0.01, etas=(0.3, 1.3))),
    ("RAdam", dict(lr=0.01, weight_decay=0.01, decoupled_weight_decay=True)),
    ("Adafactor", dict(lr=0.02, weight_decay=0.01)),
]


@pytest.mark.parametrize("config", FLOAT32_CONFIGS, ids=_config_id)
def test_matches_torch_float32(config):
    name, kwargs = config
    model_t, model_d, opt_t, opt_d = run_side_by_side(name, kwargs, dtype=torch.float32)
    for p in model_d.parameters():
        assert p.dtype == torch.float32
    for entry in opt_d.state.values():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                assert value.dtype == torch.float32, key
    assert_params_close(model_d, model_t, rtol=FLOAT32_RTOL, what=_config_id(config))


# -- LR schedulers and hand edits ---------------------------------------------------------
SCHEDULERS = {
    "StepLR": lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5),
    "CosineAnnealingLR": lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30),
    "CosineAnnealingWarmRestarts": lambda opt: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=7, T_mult=2
    ),
    "ExponentialLR": lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.97),
    "LambdaLR": lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / (1 + 0.1 * k)),
    # OneCycleLR also cycles the momentum (SGD) / beta1 (Adam) stored in the group.
    "OneCycleLR": lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=STEPS),
}


@pytest.mark.parametrize("sched", sorted(SCHEDULERS))
@pytest.mark.parametrize(
    "config", [("SGD", dict(lr=0.05, momentum=0.9)), ("Adam", dict(lr=0.01))], ids=_config_id
)
def test_lr_schedulers_drive_both_identically(sched, config):
    name, kwargs = config
    model_t, model_d, opt_t, opt_d, x, y = side_by_side(name, kwargs)
    sch_t, sch_d = SCHEDULERS[sched](opt_t), SCHEDULERS[sched](opt_d)
    lrs = set()
    for k in range(STEPS):
        set_grads_from(model_t, model_d, x=batch(k, x, y)[0], y=batch(k, x, y)[1])
        opt_t.step()
        opt_d.step()
        sch_t.step()
        sch_d.step()
        assert opt_d.param_groups[0]["lr"] == opt_t.param_groups[0]["lr"]
        lrs.add(opt_d.param_groups[0]["lr"])
    assert len(lrs) > 3  # the schedule really changed the learning rate
    assert_params_close(model_d, model_t, what=f"{name} + {sched}")


def test_reduce_lr_on_plateau_drives_both_identically():
    model_t = make_mlp()
    model_d = twin(model_t)
    x, y = make_data()
    opt_t = torch.optim.Adam(model_t.parameters(), lr=0.05)
    opt_d = dl.Adam(model_d.parameters(), lr=0.05)
    sch_t = torch.optim.lr_scheduler.ReduceLROnPlateau(opt_t, patience=2, factor=0.5)
    sch_d = torch.optim.lr_scheduler.ReduceLROnPlateau(opt_d, patience=2, factor=0.5)
    for k in range(STEPS):
        loss = set_grads_from(model_t, model_d, x=batch(k, x, y)[0], y=batch(k, x, y)[1])
        opt_t.step()
        opt_d.step()
        sch_t.step(float(loss))
        sch_d.step(float(loss))
    assert opt_t.param_groups[0]["lr"] < 0.05
    assert opt_d.param_groups[0]["lr"] == opt_t.param_groups[0]["lr"]
    assert_params_close(model_d, model_t)


@pytest.mark.parametrize(
    "config",
    [
        ("SGD", dict(lr=0.05, momentum=0.9)),
        ("RMSprop", dict(lr=0.01, centered=True)),
        ("Adam", dict(lr=0.01, amsgrad=True)),
        ("NAdam", dict(lr=0.01)),
        ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ],
    ids=_config_id,
)
def test_hand_edits_of_group_hyperparameters(config):
    name, kwargs = config
    model_t, model_d, opt_t, opt_d, x, y = side_by_side(name, kwargs)
    for k in range(STEPS):
        if k % 10 == 5:
            for opt in (opt_t, opt_d):
                for group in opt.param_groups:
                    group["lr"] = group["lr"] * (0.5 if k % 20 == 5 else 1.5)
                    group["weight_decay"] = 0.01 * (k % 3)
                    if "betas" in group:
                        group["betas"] = (0.8 + 0.01 * (k % 7), 0.99)
                    if name == "SGD":
                        group["momentum"] = 0.5 + 0.04 * (k % 10)
        set_grads_from(model_t, model_d, x=batch(k, x, y)[0], y=batch(k, x, y)[1])
        opt_t.step()
        opt_d.step()
    assert_params_close(model_d, model_t, what=f"{name} with hand edits")


# -- closures, missing gradients, add_param_group, zero_grad ----------------------------------
@pytest.mark.parametrize(
    "config",
    [("SGD", dict(lr=0.05, momentum=0.9)), ("Adam", dict(lr=0.01)), ("Rprop", dict(lr=0.01))],
    ids=_config_id,
)
def test_step_with_closure_returns_the_loss(config):
    name, kwargs = config
    model_t, model_d, opt_t, opt_d, x, y = side_by_side(name, kwargs)
    calls = []

    def closure_for(model, opt):
        def closure():
            opt.zero_grad()
            loss = loss_fn(model, x, y)
            loss.backward()
            calls.append(1)
            return loss

        return closure

    for _ in range(STEPS):
        loss_t = opt_t.step(closure_for(model_t, opt_t))
        loss_d = opt_d.step(closure_for(model_d, opt_d))
        assert isinstance(loss_d, torch.Tensor)
        assert loss_d.requires_grad  # evaluated with gradients enabled inside step
        assert abs(loss_d.item() - loss_t.item()) <= 1e-10 * abs(loss_t.item())
    assert len(calls) == 2 * STEPS
    assert_params_close(model_d, model_t)
    assert opt_d.step() is None  # no closure → no loss


class TwoBranch(nn.Module):
    """A model whose second branch is used only on some steps (its grads stay None)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(5, 8)
        self.branch_a = nn.Linear(8, 3)
        self.branch_b = nn.Linear(8, 3)
        self.unused = nn.Linear(3, 3)  # never receives a gradient

    def forward(self, x, use_b: bool):
        h = torch.tanh(self.trunk(x))
        out = self.branch_a(h)
        return out + self.branch_b(h) if use_b else out


@pytest.mark.parametrize("config", CONFIGS[::3], ids=_config_id)
def test_params_without_gradients_are_skipped(config):
    name, kwargs = config
    torch.manual_seed(0)
    model_t = TwoBranch().double()
    model_d = copy.deepcopy(model_t)
    x, y = make_data()
    opt_t = getattr(torch.optim, name)(model_t.parameters(), **kwargs)
    opt_d = getattr(dl, name)(model_d.parameters(), **kwargs)
    sign = -1.0 if _maximizing(kwargs) else 1.0
    for k in range(STEPS):
        use_b = (k % 3 == 0) or (40 <= k < 50)
        xb, yb = batch(k, x, y)
        opt_t.zero_grad()
        opt_d.zero_grad()
        (sign * ((model_t(xb, use_b) - yb) ** 2).mean()).backward()
        for p, q in zip(model_t.parameters(), model_d.parameters()):
            q.grad = None if p.grad is None else p.grad.clone()
        opt_t.step()
        opt_d.step()
        assert model_d.unused.weight.grad is None
    assert_params_close(model_d, model_t, what=_config_id(config))
    unused_t = opt_t.state.get(model_t.unused.weight, {})
    unused_d = opt_d.state.get(model_d.unused.weight, {})
    assert float(unused_d.get("step", 0)) == float(unused_t.get("step", 0)) == 0  # never stepped
    assert torch.equal(model_d.unused.weight, model_t.unused.weight)
    for p_t, p_d in zip(model_t.parameters(), model_d.parameters()):
        if "step" in opt_t.state[p_t]:
            assert float(opt_d.state[p_d]["step"]) == float(opt_t.state[p_t]["step"])


def test_params_never_stepped_get_no_state_like_torch():
    torch.manual_seed(0)
    model_t = TwoBranch().double()
    model_d = copy.deepcopy(model_t)
    x, y = make_data()
    opt_t = torch.optim.Adam(model_t.parameters())
    opt_d = dl.Adam(model_d.parameters())
    for model in (model_t, model_d):
        model.zero_grad()
        ((model(x, False) - y) ** 2).mean().backward()
    opt_t.step()
    opt_d.step()
    assert len(opt_t.state[model_t.unused.weight]) == 0
    assert len(opt_d.state.get(model_d.unused.weight, {})) == 0
    assert state_bytes(opt_d) <= state_bytes(opt_t)


@pytest.mark.parametrize(
    "config",
    [("SGD", dict(lr=0.05, momentum=0.9)), ("Adam", dict(lr=0.01)), ("ASGD", dict(lr=0.05, t0=5.0))],
    ids=_config_id,
)
def test_add_param_group_mid_run(config):
    name, kwargs = config
    model_t = make_mlp()
    model_d = twin(model_t)
    x, y = make_data()
    opt_t = getattr(torch.optim, name)(model_t[0].parameters(), **kwargs)
    opt_d = getattr(dl, name)(model_d[0].parameters(), **kwargs)
    for k in range(STEPS):
        if k == 30:
            opt_t.add_param_group({"params": model_t[2].parameters(), "lr": 0.003})
            opt_d.add_param_group({"params": model_d[2].parameters(), "lr": 0.003})
            torch_only = {"foreach", "fused", "capturable", "differentiable"}
            assert set(opt_t.param_groups[1]) - torch_only <= set(opt_d.param_groups[1])
            assert opt_d.param_groups[1]["lr"] == 0.003
        set_grads_from(model_t, model_d, x=batch(k, x, y)[0], y=batch(k, x, y)[1])
        opt_t.step()
        opt_d.step()
    assert_params_close(model_d, model_t)


def test_zero_grad():
    model = make_mlp()
    opt = dl.Adam(model.parameters())
    x, y = make_data()
    loss_fn(model, x, y).backward()
    opt.step()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()  # no gradients at all: nothing happens
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


# -- state: names and memory ------------------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS, ids=_config_id)
def test_state_keys_and_bytes_match_torch(config):
    name, kwargs = config
    model_t, model_d, opt_t, opt_d = run_side_by_side(name, kwargs, steps=3)
    for p_t, p_d in zip(model_t.parameters(), model_d.parameters()):
        st, sd = opt_t.state[p_t], opt_d.state[p_d]
        assert sorted(sd) == sorted(st)
        for key in st:
            if isinstance(st[key], torch.Tensor):
                assert isinstance(sd[key], torch.Tensor), key
                assert sd[key].shape == st[key].shape, key
                assert sd[key].dtype == st[key].dtype, key
                if st[key].dim() == 0 or key == "step":
                    assert math.isclose(float(sd[key]), float(st[key]), rel_tol=1e-12), key
                else:
                    assert max_relative_error(sd[key], st[key]) <= FLOAT64_RTOL, key
    assert state_bytes(opt_d) <= state_bytes(opt_t)
    # state_dict layout identical too (what a checkpoint contains)
    sd_t, sd_d = opt_t.state_dict(), opt_d.state_dict()
    assert sorted(sd_d["state"]) == sorted(sd_t["state"])
    for group_t, group_d in zip(sd_t["param_groups"], sd_d["param_groups"]):
        assert group_d["params"] == group_t["params"]
        missing = set(group_t) - set(group_d) - {"foreach", "fused", "capturable", "differentiable"}
        assert not missing, f"param group lacks torch keys {missing}"


def test_defaults_match_torch():
    import inspect

    for name in [*TORCH_NAMES, "SparseAdam"]:
        sig_t = inspect.signature(getattr(torch.optim, name).__init__).parameters
        sig_d = inspect.signature(getattr(dl, name).__init__).parameters
        for pname, param in sig_t.items():
            assert pname in sig_d, f"{name} lacks argument {pname}"
            assert sig_d[pname].default == param.default, f"{name}.{pname} default"
            assert sig_d[pname].kind == param.kind, f"{name}.{pname} kind"
        model = make_mlp()
        opt_t = getattr(torch.optim, name)(model.parameters())
        opt_d = getattr(dl, name)(model.parameters())
        for key, value in opt_t.defaults.items():
            if key in opt_d.defaults:
                assert opt_d.defaults[key] == value, f"{name} default {key}"


# -- mixed dtypes, non-contiguous and complex parameters, torch features ------------------------
def _feed_random_gradients(pairs_of_lists, steps=STEPS):
    """Give both parameter lists the same random gradients (in each parameter's dtype)."""
    (params_t, opt_t), (params_d, opt_d) = pairs_of_lists
    for k in range(steps):
        gen = torch.Generator().manual_seed(100 + k)
        for a, b in zip(params_t, params_d):
            g = torch.randn(a.shape, generator=gen, dtype=a.dtype)
            a.grad, b.grad = g.clone(), g.clone()
        opt_t.step()
        opt_d.step()


@pytest.mark.parametrize("config", CONFIGS[::4], ids=_config_id)
def test_group_with_mixed_dtypes(config):
    name, kwargs = config
    gen = torch.Generator().manual_seed(0)
    params_t = [
        torch.randn(4, 3, dtype=torch.float64, generator=gen).requires_grad_(),
        torch.randn(5, dtype=torch.float32, generator=gen).requires_grad_(),
        torch.randn(2, dtype=torch.float64, generator=gen).requires_grad_(),
    ]
    params_d = [p.detach().clone().requires_grad_() for p in params_t]
    opt_t = getattr(torch.optim, name)(params_t, **kwargs)
    opt_d = getattr(dl, name)(params_d, **kwargs)
    _feed_random_gradients([(params_t, opt_t), (params_d, opt_d)])
    for a, b in zip(params_d, params_t):
        assert a.dtype == b.dtype
        rtol = FLOAT64_RTOL if a.dtype == torch.float64 else FLOAT32_RTOL
        assert max_relative_error(a.detach(), b.detach()) <= rtol


@pytest.mark.parametrize("config", CONFIGS[1::4], ids=_config_id)
def test_non_contiguous_parameters(config):
    name, kwargs = config
    gen = torch.Generator().manual_seed(0)
    transposed = torch.randn(4, 6, dtype=torch.float64, generator=gen)
    bias = torch.randn(3, dtype=torch.float64, generator=gen)
    # the first parameter is a transposed view: not contiguous (no flat fast path)
    params_t = [nn.Parameter(transposed.clone().t()), nn.Parameter(bias.clone())]
    params_d = [nn.Parameter(transposed.clone().t()), nn.Parameter(bias.clone())]
    assert not params_d[0].is_contiguous()
    opt_t = getattr(torch.optim, name)(params_t, **kwargs)
    opt_d = getattr(dl, name)(params_d, **kwargs)
    _feed_random_gradients([(params_t, opt_t), (params_d, opt_d)])
    for a, b in zip(params_d, params_t):
        assert max_relative_error(a.detach(), b.detach()) <= FLOAT64_RTOL


@pytest.mark.parametrize("name,kwargs", [("Adam", dict(lr=0.01)), ("RMSprop", dict(lr=0.01))])
def test_complex_parameters_are_refused_clearly(name, kwargs):
    """torch.optim treats a complex parameter as pairs of reals; descentlab refuses it
    rather than run the real-valued rules on it (v = g·g is not |g|²)."""
    param = torch.randn(6, dtype=torch.complex128).requires_grad_()
    with pytest.raises(ValueError, match="complex parameters"):
        getattr(dl, name)([param], **kwargs)


@pytest.mark.parametrize("name", ["SGD"])  # torch.optim.RMSprop itself fails on this edit
def test_momentum_switched_on_mid_run(name):
    model_t = make_mlp()
    model_d = twin(model_t)
    x, y = make_data()
    opt_t = getattr(torch.optim, name)(model_t.parameters(), lr=0.01)
    opt_d = getattr(dl, name)(model_d.parameters(), lr=0.01)
    for k in range(40):
        if k == 20:
            for opt in (opt_t, opt_d):
                opt.param_groups[0]["momentum"] = 0.9
        set_grads_from(model_t, model_d, x=batch(k, x, y)[0], y=batch(k, x, y)[1])
        opt_t.step()
        opt_d.step()
    assert_params_close(model_d, model_t)


def test_named_parameters_like_torch():
    model_t = make_mlp()
    model_d = twin(model_t)
    x, y = make_data()
    opt_t = torch.optim.AdamW(model_t.named_parameters(), lr=0.01)
    opt_d = dl.AdamW(model_d.named_parameters(), lr=0.01)
    assert opt_d.param_groups[0]["param_names"] == opt_t.param_groups[0]["param_names"]
    for k in range(30):
        set_grads_from(model_t, model_d, x=batch(k, x, y)[0], y=batch(k, x, y)[1])
        opt_t.step()
        opt_d.step()
    assert_params_close(model_d, model_t)
    names = opt_d.state_dict()["param_groups"][0]["param_names"]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_asgd_averaged_parameters_are_torchs_ax():
    model_t, model_d, opt_t, opt_d = run_side_by_side("ASGD", dict(lr=0.05, t0=10.0))
    params_t = list(model_t.parameters())
    for avg, p_t in zip(opt_d.averaged_parameters(), params_t):
        assert max_relative_error(avg, opt_t.state[p_t]["ax"]) <= FLOAT64_RTOL
    before = [p.detach().clone() for p in model_d.parameters()]
    with opt_d.swap_averaged():
        for p_d, p_t in zip(model_d.parameters(), params_t):
            assert max_relative_error(p_d.detach(), opt_t.state[p_t]["ax"]) <= FLOAT64_RTOL
    assert all(torch.equal(a, b) for a, b in zip(before, model_d.parameters()))


@pytest.fixture
def default_float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize(
    "config", [("Adam", dict(lr=0.01)), ("NAdam", dict(lr=0.01)), ("ASGD", dict(t0=5.0))], ids=_config_id
)
def test_scalar_state_dtype_follows_torch_under_float64_default(config, default_float64):
    name, kwargs = config
    model_t, model_d, opt_t, opt_d = run_side_by_side(name, kwargs, steps=20)
    assert_params_close(model_d, model_t)
    for p_t, p_d in zip(model_t.parameters(), model_d.parameters()):
        for key, value in opt_t.state[p_t].items():
            assert opt_d.state[p_d][key].dtype == value.dtype, key


def test_foreach_is_accepted_changes_nothing_and_says_so_once(monkeypatch):
    import warnings

    from descentlab.optim import chain_optimizer

    monkeypatch.setattr(chain_optimizer, "_WARNED", set())
    x, y = make_data()
    trajectories = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for flags in ({}, {"foreach": True}, {"foreach": False}):
            model = make_mlp()
            opt = dl.RMSprop(model.parameters(), lr=0.01, **flags)
            for _ in range(5):
                opt.zero_grad()
                loss_fn(model, x, y).backward()
                opt.step()
            trajectories.append([p.detach().clone() for p in model.parameters()])
    messages = [str(w.message) for w in caught if "has no effect" in str(w.message)]
    assert len(messages) == 1 and "foreach=True" in messages[0]  # once for the whole process
    for other in trajectories[1:]:
        assert all(torch.equal(a, b) for a, b in zip(trajectories[0], other))
    for flag in ("capturable", "differentiable"):
        with pytest.raises(ValueError, match=flag):
            dl.Adam(make_mlp().parameters(), **{flag: True})


def test_asgd_average_of_a_parameter_that_never_stepped_is_the_parameter():
    torch.manual_seed(0)
    model = TwoBranch().double()
    x, y = make_data()
    opt = dl.ASGD(model.parameters(), lr=0.05, t0=1.0)
    for _ in range(5):
        opt.zero_grad()
        ((model(x, False) - y) ** 2).mean().backward()
        opt.step()
    frozen = model.unused.weight.detach().clone()
    averages = dict(zip(map(id, model.parameters()), opt.averaged_parameters()))
    assert torch.equal(averages[id(model.unused.weight)], frozen)
    with opt.swap_averaged():
        assert torch.equal(model.unused.weight, frozen)  # not replaced by an empty average
        assert torch.equal(model.trunk.weight, averages[id(model.trunk.weight)])
