"""Property tests (hypothesis) on the algebra of transforms."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import descentlab.optim as dl
from _optim_helpers import (
    loss_fn,
    make_data,
    make_mlp,
)
from descentlab.transforms import (
    AddWeightDecay,
    ClipByGlobalNorm,
    ClipByParamNorm,
    ClipByValue,
    Context,
    Maximize,
    Momentum,
    ScaleByAdaGrad,
    ScaleByAdam,
    ScaleByLearningRate,
    ScaleByLocalGains,
    ScaleByRms,
    chain,
)

# Transforms that can share one chain (distinct state keys, compatible defaults).
POOL = {
    "maximize": lambda: Maximize(maximize=True),
    "weight_decay": lambda: AddWeightDecay(weight_decay=0.01),
    "clip_value": lambda: ClipByValue(clip_value=0.5),
    "clip_global": lambda: ClipByGlobalNorm(max_norm=1.0),
    "clip_param": lambda: ClipByParamNorm(max_param_norm=0.8),
    "rms": lambda: ScaleByRms(alpha=0.9, eps=1e-8),
    "momentum": lambda: Momentum(momentum=0.9, nesterov=True),
    "adam": lambda: ScaleByAdam(amsgrad=True, eps=1e-8),
    "adagrad": lambda: ScaleByAdaGrad(eps=1e-8),
    "gains": lambda: ScaleByLocalGains(),
    "lr": lambda: ScaleByLearningRate(lr=0.01, lr_decay=0.01),
}

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

names_strategy = st.lists(st.sampled_from(sorted(POOL)), min_size=0, max_size=6, unique=True)
SHAPES = [(3, 4), (4,), (2, 2, 2)]


def bit_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equality that also accepts NaN at the same places."""
    return a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


def _params(seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_() for s in SHAPES]


def _gradient(step: int, shapes=SHAPES) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + step)
    return [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]


def _run(opt, params, start: int, steps: int, missing: frozenset = frozenset()) -> None:
    """``steps`` steps with a fixed gradient sequence; parameter i gets no gradient at the
    steps listed in ``missing`` as (step, i) pairs."""
    for k in range(start, start + steps):
        for i, (p, g) in enumerate(zip(params, _gradient(k))):
            p.grad = None if (k, i) in missing else g.clone()
        opt.step()


def _build(names) -> list:
    return [POOL[n]() for n in names]


def _initial_state(rule, param, hp):
    state = rule.init_state(param, hp)
    state.update({k: torch.tensor(v, dtype=torch.float64) for k, v in rule.init_scalars(hp).items()})
    return state


@given(names=names_strategy, cuts=st.tuples(st.integers(0, 6), st.integers(0, 6)))
@SETTINGS
def test_chain_is_associative(names, cuts):
    """Every grouping of the same transforms is the same chain, and running its three parts one
    after the other (each through the runner, with its own state) gives the whole chain's steps."""
    i, j = sorted(min(c, len(names)) for c in cuts)
    t = _build(names)
    groupings = [
        chain(*t),
        chain(chain(*t[:i]), chain(*t[i:j]), *t[j:]),
        chain(*t[:i], chain(*t[i:j], chain(*t[j:]))),
        chain(chain(chain(*t[:i]), *t[i:j]), chain(*t[j:])),
    ]
    assert all(rule.leaves == tuple(t) for rule in groupings)
    whole, parts = groupings[0], [chain(*t[:i]), chain(*t[i:j]), chain(*t[j:])]
    hp = whole.defaults
    param = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    state_whole = _initial_state(whole, param, hp)
    state_parts = [_initial_state(part, param, hp) for part in parts]
    for k in range(1, 6):
        u = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
        by_parts = u
        for part, state in zip(parts, state_parts):
            by_parts = part.update(by_parts, state, Context(hp, k, param=param))
        assert bit_equal(whole.update(u, state_whole, Context(hp, k, param=param)), by_parts)


@given(names=names_strategy)
@SETTINGS
def test_empty_chain_is_the_identity(names):
    # chain() maps updates to themselves ...
    u = torch.randn(5, dtype=torch.float64)
    out = chain().update(u, {}, Context({}, 1, param=torch.zeros(5)))
    assert torch.equal(out, u)
    # ... so the optimizer of chain() takes the step w ← w − g ...
    params = _params()
    start = [p.detach().clone() for p in params]
    _run(dl.from_chain(params, chain()), params, 0, 1)
    assert all(torch.equal(p, w - g) for p, w, g in zip(params, start, _gradient(0)))
    # ... and inserting it anywhere in a chain changes nothing.
    results = []
    for rule in (chain(*_build(names)), chain(chain(), *_build(names), chain(chain()))):
        params = _params()
        _run(dl.from_chain(params, rule), params, 0, 5)
        results.append(params)
    assert all(bit_equal(a, b) for a, b in zip(*results))


@given(names=names_strategy.filter(lambda n: len(n) >= 2), split=st.integers(1, 5))
@SETTINGS
def test_chain_composes_left_to_right(names, split):
    """chain(a, b)(u) = b(a(u)): compare with calling the two halves by hand."""
    split = min(split, len(names) - 1)
    hp = chain(*_build(names)).defaults
    left, right = chain(*_build(names[:split])), chain(*_build(names[split:]))
    whole = chain(*_build(names))
    param = torch.randn(6, dtype=torch.float64)
    state_whole = whole.init_state(param, hp)
    state_whole.update({k: torch.tensor(v, dtype=torch.float64) for k, v in whole.init_scalars(hp).items()})
    state_left, state_right = left.init_state(param, hp), right.init_state(param, hp)
    for k in range(1, 5):
        u = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
        by_hand = right.update(left.update(u, state_left, Context(hp, k, param=param)), state_right,
                               Context(hp, k, param=param))
        assert bit_equal(whole.update(u, state_whole, Context(hp, k, param=param)), by_hand)


@given(
    names=names_strategy,
    first=st.integers(1, 6),
    second=st.integers(1, 6),
    missing=st.frozensets(st.tuples(st.integers(0, 11), st.integers(0, 2)), max_size=6),
    via_bytes=st.booleans(),
)
# found by hypothesis: the original continues per parameter (its step counts differ after
# the missing gradient) while the restored copy runs one flat buffer; the global norm must
# not depend on that
@example(names=["clip_global"], first=1, second=1, missing=frozenset({(0, 0)}), via_bytes=False)
@SETTINGS
def test_state_dict_round_trip_mid_run_is_bit_identical(names, first, second, missing, via_bytes):
    params = _params()
    opt = dl.from_chain(params, chain(*_build(names)))
    _run(opt, params, 0, first, missing)
    checkpoint = copy.deepcopy(opt.state_dict())
    if via_bytes:
        import io

        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        buffer.seek(0)
        checkpoint = torch.load(buffer, weights_only=True)
    restored_params = [p.detach().clone().requires_grad_() for p in params]
    restored = dl.from_chain(restored_params, chain(*_build(names)))
    restored.load_state_dict(checkpoint)
    _run(opt, params, first, second, missing)
    _run(restored, restored_params, first, second, missing)
    assert all(bit_equal(a, b) for a, b in zip(params, restored_params))


def test_from_chain_rmsprop_nesterov_clipping_trains_an_mlp():
    model = make_mlp()
    x, y = make_data()
    rule = chain(
        ClipByGlobalNorm(max_norm=1.0),
        ScaleByRms(alpha=0.9),
        Momentum(momentum=0.9, nesterov=True),
        ScaleByLearningRate(lr=1e-2),
    )
    opt = dl.from_chain(model.parameters(), rule)
    assert isinstance(opt, torch.optim.Optimizer)
    first = loss_fn(model, x, y).item()
    for _ in range(60):
        opt.zero_grad()
        loss_fn(model, x, y).backward()
        opt.step()
    assert loss_fn(model, x, y).item() < 0.7 * first
    assert set(opt.state[model[0].weight]) == {"square_avg", "momentum_buffer"}


def _two_momenta_reference(grads, betas, lr):
    """NumPy transcription: two velocity-form momenta in sequence, then w ← w − η·p₂
    (p_k ← β p_k + u, p_k = u at the first step, as torch.optim.SGD)."""
    w = np.zeros_like(grads[0])
    velocities = [None, None]
    for g in grads:
        u = g
        for i, beta in enumerate(betas):
            velocities[i] = u.copy() if velocities[i] is None else beta * velocities[i] + u
            u = velocities[i]
        w = w - lr * u
    return w


def _rms_twice_reference(grads, alphas, eps, lr):
    w, averages = np.zeros_like(grads[0]), [np.zeros_like(grads[0]) for _ in alphas]
    for g in grads:
        u = g
        for i, alpha in enumerate(alphas):
            averages[i] = alpha * averages[i] + (1 - alpha) * u * u
            u = u / (np.sqrt(averages[i]) + eps)
        w = w - lr * u
    return w


def _grads(steps, n=5):
    generator = np.random.default_rng(0)
    return [generator.standard_normal(n) for _ in range(steps)]


def test_the_same_transform_twice_gets_its_own_hyperparameters_and_state():
    grads = _grads(12)
    rule = chain(Momentum(momentum=0.9), Momentum(momentum=0.5), ScaleByLearningRate(lr=0.1))
    assert rule.defaults["momentum:0"] == 0.9 and rule.defaults["momentum:1"] == 0.5
    assert "momentum" not in rule.defaults and rule.defaults["dampening"] == 0.0  # same default: shared
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = dl.from_chain([w], rule)
    for g in grads:
        w.grad = torch.from_numpy(g)
        opt.step()
    assert sorted(opt.state[w]) == ["momentum_buffer:0", "momentum_buffer:1"]
    np.testing.assert_allclose(w.detach().numpy(), _two_momenta_reference(grads, (0.9, 0.5), 0.1), rtol=1e-12)


def test_two_moving_averages_with_different_betas():
    grads = _grads(10)
    rule = chain(ScaleByRms(alpha=0.9), ScaleByRms(alpha=0.5), ScaleByLearningRate(lr=0.01))
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = dl.from_chain([w], rule)
    for g in grads:
        w.grad = torch.from_numpy(g)
        opt.step()
    expected = _rms_twice_reference(grads, (0.9, 0.5), 1e-8, 0.01)
    np.testing.assert_allclose(w.detach().numpy(), expected, rtol=1e-12)


def test_namespaced_hyperparameters_are_addressed_by_their_keys():
    grads = _grads(8)
    rule = chain(Momentum(momentum=0.9), Momentum(momentum=0.5), ScaleByLearningRate(lr=0.1))
    with pytest.raises(TypeError, match="momentum:0"):
        dl.from_chain([torch.zeros(5, requires_grad=True)], rule, momentum=0.3)  # ambiguous: refused
    with pytest.raises(ValueError, match="momentum"):
        dl.from_chain([torch.zeros(5, requires_grad=True)], rule, **{"momentum:1": 1.5})
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = dl.from_chain([w], rule, **{"momentum:1": 0.2})
    for k, g in enumerate(grads):
        if k == 4:
            opt.param_groups[0]["momentum:0"] = 0.9  # (unchanged) hand edits read at every step
        w.grad = torch.from_numpy(g)
        opt.step()
    np.testing.assert_allclose(w.detach().numpy(), _two_momenta_reference(grads, (0.9, 0.2), 0.1), rtol=1e-12)
    assert rule.namespaces()[1] == ({"momentum": "momentum:1"}, {"momentum_buffer": "momentum_buffer:1"})


def test_namespaced_state_round_trips_through_a_checkpoint():
    rule = lambda: chain(Momentum(momentum=0.9), Momentum(momentum=0.5), ScaleByLearningRate(lr=0.1))  # noqa: E731
    params = _params()
    opt = dl.from_chain(params, rule())
    _run(opt, params, 0, 3)
    restored_params = [p.detach().clone().requires_grad_() for p in params]
    restored = dl.from_chain(restored_params, rule())
    restored.load_state_dict(copy.deepcopy(opt.state_dict()))
    _run(opt, params, 3, 3)
    _run(restored, restored_params, 3, 3)
    assert all(bit_equal(a, b) for a, b in zip(params, restored_params))


def test_chain_takes_only_transforms():
    with pytest.raises(TypeError):
        chain(lambda u: u)


def test_every_transform_declares_the_state_it_keeps():
    """state_keys (what the chain namespaces) covers init_state/init_scalars, with every option on."""
    import descentlab.transforms as T

    options_on = {"momentum": 0.9, "amsgrad": True, "centered": True}
    param = torch.zeros(3)
    for name in T.__all__:
        cls = getattr(T, name)
        if not (isinstance(cls, type) and issubclass(cls, T.Transform)) or cls in (T.Transform, T.Chain):
            continue
        rule = cls()
        hp = {**rule.defaults, **{k: v for k, v in options_on.items() if k in rule.defaults}}
        kept = set(rule.init_state(param, hp)) | set(rule.init_scalars(hp))
        assert kept <= set(rule.state_keys), (name, kept - set(rule.state_keys))
        if rule.state_depends_on is not None:  # the other hyperparameters never change which keys exist
            baseline = set(rule.init_state(param, rule.defaults)) | set(rule.init_scalars(rule.defaults))
            toggled = {**rule.defaults, **{k: v for k, v in options_on.items() if k in rule.state_depends_on}}
            assert set(rule.init_state(param, toggled)) | set(rule.init_scalars(toggled)) >= baseline
