"""torch's fused kernels are used exactly for the chains they implement, and change nothing else.

The reference is the chain runner itself (``fused=False``), which the other optimizer tests
check against torch.optim's for-loop implementations and NumPy transcriptions.
"""

from __future__ import annotations

import pytest
import torch

import descentlab.optim as dl
from descentlab.optim import fused as fusedpath
from descentlab.transforms import Momentum, ScaleByAdam, ScaleByLearningRate, chain

CONFIGS = [
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01, "maximize": True}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "maximize": True}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01, "initial_accumulator_value": 0.1}),
]


def _model(dtype):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(7, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).to(dtype)


def _train(model, opt, steps=40):
    """``steps`` steps on a bounded objective (maximize=True ascends −loss). 40 steps: enough for a
    wrong formula to show by orders of magnitude; float32 rounding alone (AdamW's decoupled decay,
    torch's own for-loop included) reaches ~1e-6 by step 60."""
    for k in range(steps):
        g = torch.Generator().manual_seed(k)
        x = torch.randn(32, 7, generator=g).to(next(model.parameters()).dtype)
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        (-loss if opt.param_groups[0]["maximize"] else loss).backward()
        opt.step()


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)], ids=["f32", "f64"])
@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_the_fused_kernel_follows_the_chain(name, kwargs, dtype, tol):
    kernel_model, chain_model = _model(dtype), _model(dtype)
    kernel_opt = getattr(dl, name)(kernel_model.parameters(), **kwargs)  # default: fused where it applies
    chain_opt = getattr(dl, name)(chain_model.parameters(), fused=False, **kwargs)
    _train(kernel_model, kernel_opt)
    _train(chain_model, chain_opt)
    assert kernel_opt.describe_execution()[0]["path"] == "fused"
    assert chain_opt.describe_execution()[0]["path"] == "eager"
    for p, q in zip(kernel_model.parameters(), chain_model.parameters()):
        assert ((p - q).abs().max() / q.abs().max()).item() <= tol
    for p, q in zip(kernel_model.parameters(), chain_model.parameters()):
        assert sorted(kernel_opt.state[p]) == sorted(chain_opt.state[q])
        for key in chain_opt.state[q]:
            assert torch.allclose(kernel_opt.state[p][key], chain_opt.state[q][key], rtol=tol * 10, atol=tol)


def test_a_kernel_is_chosen_only_for_the_chain_it_implements():
    adam = dl.Adam([torch.zeros(2, requires_grad=True)]).transform
    assert fusedpath.kernel_for(adam).name == "torch._fused_adam_"
    assert fusedpath.kernel_for(dl.AdamW([torch.zeros(2, requires_grad=True)]).transform).name == (
        "torch._fused_adamw_")
    for other in ("RMSprop", "NAdam", "Adamax", "Lion", "HeavyBall", "Rprop", "ASGD", "Adadelta"):
        rule = getattr(dl, other)([torch.zeros(2, requires_grad=True)]).transform
        assert fusedpath.kernel_for(rule) is None
    # the same transforms in another order, another option, or without the lr: no kernel
    assert fusedpath.kernel_for(chain(ScaleByAdam(), ScaleByLearningRate())) is None
    assert fusedpath.kernel_for(chain(*adam.leaves[:2], ScaleByAdam(efficient=True), adam.leaves[3])) is None
    assert fusedpath.kernel_for(chain(Momentum(), ScaleByLearningRate())) is None
    # a custom chain with exactly Adam's structure gets Adam's kernel
    assert fusedpath.kernel_for(chain(*adam.leaves)).name == "torch._fused_adam_"


def test_hyperparameters_the_kernel_lacks_fall_back_to_the_chain():
    model = _model(torch.float32)
    opt = dl.Adam(model.parameters(), lr=torch.tensor(0.01))  # a tensor lr: torch's kernel takes floats here
    _train(model, opt, 2)
    assert opt.describe_execution()[0]["path"] == "eager"
    model = _model(torch.float32)
    opt = dl.SGD(model.parameters(), lr=0.1)
    opt.param_groups[0]["lr_decay"] = 0.1  # (the chain's ScaleByLearningRate reads it; SGD's kernel does not)
    _train(model, opt, 2)
    assert opt.describe_execution()[0]["path"] == "eager"


def test_fused_flag_takes_effect_and_is_checked():
    model = _model(torch.float32)
    assert dl.SGD(model.parameters(), lr=0.1, fused=True)._kernel is not None
    assert dl.SGD(model.parameters(), lr=0.1, fused=False)._kernel is None
    assert dl.SGD(model.parameters(), lr=0.1, fast=False)._kernel is None  # fast=False: the chain runner only
    with pytest.raises(ValueError, match="no fused kernel"):
        dl.from_chain(model.parameters(), chain(Momentum(momentum=0.9), ScaleByLearningRate()), fused=True)
    with pytest.raises(ValueError, match="fused"):
        dl.Adam(model.parameters(), fused="yes")
    with pytest.raises(ValueError, match="pick one"):
        dl.Adam(model.parameters(), fused=True, fast=True)


def test_missing_gradients_fall_back_to_the_runner_and_match_torch():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    twin_a, twin_b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    twin_a.load_state_dict(a.state_dict())
    twin_b.load_state_dict(b.state_dict())
    opt = dl.Adam([*a.parameters(), *b.parameters()], lr=0.05)
    ref = torch.optim.Adam([*twin_a.parameters(), *twin_b.parameters()], lr=0.05)
    for k in range(6):
        x = torch.randn(8, 4, generator=torch.Generator().manual_seed(k))
        for o, (m1, m2) in ((opt, (a, b)), (ref, (twin_a, twin_b))):
            o.zero_grad()
            loss = m1(x).pow(2).mean() + (m2(x).pow(2).mean() if k % 2 else 0)
            loss.backward()
            o.step()
    for p, q in zip([*a.parameters(), *b.parameters()], [*twin_a.parameters(), *twin_b.parameters()]):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-6)
