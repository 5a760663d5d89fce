"""The state layout stays correct when other code owns the parameters' memory.

Three ways the flat-buffer fast path used to fail silently: other code reassigning
``param.data`` after the optimizer flattened it (what ``ZeroRedundancyOptimizer(
parameters_as_bucket_view=True)`` does), parameters living in shared memory (Hogwild), and
tensor subclasses such as ``DTensor``. The reference is torch.optim's SGD/Adam on a twin.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import descentlab.optim as dl
from descentlab.optim import fast

needs_compile = pytest.mark.skipif(not fast.fast_path_available()[0], reason="torch.compile unavailable")


def _twins(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    twin = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    twin.load_state_dict(model.state_dict())
    return model, twin


def _train(model, opt, steps: int, start: int = 0) -> None:
    for k in range(start, start + steps):
        g = torch.Generator().manual_seed(k)
        x, y = torch.randn(16, 6, generator=g, dtype=torch.float64), torch.randn(16, 2, generator=g,
                                                                                  dtype=torch.float64)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def _assert_same(a, b, tol=1e-12) -> None:
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, rtol=tol, atol=tol)


@needs_compile
def test_reassigned_parameter_storage_is_noticed_and_never_leaves_an_orphan():
    model, twin = _twins()
    opt = dl.Adam(model.parameters(), lr=0.01, fast=True)
    ref = torch.optim.Adam(twin.parameters(), lr=0.01)
    _train(model, opt, 3)
    _train(twin, ref, 3)
    assert opt.describe_execution()[0]["path"] == "compiled"
    # What ZeroRedundancyOptimizer(parameters_as_bucket_view=True) does: new storage for each parameter.
    buckets = []
    for p in model.parameters():
        bucket = p.detach().clone()
        p.data = bucket
        buckets.append(bucket)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train(model, opt, 4, start=3)
    _train(twin, ref, 4, start=3)
    assert any("new storage" in str(w.message) for w in caught)
    assert opt.describe_execution()[0]["path"] == "eager"
    # the parameters were updated where they are now (the other code's buffers), as torch does
    assert all(p.data_ptr() == b.data_ptr() for p, b in zip(model.parameters(), buckets))
    _assert_same(model, twin)


@needs_compile
def test_shared_memory_parameters_are_adopted_not_copied():
    model, twin = _twins()
    model.share_memory()
    pointers = [p.data_ptr() for p in model.parameters()]
    opt = dl.SGD(model.parameters(), lr=0.05, momentum=0.9, fast=True)
    ref = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    _train(model, opt, 5)
    _train(twin, ref, 5)
    assert [p.data_ptr() for p in model.parameters()] == pointers
    assert all(p.is_shared() for p in model.parameters())
    assert opt.describe_execution()[0]["path"] == "eager"
    _assert_same(model, twin)


class _Wrapped(torch.Tensor):
    """A tensor subclass standing in for DTensor and friends."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return super().__torch_function__(func, types, args, kwargs or {})


def test_tensor_subclass_parameters_take_the_per_parameter_path():
    torch.manual_seed(0)
    values = [torch.randn(4, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)]
    params = [torch.nn.Parameter(v.clone().as_subclass(_Wrapped)) for v in values]
    plain = [torch.nn.Parameter(v.clone()) for v in values]
    opt = dl.Adam(params, lr=0.01, fast=True)
    ref = torch.optim.Adam(plain, lr=0.01)
    for k in range(5):
        g = torch.Generator().manual_seed(k)
        for p, q in zip(params, plain):
            grad = torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.grad, q.grad = grad.clone().as_subclass(_Wrapped), grad.clone()
        opt.step()
        ref.step()
    assert opt.describe_execution()[0]["path"] == "eager"
    for p, q in zip(params, plain):
        assert torch.allclose(p.as_subclass(torch.Tensor), q, rtol=1e-12, atol=1e-12)


def test_describe_execution_reports_every_bucket():
    model, _ = _twins()
    model[2].float()
    opt = dl.SGD(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    rows = opt.describe_execution()
    assert sorted((str(r["dtype"]), r["parameters"], r["numel"]) for r in rows) == [
        ("torch.float32", 2, 18), ("torch.float64", 2, 56)]
    assert {r["path"] for r in rows} == {"fused"}  # torch's SGD kernel; small buckets are not compiled


@needs_compile
@pytest.mark.parametrize("bucket_size", ["larger", "exact"])
def test_parameters_living_in_another_buffer_are_never_taken_over(bucket_size):
    """What ZeroRedundancyOptimizer(parameters_as_bucket_view=True) does before our first step: the
    parameters become views into its bucket — larger than them, or exactly one parameter's size.
    Flattening them would leave that bucket stale; they must be updated where they are."""
    model, twin = _twins()
    buckets = []
    for p in model.parameters():
        extra = 3 if bucket_size == "larger" else 0
        bucket = torch.zeros(p.numel() + extra, dtype=p.dtype)
        bucket[: p.numel()].copy_(p.detach().reshape(-1))
        p.data = bucket[: p.numel()].view_as(p)
        buckets.append(bucket)
    opt = dl.Adam(model.parameters(), lr=0.01, fast=True)
    ref = torch.optim.Adam(twin.parameters(), lr=0.01)
    _train(model, opt, 4)
    _train(twin, ref, 4)
    assert opt.describe_execution()[0]["path"] == "eager"
    for p, bucket in zip(model.parameters(), buckets):
        assert torch.equal(bucket[: p.numel()], p.detach().reshape(-1))  # the bucket saw every update
    _assert_same(model, twin)


@needs_compile
def test_a_checkpoint_load_keeps_the_flat_buffer_ours():
    """After load_state_dict the parameters still live in our old flat buffer: flattened again, the
    run continues compiled, bit for bit as an uninterrupted one."""
    model, twin = _twins()
    opt = dl.SGD(model.parameters(), lr=0.05, momentum=0.9, fast=True)
    twin_opt = dl.SGD(twin.parameters(), lr=0.05, momentum=0.9, fast=True)
    _train(model, opt, 3)
    _train(twin, twin_opt, 3)
    opt.load_state_dict(copy.deepcopy(twin_opt.state_dict()))
    _train(model, opt, 3, start=3)
    _train(twin, twin_opt, 3, start=3)
    assert opt.describe_execution()[0]["path"] == "compiled"
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), twin.parameters()))
