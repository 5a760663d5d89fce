"""Asynchronous SGD on a real Ray parameter server (skipped, with the install line, where Ray is absent).

One Ray instance for the module: 2 CPUs, a small object store, its temporary folder under the test's
tmp path; ``ray.init`` costs 3–11 s and ~400 MB, so the tests share it.
"""

from __future__ import annotations

import functools
import os

import pytest
import torch

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'descentlab[distributed]'")

from descentlab import optim  # noqa: E402
from descentlab.cli import main  # noqa: E402
from descentlab.distributed import TeacherMLP, async_sgd, replay  # noqa: E402

PROBLEM = TeacherMLP(hidden=32)
SGD = functools.partial(optim.SGD, lr=0.05)


@pytest.fixture(scope="module", autouse=True)
def cluster(tmp_path_factory):
    temp = tmp_path_factory.mktemp("ray")
    previous = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a loopback-only test instance: no token under ~/.ray
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20, _temp_dir=str(temp),
             log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()
    if previous is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = previous


def same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("workers", [2, 3])
def test_the_parameter_server_records_staleness_and_replays_bit_for_bit(workers):
    result = async_sgd(PROBLEM.model, PROBLEM.loss, PROBLEM.batch, SGD, workers, 150)
    assert len(result.applied) == 150 and sum(result.staleness_histogram().values()) == 150
    assert {event.worker for event in result.log} == set(range(workers))  # every worker pushed
    assert result.staleness().mean() > 0  # real concurrency: pushes overtook each other
    assert result.times == sorted(result.times)
    again = replay(result.log, PROBLEM.model, PROBLEM.loss, PROBLEM.batch, SGD)
    assert same(result.params, again.params)
    start = [p.detach() for p in PROBLEM.model().parameters()]
    assert not same(result.params, start)


def test_bounded_staleness_with_eta_over_tau_and_delay_compensation():
    options = {"lr_policy": "staleness_aware", "delay_compensation": 0.05, "max_staleness": 1}
    result = async_sgd(PROBLEM.model, PROBLEM.loss, PROBLEM.batch, SGD, 3, 120, **options)
    assert result.staleness().max() <= 1 and len(result.applied) == 120
    assert all(not e.applied for e in result.log if e.staleness > 1)
    again = replay(result.log, PROBLEM.model, PROBLEM.loss, PROBLEM.batch, SGD, **options)
    assert same(result.params, again.params)


def test_the_command_line_on_ray(capsys):
    assert main(["distributed", "--backend", "ray", "--workers", "2", "--updates", "60"]) == 0
    out = capsys.readouterr().out
    assert "updates/s" in out and "staleness_aware" in out
