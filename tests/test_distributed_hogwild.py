"""Hogwild (Recht et al. 2011) with spawned processes on parameters in shared memory."""

from __future__ import annotations

import functools

import pytest
import torch

import _hogwild_child as child
from _distributed_helpers import data, loss_fn, make_model, parameters
from descentlab import optim
from descentlab.distributed import hogwild, share_flat_
from descentlab.distributed.hogwild import zero_gradients_to_none


def test_share_flat_puts_every_parameter_in_one_shared_buffer():
    model = make_model()
    before = parameters(model)
    flat = share_flat_(model)
    assert flat.is_shared() and flat.numel() == sum(p.numel() for p in model.parameters())
    start, end = flat.data_ptr(), flat.data_ptr() + flat.numel() * flat.element_size()
    assert all(start <= p.data_ptr() < end and p.is_shared() for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, parameters(model)))
    with pytest.raises(ValueError, match="one dtype and device"):
        share_flat_(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2).double()))


def test_the_parent_sees_the_updates_of_fast_path_optimizers():
    """Regression: a child whose optimizer re-flattened the shared parameters into private memory would
    train a copy the parent never sees. descentlab's fast path must use the shared buffer as it is."""
    model = make_model()
    x, y = data()
    start = float(loss_fn(model(x), y))
    make_optimizer = functools.partial(optim.SGD, lr=0.05, momentum=0.9, fast=True)
    results = hogwild(model, child.hogwild_train, 2, make_optimizer)
    for result in results:
        assert result["shared"]  # the parameters the child trained are still the shared ones
        assert result["paths"] == ["eager"]  # shared memory is never taken over (no private copy)
    with torch.no_grad():
        final = float(loss_fn(model(x), y))
    # the children's steps landed in the parent's model (private copies would leave it at `start`),
    # and both children's: one process alone gets no lower than its own last loss
    assert final < 0.8 * start
    assert final < max(r["losses"][-1] for r in results)


def test_disjoint_blocks_with_block_sparse_updates_equal_serial_sgd():
    make_optimizer = functools.partial(optim.SGD, lr=0.05, momentum=0.9, fast=True)
    model = child.Blocks()
    hogwild(model, child.block_train, 2, make_optimizer, block_sparse=True)

    serial = child.Blocks()
    share_flat_(serial)  # the same execution path as the children's (shared: eager), so the same bits
    for rank in range(2):  # one worker after the other, each with its own optimizer
        optimizer = make_optimizer(serial.parameters())
        handle = optimizer.register_step_pre_hook(zero_gradients_to_none)
        child.block_train(rank, serial, optimizer)
        handle.remove()
    assert all(torch.equal(a, b) for a, b in zip(parameters(model), parameters(serial)))
    assert not all(torch.equal(a, b) for a, b in zip(parameters(model), parameters(child.Blocks())))


def test_shared_optimizer_state_shares_the_step_count():
    model = make_model()
    results = hogwild(model, child.hogwild_train, 2, functools.partial(torch.optim.Adam, lr=1e-3),
                      shared_state=True)
    # each process took 20 steps on one shared state: the step counts it saw went past its own 20
    assert max(max(r["steps"]) for r in results) > 20


def test_shared_state_is_refused_for_flat_buffer_optimizers_and_bad_arguments():
    adam = functools.partial(optim.Adam, lr=1e-3)
    with pytest.raises(ValueError, match="shared_state=True needs an optimizer that updates its state"):
        hogwild(make_model(), child.hogwild_train, 2, adam, shared_state=True)
    with pytest.raises(ValueError, match="num_processes must be an integer"):
        hogwild(make_model(), child.hogwild_train, 0, adam)
    with pytest.raises(ValueError, match="start_method must be one of"):
        hogwild(make_model(), child.hogwild_train, 2, adam, start_method="x")
