"""Clipping functions and transforms against torch.nn.utils (+ torch.optim.SGD) and NumPy."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from descentlab.clipping import NonFiniteError, clip_by_global_norm, clip_by_param_norm, clip_by_value
from descentlab.optim import ChainOptimizer, from_chain
from descentlab.transforms import (
    ClipByGlobalNorm,
    ClipByParamNorm,
    ClipByValue,
    Momentum,
    ScaleByAdam,
    ScaleByLearningRate,
    chain,
)


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def data(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(16, 5, generator=g, dtype=torch.float64), torch.randn(
        16, 3, generator=g, dtype=torch.float64
    )


def backward(model, scale=30.0):
    x, y = data()
    (scale * nn.functional.mse_loss(model(x), y)).backward()


def grads(model):
    return [p.grad.detach().numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_by_global_norm_matches_torch(norm_type, max_norm):
    ours, theirs = make_model(), make_model()
    backward(ours)
    backward(theirs)
    raw = grads(ours)
    norm = clip_by_global_norm(ours.parameters(), max_norm, norm_type=norm_type)
    ref_norm = nn.utils.clip_grad_norm_(theirs.parameters(), max_norm, norm_type=norm_type)
    flat = np.concatenate([g.ravel() for g in raw])
    assert norm.item() == pytest.approx(np.linalg.norm(flat, ord=norm_type), rel=1e-12)
    assert norm.item() == pytest.approx(ref_norm.item(), rel=1e-12)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=0)
    clipped = np.concatenate([g.ravel() for g in grads(ours)])
    assert np.linalg.norm(clipped, ord=norm_type) <= max_norm * (1 + 1e-12)


def test_clip_by_value_matches_torch_and_returns_the_pre_clip_norm():
    ours, theirs = make_model(), make_model()
    backward(ours)
    backward(theirs)
    raw = grads(ours)
    norm = clip_by_value(ours.parameters(), 0.05)
    nn.utils.clip_grad_value_(theirs.parameters(), 0.05)
    assert norm.item() == pytest.approx(np.sqrt(sum((g**2).sum() for g in raw)), rel=1e-12)
    for a, b, g in zip(ours.parameters(), theirs.parameters(), raw):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)
        np.testing.assert_array_equal(a.grad.numpy(), np.clip(g, -0.05, 0.05))


def test_clip_by_param_norm_against_numpy():
    model = make_model()
    backward(model)
    raw = grads(model)
    norms = clip_by_param_norm(model.parameters(), 10.0)
    for g, after, n in zip(raw, grads(model), norms):
        assert n.item() == pytest.approx(np.linalg.norm(g.ravel()), rel=1e-12)
        np.testing.assert_allclose(after, g * min(1.0, 10.0 / (np.linalg.norm(g.ravel()) + 1e-6)), rtol=1e-12)
    assert (norms > 10.0).any() and (norms < 10.0).any()  # the test clips some, not all


def _poison(model):
    next(model.parameters()).grad[0, 0] = float("nan")


@pytest.mark.parametrize("clip", [clip_by_global_norm, clip_by_value, clip_by_param_norm])
def test_nonfinite_raise_skip_or_ignore(clip):
    model = make_model()
    backward(model)
    _poison(model)
    before = grads(model)
    with pytest.raises(NonFiniteError, match="nonfinite='skip'"):
        clip(model.parameters(), 0.5)
    for a, b in zip(before, grads(model)):
        np.testing.assert_array_equal(a, b)  # untouched when raising

    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    params_before = [p.detach().clone() for p in model.parameters()]
    norm = clip(model.parameters(), 0.5, nonfinite="skip")
    assert not torch.isfinite(norm).all()
    opt.step()  # no gradients left: the step is skipped
    assert all(p.grad is None for p in model.parameters())
    for a, b in zip(params_before, model.parameters()):
        assert torch.equal(a, b)
    assert len(opt.state) == 0

    backward(model)
    _poison(model)
    clip(model.parameters(), 0.5, nonfinite=None)  # torch's default: no check
    assert model[0].weight.grad is not None


def test_overflowing_float32_norm_is_nonfinite_too():
    p = nn.Parameter(torch.zeros(4))
    p.grad = torch.full((4,), 1e30)
    with pytest.raises(NonFiniteError):
        clip_by_global_norm([p], 1.0)


def run_torch(model, steps, clip_fn, lr=0.05, momentum=0.9):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for _ in range(steps):
        opt.zero_grad()
        backward(model)
        clip_fn(model)
        opt.step()
    return model


def run_chain(model, steps, clip_transform, lr=0.05, momentum=0.9):
    opt = from_chain(
        model.parameters(), chain(clip_transform, Momentum(), ScaleByLearningRate()), lr=lr, momentum=momentum
    )
    for _ in range(steps):
        opt.zero_grad()
        backward(model)
        opt.step()
    return model


def _per_param(model, c):
    for p in model.parameters():
        nn.utils.clip_grad_norm_([p], c)


CHAIN_CASES = {
    "global-norm": (ClipByGlobalNorm(max_norm=0.5), lambda m: nn.utils.clip_grad_norm_(m.parameters(), 0.5)),
    "value": (ClipByValue(clip_value=0.02), lambda m: nn.utils.clip_grad_value_(m.parameters(), 0.02)),
    "param-norm": (ClipByParamNorm(max_param_norm=0.2), lambda m: _per_param(m, 0.2)),
}


@pytest.mark.parametrize("case", sorted(CHAIN_CASES))
def test_clipping_transform_in_a_chain_matches_torch_clip_plus_sgd(case):
    transform, torch_clip = CHAIN_CASES[case]
    ours = run_chain(make_model(), 25, transform)
    theirs = run_torch(make_model(), 25, torch_clip)
    unclipped = run_torch(make_model(), 25, lambda m: None)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert any(not torch.allclose(a, c) for a, c in zip(theirs.parameters(), unclipped.parameters()))


def test_clip_by_global_norm_transform_nonfinite_flag():
    model = make_model()
    rule = chain(
        ClipByGlobalNorm(max_norm=0.5, error_if_nonfinite=True), ScaleByAdam(), ScaleByLearningRate()
    )
    opt = from_chain(model.parameters(), rule, lr=0.01)
    backward(model)
    _poison(model)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(FloatingPointError, match="not finite"):
        opt.step()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    # the optimizer-level policy skips such steps instead
    skipping = ChainOptimizer(model.parameters(), rule, nonfinite="skip", lr=0.01)
    skipping.step()
    assert skipping.skipped_steps == 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda ps: clip_by_global_norm(ps, 0.0), "max_norm"),
        (lambda ps: clip_by_global_norm(ps, -1.0), "max_norm"),
        (lambda ps: clip_by_value(ps, float("inf")), "clip_value"),
        (lambda ps: clip_by_param_norm(ps, 1.0, norm_type=0), "norm_type"),
        (lambda ps: clip_by_global_norm(ps, 1.0, nonfinite="ignore"), "nonfinite"),
        (lambda ps: ClipByGlobalNorm(max_norm=1.0, error_if_nonfinite="yes"), "error_if_nonfinite"),
        (lambda ps: ClipByValue(clip_value=-2.0), "clip_value"),
    ],
)
def test_bad_arguments(call, match):
    model = make_model()
    backward(model)
    with pytest.raises(ValueError, match=match):
        call(model.parameters())


def test_options_are_checked_even_without_gradients_and_inf_is_a_norm_type():
    model = make_model()  # no backward: nothing to clip, but the options are still checked
    with pytest.raises(ValueError, match="norm_type"):
        clip_by_global_norm(model.parameters(), 1.0, norm_type=-2)
    with pytest.raises(ValueError, match=r"parameters\[0\] must be a tensor"):
        clip_by_value([1.0], 1.0)
    backward(model)
    grads = [p.grad.clone() for p in model.parameters()]
    total = clip_by_global_norm(model.parameters(), 1e9, norm_type=math.inf)
    assert total == max(g.abs().max() for g in grads)
