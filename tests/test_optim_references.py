"""Independent NumPy references, written from the notes' equations and the papers.

Each reference below is a transcription of the update rule as published (the equation is
quoted in its docstring); descentlab must produce the same iterates to 1e-10 relative.
"""

from __future__ import annotations

import numpy as np
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
    twin,
)
from descentlab.transforms import (
    ClipByGlobalNorm,
    Momentum,
    NesterovLookahead,
    ScaleByAdam,
    ScaleByLearningRate,
    ScaleByRms,
    chain,
)

STEPS = 120
SHAPES = [(4, 3), (5,)]  # two tensors: 17 numbers
N = sum(int(np.prod(s)) for s in SHAPES)


# -- a smooth test objective with an analytic gradient ----------------------------------------
def _objective():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((N, N))
    a = q @ q.T / N + 0.1 * np.eye(N)  # SPD
    b = rng.standard_normal(N)
    return a, b


A, B = _objective()


def grad_f(w: np.ndarray) -> np.ndarray:
    """∇f for f(w) = ½wᵀAw + bᵀw + Σ cos(w)."""
    return A @ w + B - np.sin(w)


def noisy_gradients(steps: int, seed: int = 3) -> np.ndarray:
    """A fixed gradient sequence (persistent mean + noise: both sign cases occur)."""
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal(N)
    return mean + 0.8 * rng.standard_normal((steps, N))


def w0() -> np.ndarray:
    return np.random.default_rng(1).standard_normal(N)


def make_params(w: np.ndarray) -> list[torch.Tensor]:
    out, i = [], 0
    for shape in SHAPES:
        n = int(np.prod(shape))
        out.append(torch.tensor(w[i : i + n].reshape(shape), dtype=torch.float64, requires_grad=True))
        i += n
    return out


def flat(params) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in params]).numpy()


def set_grad(params, g: np.ndarray) -> None:
    i = 0
    for p in params:
        n = p.numel()
        p.grad = torch.tensor(g[i : i + n].reshape(p.shape), dtype=torch.float64)
        i += n


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


NOISE = 0.5 * np.random.default_rng(7).standard_normal((STEPS, N))


def noisy_grad_f(w: np.ndarray, k: int) -> np.ndarray:
    """A stochastic gradient: ∇f plus fixed noise for step k. Used for the RMS-scaled rules,
    where exact gradients → 0 near the minimum would make g/√v a ratio of two vanishing
    numbers that amplifies rounding errors far beyond 1e-10."""
    return grad_f(w) + NOISE[k]


def run_on_objective(opt, params, steps=STEPS, noisy=False):
    """descentlab iterates with gradients of the test objective at its own parameters."""
    trajectory = []
    for k in range(steps):
        w = flat(params)
        set_grad(params, noisy_grad_f(w, k) if noisy else grad_f(w))
        opt.step()
        trajectory.append(flat(params))
    return np.array(trajectory)


def run_on_sequence(opt, params, grads):
    trajectory = []
    for g in grads:
        set_grad(params, g)
        opt.step()
        trajectory.append(flat(params))
    return np.array(trajectory)


# -- Lion ------------------------------------------------------------------------------------
def lion_reference(w, grads, lr, beta1, beta2, wd):
    """Chen et al. 2023, Algorithm 2 (Lion), with decoupled weight decay::

    c_t = β₁·m_{t−1} + (1 − β₁)·g_t
    θ_t = θ_{t−1} − η_t·(sign(c_t) + λ·θ_{t−1})
    m_t = β₂·m_{t−1} + (1 − β₂)·g_t
    """
    m = np.zeros_like(w)
    out = []
    for g in grads:
        c = beta1 * m + (1 - beta1) * g
        w = w - lr * (np.sign(c) + wd * w)
        m = beta2 * m + (1 - beta2) * g
        out.append(w)
    return np.array(out)


@pytest.mark.parametrize("wd", [0.0, 0.5])
@pytest.mark.parametrize("betas", [(0.9, 0.99), (0.95, 0.98)])
def test_lion_matches_paper(betas, wd):
    grads = noisy_gradients(STEPS)
    params = make_params(w0())
    opt = dl.Lion(params, lr=3e-3, betas=betas, weight_decay=wd)
    got = run_on_sequence(opt, params, grads)
    want = lion_reference(w0(), grads, 3e-3, *betas, wd)
    assert rel_err(got, want) <= FLOAT64_RTOL


def test_lion_maximize_flips_the_gradient():
    grads = noisy_gradients(30)
    params = make_params(w0())
    got = run_on_sequence(dl.Lion(params, lr=1e-2, maximize=True), params, grads)
    assert rel_err(got, lion_reference(w0(), -grads, 1e-2, 0.9, 0.99, 0.0)) <= FLOAT64_RTOL


# -- Heavy ball -------------------------------------------------------------------------------
def heavy_ball_reference(w, lr, beta, wd=0.0, steps=STEPS):
    """Notes 000, stochastic heavy ball: w_{k+1} = w_k − γ∇L(w_k) + β(w_k − w_{k−1}), w_{−1} = w_0."""
    w_prev = w.copy()
    out = []
    for _ in range(steps):
        g = grad_f(w) + wd * w
        w, w_prev = w - lr * g + beta * (w - w_prev), w
        out.append(w)
    return np.array(out)


@pytest.mark.parametrize("beta,wd", [(0.9, 0.0), (0.5, 0.1), (0.0, 0.0)])
def test_heavy_ball_matches_notes(beta, wd):
    params = make_params(w0())
    got = run_on_objective(dl.HeavyBall(params, lr=0.05, momentum=beta, weight_decay=wd), params)
    assert rel_err(got, heavy_ball_reference(w0(), 0.05, beta, wd)) <= FLOAT64_RTOL


# -- Delta-bar-delta (local gains) ------------------------------------------------------------
def delta_bar_delta_reference(w, grads, lr, delta, lo, hi, beta):
    """Notes 000, separate adaptive learning rates (gains), combined with momentum::

    gain starts at 1 and is left unchanged at the first step (no previous gradient);
    gain_t = gain_{t−1} + δ        if g_t·g_{t−1} > 0
    gain_t = gain_{t−1}·(1 − δ)    if g_t·g_{t−1} ≤ 0;     gain_t ∈ [lo, hi]
    p_t = β·p_{t−1} + gain_t·g_t;  w_t = w_{t−1} − η·p_t
    """
    gain = np.ones_like(w)
    p = np.zeros_like(w)
    prev = None
    out = []
    for g in grads:
        if prev is not None:
            gain = np.where(g * prev > 0, gain + delta, gain * (1 - delta))
            gain = np.clip(gain, lo, hi)
        prev = g
        p = beta * p + gain * g
        w = w - lr * p
        out.append(w)
    return np.array(out), gain


@pytest.mark.parametrize(
    "delta,bounds,beta", [(0.05, (0.1, 10.0), 0.0), (0.2, (0.5, 1.5), 0.9), (0.05, (0.01, 100.0), 0.5)]
)
def test_delta_bar_delta_matches_notes(delta, bounds, beta):
    grads = noisy_gradients(STEPS)
    grads[::5, :4] = 0.0  # exact zeros: the product is 0, which the notes count as a sign change
    params = make_params(w0())
    opt = dl.DeltaBarDelta(params, lr=0.01, delta=delta, gain_bounds=bounds, momentum=beta)
    got = run_on_sequence(opt, params, grads)
    want, gain = delta_bar_delta_reference(w0(), grads, 0.01, delta, *bounds, beta)
    assert rel_err(got, want) <= FLOAT64_RTOL
    got_gain = np.concatenate([opt.state[p]["gain"].reshape(-1).numpy() for p in params])
    assert rel_err(got_gain, gain) <= FLOAT64_RTOL
    # both branches and (for tight bounds) the clipping were exercised
    assert len(np.unique(np.round(gain, 12))) > 3


def test_delta_bar_delta_leaves_gains_unchanged_at_step_one():
    params = make_params(w0())
    opt = dl.DeltaBarDelta(params, lr=0.01)
    run_on_sequence(opt, params, noisy_gradients(1))
    assert all(torch.equal(opt.state[p]["gain"], torch.ones_like(p)) for p in params)


# -- RMSprop + Nesterov -----------------------------------------------------------------------
def rmsprop_nesterov_reference(w, lr, alpha, eps, beta, steps=STEPS):
    """Notes 000 (after Hinton, lecture 6e): "rmsprop with Nesterov momentum works best if used
    to divide the correction rather than the jump". Sutskever's look-ahead form, where the
    jump β·p is not normalised and the correction (the gradient at the look-ahead point) is::

        ŵ_k     = w_k − β·p_k                         (the jump)
        g       = ∇L(ŵ_k);  v ← αv + (1 − α)g²
        p_{k+1} = β·p_k + η·g/(√v + ε)                (the normalised correction)
        w_{k+1} = w_k − p_{k+1}

    (with the stochastic gradient ``noisy_grad_f``). Returns the look-ahead points ŵ (where
    the gradients are taken: the optimizer's parameters) and the iterates w.
    """
    p = np.zeros_like(w)
    v = np.zeros_like(w)
    look, iterates = [], []
    for k in range(steps):
        w_hat = w - beta * p
        g = noisy_grad_f(w_hat, k)
        v = alpha * v + (1 - alpha) * g * g
        p = beta * p + lr * g / (np.sqrt(v) + eps)
        w = w - p
        look.append(w - beta * p)
        iterates.append(w)
    return np.array(look), np.array(iterates)


@pytest.mark.parametrize("beta", [0.9, 0.5])
def test_rmsprop_nesterov_matches_lookahead_reference(beta):
    params = make_params(w0())
    opt = dl.RMSprop(params, lr=0.01, alpha=0.9, eps=1e-6, momentum=beta, nesterov=True)
    got = run_on_objective(opt, params, noisy=True)
    look, _ = rmsprop_nesterov_reference(w0(), 0.01, 0.9, 1e-6, beta)
    assert rel_err(got, look) <= FLOAT64_RTOL


# -- Nesterov, look-ahead form ----------------------------------------------------------------
def nesterov_lookahead_reference(w, lr, beta, steps=STEPS):
    """Notes 000, Nesterov (1983) / Sutskever (2012), with γ = 1 (η inside p)::

    ŵ_k = w_k − β·p_k;   p_{k+1} = β·p_k + η·∇L(ŵ_k);   w_{k+1} = w_k − p_{k+1}
    """
    p = np.zeros_like(w)
    look, iterates = [], []
    for _ in range(steps):
        p = beta * p + lr * grad_f(w - beta * p)
        w = w - p
        look.append(w - beta * p)
        iterates.append(w)
    return np.array(look), np.array(iterates)


@pytest.mark.parametrize("beta", [0.9, 0.6])
def test_nesterov_lookahead_matches_notes(beta):
    params = make_params(w0())
    opt = dl.from_chain(params, chain(NesterovLookahead()), lr=0.02, momentum=beta)
    got_look = run_on_objective(opt, params)
    want_look, want_w = nesterov_lookahead_reference(w0(), 0.02, beta)
    assert rel_err(got_look, want_look) <= FLOAT64_RTOL
    true_w = np.concatenate(
        [NesterovLookahead.true_params(p.detach(), opt.state[p], beta).reshape(-1).numpy() for p in params]
    )
    assert rel_err(true_w, want_w[-1]) <= FLOAT64_RTOL


# -- Adam, efficient form ---------------------------------------------------------------------
def adam_efficient_reference(w, alpha, beta1, beta2, eps, steps=STEPS):
    """Notes 001 (Kingma & Ba, end of §2)::

    m_k = β₁m_{k−1} + (1 − β₁)g_k;  v_k = β₂v_{k−1} + (1 − β₂)g_k⊙g_k
    b_k = √(1 − β₂ᵏ)/(1 − β₁ᵏ);     w_{k+1} = w_k − α·b_k·m_k/(√v_k + ε)
    """
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    out = []
    for k in range(1, steps + 1):
        g = grad_f(w)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        b = np.sqrt(1 - beta2**k) / (1 - beta1**k)
        w = w - alpha * b * m / (np.sqrt(v) + eps)
        out.append(w)
    return np.array(out)


@pytest.mark.parametrize("betas,eps", [((0.9, 0.999), 1e-8), ((0.8, 0.95), 1e-3), ((0.9, 0.999), 1e-14)])
def test_efficient_adam_matches_notes(betas, eps):
    params = make_params(w0())
    rule = chain(ScaleByAdam(efficient=True), ScaleByLearningRate())
    opt = dl.from_chain(params, rule, lr=0.01, betas=betas, eps=eps)
    got = run_on_objective(opt, params)
    assert rel_err(got, adam_efficient_reference(w0(), 0.01, *betas, eps)) <= FLOAT64_RTOL


def test_efficient_adam_differs_from_standard_when_eps_matters():
    """The two forms place ε differently; with a large ε they must give different iterates
    (so the test above does test the efficient form)."""
    p1, p2 = make_params(w0()), make_params(w0())
    hp = dict(lr=0.01, betas=(0.9, 0.999), eps=0.1)
    efficient = dl.from_chain(p1, chain(ScaleByAdam(efficient=True), ScaleByLearningRate()), **hp)
    standard = dl.from_chain(p2, chain(ScaleByAdam(), ScaleByLearningRate()), **hp)
    a, b = run_on_objective(efficient, p1, 5), run_on_objective(standard, p2, 5)
    assert rel_err(a, b) > 1e-6


# -- a custom chain: clipping + RMSprop + Nesterov -------------------------------------------
def clipped_rms_nesterov_reference(w, lr, alpha, eps, beta, max_norm, steps=STEPS):
    """g ← g·min(1, c/(‖g‖ + 1e-6)) (Pascanu et al. 2013), then RMSprop + Nesterov as above
    (reformulated form: b ← βb + s, w ← w − η(s + βb), s = g/(√v + ε)), on ``noisy_grad_f``."""
    v = np.zeros_like(w)
    buf = np.zeros_like(w)
    out = []
    for k in range(steps):
        g = noisy_grad_f(w, k)
        g = g * min(1.0, max_norm / (np.linalg.norm(g) + 1e-6))
        v = alpha * v + (1 - alpha) * g * g
        s = g / (np.sqrt(v) + eps)
        buf = beta * buf + s
        w = w - lr * (s + beta * buf)
        out.append(w)
    return np.array(out)


def test_custom_chain_clip_rms_nesterov_matches_reference():
    params = make_params(w0())
    rule = chain(ClipByGlobalNorm(), ScaleByRms(), Momentum(), ScaleByLearningRate())
    opt = dl.from_chain(params, rule, lr=0.01, alpha=0.9, eps=1e-6, momentum=0.9, nesterov=True, max_norm=0.5)
    got = run_on_objective(opt, params, noisy=True)
    want = clipped_rms_nesterov_reference(w0(), 0.01, 0.9, 1e-6, 0.9, 0.5)
    assert np.linalg.norm(grad_f(w0())) > 0.5  # the clipping is active
    assert rel_err(got, want) <= FLOAT64_RTOL


# -- equivalences the notes state -------------------------------------------------------------
def _train_own_gradients(pairs, steps=STEPS):
    """Each model computes its own gradient on the same mini-batches."""
    x, y = make_data()
    for k in range(steps):
        xb, yb = batch(k, x, y)
        for model, opt in pairs:
            opt.zero_grad()
            loss_fn(model, xb, yb).backward()
            opt.step()


@pytest.mark.parametrize("beta,wd", [(0.9, 0.0), (0.5, 0.05)])
def test_heavy_ball_equals_sgd_momentum(beta, wd):
    """Notes 000: the heavy-ball form is "logically equivalent" to SGD momentum (same β, γ = η)."""
    model_h = make_mlp()
    model_s, model_t = twin(model_h), twin(model_h)
    _train_own_gradients(
        [
            (model_h, dl.HeavyBall(model_h.parameters(), lr=0.05, momentum=beta, weight_decay=wd)),
            (model_s, dl.SGD(model_s.parameters(), lr=0.05, momentum=beta, weight_decay=wd)),
            (model_t, torch.optim.SGD(model_t.parameters(), lr=0.05, momentum=beta, weight_decay=wd)),
        ]
    )
    assert_params_close(model_h, model_t, what="heavy ball vs torch SGD momentum")
    assert_params_close(model_s, model_t, what="descentlab SGD vs torch SGD")


@pytest.mark.parametrize("beta", [0.9, 0.7])
def test_two_nesterov_forms_give_the_same_iterates(beta):
    """Look-ahead (Sutskever) and reformulated (torch) Nesterov: with θ = w − βp the
    reformulated iterates θ are the look-ahead points of the look-ahead form."""
    lr = 0.05
    model_l = make_mlp()
    model_r, model_t = twin(model_l), twin(model_l)
    opt_l = dl.from_chain(model_l.parameters(), chain(NesterovLookahead()), lr=lr, momentum=beta)
    opt_r = dl.SGD(model_r.parameters(), lr=lr, momentum=beta, nesterov=True)
    opt_t = torch.optim.SGD(model_t.parameters(), lr=lr, momentum=beta, nesterov=True)
    _train_own_gradients([(model_l, opt_l), (model_r, opt_r), (model_t, opt_t)])
    assert_params_close(model_r, model_t, what="reformulated vs torch")
    for p_l, p_t in zip(model_l.parameters(), model_t.parameters()):
        velocity = opt_l.state[p_l]["velocity"]
        w = NesterovLookahead.true_params(p_l.detach(), opt_l.state[p_l], beta)
        theta = w - beta * velocity  # the change of variables
        err = (theta - p_t).abs().max() / p_t.abs().max()
        assert err <= FLOAT64_RTOL
        # and the velocities correspond: p = η·(torch's momentum buffer)
        buf = opt_t.state[p_t]["momentum_buffer"]
        assert (velocity - lr * buf).abs().max() <= FLOAT64_RTOL * (lr * buf).abs().max()


def gradient_descent_reference(w, lr, steps=STEPS):
    """Plain gradient descent (notes 001): w_{k+1} = w_k − η∇L(w_k)."""
    out = []
    for _ in range(steps):
        w = w - lr * grad_f(w)
        out.append(w)
    return np.array(out)


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: dl.SGD(ps, lr=0.05, momentum=0.0),
        lambda ps: dl.HeavyBall(ps, lr=0.05, momentum=0.0),
        lambda ps: dl.from_chain(ps, chain(Momentum(), ScaleByLearningRate()), lr=0.05, momentum=0.0),
        lambda ps: dl.from_chain(ps, chain(NesterovLookahead()), lr=0.05, momentum=0.0),
        lambda ps: dl.DeltaBarDelta(ps, lr=0.05, delta=0.05, gain_bounds=(1.0, 1.0)),
    ],
    ids=["SGD", "HeavyBall", "Momentum-chain", "NesterovLookahead", "DeltaBarDelta-fixed-gains"],
)
def test_zero_momentum_is_gradient_descent(make_opt):
    params = make_params(w0())
    got = run_on_objective(make_opt(params), params)
    assert rel_err(got, gradient_descent_reference(w0(), 0.05)) <= FLOAT64_RTOL
