"""Early stopping: stops on noisy labels, restores the best weights exactly, matches a hand-written loop."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from descentlab.training import EarlyStopping, evaluate
from descentlab.training._problems import batches, digits, mlp

CE = nn.functional.cross_entropy


@pytest.fixture(scope="module")
def noisy_digits():
    """200 training examples with 30 % of the labels redrawn at random; 300 clean validation examples."""
    x, y, xv, yv = digits(200)
    g = torch.Generator().manual_seed(1)
    noisy = y.clone()
    flip = torch.rand(len(y), generator=g) < 0.3
    noisy[flip] = torch.randint(0, 10, (int(flip.sum()),), generator=g)
    return x, noisy, xv[:300], yv[:300]


def _train(model, opt, data, stopper, epochs):
    """A plain loop: one EarlyStopping.step per epoch. Returns per-epoch (train loss, val loss)."""
    x, y, xv, yv = data
    train_losses, val_losses = [], []
    for _ in range(epochs):
        for inputs, targets in batches(x, y, 20, seed=0):
            opt.zero_grad()
            CE(model(inputs), targets).backward()
            opt.step()
        with torch.no_grad():
            train_losses.append(float(CE(model(x), y)))
        val_losses.append(evaluate(model, [(xv, yv)], CE)["val_loss"])
        if stopper.step(val_losses[-1], model):
            break
    return train_losses, val_losses


def test_it_stops_on_noisy_labels_and_restores_the_best_weights_exactly(noisy_digits):
    model = mlp([64, 256, 256, 10], seed=0)
    stopper = EarlyStopping(patience=10)
    train_losses, val_losses = _train(
        model, torch.optim.Adam(model.parameters(), lr=1e-3), noisy_digits, stopper, epochs=200
    )
    assert stopper.stopped and stopper.stop_reason == "patience"
    assert stopper.stopped_step == len(val_losses) - 1 < 199
    assert stopper.stopped_step - stopper.best_step == stopper.patience + 1
    assert stopper.best == min(val_losses) == val_losses[stopper.best_step]
    assert train_losses[stopper.stopped_step] < train_losses[stopper.best_step]  # still falling
    stopper.restore(model)
    _, _, xv, yv = noisy_digits
    assert evaluate(model, [(xv, yv)], CE)["val_loss"] == stopper.best  # exactly


def test_an_l2_logistic_regression_control_runs_all_epochs(noisy_digits):
    model = nn.Linear(64, 10)
    stopper = EarlyStopping(patience=10)
    _, val_losses = _train(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-2),
        noisy_digits,
        stopper,
        epochs=60,
    )
    assert not stopper.stopped and len(val_losses) == 60
    assert stopper.best_step == 59


def _hand_written_stop_epoch(values, patience, min_delta=0.0):
    best, wait = math.inf, 0
    for epoch, v in enumerate(values):
        if v < best - min_delta:
            best, wait = v, 0
        else:
            wait += 1
            if wait > patience:
                return epoch
    return None


@pytest.mark.parametrize("patience, min_delta", [(0, 0.0), (2, 0.0), (3, 0.05), (10, 0.0)])
def test_the_same_stop_epoch_as_a_hand_written_loop(patience, min_delta):
    g = torch.Generator().manual_seed(0)
    values = (
        torch.linspace(2, 0, 30) ** 2 + 0.3 * torch.rand(30, generator=g) + torch.linspace(0, 1, 30)
    ).tolist()
    stopper = EarlyStopping(patience=patience, min_delta=min_delta, restore_best=False)
    stopped_at = next((i for i, v in enumerate(values) if stopper.step(v)), None)
    assert stopped_at == _hand_written_stop_epoch(values, patience, min_delta)
    assert stopper.stopped_step == stopped_at


def test_mode_max_start_from_and_non_finite_values():
    stopper = EarlyStopping(monitor="val_acc", mode="max", patience=1, restore_best=False, start_from=2)
    # calls 0 and 1 are ignored (a warm-up), then 0.5 is the best, 0.4 and 0.45 do not improve
    assert [stopper.step(v) for v in [0.9, 0.95, 0.5, 0.4, 0.45]] == [False, False, False, False, True]
    assert stopper.best == 0.5 and stopper.best_step == 2 and stopper.stopped_step == 4
    nan_stop = EarlyStopping(patience=100, restore_best=False)
    assert nan_stop.step(1.0) is False
    assert nan_stop.step(torch.tensor(float("nan"))) is True
    assert nan_stop.stop_reason == "nonfinite" and nan_stop.best == 1.0
    unchecked = EarlyStopping(patience=100, restore_best=False, check_finite=False)
    assert unchecked.step(float("nan")) is False


def test_restore_after_a_normal_end_gives_the_best_weights():
    model = nn.Linear(3, 1)
    stopper = EarlyStopping(patience=50)
    saved = {}
    for epoch, value in enumerate([3.0, 1.0, 2.0, 2.5]):  # best at epoch 1; the run ends without a stop
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        stopper.step(value, model)
        saved[epoch] = model.weight.detach().clone()
    assert not stopper.stopped
    stopper.restore(model)
    assert torch.equal(model.weight, saved[1])
    with pytest.raises(RuntimeError, match="no best weights"):
        EarlyStopping().restore(model)


def test_state_dict_round_trip_continues_identically():
    values = [5.0, 4.0, 4.5, 3.0, 3.2, 3.1, 3.3, 2.0, 2.5, 2.6, 2.7, 2.8]
    model = nn.Linear(2, 2)
    whole = EarlyStopping(patience=3)
    whole_results = [whole.step(v, model) for v in values]
    first = EarlyStopping(patience=3)
    results = [first.step(v, model) for v in values[:5]]
    state = first.state_dict()
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    second = EarlyStopping(patience=3)
    second.load_state_dict(torch.load(buffer, weights_only=True))
    results += [second.step(v, model) for v in values[5:]]
    assert results == whole_results
    assert second.state_dict()["best"] == whole.best and second.stopped_step == whole.stopped_step
    assert all(torch.equal(second.best_state[k], whole.best_state[k]) for k in whole.best_state)
    with pytest.raises(ValueError, match="patience: saved 3, here 4"):
        EarlyStopping(patience=4).load_state_dict(state)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(mode="minimum"), r"mode must be one of \('min', 'max'\), got 'minimum'"),
        (dict(patience=-1), r"patience must be an integer in \[0, inf\], got -1"),
        (dict(patience=2.5), r"patience must be an integer in \[0, inf\], got 2.5"),
        (dict(min_delta=-0.1), r"min_delta must be in \[0, inf\], got -0.1"),
        (dict(start_from=-1), r"start_from must be an integer in \[0, inf\], got -1"),
        (dict(restore_best=1), r"restore_best must be True or False, got 1"),
        (dict(monitor=""), r"monitor must be a non-empty string"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        EarlyStopping(**kwargs)
