"""A real 2-process gloo world (spawned, on loopback), torchrun, and the failures that must be loud.

One world runs every multi-process check (``_distributed_child.gloo_world``): starting a process costs
5–10 s, so the checks share it, and each test below reads its part of the result.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import _distributed_child as child
from _distributed_helpers import data, make_model, max_difference, parameters, train_steps
from descentlab import optim
from descentlab.distributed import init, launch
from descentlab.distributed.sync import _free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gloo")
    return launch(child.gloo_world, 2, (str(directory),), timeout=120)


def one_process(make_optimizer, outputs=1, steps=child.STEPS):
    x, y = data(outputs=outputs)
    model = make_model(outputs=outputs)
    train_steps(model, make_optimizer(model.parameters()), x, y, steps)
    return parameters(model)


def test_the_world_is_two_gloo_processes(world):
    assert [(r["rank"], r["world"], r["backend"]) for r in world] == [(0, 2, "gloo"), (1, 2, "gloo")]


def test_ddp_with_the_fast_path_equals_one_process(world):
    reference = one_process(lambda p: optim.Adam(p, lr=1e-2, fast=False))
    for rank in world:
        assert rank["ddp"]["paths"] == ["compiled"]
        assert max_difference(rank["ddp"]["params"], reference) <= 1e-12


@pytest.mark.parametrize("part", ["dcp", "dcp_zero"])
def test_distributed_checkpoint_resume_is_bit_exact(world, part):
    for rank in world:
        resumed, uninterrupted = rank[part]["resumed"], rank[part]["uninterrupted"]
        assert all(torch.equal(a, b) for a, b in zip(resumed, uninterrupted))
        assert rank[part]["extra"] == {"step": child.STEPS}


def test_fsdp2_with_the_fast_path_requested_equals_one_process(world):
    reference = one_process(lambda p: optim.Adam(p, lr=1e-2, fast=False), outputs=2)
    for rank in world:
        result = rank["fsdp2_2"]
        assert "error" not in result, result.get("error")
        assert result["paths"] == ["eager"]  # DTensor parameters run per parameter, never flattened
        assert max_difference(result["params"], reference) <= 1e-12


def test_fsdp2_with_a_parameter_smaller_than_the_world(world):
    """DTensor parameters keep their state per parameter (never flattened), whatever their sharding."""
    reference = one_process(lambda p: optim.Adam(p, lr=1e-2, fast=False), outputs=1)
    for rank in world:
        assert "error" not in rank["fsdp2_1"], rank["fsdp2_1"].get("error")
        assert max_difference(rank["fsdp2_1"]["params"], reference) <= 1e-12


def test_fit_distributed_equals_one_process_fit(world):
    reference = child.one_process_fit()
    for rank in world:
        assert max_difference(rank["fit"]["params"], reference["params"]) <= 1e-12
        mine, theirs = rank["fit"]["history"], reference["history"]
        assert mine["steps"] == theirs["steps"]
        assert max(abs(a - b) for a, b in zip(mine["loss"], theirs["loss"])) <= 1e-12
        val = [e["val_loss"] for e in theirs["epochs"]]
        assert [e["val_loss"] for e in mine["epochs"]] == pytest.approx(val, rel=1e-12)
        assert rank["fit"]["again"]["steps"] == mine["steps"]  # the finished checkpoint was found
    assert world[0]["fit"]["history"] == world[1]["fit"]["history"]  # one history on every rank


def test_torchrun_runs_the_example():
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    command = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "descentlab.examples.sync_mlp",
               "--epochs", "2"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    if done.returncode != 0 and "terminate called" in done.stderr and "SIGABRT" in done.stderr:
        # gloo's device thread can abort the process when a connection fails while the full mesh is being
        # built (pytorch/gloo#162, seen once in ~10 runs on a machine at load 8): that one failure, and
        # only it, is tried once more
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [row for row in done.stdout.splitlines() if "train loss per epoch" in row]
    assert len(line) == 1 and line[0].startswith("2 ranks, global batch 64")  # rank 0 alone prints


def test_an_unreachable_rendezvous_times_out_with_a_clear_message(monkeypatch):
    port = _free_port()  # nothing listens there: rank 0 never comes
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    began = time.perf_counter()
    message = rf"rank 1 of 2 could not reach the rendezvous at 127.0.0.1:{port} within 3 s"
    with pytest.raises(TimeoutError, match=message):
        init("gloo", timeout=3)
    assert time.perf_counter() - began < 30


def test_init_outside_torchrun_says_how_to_start(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun --standalone --nproc_per_node=N"):
        init("gloo")


def test_fit_distributed_needs_a_process_group():
    from descentlab.training import fit

    model = make_model()
    with pytest.raises(RuntimeError, match=r"fit\(distributed=True\) needs a process group"):
        fit(model, optim.SGD(model.parameters(), lr=0.1), [data()], epochs=1,
            loss_fn=torch.nn.functional.mse_loss, distributed=True, progress=False)
