"""Small built-in problems for the figures, the tests and the benchmarks (deterministic, CPU, seconds).

* digits: scikit-learn's 8×8 handwritten digits (1,797 images, 64 pixels scaled to [0, 1], 10 classes;
  shipped inside scikit-learn, nothing is downloaded), split into fixed train / validation parts;
* teacher regression: y = teacher(x) + noise with a random tanh network as the teacher (MSE);
* an exploding RNN: a tanh RNN whose recurrent matrix has spectral radius > 1, trained by full-batch
  SGD with or without clipping (:func:`exploding_rnn`; the claims and the report's clipping section);
* a character corpus: the source of a few modules of the Python standard library this interpreter
  runs (:func:`stdlib_corpus`, with its SHA-256, since it changes with the Python version), cut into
  next-character windows for :class:`CharLSTM`.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn


def digits(n_train: int = 1200, *, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_val, y_val)``: a seeded shuffle of scikit-learn's digits, float32."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:  # pragma: no cover - scikit-learn is in the dev and bench extras
        raise ImportError("the digits problem needs scikit-learn: pip install scikit-learn") from error
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


def mlp(sizes: Sequence[int], *, seed: int | None, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A fully connected network with torch's default initialisation, drawn from its own ``seed`` (the
    global RNG left as it was), or from the global RNG with ``seed=None``."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return mlp(sizes, seed=None, activation=activation)
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


#: The standard-library modules whose source is the character corpus: plain-Python modules present
#: (and not frozen) in every CPython from 3.10 on; about 112,000 characters on 3.11.
CORPUS_MODULES = ("textwrap", "heapq", "bisect", "fnmatch", "shlex", "colorsys", "queue", "sched", "calendar")


def stdlib_corpus(modules: tuple[str, ...] = CORPUS_MODULES) -> tuple[str, str]:
    """``(text, sha256)``: the source files of ``modules`` as this interpreter has them, joined by a
    blank line, and the SHA-256 of the text (UTF-8), which identifies the corpus across Pythons."""
    parts = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        origin = None if spec is None else spec.origin
        if origin is None or not origin.endswith(".py") or not Path(origin).is_file():
            raise FileNotFoundError(
                f"the char-rnn corpus needs the source of the standard-library module {name!r}, "
                f"which this Python does not have as a .py file ({origin})"
            )
        parts.append(Path(origin).read_text(encoding="utf-8"))
    text = "\n\n".join(parts)
    return text, hashlib.sha256(text.encode("utf-8")).hexdigest()


def char_windows(codes: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """Non-overlapping next-character windows: ``inputs[i] = codes[iT : iT + T]``, ``targets[i] =
    codes[iT + 1 : iT + T + 1]`` for T = ``length`` (the incomplete tail dropped)."""
    n = (len(codes) - 1) // length
    inputs = codes[: n * length].reshape(n, length)
    targets = codes[1 : n * length + 1].reshape(n, length)
    return inputs, targets


class CharLSTM(nn.Module):
    """Embedding → LSTM → linear read-out over the vocabulary. ``forward(x)`` gives the logits
    ``[batch, time, vocab]`` of the next character; ``step(x, hidden)`` also takes and returns the
    LSTM state ``(h, c)``, for truncated BPTT."""

    def __init__(self, vocab: int, *, embed: int = 32, hidden: int = 128, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = nn.Embedding(vocab, embed)
            self.lstm = nn.LSTM(embed, hidden, batch_first=True)
            self.head = nn.Linear(hidden, vocab)

    def step(self, x: Tensor, hidden: tuple[Tensor, Tensor] | None = None):
        out, hidden = self.lstm(self.embed(x), hidden)
        return self.head(out), hidden

    def forward(self, x: Tensor) -> Tensor:
        return self.step(x)[0]


def sequence_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy over every position of ``[batch, time, vocab]`` logits."""
    return nn.functional.cross_entropy(logits.flatten(0, -2), targets.flatten())


def exploding_rnn(
    lr: float, clip: float | None, *, steps: int = 150, radius: float = 1.8, length: int = 40
) -> tuple[list[float], list[float]]:
    """Losses and pre-clip gradient norms of ``steps`` full-batch SGD steps of a tanh RNN 1 → 16 → 1
    whose recurrent matrix is rescaled to spectral radius ``radius``, learning a clipped running sum of
    ``length`` inputs; ``clip`` (a global-norm bound, :func:`descentlab.clipping.clip_by_global_norm`) or
    ``None``. Seeded and deterministic; the global RNG is left as it was."""
    from ..clipping import clip_by_global_norm

    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(32, length, 1, generator=g)
    targets = inputs.sum(1).clamp(-3, 3) / 3
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        rnn, head = nn.RNN(1, 16, batch_first=True), nn.Linear(16, 1)
    with torch.no_grad():
        w = rnn.weight_hh_l0
        w.copy_(w / torch.linalg.eigvals(w).abs().max() * radius)
    params = [*rnn.parameters(), *head.parameters()]
    opt = torch.optim.SGD(params, lr=lr)
    losses, norms = [], []
    for _ in range(steps):
        opt.zero_grad()
        out, _ = rnn(inputs)
        loss = nn.functional.mse_loss(head(out[:, -1]), targets)
        loss.backward()
        if clip is None:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        else:
            norm = clip_by_global_norm(params, clip, nonfinite=None)
        opt.step()
        losses.append(float(loss.detach()))
        norms.append(float(norm))
    return losses, norms
