"""Sparse gradients (nn.Embedding(sparse=True)) for SGD, Adagrad and SparseAdam, against torch.optim.

The reference is torch's own implementation of each on the same gradients; a sparse step must
leave every row the gradient does not hold bit-identical — parameter and state.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import descentlab.optim as dl

STEPS = 30


class Bag(nn.Module):
    """A sparse embedding feeding a dense head: a mixed dense/sparse parameter list."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(40, 6, sparse=True)
        self.head = nn.Linear(6, 2)

    def forward(self, tokens):
        return self.head(self.embed(tokens).mean(dim=1))


def _batch(k: int):
    g = torch.Generator().manual_seed(k)
    tokens = torch.randint(0, 12 + k % 20, (8, 5), generator=g)
    return tokens, torch.randn(8, 2, generator=g, dtype=torch.float64)


CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "maximize": True}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1, "momentum": 0.5, "dampening": 0.3}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-6}),
    ("SparseAdam", {"lr": 0.01}),
    ("SparseAdam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "maximize": True}),
]


def _ids(config):
    return config[0] + "(" + ",".join(f"{k}={v}" for k, v in config[1].items()) + ")"


def _train(model, opt, steps=STEPS, sign=1.0):
    for k in range(steps):
        tokens, y = _batch(k)
        opt.zero_grad()
        (sign * ((model(tokens) - y) ** 2).mean()).backward()
        opt.step()


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_sparse_trajectory_matches_torch(config):
    name, kwargs = config
    torch.manual_seed(0)
    model_t = Bag().double()
    model_d = copy.deepcopy(model_t)
    sign = -1.0 if kwargs.get("maximize") else 1.0
    if name == "SparseAdam":  # dense parameters go to Adam, as torch's docs advise
        opt_t = [torch.optim.SparseAdam(model_t.embed.parameters(), **kwargs),
                 torch.optim.Adam(model_t.head.parameters(), lr=0.01)]
        opt_d = [dl.SparseAdam(model_d.embed.parameters(), **kwargs),
                 dl.Adam(model_d.head.parameters(), lr=0.01)]
    else:
        opt_t = [getattr(torch.optim, name)(model_t.parameters(), **kwargs)]
        opt_d = [getattr(dl, name)(model_d.parameters(), **kwargs)]
    for k in range(STEPS):
        tokens, y = _batch(k)
        for model, opts in ((model_t, opt_t), (model_d, opt_d)):
            for o in opts:
                o.zero_grad()
            (sign * ((model(tokens) - y) ** 2).mean()).backward()
            for o in opts:
                o.step()
    assert model_d.embed.weight.grad.is_sparse
    for p, q in zip(model_d.parameters(), model_t.parameters()):
        assert ((p - q).abs().max() / q.abs().max()).item() <= 1e-10


@pytest.mark.parametrize("name, kwargs", [("SparseAdam", {"lr": 0.01}), ("Adagrad", {"lr": 0.1}),
                                          ("SGD", {"lr": 0.1})])
def test_a_sparse_step_touches_only_the_rows_present(name, kwargs):
    torch.manual_seed(0)
    emb = nn.Embedding(30, 4, sparse=True).double()
    opt = getattr(dl, name)(emb.parameters(), **kwargs)
    emb(torch.tensor([1, 2, 3, 7])).sum().backward()
    opt.step()  # every row touched so far: 1, 2, 3, 7
    before = emb.weight.detach().clone()
    state_before = {k: v.clone() for k, v in opt.state[emb.weight].items() if v.dim() > 0}
    opt.zero_grad()
    emb(torch.tensor([2, 5, 5, 9])).sum().backward()
    opt.step()
    moved = {2, 5, 9}
    for row in range(30):
        same = torch.equal(emb.weight[row], before[row])
        assert same == (row not in moved), row
        for key, value in state_before.items():
            assert torch.equal(opt.state[emb.weight][key][row], value[row]) == (row not in moved), (key, row)


def test_sparse_state_round_trips_with_torch():
    torch.manual_seed(0)
    model = nn.Embedding(20, 3, sparse=True).double()
    opt = dl.SparseAdam(model.parameters(), lr=0.01)
    for k in range(3):
        opt.zero_grad()
        model(torch.tensor([k, k + 1, 2 * k])).pow(2).sum().backward()
        opt.step()
    twin = copy.deepcopy(model)
    torch_opt = torch.optim.SparseAdam(twin.parameters(), lr=0.01)
    torch_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    for o, m in ((opt, model), (torch_opt, twin)):
        o.zero_grad()
        m(torch.tensor([4, 5])).pow(2).sum().backward()
        o.step()
    # torch keeps SparseAdam's step as a Python int; loaded as our 0-d float32 tensor, its bias
    # corrections come out in float32 (7.5e-8 here), hence a float32 tolerance
    assert torch.allclose(model.weight, twin.weight, rtol=1e-6, atol=1e-9)


def test_sgd_with_weight_decay_takes_sparse_gradients_too():
    """torch's SGD raises here ("add(sparse, dense) is not supported"); descentlab densifies, and
    matches torch's SGD run on the same gradients made dense."""
    torch.manual_seed(0)
    model_d = Bag().double()
    model_t = copy.deepcopy(model_d)
    model_t.embed.sparse = False
    _train(model_d, dl.SGD(model_d.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01))
    _train(model_t, torch.optim.SGD(model_t.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01))
    for p, q in zip(model_d.parameters(), model_t.parameters()):
        assert torch.allclose(p, q, rtol=1e-10, atol=1e-12)


def test_sparse_refusals_are_clear():
    emb = nn.Embedding(10, 3, sparse=True)
    opt = dl.Adagrad(emb.parameters(), weight_decay=0.1)
    emb(torch.tensor([1])).sum().backward()
    with pytest.raises(RuntimeError, match="weight_decay option is not compatible with sparse gradients"):
        opt.step()
    dense = nn.Linear(3, 2)
    opt = dl.SparseAdam(dense.parameters())
    dense(torch.randn(4, 3)).sum().backward()
    with pytest.raises(RuntimeError, match="SparseAdam does not support dense gradients"):
        opt.step()


def test_fast_mode_falls_back_per_bucket_without_warnings(recwarn):
    torch.manual_seed(0)
    model_d, model_t = Bag().double(), None
    model_t = copy.deepcopy(model_d)
    opt_d = dl.SGD(model_d.parameters(), lr=0.1, fast=True)
    opt_t = torch.optim.SGD(model_t.parameters(), lr=0.1)
    _train(model_d, opt_d)
    _train(model_t, opt_t)
    for p, q in zip(model_d.parameters(), model_t.parameters()):
        assert torch.allclose(p, q, rtol=1e-12, atol=1e-14)
    assert not [w for w in recwarn if "sparse" in str(w.message).lower()]
