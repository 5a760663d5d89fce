"""Small built-in problems for the figures, the tests and the benchmarks (deterministic, CPU, seconds).

* digits: scikit-learn's 8×8 handwritten digits (1,797 images, 64 pixels scaled to [0, 1], 10 classes;
  shipped inside scikit-learn, nothing is downloaded), split into fixed train / validation parts;
* teacher regression: y = teacher(x) + noise with a random tanh network as the teacher (MSE).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def digits(n_train: int = 1200, *, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_val, y_val)``: a seeded shuffle of scikit-learn's digits, float32."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:  # pragma: no cover - scikit-learn is in the dev and bench extras
        raise ImportError("the digits problem needs scikit-learn: pip install 'descentlab[dev]'") from error
    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def teacher_regression(
    n: int = 1024, d: int = 16, *, noise: float = 0.1, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """``(x, y)`` with x ~ N(0, I_d) and y = W₂ tanh(W₁ x) + noise (one output), float32."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w1 = torch.randn(d, 32, generator=g) / d**0.5
    w2 = torch.randn(32, 1, generator=g) / 32**0.5
    y = torch.tanh(x @ w1) @ w2 * 3.0 + noise * torch.randn(n, 1, generator=g)
    return x, y


def mlp(sizes: list[int], *, seed: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A fully connected network with torch's default initialisation, drawn from its own seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(activation())
        return nn.Sequential(*layers)


def batches(
    x: Tensor, y: Tensor, batch_size: int, *, seed: int, epochs: int = 1
) -> list[tuple[Tensor, Tensor]]:
    """Shuffled mini-batches (the last partial one dropped) for ``epochs`` passes, from their own seed."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=g)
        for i in range(0, len(y) - batch_size + 1, batch_size):
            index = order[i : i + batch_size]
            out.append((x[index], y[index]))
    return out
