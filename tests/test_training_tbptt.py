"""Truncated BPTT: k = T is full BPTT, no recurrence makes every k exact; memory, gradient error, streams."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch
from torch import nn

from descentlab.optim import Adam as DlAdam
from descentlab.training import SavedTensorMemory, chunks, detach_state, tbptt
from descentlab.training.figures import tbptt_measurements

T = 64


def _problem(seed=0, cell=nn.RNN):
    torch.manual_seed(seed)
    rnn, head = cell(8, 32, batch_first=True), nn.Linear(32, 1)
    x, y = torch.randn(4, T, 8), torch.randn(4, T, 1)
    return rnn, head, x, y


def _step_fn(rnn, head, n):
    def step(chunk, hidden):
        inputs, targets = chunk
        out, hidden = rnn(inputs, hidden)
        return (head(out) - targets).pow(2).sum() / n, hidden  # the chunk's share of the mean

    return step


def _gradients(rnn, head, x, y, k):
    params = list(rnn.parameters()) + list(head.parameters())
    for p in params:
        p.grad = None
    tbptt(_step_fn(rnn, head, y.numel()), (x, y), k)
    return [p.grad.clone() for p in params]


def _full_bptt(rnn, head, x, y):
    params = list(rnn.parameters()) + list(head.parameters())
    for p in params:
        p.grad = None
    out, _ = rnn(x)
    ((head(out) - y).pow(2).sum() / y.numel()).backward()
    return [p.grad.clone() for p in params]


def test_k_equal_to_T_is_full_bptt_bit_for_bit():
    rnn, head, x, y = _problem()
    full = _full_bptt(rnn, head, x, y)
    assert all(torch.equal(a, b) for a, b in zip(_gradients(rnn, head, x, y, T), full))


def test_with_no_recurrent_weight_every_k_gives_the_full_gradient():
    rnn, head, x, y = _problem()
    with torch.no_grad():
        rnn.weight_hh_l0.zero_()
    full = _full_bptt(rnn, head, x, y)
    for k in (1, 3, 8, 16, 64):
        for a, b in zip(_gradients(rnn, head, x, y, k), full):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_truncation_changes_the_gradient_when_there_is_recurrence():
    rnn, head, x, y = _problem()
    full = torch.cat([g.flatten() for g in _full_bptt(rnn, head, x, y)])
    truncated = torch.cat([g.flatten() for g in _gradients(rnn, head, x, y, 4)])
    assert (truncated - full).norm() / full.norm() > 0.05


def test_memory_at_a_quarter_of_T_is_at_most_0_3_of_full_and_the_error_shrinks_with_k():
    found = tbptt_measurements([1, 2, 4, 8, 16, 32, 64], T=T)
    ratio = dict(zip(found["ks"], found["memory_ratio"]))
    assert ratio[T // 4] <= 0.3
    assert ratio[T] == 1.0
    errors = found["gradient_error"]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] == 0.0


def test_saved_tensor_memory_counts_a_graph_until_it_is_freed():
    w = torch.randn(100, 100, requires_grad=True)
    x = torch.randn(10, 100)
    with SavedTensorMemory() as memory:
        h = torch.tanh(x @ w)  # saves x (4 kB) and tanh's output (4 kB); w is a parameter
        assert memory.current == 2 * 10 * 100 * 4
        h.sum().backward()
    assert memory.current == 0 and memory.peak == 8000


def test_lstm_state_tuples_and_an_optimizer_step_per_chunk():
    rnn, head, x, y = _problem(cell=nn.LSTM)
    opt = torch.optim.SGD(list(rnn.parameters()) + list(head.parameters()), lr=0.01)
    before = rnn.weight_hh_l0.detach().clone()
    steps = []
    original_step = opt.step

    def counting_step(*args, **kwargs):
        steps.append(1)
        return original_step(*args, **kwargs)

    opt.step = counting_step
    result = tbptt(_step_fn(rnn, head, y.numel()), (x, y), 16, optimizer=opt)
    assert len(steps) == result.chunks == 4
    assert isinstance(result.hidden, tuple) and not result.hidden[0].requires_grad
    assert not torch.equal(before, rnn.weight_hh_l0)
    assert all(p.grad is None or not p.grad.any() for p in rnn.parameters())  # zeroed after each step


def test_a_descentlab_optimizer_and_a_streamed_sequence():
    """Pieces streamed from a generator (never the whole sequence at once) give the same result as the
    sequence cut by k, when the pieces' lengths are multiples of k."""
    results = []
    for streamed in (False, True):
        rnn, head, x, y = _problem(1)
        opt = DlAdam(list(rnn.parameters()) + list(head.parameters()), lr=1e-2)
        sequence = ((x[:, i : i + 32], y[:, i : i + 32]) for i in range(0, T, 32)) if streamed else (x, y)
        result = tbptt(_step_fn(rnn, head, y.numel()), sequence, 8, optimizer=opt)
        results.append((result.losses, [p.detach().clone() for p in rnn.parameters()]))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))


def test_chunks_and_detach_state():
    x = torch.arange(10.0).reshape(1, 10)
    pieces = chunks(x, 4)
    assert [p.tolist() for p in pieces] == [[[0, 1, 2, 3]], [[4, 5, 6, 7]], [[8, 9]]]
    assert pieces[0].data_ptr() == x.data_ptr()  # views
    pairs = chunks((x, 2 * x), 5)
    assert len(pairs) == 2 and torch.equal(pairs[1][1], 2 * x[:, 5:])
    d = chunks({"a": x, "b": x}, 5)
    assert set(d[0]) == {"a", "b"}
    with pytest.raises(ValueError, match="differ in length"):
        chunks((x, x[:, :5]), 2)
    w = torch.ones(2, requires_grad=True)
    State = namedtuple("State", "h c")
    state = {"lstm": (w * 2, w * 3), "named": State(w * 1, [w * 4]), "none": None}
    detached = detach_state(state)
    assert not detached["lstm"][0].requires_grad and isinstance(detached["named"], State)
    assert not detached["named"].c[0].requires_grad and detached["none"] is None
    with pytest.raises(TypeError, match="cannot detach a str"):
        detach_state("h")


def test_bad_arguments():
    step = lambda chunk, h: (chunk.sum(), h)  # noqa: E731
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, inf\], got 0"):
        tbptt(step, torch.zeros(1, 4), 0)
    with pytest.raises(ValueError, match="model_step must be callable"):
        tbptt(None, torch.zeros(1, 4), 2)
    with pytest.raises(ValueError, match="scalar loss"):
        tbptt(lambda c, h: (c, h), torch.zeros(1, 4, requires_grad=True), 2)
    with pytest.raises(ValueError, match="every piece of a streamed sequence"):
        tbptt(step, iter(["abc"]), 2)
