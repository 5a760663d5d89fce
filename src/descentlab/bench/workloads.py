"""The workloads of the benchmark: a registry of small, real training problems.

Each :class:`Workload` declares everything a trial needs and nothing an optimizer could tune: its data
builder (checked against the sha256 of the decoded arrays stored in the registry), its model, loss and
metric, the **frozen target** (from ``targets.json``, written offline by ``descentlab bench
set-targets``, never computed at run time), the step budget, the evaluation interval (in optimizer
steps) and the batch size (``None``: the full training set, deterministic gradient descent).

Quick tier (everything from installed packages, no download):

* ``cancer-logreg`` — L2-regularised logistic regression (λ = 1e-2) on scikit-learn's breast-cancer
  data, full batch, float64; the metric is the suboptimality f − f* of the training objective, with
  f* from float64 L-BFGS computed once by ``set-targets`` and stored; target f − f* ≤ 1e-4;
* ``digits-mlp`` — 64-128-128-10 ReLU MLP on scikit-learn's digits, a fixed stratified 20 %
  validation split, validation accuracy;
* ``mnist1d-cnn`` — a small 1-D CNN on ``mnist1d`` generated with ``make_dataset`` (never its
  downloading ``get_dataset``; the global Python and NumPy RNGs it reseeds are put back), accuracy;
* ``digits-autoencoder`` — 64-32-8-32-64 tanh autoencoder on the digits training images, full batch,
  training MSE: the curvature-heavy optimization problem, where the second-order solvers apply.

Full tier adds ``fashion-mlp`` and ``fashion-cnn`` (Debian's ``dataset-fashion-mnist`` package,
skipped with a one-line reason where it is absent) and ``char-lstm`` (a character LSTM on the source of
a fixed list of Python standard-library modules; its hash is recorded in every result — results are
comparable only between runs with equal hashes, since the source changes with the Python version).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import random
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..validation import check_int

__all__ = [
    "Workload",
    "Data",
    "WORKLOADS",
    "TIERS",
    "get_workload",
    "tier_workloads",
    "targets_registry",
    "array_sha256",
    "StepBatches",
    "FASHION_MNIST_DIR",
    "L2_CANCER",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
L2_CANCER = 1e-2
TIERS = ("quick", "full")


@dataclass(frozen=True)
class Data:
    """Decoded arrays of a workload: training and validation tensors, and their sha256."""

    train: tuple[Tensor, Tensor]
    val: tuple[Tensor, Tensor]
    sha256: str


@dataclass(frozen=True)
class Workload:
    """One benchmark problem. See the module docstring; build one with :func:`get_workload`.

    Attributes:
        name, tier, summary: registry key, ``"quick"`` or ``"full"``, one line (data and model).
        metric: the name of the target metric (``"accuracy"``, ``"mse"``, ``"suboptimality"``, …).
        mode: ``"max"`` (accuracy) or ``"min"`` (losses): the direction in which it improves.
        budget: optimizer steps of every trial (the same for every optimizer).
        eval_every: evaluate after every this many steps (the resolution of time-to-target).
        batch_size: mini-batch size; ``None`` for the full training set.
        dtype: of the data and the model.
        seconds_per_step: a rough cost on one thread of a 2-core CI machine (for ``bench list``).
        hash_enforced: whether a data hash different from the registry's is an error (``char-lstm``
            only records it: its corpus is the Python standard library of the running interpreter).
        held_out: whether the metric is measured on held-out data (``False`` for the two optimization
            problems, ``cancer-logreg`` and ``digits-autoencoder``, measured on the training set).
    """

    name: str
    tier: str
    summary: str
    metric: str
    mode: str
    budget: int
    eval_every: int
    batch_size: int | None
    build_data: Callable[[], tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]] = field(repr=False)
    build_model: Callable[[], nn.Module] = field(repr=False)
    loss: Callable[[Any, Tensor], Tensor] = field(repr=False)
    score: Callable[[Any, Tensor], Tensor] = field(repr=False)
    init: str = "kaiming_uniform"
    dtype: torch.dtype = torch.float32
    seconds_per_step: float = 5e-4
    hash_enforced: bool = True
    unavailable: Callable[[], str | None] = field(default=lambda: None, repr=False)
    full_batch_solvers: bool = False
    held_out: bool = True

    # -- registry values ------------------------------------------------------------------------
    @property
    def record(self) -> dict[str, Any]:
        """This workload's entry of ``targets.json`` (target, version, data hash, f*, …)."""
        registry = targets_registry()
        if self.name not in registry["workloads"]:
            raise ValueError(
                f"workload {self.name!r} has no entry in the targets registry; run "
                f"`descentlab bench set-targets --workloads {self.name}`"
            )
        return registry["workloads"][self.name]

    @property
    def target(self) -> float:
        """The frozen target of the metric (reached when ``metric ≥ target`` for ``mode="max"``)."""
        return float(self.record["target"])

    def reached(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return value >= self.target if self.mode == "max" else value <= self.target

    def better(self, a: float, b: float) -> bool:
        """Whether metric value ``a`` is strictly better than ``b`` (NaN is never better)."""
        if not math.isfinite(a):
            return False
        if not math.isfinite(b):
            return True
        return a > b if self.mode == "max" else a < b

    @property
    def full_batch(self) -> bool:
        return self.batch_size is None

    def why_unavailable(self) -> str | None:
        """``None`` when the workload can run here, else a one-line reason (a missing package)."""
        return self.unavailable()

    def estimated_minutes(self, trials: int = 1) -> float:
        return trials * self.budget * self.seconds_per_step / 60

    # -- building ---------------------------------------------------------------------------------
    def data(self) -> Data:
        """Build (once per process) the decoded arrays and check their sha256 against the registry."""
        return _data(self.name)

    def model(self, seed: int) -> nn.Module:
        """The model, initialised from ``seed`` alone; the global torch RNG is left as it was."""
        from ..init import init_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.build_model().to(self.dtype)
        generator = torch.Generator().manual_seed(seed)
        init_model(model, self.init, generator=generator)
        return model


def array_sha256(*arrays: Tensor | np.ndarray) -> str:
    """sha256 over every array's dtype, shape and bytes, in order (C-contiguous)."""
    digest = hashlib.sha256()
    for array in arrays:
        value = array.numpy() if isinstance(array, Tensor) else np.asarray(array)
        value = np.ascontiguousarray(value)
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


@cache
def targets_registry() -> dict[str, Any]:
    """The frozen registry (``descentlab/bench/targets.json``): version, and per workload the target,
    how it was set, the data hash and (``cancer-logreg``) f*."""
    text = resources.files("descentlab.bench").joinpath("targets.json").read_text("utf-8")
    return json.loads(text)


def decoded(name: str) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...], str]:
    """(train, val, sha256) as built, without comparing with the registry (``set-targets`` records it)."""
    workload = get_workload(name)
    reason = workload.why_unavailable()
    if reason is not None:
        raise ValueError(f"workload {name!r} is unavailable here: {reason}")
    train, val = workload.build_data()
    train = tuple(t.to(workload.dtype) if t.is_floating_point() else t for t in train)
    val = tuple(t.to(workload.dtype) if t.is_floating_point() else t for t in val)
    return train, val, array_sha256(*train, *val)


@cache
def _data(name: str) -> Data:
    workload = get_workload(name)
    train, val, digest = decoded(name)
    expected = targets_registry()["workloads"].get(name, {}).get("data_sha256")
    if workload.hash_enforced and expected is not None and expected != digest:
        raise ValueError(
            f"the data of workload {name!r} differ from the registry's (sha256 {digest[:12]}…, registry "
            f"{expected[:12]}…): its frozen target does not apply; rerun `descentlab bench set-targets`"
        )
    return Data(train=train, val=val, sha256=digest)


class StepBatches:
    """A re-iterable of mini-batches for :func:`descentlab.training.fit`: every pass yields the next
    ``steps`` batches (one evaluation interval), walking through epochs of a permutation drawn from
    ``generator``; with ``batch_size=None`` every batch is the whole training set.

    The order depends on the generator's seed only, so every optimizer sees the same batches."""

    def __init__(
        self, x: Tensor, y: Tensor, batch_size: int | None, steps: int, generator: torch.Generator
    ) -> None:
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.steps = check_int("steps", steps)
        self.generator = generator
        self._order = torch.empty(0, dtype=torch.long)
        self._position = 0

    def __len__(self) -> int:
        return self.steps

    def _next(self) -> tuple[Tensor, Tensor]:
        if self.batch_size is None:
            return self.x, self.y
        if self._position + self.batch_size > len(self._order):
            self._order = torch.randperm(len(self.x), generator=self.generator)
            self._position = 0
        index = self._order[self._position : self._position + self.batch_size]
        self._position += self.batch_size
        return self.x[index], self.y[index]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for _ in range(self.steps):
            yield self._next()


# -- data builders ---------------------------------------------------------------------------------
def _sklearn_missing() -> str | None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "scikit-learn is not installed (pip install scikit-learn)"
    return None


def _cancer() -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    return (xt, yt), (xt, yt)  # an optimization problem: f is measured on the training set


def _stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): ``fraction`` of every class to validation, by a fixed seed."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rng.shuffle(members)
        cut = round(fraction * len(members))
        val.extend(members[:cut])
        train.extend(members[cut:])
    return np.sort(np.array(train)), np.sort(np.array(val))


def _digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    train, val = _stratified_split(y, 0.2, seed=0)
    return x[train] / 16.0, y[train], x[val] / 16.0, y[val]


def _digits() -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    xt, yt, xv, yv = _digits_arrays()
    return (
        (torch.tensor(xt, dtype=torch.float32), torch.tensor(yt)),
        (torch.tensor(xv, dtype=torch.float32), torch.tensor(yv)),
    )


def _digits_images() -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    xt, _, _, _ = _digits_arrays()
    train = torch.tensor(xt, dtype=torch.float32)
    return (train, train), (train, train)  # an optimization problem: the MSE is measured on the training set


def _mnist1d_missing() -> str | None:
    try:
        import mnist1d  # noqa: F401
    except ImportError:
        return "the mnist1d package is not installed (pip install mnist1d)"
    return None


def _mnist1d() -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    # make_dataset reseeds Python's and NumPy's global RNGs: keep them as the caller had them.
    python_state, numpy_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    try:
        from mnist1d.data import get_dataset_args, make_dataset

        data = make_dataset(get_dataset_args())
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)  # noqa: NPY002
    to_x = lambda a: torch.tensor(a, dtype=torch.float32)[:, None, :]  # noqa: E731
    return ((to_x(data["x"]), torch.tensor(data["y"])), (to_x(data["x_test"]), torch.tensor(data["y_test"])))


def _fashion_missing() -> str | None:
    files = (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    )
    if not all((FASHION_MNIST_DIR / f).is_file() for f in files):
        return f"Fashion-MNIST is not in {FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)"
    return None


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def _fashion() -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    d = FASHION_MNIST_DIR
    images = lambda n: torch.tensor(_idx(d / n).astype(np.float32) / 255.0)[:, None]  # noqa: E731
    labels = lambda n: torch.tensor(_idx(d / n).astype(np.int64))  # noqa: E731
    return (
        (images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")),
        (images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")),
    )


#: the standard-library modules whose source is the char-LSTM corpus (pure-Python, present in 3.10+)
CORPUS_MODULES = (
    "textwrap",
    "string",
    "heapq",
    "bisect",
    "fnmatch",
    "glob",
    "shlex",
    "difflib",
    "calendar",
    "fractions",
    "statistics",
    "colorsys",
    "contextlib",
    "functools",
)
CORPUS_CHARS = 200_000
SEQUENCE = 64


def _corpus_text() -> str:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = "".join((stdlib / f"{name}.py").read_text("utf-8") for name in CORPUS_MODULES)
    return "".join(c if ord(c) < 128 else "?" for c in text)[:CORPUS_CHARS]


def _corpus_missing() -> str | None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    missing = [name for name in CORPUS_MODULES if not (stdlib / f"{name}.py").is_file()]
    return f"the Python source of {', '.join(missing)} is not in {stdlib}" if missing else None


def _chars() -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    codes = torch.tensor(list(_corpus_text().encode("ascii")), dtype=torch.long)
    n = (len(codes) - 1) // SEQUENCE
    inputs = codes[: n * SEQUENCE].view(n, SEQUENCE)
    targets = codes[1 : n * SEQUENCE + 1].view(n, SEQUENCE)
    cut = n - n // 10  # the last 10 % of the corpus is the validation text
    return (inputs[:cut], targets[:cut]), (inputs[cut:], targets[cut:])


# -- models, losses, metrics ------------------------------------------------------------------------
class RegularisedLogistic(nn.Module):
    """``x ↦ (xᵀw + b, ½λ‖w‖²)``: the logits and the L2 penalty, which the loss adds (bias not decayed)."""

    def __init__(self, features: int, l2: float = L2_CANCER) -> None:
        super().__init__()
        self.linear = nn.Linear(features, 1)
        self.l2 = l2

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.linear(x).squeeze(-1), 0.5 * self.l2 * self.linear.weight.pow(2).sum()


def logistic_objective(outputs: tuple[Tensor, Tensor], y: Tensor) -> Tensor:
    """f(w) = mean binary cross-entropy + ½λ‖w‖²."""
    logits, penalty = outputs
    return nn.functional.binary_cross_entropy_with_logits(logits, y) + penalty


def logistic_f_star() -> float:
    """f* of ``cancer-logreg`` by SciPy's L-BFGS-B in float64 (gradient tolerance 1e-12): what
    ``set-targets`` stores in the registry; never computed during a run."""
    from scipy.optimize import minimize

    (x, y), _ = _cancer()
    xn, yn = x.numpy(), y.numpy()

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        z = xn @ w + b
        loss = np.mean(np.logaddexp(0.0, z) - yn * z) + 0.5 * L2_CANCER * w @ w
        residual = (1.0 / (1.0 + np.exp(-z)) - yn) / len(yn)
        return float(loss), np.append(xn.T @ residual + L2_CANCER * w, residual.sum())

    result = minimize(
        objective,
        np.zeros(xn.shape[1] + 1),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-12, "ftol": 0.0, "maxiter": 10_000},
    )
    return float(result.fun)


def _suboptimality(outputs: tuple[Tensor, Tensor], y: Tensor) -> Tensor:
    return logistic_objective(outputs, y) - get_workload("cancer-logreg").record["f_star"]


def _accuracy(outputs: Tensor, targets: Tensor) -> Tensor:
    return (outputs.argmax(dim=-1) == targets).to(torch.float64).mean()


def _mse(outputs: Tensor, targets: Tensor) -> Tensor:
    return nn.functional.mse_loss(outputs, targets)


def _sequence_ce(outputs: Tensor, targets: Tensor) -> Tensor:
    return nn.functional.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))


def _mlp(sizes: tuple[int, ...], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """The built-in problems' MLP, initialised from the global RNG (seeded per trial by the runner)."""
    from ..training._problems import mlp

    return mlp(sizes, seed=None, activation=activation)


def _mnist1d_cnn(channels: int = 16) -> nn.Module:
    """mnist1d's own ConvBase (three stride-2 convolutions and a linear head), 16 channels."""
    return nn.Sequential(
        nn.Conv1d(1, channels, 5, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(channels * 5, 10),
    )


def _fashion_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    )


class CharLSTM(nn.Module):
    """Embedding(128, 32) → LSTM(32, 128) → Linear(128, 128): next-character logits."""

    def __init__(self, vocabulary: int = 128, embedding: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocabulary, embedding)
        self.lstm = nn.LSTM(embedding, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocabulary)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(self.embed(x))
        return self.head(out)


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload(
            name="cancer-logreg",
            tier="quick",
            summary="breast cancer (569 × 30, standardised), L2 logistic regression λ = 1e-2, full batch, "
            "float64; metric f − f*",
            metric="suboptimality",
            mode="min",
            budget=400,
            eval_every=10,
            batch_size=None,
            build_data=_cancer,
            build_model=lambda: RegularisedLogistic(30),
            loss=logistic_objective,
            score=_suboptimality,
            init="xavier_uniform",
            dtype=torch.float64,
            seconds_per_step=2.5e-4,
            unavailable=_sklearn_missing,
            full_batch_solvers=True,
            held_out=False,
        ),
        Workload(
            name="digits-mlp",
            tier="quick",
            summary="digits (1438 / 359 stratified split), 64-128-128-10 ReLU MLP, batch 64; validation "
            "accuracy",
            metric="accuracy",
            mode="max",
            budget=600,
            eval_every=30,
            batch_size=64,
            build_data=_digits,
            build_model=lambda: _mlp((64, 128, 128, 10)),
            loss=nn.functional.cross_entropy,
            score=_accuracy,
            seconds_per_step=5e-4,
            unavailable=_sklearn_missing,
        ),
        Workload(
            name="mnist1d-cnn",
            tier="quick",
            summary="mnist1d (make_dataset: 4000 / 1000, length 40), mnist1d's 3-layer 1-D CNN with 16 "
            "channels, batch 128; validation accuracy",
            metric="accuracy",
            mode="max",
            budget=1000,
            eval_every=50,
            batch_size=128,
            build_data=_mnist1d,
            build_model=_mnist1d_cnn,
            loss=nn.functional.cross_entropy,
            score=_accuracy,
            seconds_per_step=1.4e-3,
            unavailable=_mnist1d_missing,
        ),
        Workload(
            name="digits-autoencoder",
            tier="quick",
            summary="digits images (1438), 64-32-8-32-64 tanh autoencoder, full batch; training MSE (an "
            "optimization problem, like cancer-logreg)",
            metric="mse",
            mode="min",
            budget=400,
            eval_every=20,
            batch_size=None,
            build_data=_digits_images,
            build_model=lambda: _mlp((64, 32, 8, 32, 64), nn.Tanh),
            loss=nn.functional.mse_loss,
            score=_mse,
            init="xavier_uniform",
            seconds_per_step=1.2e-3,
            unavailable=_sklearn_missing,
            full_batch_solvers=True,
            held_out=False,
        ),
        Workload(
            name="fashion-mlp",
            tier="full",
            summary="Fashion-MNIST (Debian's package, 60000 / 10000), 784-256-10 ReLU MLP, batch 128; "
            "validation accuracy",
            metric="accuracy",
            mode="max",
            budget=2000,
            eval_every=200,
            batch_size=128,
            build_data=_fashion,
            build_model=lambda: nn.Sequential(nn.Flatten(), _mlp((784, 256, 10))),
            loss=nn.functional.cross_entropy,
            score=_accuracy,
            seconds_per_step=1.5e-3,
            unavailable=_fashion_missing,
        ),
        Workload(
            name="fashion-cnn",
            tier="full",
            summary="Fashion-MNIST (Debian's package), 2-layer CNN, batch 128; validation accuracy",
            metric="accuracy",
            mode="max",
            budget=2000,
            eval_every=200,
            batch_size=128,
            build_data=_fashion,
            build_model=_fashion_cnn,
            loss=nn.functional.cross_entropy,
            score=_accuracy,
            seconds_per_step=6e-3,
            unavailable=_fashion_missing,
        ),
        Workload(
            name="char-lstm",
            tier="full",
            summary=f"character LSTM (128 units) on {CORPUS_CHARS // 1000}k characters of Python's standard "
            "library source, sequences of 64, batch 32; validation cross-entropy (nats/char)",
            metric="cross-entropy",
            mode="min",
            budget=1500,
            eval_every=100,
            batch_size=32,
            build_data=_chars,
            build_model=CharLSTM,
            loss=_sequence_ce,
            score=_sequence_ce,
            init="xavier_uniform",
            seconds_per_step=8e-3,
            hash_enforced=False,
            unavailable=_corpus_missing,
        ),
    ]
}


def get_workload(name: str) -> Workload:
    """The workload called ``name``; ``ValueError`` with the closest names otherwise."""
    from ..specs import _closest

    if name in WORKLOADS:
        return WORKLOADS[name]
    raise ValueError(f"unknown workload {name!r}; {_closest(name, WORKLOADS)}valid: {', '.join(WORKLOADS)}")


def tier_workloads(tier: str) -> list[Workload]:
    """The workloads of a tier (``full`` includes ``quick``)."""
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    return [w for w in WORKLOADS.values() if tier == "full" or w.tier == "quick"]
