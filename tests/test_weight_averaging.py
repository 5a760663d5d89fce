"""WeightAverage against torch.optim.swa_utils (AveragedModel, SWALR, update_bn)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn, update_bn

import descentlab.optim as dl
from descentlab.optim import WeightAverage

STEPS = 100


def make_bn_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3)).double()


def data(n: int = 32, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen, dtype=torch.float64)
    return x, torch.randn(n, 3, generator=gen, dtype=torch.float64)


def train_both(kind: str, use_buffers: bool, decay: float = 0.9, swa_start: int = 30):
    """descentlab SGD + SWALR + WeightAverage against torch SGD + SWALR + AveragedModel."""
    x, y = data()
    model_t = make_bn_model()
    model_d = copy.deepcopy(model_t)
    opt_t = torch.optim.SGD(model_t.parameters(), lr=0.05, momentum=0.9)
    opt_d = dl.SGD(model_d.parameters(), lr=0.05, momentum=0.9)
    multi = get_ema_multi_avg_fn(decay) if kind == "ema" else None
    averaged_t = AveragedModel(model_t, multi_avg_fn=multi, use_buffers=use_buffers)
    averaged_d = WeightAverage(model_d, kind=kind, decay=decay, use_buffers=use_buffers)
    sched_t = SWALR(opt_t, swa_lr=0.01, anneal_epochs=10)
    sched_d = SWALR(opt_d, swa_lr=0.01, anneal_epochs=10)
    for k in range(STEPS):
        xb, yb = x[(k * 8) % 32:][:8], y[(k * 8) % 32:][:8]
        for model, opt in ((model_t, opt_t), (model_d, opt_d)):
            opt.zero_grad()
            nn.functional.mse_loss(model(xb), yb).backward()
            opt.step()
        if k >= swa_start:
            averaged_t.update_parameters(model_t)
            averaged_d.update()
            sched_t.step()
            sched_d.step()
            assert opt_d.param_groups[0]["lr"] == opt_t.param_groups[0]["lr"]
    return model_t, model_d, averaged_t, averaged_d, x


def assert_close(a: torch.Tensor, b: torch.Tensor, what: str, tol: float = 1e-12) -> None:
    a, b = a.detach().double(), b.detach().double()
    err = float((a - b).abs().max()) / max(float(b.abs().max()), 1e-300)
    assert err <= tol, f"{what}: relative error {err:.3g}"


@pytest.mark.parametrize("use_buffers", [False, True], ids=["params", "params+buffers"])
@pytest.mark.parametrize("kind", ["swa", "ema"])
def test_average_equals_torch_averaged_model(kind, use_buffers):
    model_t, model_d, averaged_t, averaged_d, x = train_both(kind, use_buffers)
    assert averaged_d.n_averaged == int(averaged_t.n_averaged) == STEPS - 30
    for (name, p), avg in zip(averaged_t.module.named_parameters(), averaged_d.averaged_parameters()):
        assert_close(avg, p, f"{kind} {name}")
    # the average is not the last iterate
    assert not torch.allclose(averaged_d.averaged_parameters()[0], model_d[0].weight)
    with averaged_d.swap() as lent:
        assert lent is model_d
        model_d.eval()
        averaged_t.eval()
        assert_close(model_d(x), averaged_t(x), f"{kind}: outputs with the averaged weights")
        if use_buffers:
            assert_close(model_d[1].running_mean, averaged_t.module[1].running_mean, "averaged buffer")


def test_swap_restores_the_model_bit_for_bit_even_after_an_error():
    model_t, model_d, averaged_t, averaged_d, x = train_both("ema", use_buffers=False)
    before = {k: v.clone() for k, v in model_d.state_dict().items()}
    with pytest.raises(KeyError):
        with averaged_d.swap():
            assert torch.equal(model_d[0].weight, averaged_d.averaged_parameters()[0])
            raise KeyError("inside")
    for k, v in model_d.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model_d[0].weight.requires_grad


def test_update_bn_recomputes_the_statistics_of_the_averaged_weights():
    model_t, model_d, averaged_t, averaged_d, x = train_both("swa", use_buffers=False)
    loader = [x[:16], x[16:]]
    own_mean = model_d[1].running_mean.clone()
    update_bn(loader, averaged_t)
    averaged_d.update_bn(loader)
    assert torch.equal(model_d[1].running_mean, own_mean)  # the model's own statistics are kept
    with averaged_d.swap():
        assert_close(model_d[1].running_mean, averaged_t.module[1].running_mean, "running_mean")
        assert_close(model_d[1].running_var, averaged_t.module[1].running_var, "running_var")
        model_d.eval()
        averaged_t.eval()
        assert_close(model_d(x), averaged_t(x), "outputs after update_bn")
    copy_ = averaged_d.averaged_model()
    copy_.eval()
    assert_close(copy_(x), averaged_t(x), "averaged_model()")


def test_state_dict_resumes_the_same_average():
    model = make_bn_model()
    x, y = data()
    average = WeightAverage(model, kind="ema", decay=0.5)
    opt = dl.Adam(model.parameters(), lr=0.01)
    resumed = None
    for k in range(20):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        average.update()
        if k == 9:
            resumed = WeightAverage(model, kind="swa")
            resumed.load_state_dict(copy.deepcopy(average.state_dict()))
        elif resumed is not None:
            resumed.update()
    assert resumed.kind == "ema" and resumed.n_averaged == average.n_averaged == 20
    for a, b in zip(resumed.averaged_parameters(), average.averaged_parameters()):
        assert torch.equal(a, b)


def test_works_with_a_torch_optimizer_and_rejects_bad_arguments():
    model = make_bn_model()
    average = WeightAverage(model, kind="ema", decay=0.0)  # decay 0: the average is the last iterate
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = data()
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    average.update()
    average.update()
    assert torch.equal(average.averaged_parameters()[0], model[0].weight)
    with pytest.raises(ValueError, match="kind"):
        WeightAverage(model, kind="polyak")
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, kind="ema", decay=1.5)
    with pytest.raises(ValueError, match="use_buffers"):
        WeightAverage(model, use_buffers="yes")
    with pytest.raises(RuntimeError, match="nothing averaged"):
        with WeightAverage(model).swap():
            pass
