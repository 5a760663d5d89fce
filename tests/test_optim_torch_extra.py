"""RAdam, Adafactor and Muon against torch 2.13: what tests/test_optim_vs_torch.py cannot cover.

RAdam and Adafactor are in that file's CONFIGS (trajectories, executors, state, signatures);
Muon takes only 2-D parameters, so its side-by-side runs are here, on the MLP's two weight
matrices. Also: ``state_dict`` interchange in both directions, and bad hyperparameters.
"""

from __future__ import annotations

import inspect
import math
import re

import pytest
import torch

import descentlab.optim as dl
from _optim_helpers import (
    FLOAT64_RTOL,
    assert_params_close,
    batch,
    loss_fn,
    make_data,
    make_mlp,
    max_relative_error,
    state_bytes,
    twin,
)
from test_optim_vs_torch import FLOAT32_RTOL, run_side_by_side


def weights(model):
    return [model[0].weight, model[2].weight]


MUON_CONFIGS = [
    dict(lr=0.02),
    dict(lr=0.02, nesterov=False),
    dict(lr=0.02, momentum=0.9, weight_decay=0.0),
    dict(lr=0.02, momentum=0.0),
    dict(lr=0.01, adjust_lr_fn="original", weight_decay=0.3),
    dict(lr=0.01, adjust_lr_fn="match_rms_adamw", weight_decay=0.01),
    dict(lr=0.02, ns_steps=3, ns_coefficients=(2.0, -1.5, 0.5), eps=1e-5),
]


def _id(kwargs: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults"


@pytest.mark.parametrize("fast", [None, False], ids=["auto", "runner"])
@pytest.mark.parametrize("kwargs", MUON_CONFIGS, ids=_id)
def test_muon_matches_torch_float64(kwargs, fast):
    model_t, model_d, opt_t, opt_d = run_side_by_side(
        "Muon", kwargs, groups=weights, only_descentlab={"fast": fast}
    )
    for a, b in zip(weights(model_d), weights(model_t)):
        assert max_relative_error(a.detach(), b.detach()) <= FLOAT64_RTOL
    assert not torch.equal(model_t[0].weight, make_mlp()[0].weight)
    for p_t, p_d in zip(weights(model_t), weights(model_d)):
        assert sorted(opt_d.state[p_d]) == sorted(opt_t.state[p_t]) == ["momentum_buffer"]
        buffers = opt_d.state[p_d]["momentum_buffer"], opt_t.state[p_t]["momentum_buffer"]
        assert max_relative_error(*buffers) <= 1e-9
    assert state_bytes(opt_d) <= state_bytes(opt_t)


def test_muon_matches_torch_float32():
    model_t, model_d, _, _ = run_side_by_side("Muon", dict(lr=0.02), groups=weights, dtype=torch.float32)
    for a, b in zip(weights(model_d), weights(model_t)):
        assert a.dtype == torch.float32
        # Newton–Schulz runs in bfloat16 in both: float32 rounding differences are amplified
        assert max_relative_error(a.detach(), b.detach()) <= FLOAT32_RTOL


def test_muon_signature_and_defaults_are_torchs():
    sig_t = inspect.signature(torch.optim.Muon.__init__).parameters
    sig_d = inspect.signature(dl.Muon.__init__).parameters
    for name, param in sig_t.items():
        assert name in sig_d, name
        assert sig_d[name].default == param.default, name
        assert sig_d[name].kind == param.kind, name
    model = make_mlp()
    opt_t, opt_d = torch.optim.Muon(weights(model)), dl.Muon(weights(model))
    for key, value in opt_t.defaults.items():
        assert opt_d.defaults[key] == value, key
    assert set(opt_t.param_groups[0]) <= set(opt_d.param_groups[0])


def test_muon_refuses_other_than_matrices_as_torch_does():
    model = make_mlp()
    for opt in (torch.optim.Muon, dl.Muon):
        with pytest.raises(ValueError, match="2-?D"):
            opt(model.parameters())
    opt = dl.Muon([model[0].weight])
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        opt.add_param_group({"params": [model[0].bias]})


def _interchange(name, kwargs, params_of, steps=40, switch=20):
    """Train ``switch`` steps with one library, move the state_dict to the other, continue; the
    result must equal an uninterrupted torch run."""
    x, y = make_data()
    reference = make_mlp()
    for first, second in ((torch.optim, dl), (dl, torch.optim)):
        model_ref, model = twin(reference), twin(reference)
        opt_ref = getattr(torch.optim, name)(params_of(model_ref), **kwargs)
        opt = getattr(first, name)(params_of(model), **kwargs)
        for k in range(steps):
            if k == switch:
                saved = opt.state_dict()
                opt = getattr(second, name)(params_of(model), **kwargs)
                opt.load_state_dict(saved)
            for m, o in ((model_ref, opt_ref), (model, opt)):
                o.zero_grad()
                loss_fn(m, *batch(k, x, y)).backward()
                o.step()
        assert_params_close(model, model_ref, what=f"{name}: {first.__name__} → {second.__name__}")
        assert sorted(opt.state_dict()["state"][0]) == sorted(opt_ref.state_dict()["state"][0])


@pytest.mark.parametrize("name,kwargs,params_of", [
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True), lambda m: m.parameters()),
    ("Adafactor", dict(lr=0.05, weight_decay=0.01), lambda m: m.parameters()),
    ("Muon", dict(lr=0.02), weights),
])
def test_state_dict_moves_between_torch_and_descentlab(name, kwargs, params_of):
    _interchange(name, kwargs, params_of)


def test_adafactor_keeps_factors_for_matrices_and_a_vector_for_the_rest():
    model = make_mlp()
    opt = dl.Adafactor(model.parameters())
    x, y = make_data()
    loss_fn(model, x, y).backward()
    opt.step()
    w, b = opt.state[model[0].weight], opt.state[model[0].bias]
    assert sorted(w) == ["col_var", "row_var", "step"] and sorted(b) == ["step", "variance"]
    assert w["row_var"].shape == (8, 1) and w["col_var"].shape == (1, 5)
    assert opt.describe_execution()[0]["path"] == "eager"


def test_adafactor_on_a_3d_tensor_matches_torch():
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(3, 4, 5, generator=gen, dtype=torch.float64)
    p_t, p_d = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    opt_t, opt_d = torch.optim.Adafactor([p_t], lr=0.05), dl.Adafactor([p_d], lr=0.05)
    for _ in range(50):
        g = torch.randn(3, 4, 5, generator=gen, dtype=torch.float64)
        p_t.grad, p_d.grad = g.clone(), g.clone()
        opt_t.step()
        opt_d.step()
    assert max_relative_error(p_d.detach(), p_t.detach()) <= FLOAT64_RTOL
    assert opt_d.state[p_d]["row_var"].shape == opt_t.state[p_t]["row_var"].shape == (3, 4, 1)


NAN, INF = math.nan, math.inf
INVALID = [
    ("RAdam", dict(lr=-0.1), "lr"),
    ("RAdam", dict(betas=(1.0, 0.9)), "betas[0]"),
    ("RAdam", dict(betas=(0.9, -0.1)), "betas[1]"),
    ("RAdam", dict(eps=0.0), "eps"),
    ("RAdam", dict(weight_decay=-1.0), "weight_decay"),
    ("RAdam", dict(maximize="yes"), "maximize"),
    ("Adafactor", dict(lr=NAN), "lr"),
    ("Adafactor", dict(beta2_decay=0.5), "beta2_decay"),
    ("Adafactor", dict(eps=(-1.0, 1e-3)), "eps[0]"),
    ("Adafactor", dict(eps=(None, -1e-3)), "eps[1]"),
    ("Adafactor", dict(eps=1e-3), "eps"),
    ("Adafactor", dict(d=0.5), "d"),
    ("Adafactor", dict(weight_decay=-0.1), "weight_decay"),
    ("Muon", dict(lr=INF), "lr"),
    ("Muon", dict(momentum=1.0), "momentum"),
    ("Muon", dict(momentum=-0.5), "momentum"),
    ("Muon", dict(weight_decay=-0.1), "weight_decay"),
    ("Muon", dict(nesterov=1), "nesterov"),
    ("Muon", dict(ns_coefficients=(1.0, 2.0)), "ns_coefficients"),
    ("Muon", dict(ns_coefficients=(1.0, NAN, 2.0)), "ns_coefficients (b)"),
    ("Muon", dict(ns_steps=100), "ns_steps"),
    ("Muon", dict(ns_steps=2.5), "ns_steps"),
    ("Muon", dict(eps=0.0), "eps"),
    ("Muon", dict(adjust_lr_fn="rms"), "adjust_lr_fn"),
]


@pytest.mark.parametrize("name,kwargs,param", INVALID, ids=[f"{n}-{k}" for n, k, _ in INVALID])
def test_bad_hyperparameter_is_a_value_error_naming_it(name, kwargs, param):
    with pytest.raises(ValueError, match=re.escape(param)):
        getattr(dl, name)(weights(make_mlp()), **kwargs)
