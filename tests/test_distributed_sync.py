"""Synchronous SGD on torch.distributed, in threaded process groups of 4 and 8 ranks.

DDP over equal shards averages the shards' mean gradients, which is the full batch's mean gradient:
every rank must then follow one-process full-batch training to rounding (1e-12 in float64), for each
optimizer family, with descentlab's fast path (parameters moved into one flat buffer, compiled step)
switched on. ZeRO and the communication hooks are held to the same reference.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.distributed.optim import ZeroRedundancyOptimizer

from _distributed_helpers import (
    data,
    make_model,
    max_difference,
    parameters,
    run_threaded,
    shard_of,
    train_steps,
)
from descentlab import optim
from descentlab.distributed import data_parallel, goyal_warmup, scale_lr, shard
from descentlab.optim import fast as fastpath

available, why = fastpath.fast_path_available()
needs_compile = pytest.mark.skipif(not available, reason=f"torch.compile unavailable: {why}")

STEPS = 15


@pytest.fixture(autouse=True)
def own_compiled_steps(monkeypatch):
    """This module's compiled steps are its own: compiling under DDP in threads must not spend the
    recompilation budget of the steps other test modules compile (torch.compile keeps 8 graphs per
    code object), so they are made in a cache of their own and dropped afterwards."""
    monkeypatch.setattr(fastpath, "_COMPILED", {})
FAMILIES = {
    "SGD momentum nesterov": lambda p, fast: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, fast=fast),
    "Adam weight decay": lambda p, fast: optim.Adam(p, lr=1e-2, weight_decay=1e-3, fast=fast),
    "RMSprop momentum": lambda p, fast: optim.RMSprop(p, lr=1e-3, momentum=0.5, fast=fast),
    "Adagrad": lambda p, fast: optim.Adagrad(p, lr=0.05, fast=fast),
}


def one_process(make_optimizer, steps=STEPS):
    """The reference: one process, the full batch, the eager path."""
    x, y = data()
    model = make_model()
    optimizer = make_optimizer(model.parameters(), False)
    losses = train_steps(model, optimizer, x, y, steps)
    return parameters(model), losses


@needs_compile
@pytest.mark.parametrize("world", [4, 8])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_ddp_with_the_fast_path_equals_one_process_full_batch(world, family):
    make_optimizer = FAMILIES[family]
    reference, _ = one_process(make_optimizer)

    def rank_fn(rank):
        x, y = shard_of(rank, world, *data())
        model = make_model()
        ddp = data_parallel(model)
        optimizer = make_optimizer(model.parameters(), True)
        train_steps(ddp, optimizer, x, y, STEPS)
        return parameters(model), [row["path"] for row in optimizer.describe_execution()]

    for params, paths in run_threaded(world, rank_fn):
        assert paths == ["compiled"]  # the flat-buffer fast path really ran
        assert max_difference(params, reference) <= 1e-12


def test_optimizer_built_before_ddp_and_bucket_view_gradients():
    """The flat buffer made before DDP wraps the model; DDP's gradients as views of its buckets."""
    reference, _ = one_process(FAMILIES["SGD momentum nesterov"])

    def rank_fn(rank):
        x, y = shard_of(rank, 4, *data())
        model = make_model()
        optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, fast=False)
        ddp = data_parallel(model, gradient_as_bucket_view=True)
        train_steps(ddp, optimizer, x, y, STEPS)
        return parameters(model)

    for params in run_threaded(4, rank_fn):
        assert max_difference(params, reference) <= 1e-12


@needs_compile
def test_zero_without_bucket_view_equals_one_process():
    reference, _ = one_process(FAMILIES["Adam weight decay"])

    def rank_fn(rank):
        x, y = shard_of(rank, 4, *data())
        model = make_model()
        ddp = data_parallel(model)
        optimizer = ZeroRedundancyOptimizer(
            model.parameters(), optimizer_class=optim.Adam, parameters_as_bucket_view=False,
            lr=1e-2, weight_decay=1e-3, fast=True,
        )
        train_steps(ddp, optimizer, x, y, STEPS)
        return parameters(model)

    for params in run_threaded(4, rank_fn):
        assert max_difference(params, reference) <= 1e-12


@needs_compile
def test_zero_with_bucket_view_equals_one_process():
    """Parameters that are views into ZeRO's bucket stay where they are (the layout never takes over
    someone else's buffer), so the run equals one process, with no warning."""
    reference, _ = one_process(FAMILIES["Adam weight decay"])

    def rank_fn(rank):
        x, y = shard_of(rank, 4, *data())
        model = make_model()
        ddp = data_parallel(model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            optimizer = ZeroRedundancyOptimizer(
                model.parameters(), optimizer_class=optim.Adam, parameters_as_bucket_view=True,
                lr=1e-2, weight_decay=1e-3, fast=True,
            )
            train_steps(ddp, optimizer, x, y, STEPS)
        noticed = any("new storage" in str(w.message) for w in caught)
        return parameters(model), noticed

    for params, noticed in run_threaded(4, rank_fn):
        assert not noticed  # the parameters in ZeRO's bucket were never taken over: nothing to warn about
        assert max_difference(params, reference) <= 1e-12


@pytest.mark.parametrize("hook", ["allreduce", "fp16"])
def test_communication_hooks_against_one_process(hook):
    make = FAMILIES["SGD momentum nesterov"]
    reference, _ = one_process(make)

    def rank_fn(rank):
        x, y = shard_of(rank, 4, *data())
        model = make_model()
        ddp = data_parallel(model, hook)
        train_steps(ddp, make(model.parameters(), False), x, y, STEPS)
        return parameters(model)

    tolerance = {"allreduce": 1e-12, "fp16": 1e-4}[hook]
    differences = [max_difference(params, reference) for params in run_threaded(4, rank_fn)]
    assert max(differences) <= tolerance
    if hook == "fp16":
        assert max(differences) > 1e-12  # half-precision gradients really were sent


def test_powersgd_compresses_and_still_decreases_the_loss():
    def rank_fn(rank):
        x, y = shard_of(rank, 4, *data())
        model = make_model()
        ddp = data_parallel(model, "powersgd", hook_options={"min_compression_rate": 1})
        losses = train_steps(ddp, optim.SGD(model.parameters(), lr=0.1, momentum=0.9), x, y, 40)
        return parameters(model), losses

    results = run_threaded(4, rank_fn)
    reference, _ = one_process(lambda p, fast: optim.SGD(p, lr=0.1, momentum=0.9), steps=40)
    first, losses = results[0]
    assert all(max_difference(first, params) == 0 for params, _ in results)  # ranks stay identical
    assert max_difference(first, reference) > 1e-6  # rank-1 gradients: not the full all-reduce
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])


def test_scaling_rules_and_goyal_warmup():
    assert scale_lr(0.1, 8) == pytest.approx(0.8)
    assert scale_lr(0.1, 16, rule="sqrt") == pytest.approx(0.4)
    schedule = goyal_warmup(0.1, 8, warmup_steps=4)
    assert [schedule(t) for t in range(6)] == pytest.approx([0.1, 0.275, 0.45, 0.625, 0.8, 0.8])
    with pytest.raises(ValueError, match="rule"):
        scale_lr(0.1, 8, rule="cubic")


def test_shard_splits_the_global_batch_and_refuses_an_uneven_one():
    dataset = torch.utils.data.TensorDataset(torch.arange(64.0))
    loaders = [shard(dataset, 16, shuffle=False, num_replicas=4, rank=r) for r in range(4)]
    firsts = [next(iter(loader))[0] for loader in loaders]
    assert [len(b) for b in firsts] == [4, 4, 4, 4]
    assert sorted(torch.cat(firsts).tolist()) == list(range(16))  # one global batch, split
    with pytest.raises(ValueError, match=r"batch_size 10 does not divide among 4 workers.*multiple of 4"):
        shard(dataset, 10, num_replicas=4, rank=0)
