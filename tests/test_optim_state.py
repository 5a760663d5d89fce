"""state_dict / load_state_dict: round trips and checkpoints exchanged with torch.optim."""

from __future__ import annotations

import copy
import io

import pytest
import torch

import descentlab.optim as dl
from _optim_helpers import (
    assert_params_close,
    assert_params_equal,
    batch,
    make_data,
    make_mlp,
    set_grads_from,
    twin,
)

HALF = 40  # steps before the checkpoint, and after it

CONFIGS = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Adadelta", dict()),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01)),
    ("Rprop", dict(lr=0.01)),
    ("ASGD", dict(lr=0.05, t0=10.0)),
]
DESCENTLAB_ONLY = [
    ("Lion", dict(lr=1e-3, weight_decay=0.1)),
    ("HeavyBall", dict(lr=0.05, momentum=0.9)),
    ("DeltaBarDelta", dict(lr=0.05, momentum=0.5)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, nesterov=True)),
]


def _id(config):
    return config[0] + "-" + "-".join(f"{k}={v}" for k, v in config[1].items())


def _groups(model):
    """Two groups, so that per-group hyperparameters travel through the checkpoint too."""
    return [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.004}]


def _train(models_and_opts, steps, start, x, y):
    reference = models_and_opts[0][0]
    others = [m for m, _ in models_and_opts[1:]]
    for k in range(start, start + steps):
        xb, yb = batch(k, x, y)
        set_grads_from(reference, *others, x=xb, y=yb)
        for _, opt in models_and_opts:
            opt.step()


def _through_bytes(state_dict):
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("via_bytes", [False, True], ids=["in-memory", "torch.save"])
@pytest.mark.parametrize("config", CONFIGS + DESCENTLAB_ONLY, ids=_id)
def test_round_trip_mid_run_continues_bit_identically(config, via_bytes):
    name, kwargs = config
    cls = getattr(dl, name)
    x, y = make_data()
    model = make_mlp()
    opt = cls(_groups(model), **kwargs)
    _train([(model, opt)], HALF, 0, x, y)

    checkpoint = copy.deepcopy(opt.state_dict())
    if via_bytes:
        checkpoint = _through_bytes(checkpoint)
    restored_model = twin(model)
    restored = cls(_groups(restored_model), **kwargs)
    restored.load_state_dict(checkpoint)
    assert restored.param_groups[1]["lr"] == 0.004

    # the original keeps going; the restored copy must follow it bit for bit
    _train([(model, opt), (restored_model, restored)], HALF, HALF, x, y)
    assert_params_equal(restored_model, model, what=name)
    for p, q in zip(model.parameters(), restored_model.parameters()):
        for key, value in opt.state[p].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(restored.state[q][key], value), key


def test_loading_does_not_alias_the_checkpoint():
    """Stepping the optimizer that loaded a checkpoint modifies neither the checkpoint nor
    the optimizer it came from (``state_dict()`` itself references live state, as in torch)."""
    x, y = make_data()
    model = make_mlp()
    opt = dl.Adam(model.parameters(), lr=0.01)
    _train([(model, opt)], 5, 0, x, y)
    checkpoint = opt.state_dict()
    frozen = copy.deepcopy(checkpoint)
    other_model = twin(model)
    other = dl.Adam(other_model.parameters(), lr=0.01)
    other.load_state_dict(checkpoint)
    _train([(other_model, other)], 3, 5, x, y)  # steps the copy only
    for key, entry in frozen["state"].items():
        for name, value in entry.items():
            assert torch.equal(checkpoint["state"][key][name], value), name


@pytest.mark.parametrize("via_bytes", [False, True], ids=["in-memory", "torch.save"])
@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_torch_checkpoint_loads_and_follows_torch(config, via_bytes):
    """torch.optim → descentlab: continue on torch's trajectory."""
    name, kwargs = config
    x, y = make_data()
    model_t = make_mlp()
    opt_t = getattr(torch.optim, name)(_groups(model_t), **kwargs)
    _train([(model_t, opt_t)], HALF, 0, x, y)

    checkpoint = copy.deepcopy(opt_t.state_dict())
    if via_bytes:
        checkpoint = _through_bytes(checkpoint)
    model_d = twin(model_t)
    opt_d = getattr(dl, name)(_groups(model_d), **kwargs)
    opt_d.load_state_dict(checkpoint)
    _train([(model_t, opt_t), (model_d, opt_d)], HALF, HALF, x, y)
    assert_params_close(model_d, model_t, what=f"torch {name} → descentlab")
    for p_t, p_d in zip(model_t.parameters(), model_d.parameters()):
        if "step" in opt_t.state[p_t]:
            assert float(opt_d.state[p_d]["step"]) == float(opt_t.state[p_t]["step"]) == 2 * HALF


@pytest.mark.parametrize("via_bytes", [False, True], ids=["in-memory", "torch.save"])
@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_descentlab_checkpoint_loads_into_torch(config, via_bytes):
    """descentlab → torch.optim: torch continues on descentlab's trajectory."""
    name, kwargs = config
    x, y = make_data()
    model_d = make_mlp()
    opt_d = getattr(dl, name)(_groups(model_d), **kwargs)
    _train([(model_d, opt_d)], HALF, 0, x, y)

    checkpoint = copy.deepcopy(opt_d.state_dict())
    if via_bytes:
        checkpoint = _through_bytes(checkpoint)
    model_t = twin(model_d)
    opt_t = getattr(torch.optim, name)(_groups(model_t), **kwargs)
    opt_t.load_state_dict(checkpoint)
    _train([(model_t, opt_t), (model_d, opt_d)], HALF, HALF, x, y)
    assert_params_close(model_d, model_t, what=f"descentlab {name} → torch")


def test_state_dict_before_any_step_loads_into_torch_and_back():
    model = make_mlp()
    opt_d = dl.Adam(model.parameters(), lr=0.01)
    opt_t = torch.optim.Adam(twin(model).parameters(), lr=0.01)
    opt_t.load_state_dict(opt_d.state_dict())
    opt_d.load_state_dict(torch.optim.Adam(model.parameters(), lr=0.02).state_dict())
    assert opt_d.param_groups[0]["lr"] == 0.02


def test_loading_into_an_optimizer_that_already_stepped():
    """load_state_dict replaces state built by earlier steps (and the flat buffers behind it)."""
    x, y = make_data()
    model_a, model_b = make_mlp(0), make_mlp(1)
    opt_a = dl.Adam(model_a.parameters(), lr=0.01)
    opt_b = dl.Adam(model_b.parameters(), lr=0.02)
    _train([(model_a, opt_a)], 10, 0, x, y)
    _train([(model_b, opt_b)], 7, 0, x, y)
    with torch.no_grad():
        for p, q in zip(model_b.parameters(), model_a.parameters()):
            p.copy_(q)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    assert opt_b.param_groups[0]["lr"] == 0.01
    _train([(model_a, opt_a), (model_b, opt_b)], 10, 10, x, y)
    assert_params_equal(model_b, model_a)


def test_torch_checkpoint_with_unstepped_parameters():
    """A torch checkpoint where some parameters never had a gradient (no state for them)."""
    x, y = make_data()
    model_t = make_mlp()
    opt_t = torch.optim.Adam(model_t.parameters(), lr=0.01)
    for k in range(5):
        set_grads_from(model_t, x=batch(k, x, y)[0], y=batch(k, x, y)[1])
        model_t[0].weight.grad = None
        opt_t.step()
    assert model_t[0].weight not in opt_t.state or not opt_t.state[model_t[0].weight]
    model_d = twin(model_t)
    opt_d = dl.Adam(model_d.parameters(), lr=0.01)
    opt_d.load_state_dict(copy.deepcopy(opt_t.state_dict()))
    _train([(model_t, opt_t), (model_d, opt_d)], 10, 5, x, y)
    assert_params_close(model_d, model_t)


@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[5], DESCENTLAB_ONLY[2]], ids=_id)
def test_deepcopy_of_model_and_optimizer_mid_run(config):
    """copy.deepcopy((model, opt)) — as torch users do to fork a run — continues identically."""
    name, kwargs = config
    x, y = make_data()
    model = make_mlp()
    opt = getattr(dl, name)(model.parameters(), **kwargs)
    _train([(model, opt)], 10, 0, x, y)
    model_copy, opt_copy = copy.deepcopy((model, opt))
    _train([(model, opt), (model_copy, opt_copy)], 10, 10, x, y)
    assert_params_equal(model_copy, model)


def test_load_state_dict_restores_the_param_groups_as_saved():
    """A checkpoint round trip leaves every param group exactly as it was saved (torch adds
    defaults such as "differentiable" to its own; descentlab's groups do not gain them)."""
    for name in ("SGD", "Adam", "RMSprop", "NAdam"):
        model = torch.nn.Linear(3, 2)
        opt = getattr(dl, name)(model.parameters(), lr=0.01)
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
        saved = copy.deepcopy(opt.state_dict())
        fresh = getattr(dl, name)(torch.nn.Linear(3, 2).parameters(), lr=0.01)
        fresh.load_state_dict(saved)
        assert fresh.state_dict()["param_groups"] == saved["param_groups"], name
