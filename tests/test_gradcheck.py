"""gradcheck must pass correct gradients, catch wrong ones, and compute honest central differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from descentlab.gradcheck import gradcheck, gradcheck_function, gradgradcheck_function


class WrongTanh(torch.autograd.Function):
    """tanh whose backward forgets the square: d tanh/dx = 1 − y² but it returns 1 − y."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y)


class RightTanh(WrongTanh):
    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class WrongScaleGrad(torch.autograd.Function):
    """y = x·s with s a scalar parameter; the gradient of s is 10% too large, x's is right."""

    @staticmethod
    def forward(ctx, x, s):
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        return grad * s, 1.1 * (grad * x).sum().reshape(s.shape)


class DetachedSquare(torch.autograd.Function):
    """x²; correct first derivative, but computed outside autograd, so second order is wrong."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 2 * x.detach()


class Net(nn.Module):
    def __init__(self, activation=torch.tanh, scale_fn=None):
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Linear(4, 6)
        self.scale = nn.Parameter(torch.tensor(1.3))
        self.last = nn.Linear(6, 2)
        self.activation = activation
        self.scale_fn = scale_fn or (lambda h, s: h * s)

    def forward(self, x):
        return self.last(self.scale_fn(self.activation(self.first(x)), self.scale))


def batch(dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    return torch.randn(10, 4, generator=g, dtype=dtype), torch.randn(10, 2, generator=g, dtype=dtype)


def test_correct_model_passes_and_numbers_match_the_closed_form():
    g = torch.Generator().manual_seed(2)
    X, y = (
        torch.randn(20, 3, generator=g, dtype=torch.float64),
        torch.randn(20, 1, generator=g, dtype=torch.float64),
    )
    model = nn.Linear(3, 1).double()
    report = gradcheck(model, F.mse_loss, X, y)
    assert report.passed and report.failed == []
    # closed form of ∂/∂w mean((Xwᵀ + b − y)²), in NumPy
    Xn, yn = X.numpy(), y.numpy()
    w, b = model.weight.detach().numpy(), model.bias.detach().numpy()
    r = Xn @ w.T + b - yn
    grad_w, grad_b = 2 * (r * Xn).mean(0), 2 * r.mean(0)
    by_name = {c.name: c for c in report}
    np.testing.assert_allclose(by_name["weight"].analytic.numpy(), grad_w, rtol=1e-12)
    np.testing.assert_allclose(by_name["weight"].numerical.numpy(), grad_w, rtol=1e-7)
    np.testing.assert_allclose(by_name["bias"].numerical.numpy(), grad_b, rtol=1e-7)
    assert by_name["weight"].checked == 3


def test_right_custom_function_passes():
    report = gradcheck(Net(activation=RightTanh.apply), F.mse_loss, *batch())
    assert report.passed, str(report)


def test_wrong_activation_gradient_is_caught_upstream_only():
    report = gradcheck(Net(activation=WrongTanh.apply), F.mse_loss, *batch())
    assert not report.passed
    # the error flows into the first layer's gradients; scale and last layer are unaffected
    assert report.failed == ["first.weight", "first.bias"]
    assert "FAIL" in str(report) and "first.weight" in str(report)


def test_wrong_parameter_gradient_is_pinned_to_that_parameter():
    report = gradcheck(Net(scale_fn=WrongScaleGrad.apply), F.mse_loss, *batch())
    assert report.failed == ["scale"]
    check = next(c for c in report if c.name == "scale")
    assert check.max_rel_error == pytest.approx(0.1 / 1.1, rel=1e-5)  # |1.1g − g| / |1.1g|


def test_large_tensors_use_a_deterministic_sample_of_coordinates():
    model = nn.Sequential(nn.Linear(50, 40), nn.Tanh(), nn.Linear(40, 1)).double()
    x, y = torch.randn(8, 50, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    first = gradcheck(model, F.mse_loss, x, y, max_coords=16)
    again = gradcheck(model, F.mse_loss, x, y, max_coords=16)
    other = gradcheck(model, F.mse_loss, x, y, max_coords=16, seed=5)
    assert first.passed
    assert first[0].checked == 16 and first[0].numel == 2000
    assert torch.equal(first[0].coordinates, again[0].coordinates)
    assert not torch.equal(first[0].coordinates, other[0].coordinates)
    assert first[1].checked == 16 and first[3].checked == 1


def test_float32_model_is_checked_in_a_float64_copy():
    model = Net().float()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = gradcheck(model, F.mse_loss, *batch(torch.float32))
    assert report.passed
    for k, v in model.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, before[k])


def test_function_wrappers_agree_with_torch():
    x = torch.randn(5, dtype=torch.float64)
    assert gradcheck_function(RightTanh.apply, x)
    assert not gradcheck_function(WrongTanh.apply, x)
    with pytest.raises(RuntimeError, match="Jacobian mismatch"):
        gradcheck_function(WrongTanh.apply, x, raise_exception=True)
    assert gradcheck_function(DetachedSquare.apply, x)  # first order is right
    assert not gradgradcheck_function(DetachedSquare.apply, x)  # second order is not
    assert gradgradcheck_function(lambda t: t * t, x)


def test_bad_arguments():
    with pytest.raises(ValueError, match="float16"):
        gradcheck(Net().half(), F.mse_loss, *batch(torch.float16))
    with pytest.raises(ValueError, match="bfloat16"):
        gradcheck(Net(), F.mse_loss, batch()[0].bfloat16(), batch()[1])
    with pytest.raises(ValueError, match="float16"):
        gradcheck_function(torch.tanh, torch.randn(3).half())
    with pytest.raises(ValueError, match="eps"):
        gradcheck(Net(), F.mse_loss, *batch(), eps=0)
    with pytest.raises(ValueError, match="max_coords"):
        gradcheck(Net(), F.mse_loss, *batch(), max_coords=0)
    with pytest.raises(ValueError, match="scalar"):
        gradcheck(Net(), lambda out, y: (out - y) ** 2, *batch())


@pytest.mark.parametrize("kwargs,message", [
    ({"atol": -1.0}, "atol"),
    ({"rtol": float("nan")}, "rtol"),
    ({"seed": -1}, "seed"),
    ({"max_coords": 2.5}, "max_coords"),
])
def test_every_option_is_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gradcheck(Net(), F.mse_loss, *batch(), **kwargs)
    with pytest.raises(ValueError, match="model must be a torch.nn.Module"):
        gradcheck(lambda x: x, F.mse_loss, *batch())
    with pytest.raises(ValueError, match="loss_fn must be callable"):
        gradcheck(Net(), "mse", *batch())
    with pytest.raises(ValueError, match="raise_exception"):
        gradcheck_function(torch.tanh, torch.randn(3, dtype=torch.float64), raise_exception="no")
    with pytest.raises(ValueError, match="fn must be callable"):
        gradgradcheck_function("tanh", torch.randn(3, dtype=torch.float64))
