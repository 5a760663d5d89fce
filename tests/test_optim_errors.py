"""Bad input: invalid hyperparameters, bad parameter lists, sparse and non-finite gradients."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

import descentlab.optim as dl
from _optim_helpers import (
    loss_fn,
    make_data,
    make_mlp,
)
from descentlab.optim import NonFiniteError
from descentlab.transforms import (
    ClipByGlobalNorm,
    ClipByParamNorm,
    ClipByValue,
    ScaleByAdam,
    ScaleByLearningRate,
    chain,
)

NAN, INF = math.nan, math.inf

# (optimizer, kwargs, parameter name as it must appear, allowed range as it must appear)
INVALID: list[tuple[str, dict, str, str]] = []
for _name in ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam", "Rprop", "ASGD",
              "Lion", "HeavyBall", "DeltaBarDelta"]:
    for _bad in (-0.1, NAN, INF, -INF):
        INVALID.append((_name, dict(lr=_bad), "lr", "[0, inf]"))
for _name in ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam", "ASGD", "Lion",
              "HeavyBall"]:
    INVALID.append((_name, dict(weight_decay=-1e-3), "weight_decay", "[0, inf]"))
    INVALID.append((_name, dict(weight_decay=NAN), "weight_decay", "[0, inf]"))
for _name in ["Adam", "AdamW", "Adamax", "NAdam", "Lion"]:
    for _betas, _which in [((-0.1, 0.9), "betas[0]"), ((1.0, 0.9), "betas[0]"), ((0.9, 1.0), "betas[1]"),
                           ((0.9, 1.5), "betas[1]"), ((0.9, -0.5), "betas[1]"), ((NAN, 0.9), "betas[0]")]:
        INVALID.append((_name, dict(betas=_betas), _which, "[0, 1)"))
for _name in ["Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam"]:
    for _eps in (0.0, -1e-8, NAN):
        INVALID.append((_name, dict(eps=_eps), "eps", "(0, inf]"))
INVALID += [
    ("SGD", dict(momentum=-0.5), "momentum", "[0, 1)"),
    ("SGD", dict(momentum=1.0), "momentum", "[0, 1)"),
    ("SGD", dict(momentum=0.9, dampening=-0.1), "dampening", "[0, 1]"),
    ("SGD", dict(momentum=0.9, dampening=1.5), "dampening", "[0, 1]"),
    ("SGD", dict(nesterov=True), "nesterov", "momentum in (0, 1)"),
    ("SGD", dict(momentum=0.9, dampening=0.5, nesterov=True), "nesterov", "dampening = 0"),
    ("RMSprop", dict(momentum=-0.1), "momentum", "[0, 1)"),
    ("RMSprop", dict(alpha=1.0), "alpha", "[0, 1)"),
    ("RMSprop", dict(alpha=-0.1), "alpha", "[0, 1)"),
    ("RMSprop", dict(nesterov=True), "nesterov", "momentum in (0, 1)"),
    ("Adagrad", dict(lr_decay=-0.1), "lr_decay", "[0, inf]"),
    ("Adagrad", dict(initial_accumulator_value=-0.1), "initial_accumulator_value", "[0, inf]"),
    ("Adadelta", dict(rho=1.1), "rho", "[0, 1]"),
    ("Adadelta", dict(rho=-0.1), "rho", "[0, 1]"),
    ("NAdam", dict(momentum_decay=-0.1), "momentum_decay", "[0, inf]"),
    ("Rprop", dict(etas=(0.0, 1.2)), "eta_minus", "(0, 1)"),
    ("Rprop", dict(etas=(1.0, 1.2)), "eta_minus", "(0, 1)"),
    ("Rprop", dict(etas=(-0.5, 1.2)), "eta_minus", "(0, 1)"),
    ("Rprop", dict(etas=(0.5, 1.0)), "eta_plus", "(1, inf]"),
    ("Rprop", dict(etas=(0.5, 0.8)), "eta_plus", "(1, inf]"),
    ("Rprop", dict(step_sizes=(-1.0, 50.0)), "step_sizes[0]", "[0, inf]"),
    ("Rprop", dict(step_sizes=(1.0, 0.5)), "step_sizes[1]", "[1, inf]"),
    ("ASGD", dict(lambd=-1.0), "lambd", "[0, inf]"),
    ("ASGD", dict(alpha=-1.0), "alpha", "[0, inf]"),
    ("ASGD", dict(t0=-1.0), "t0", "[0, inf]"),
    ("HeavyBall", dict(momentum=1.0), "momentum", "[0, 1)"),
    ("HeavyBall", dict(momentum=-0.2), "momentum", "[0, 1)"),
    ("DeltaBarDelta", dict(delta=0.0), "delta", "(0, 1)"),
    ("DeltaBarDelta", dict(delta=1.0), "delta", "(0, 1)"),
    ("DeltaBarDelta", dict(gain_bounds=(0.0, 10.0)), "gain_bounds[0]", "(0, 1]"),
    ("DeltaBarDelta", dict(gain_bounds=(1.5, 10.0)), "gain_bounds[0]", "(0, 1]"),
    ("DeltaBarDelta", dict(gain_bounds=(0.1, 0.9)), "gain_bounds[1]", "[1, inf]"),
    ("DeltaBarDelta", dict(gain_bounds=(0.1, NAN)), "gain_bounds[1]", "[1, inf]"),
    ("DeltaBarDelta", dict(momentum=1.0), "momentum", "[0, 1)"),
]


def _value_text(kwargs: dict) -> list[str]:
    """Spellings of the offending value(s) one of which the message must contain."""
    texts = []
    for value in kwargs.values():
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, bool):
                continue
            texts += [repr(item), str(float(item)), f"{float(item):g}"]
    return texts


@pytest.mark.parametrize(
    "name,kwargs,param,allowed",
    INVALID,
    ids=[f"{n}-{k}" for n, k, _, _ in INVALID],
)
def test_invalid_hyperparameter_raises_value_error_naming_it(name, kwargs, param, allowed):
    model = make_mlp()
    with pytest.raises(ValueError) as info:
        getattr(dl, name)(model.parameters(), **kwargs)
    message = str(info.value)
    assert param in message, message
    assert allowed in message, message
    values = _value_text(kwargs)
    assert not values or any(v in message for v in values), message


@pytest.mark.parametrize(
    "name,kwargs,param,allowed", INVALID[::7], ids=[f"{n}-{k}" for n, k, _, _ in INVALID[::7]]
)
def test_invalid_hyperparameter_in_an_added_group(name, kwargs, param, allowed):
    model = make_mlp()
    opt = getattr(dl, name)(model[0].parameters())
    with pytest.raises(ValueError, match=re.escape(param)):
        opt.add_param_group({"params": model[2].parameters(), **kwargs})
    with pytest.raises(ValueError, match=re.escape(param)):
        getattr(dl, name)([{"params": model[0].parameters()}, {"params": model[2].parameters(), **kwargs}])


@pytest.mark.parametrize(
    "transform,param",
    [
        (lambda: ClipByValue(clip_value=0.0), "clip_value"),
        (lambda: ClipByGlobalNorm(max_norm=-1.0), "max_norm"),
        (lambda: ClipByParamNorm(max_param_norm=NAN), "max_param_norm"),
        (lambda: ScaleByAdam(eps=-1.0), "eps"),
        (lambda: ScaleByAdam(efficient=True, eps=0.0), "eps"),
        (lambda: ScaleByLearningRate(lr=INF), "lr"),
    ],
)
def test_invalid_transform_hyperparameter(transform, param):
    with pytest.raises(ValueError, match=re.escape(param)):
        transform()


def test_unknown_hyperparameter_is_a_type_error():
    model = make_mlp()
    with pytest.raises(TypeError, match="momentun"):
        dl.from_chain(model.parameters(), chain(ScaleByLearningRate()), momentun=0.9)


def test_nonfinite_policy_must_be_known():
    with pytest.raises(ValueError, match="nonfinite"):
        dl.Adam(make_mlp().parameters(), nonfinite="ignore")


@pytest.mark.parametrize("name", ["SGD", "Adam", "Lion", "DeltaBarDelta"])
def test_empty_parameter_list(name):
    with pytest.raises(ValueError, match="empty"):
        getattr(dl, name)([])


def test_parameter_in_two_groups():
    model = make_mlp()
    with pytest.raises(ValueError, match="more than one"):
        dl.Adam([{"params": model.parameters()}, {"params": model[0].parameters()}])
    opt = dl.Adam(model[0].parameters())
    with pytest.raises(ValueError, match="more than one"):
        opt.add_param_group({"params": [model[0].weight]})


@pytest.mark.parametrize("name", ["Adam", "RMSprop", "Lion", "NAdam"])
def test_sparse_gradients_raise_naming_the_optimizer(name):
    emb = nn.Embedding(10, 4, sparse=True).double()
    opt = getattr(dl, name)(emb.parameters())
    emb(torch.tensor([1, 2, 3])).sum().backward()
    assert emb.weight.grad.is_sparse
    with pytest.raises(RuntimeError, match=rf"{name}.*sparse"):
        opt.step()


# -- non-finite gradients ---------------------------------------------------------------------
@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_nonfinite_raise_names_the_parameter(bad):
    model = make_mlp()
    x, y = make_data()
    opt = dl.Adam(model.parameters(), nonfinite="raise")
    loss_fn(model, x, y).backward()
    opt.step()
    loss_fn(model, x, y).backward()
    model[2].bias.grad[1] = bad
    with pytest.raises(NonFiniteError, match=r"#3 of group 0 \(shape \(3,\)\)"):
        opt.step()


def test_nonfinite_raise_uses_parameter_names_when_given():
    model = make_mlp()
    x, y = make_data()
    opt = dl.SGD(model.named_parameters(), lr=0.1, nonfinite="raise")
    loss_fn(model, x, y).backward()
    model[0].weight.grad[0, 0] = NAN
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(NonFiniteError, match=r"'0\.weight'"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def _state_snapshot(opt):
    return {
        id(p): {k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
        for p, s in opt.state.items()
    }


def _same_snapshot(a, b) -> bool:
    return a.keys() == b.keys() and all(
        a[k].keys() == b[k].keys()
        and all(
            torch.equal(a[k][j], b[k][j]) if isinstance(a[k][j], torch.Tensor) else a[k][j] == b[k][j]
            for j in a[k]
        )
        for k in a
    )


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("SGD", dict(lr=0.05, momentum=0.9)),
        ("Adam", dict(lr=0.01, amsgrad=True)),
        ("NAdam", dict(lr=0.01)),
        ("ASGD", dict(lr=0.05, t0=2.0)),
        ("DeltaBarDelta", dict(lr=0.05, momentum=0.5)),
    ],
)
def test_nonfinite_skip_leaves_params_and_state_untouched(name, kwargs):
    model = make_mlp()
    reference = make_mlp()
    x, y = make_data()
    opt = getattr(dl, name)(model.parameters(), nonfinite="skip", **kwargs)
    ref_opt = getattr(dl, name)(reference.parameters(), **kwargs)
    for k in range(12):
        for m, o in ((model, opt), (reference, ref_opt)):
            o.zero_grad()
            loss_fn(m, x, y).backward()
        if k in (4, 7):
            # a bad gradient in one parameter only: the *whole* step is skipped
            model[2].bias.grad[0] = NAN if k == 4 else INF
            params = [p.detach().clone() for p in model.parameters()]
            state = _state_snapshot(opt)
            opt.step()
            assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))
            assert _same_snapshot(state, _state_snapshot(opt))
            continue
        opt.step()
        ref_opt.step()
    assert opt.skipped_steps == 2
    # the skipped steps left no trace: same trajectory as never having seen them
    for a, b in zip(model.parameters(), reference.parameters()):
        assert torch.equal(a, b)


def test_nonfinite_default_is_off():
    model = make_mlp()
    opt = dl.SGD(model.parameters(), lr=0.1)
    assert opt.nonfinite is None
    loss_fn(model, *make_data()).backward()
    model[0].bias.grad[0] = NAN
    opt.step()  # no check: the NaN propagates like in torch
    assert torch.isnan(model[0].bias[0])


@pytest.mark.parametrize(
    "flag", [dict(capturable=True), dict(differentiable=True)]
)
def test_unsupported_torch_flags(flag):
    with pytest.raises(ValueError, match=next(iter(flag))):
        dl.Adam(make_mlp().parameters(), **flag)
