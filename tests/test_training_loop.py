"""fit: bit-identical resume after SIGKILL, bad checkpoints, monitor, schedulers, TensorBoard, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import descentlab
import descentlab.optim as dl
from descentlab.schedules import ScheduleLR, StepDecay
from descentlab.training import CheckpointError, EarlyStopping, History, accuracy, fit
from descentlab.training._problems import batches, digits, mlp
from descentlab.validation import NonFiniteError

CE = nn.functional.cross_entropy
CHILD = Path(__file__).with_name("_training_fit_child.py")
SRC = Path(descentlab.__file__).resolve().parents[1]


def _child(checkpoint: Path, out: Path, kill_at: int, optimizer: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(checkpoint), str(out), str(kill_at), optimizer],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(process: subprocess.Popen) -> None:
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr[-3000:]


def _equal(a, b) -> bool:
    """Bitwise equality of nested checkpoint-like structures."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.timeout(600)
@pytest.mark.parametrize("optimizer", ["descentlab-adam", "torch-sgd-momentum"])
def test_a_run_killed_with_sigkill_resumes_bit_identically(tmp_path, optimizer):
    reference = tmp_path / "reference.pt"
    uninterrupted = _child(tmp_path / "reference.ckpt", reference, -1, optimizer)  # runs alongside

    checkpoint, out = tmp_path / "run.ckpt", tmp_path / "run.pt"
    kill_at = 13  # 8 batches per epoch: inside the second epoch; the last checkpoint is at step 12
    process = _child(checkpoint, out, kill_at, optimizer)
    for line in process.stdout:
        if line.strip() == f"step {kill_at}":
            break
    else:
        pytest.fail(f"the child ended before step {kill_at}: {process.stderr.read()[-2000:]}")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["position"]["step"] == 12 and saved["position"]["batch"] == 4  # mid-epoch
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.")]  # no temporary file left

    _finish(_child(checkpoint, out, -1, optimizer))  # the same call again
    _finish(uninterrupted)
    a, b = torch.load(reference, weights_only=True), torch.load(out, weights_only=True)
    assert _equal(a["model"], b["model"])
    assert _equal(a["optimizer"], b["optimizer"])
    assert b["history"].pop("resumed_at") == [12] and a["history"].pop("resumed_at") == []
    assert _equal(a["history"], b["history"])
    assert _equal(a["monitor"], b["monitor"])
    assert len(a["history"]["loss"]) == 40 and len(a["history"]["epochs"]) == 5


# -- in-process runs --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data():
    x, y, xv, yv = digits(256)
    return batches(x, y, 32, seed=0), [(xv[:200], yv[:200])]


def _run(data, path=None, epochs=2, optimizer=torch.optim.SGD, **kwargs):
    train, val = data
    torch.manual_seed(0)
    model = mlp([64, 32, 10], seed=0)
    opt = optimizer(model.parameters(), lr=0.05)
    kwargs.setdefault("progress", False)
    history = fit(model, opt, train, epochs=epochs, loss_fn=CE, val=val, checkpoint=path, **kwargs)
    return model, opt, history


def test_a_truncated_checkpoint_is_a_clear_error_and_is_left_as_it_was(tmp_path, data):
    path = tmp_path / "run.ckpt"
    _run(data, path)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="cannot be read.*truncated"):
        _run(data, path)
    assert path.read_bytes() == good[: len(good) // 2]


def test_a_foreign_checkpoint_is_a_clear_error_and_is_left_as_it_was(tmp_path, data):
    train, val = data
    path = tmp_path / "run.ckpt"
    _run(data, path)
    good = path.read_bytes()
    other = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    with pytest.raises(
        CheckpointError,
        match=r"another model.*0.weight: saved \[\[32, 64\], 'torch.float32'\], "
        r"model \[\[16, 64\], 'torch.float32'\]",
    ):
        fit(other, torch.optim.SGD(other.parameters(), lr=0.1), train, epochs=2, loss_fn=CE, checkpoint=path)
    model = mlp([64, 32, 10], seed=0)
    with pytest.raises(CheckpointError, match="another optimizer.*SGD.*Adam"):
        fit(model, torch.optim.Adam(model.parameters()), train, epochs=2, loss_fn=CE, checkpoint=path)
    with pytest.raises(CheckpointError, match="epochs=2, this call has epochs=3"):
        _run(data, path, epochs=3)
    with pytest.raises(CheckpointError, match="written by a run without early stopping, this call has one"):
        _run(data, path, early_stopping=EarlyStopping())
    with pytest.raises(CheckpointError, match="written by a run without scheduler, this call has one"):
        model = mlp([64, 32, 10], seed=0)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        fit(
            model,
            opt,
            data[0],
            epochs=2,
            loss_fn=CE,
            checkpoint=path,
            scheduler=torch.optim.lr_scheduler.StepLR(opt, 1),
        )
    with_stopper = tmp_path / "stopper.ckpt"
    _run(data, with_stopper, early_stopping=EarlyStopping(patience=3))
    with pytest.raises(
        CheckpointError, match="early stopping with other settings .patience: saved 3, here 4"
    ):
        _run(data, with_stopper, early_stopping=EarlyStopping(patience=4))
    plain = tmp_path / "weights.pt"
    torch.save(model.state_dict(), plain)
    with pytest.raises(CheckpointError, match="is not a descentlab fit checkpoint"):
        _run(data, plain)
    assert path.read_bytes() == good


def test_a_checkpoint_from_another_descentlab_version_is_refused(tmp_path, data, monkeypatch):
    path = tmp_path / "run.ckpt"
    _run(data, path)
    good = path.read_bytes()
    monkeypatch.setattr(descentlab, "__version__", "0.0.1-other")
    with pytest.raises(CheckpointError, match=r"written by descentlab .*, this is 0.0.1-other"):
        _run(data, path)
    assert path.read_bytes() == good


def test_a_crash_while_writing_keeps_the_previous_good_checkpoint(tmp_path, data, monkeypatch):
    path = tmp_path / "run.ckpt"
    real_save, calls = torch.save, []

    def crash_on_the_second_write(obj, f, *args, **kwargs):
        calls.append(f)
        real_save(obj, f, *args, **kwargs)
        if len(calls) == 2:  # the final checkpoint: half written, then the disk fills up
            with open(f, "r+b") as handle:
                handle.truncate(100)
            raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_on_the_second_write)
    with pytest.raises(OSError, match="disk full"):
        _run(data, path, epochs=2)  # writes after epoch 0, then fails writing the final one
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]  # no temporary file left
    kept = torch.load(path, weights_only=True)
    assert kept["position"]["epoch"] == 1 and not kept["position"]["finished"]
    model, opt, history = _run(data, path, epochs=2)  # resumes from the good one
    reference_model, _, reference = _run(data, None, epochs=2)
    assert history == reference and history.resumed_at == [8]
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference_model.parameters()))


def test_a_finished_checkpoint_returns_its_history_without_training(tmp_path, data):
    path = tmp_path / "run.ckpt"
    model, _, history = _run(data, path)
    again_model, _, again = _run(data, path)
    assert again == history and again.resumed_at == []
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again_model.parameters()))


def test_the_monitor_gets_every_step_and_every_validation(data):
    class Recorder:
        def __init__(self):
            self.calls = []

        def log(self, step=None, **scalars):
            self.calls.append((step, scalars))
            return []

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    monitor = Recorder()
    _, opt, history = _run(data, monitor=monitor, metrics={"acc": accuracy})
    steps = [c for c in monitor.calls if "loss" in c[1]]
    vals = [c for c in monitor.calls if "val_loss" in c[1]]
    assert [s for s, _ in steps] == list(range(1, 17)) and len(vals) == 2
    assert [c["loss"] for _, c in steps] == history.loss
    assert all(c["lr"] == 0.05 for _, c in steps)
    assert vals[1] == (
        16,
        {"val_loss": history.epochs[1]["val_loss"], "val_acc": history.epochs[1]["val_acc"]},
    )
    assert monitor.calls.index(vals[0]) == 8  # right after the 8th step


def test_schedulers_per_step_per_epoch_and_on_a_metric(data):
    _, opt, history = _run(data, optimizer=dl.SGD, scheduler_interval="step", scheduler=None)
    assert history.lr == [0.05] * 16
    train, val = data
    model = mlp([64, 32, 10], seed=0)
    opt = dl.SGD(model.parameters(), lr=0.05)
    schedule = StepDecay(eta_max=0.05, step_size=5, gamma=0.5)
    history = fit(
        model,
        opt,
        train,
        epochs=2,
        loss_fn=CE,
        scheduler=ScheduleLR(opt, schedule),
        scheduler_interval="step",
        progress=False,
    )
    assert history.lr == [schedule(t) for t in range(16)]
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    history = fit(
        model,
        opt,
        train,
        epochs=3,
        loss_fn=CE,
        scheduler=torch.optim.lr_scheduler.StepLR(opt, 1, 0.1),
        progress=False,
    )
    assert history.lr == pytest.approx([0.05] * 8 + [0.005] * 8 + [0.0005] * 8, rel=1e-12)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5, threshold=10.0)
    history = fit(model, opt, train, epochs=3, loss_fn=CE, val=val, scheduler=plateau, progress=False)
    assert history.lr[8] == 0.025 and history.lr[16] == 0.0125  # every epoch counts as no improvement


def test_early_stopping_inside_fit_restores_the_best_weights(data):
    stopper = EarlyStopping(patience=1)
    model, _, history = _run(data, epochs=30, optimizer=torch.optim.Adam, early_stopping=stopper)
    assert history.stopped_epoch is not None and history.stopped_epoch < 29
    assert history.best_epoch == stopper.best_step
    _, val = data
    from descentlab.training import evaluate

    assert evaluate(model, val, CE)["val_loss"] == history.epochs[history.best_epoch]["val_loss"]


def test_non_finite_losses_raise_or_are_skipped(data):
    train, _ = data
    bad = [(x.clone(), y) for x, y in train]
    bad[3][0][0, 0] = float("nan")
    model = mlp([64, 32, 10], seed=0)
    with pytest.raises(NonFiniteError, match="the training loss is nan at epoch 0, step 4"):
        fit(model, torch.optim.SGD(model.parameters(), lr=0.1), bad, epochs=1, loss_fn=CE, progress=False)
    model = mlp([64, 32, 10], seed=0)
    history = fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        bad,
        epochs=1,
        loss_fn=CE,
        progress=False,
        nonfinite="skip",
    )
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert history.loss[3] != history.loss[3]  # recorded as NaN, the update skipped


def test_progress_is_quiet_when_not_a_terminal(data, capsys):
    _run(data, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_tensorboard_event_files_hold_the_logged_scalars(tmp_path, data):
    pytest.importorskip(
        "tensorboard", reason="tensorboard is not installed: pip install 'descentlab[tensorboard]'"
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, _, history = _run(data, log_dir=tmp_path / "tb", metrics={"acc": accuracy})
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert {"train/loss", "train/lr", "val/loss", "val/acc", "train/epoch_loss"} <= set(
        events.Tags()["scalars"]
    )
    logged = events.Scalars("train/loss")
    assert [e.step for e in logged] == history.steps
    assert [e.value for e in logged] == pytest.approx(history.loss, rel=1e-6)  # stored as float32
    assert [e.value for e in events.Scalars("val/acc")] == pytest.approx(history.metric("val_acc"), rel=1e-6)


def test_history_round_trips_through_its_state_dict(data):
    _, _, history = _run(data, metrics={"acc": accuracy})
    assert History.from_state_dict(history.state_dict()) == history
    assert len(history.metric("val_acc")) == 2 and history.epochs[0]["step"] == 8


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(epochs=0), r"epochs must be an integer in \[1, inf\], got 0"),
        (
            dict(early_stopping=EarlyStopping(monitor="val_acc")),
            r"early_stopping.monitor must be one of the "
            r"validation values \['val_loss'\]",
        ),
        (dict(checkpoint_every=5), "checkpoint_every needs checkpoint=PATH"),
        (dict(checkpoint_every=0, checkpoint="x.ckpt"), r"checkpoint_every must be an integer in \[1, inf\]"),
        (dict(scheduler_interval="batch"), r"scheduler_interval must be one of \('epoch', 'step'\)"),
        (dict(monitor=object()), r"monitor must have log\(\), state_dict\(\) and load_state_dict\(\)"),
        (dict(nonfinite="ignore"), "nonfinite must be None, 'raise' or 'skip'"),
        (dict(progress=1), "progress must be True or False"),
        (dict(metrics={"acc": 3}), r"metrics\['acc'\] must be callable"),
        (dict(train_step="tbptt"), r"train_step must be callable"),
    ],
)
def test_bad_arguments_raise_before_any_work(data, kwargs, pattern, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train, val = data
    model = mlp([64, 32, 10], seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    kwargs = {"epochs": 1, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        fit(model, torch.optim.SGD(model.parameters(), lr=0.1), train, loss_fn=CE, val=val, **kwargs)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert list(tmp_path.iterdir()) == []


def test_a_one_shot_iterator_is_refused(data):
    train, _ = data
    model = mlp([64, 32, 10], seed=0)
    with pytest.raises(ValueError, match="train must be a re-iterable"):
        fit(model, torch.optim.SGD(model.parameters(), lr=0.1), iter(train), epochs=1, loss_fn=CE)
    with pytest.raises(ValueError, match="early_stopping.monitor must be one of the validation values"):
        fit(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            train,
            epochs=1,
            loss_fn=CE,
            early_stopping=EarlyStopping(),
        )


# -- train_step: the batch's loss and gradients computed by the caller (truncated BPTT) ------------
def _sequences():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 16, 3, generator=g), torch.randn(24, 16, 1, generator=g)
    return [(x[i : i + 8], y[i : i + 8]) for i in range(0, 24, 8)], [(x[:8], y[:8])]


class _Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.rnn, self.head = nn.RNN(3, 8, batch_first=True), nn.Linear(8, 1)

    def step(self, x, hidden=None):
        out, hidden = self.rnn(x, hidden)
        return self.head(out), hidden

    def forward(self, x):
        return self.step(x)[0]


def _truncated(k):
    from descentlab.training import tbptt

    def train_step(model, inputs, targets):
        def step(chunk, hidden):
            x, y = chunk
            out, hidden = model.step(x, hidden)
            return nn.functional.mse_loss(out, y, reduction="sum") / targets.numel(), hidden

        return tbptt(step, (inputs, targets), k).loss

    return train_step


def _fit_sequences(train_step=None, **kwargs):
    train, val = _sequences()
    model = _Recurrent()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = fit(model, opt, train, epochs=3, loss_fn=nn.functional.mse_loss, val=val, progress=False,
                  train_step=train_step, **kwargs)
    return model, history


def test_train_step_with_full_bptt_equals_the_default_step_bit_for_bit():
    model, history = _fit_sequences()
    full, full_history = _fit_sequences(_truncated(16))  # k = T: one chunk, full BPTT
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), full.state_dict().values()))
    assert history == full_history
    short, short_history = _fit_sequences(_truncated(4))  # truncated: other gradients, another run
    assert not torch.equal(short.rnn.weight_hh_l0, model.rnn.weight_hh_l0)
    assert short_history.epochs[0]["train_loss"] != history.epochs[0]["train_loss"]


def test_train_step_resumes_from_a_checkpoint_bit_identically(tmp_path):
    reference, reference_history = _fit_sequences(_truncated(4))
    path = tmp_path / "run.ckpt"
    calls = {"n": 0}
    inner = _truncated(4)

    def crashing(model, inputs, targets):
        calls["n"] += 1
        if calls["n"] == 5:  # inside the second epoch, after the checkpoint at step 4
            raise RuntimeError("killed")
        return inner(model, inputs, targets)

    with pytest.raises(RuntimeError, match="killed"):
        _fit_sequences(crashing, checkpoint=path, checkpoint_every=2)
    resumed, history = _fit_sequences(_truncated(4), checkpoint=path, checkpoint_every=2)
    assert history.resumed_at == [4]
    assert history == reference_history
    pairs = zip(reference.state_dict().values(), resumed.state_dict().values())
    assert all(torch.equal(a, b) for a, b in pairs)


def test_train_step_non_finite_loss_discards_its_gradients_when_skipping():
    train, val = _sequences()
    poisoned = [(x.clone(), y) for x, y in train]
    poisoned[1][0][0, 0, 0] = float("nan")
    model = _Recurrent()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # no momentum: a skipped step moves nothing
    history = fit(model, opt, poisoned[:2], epochs=1, loss_fn=nn.functional.mse_loss, progress=False,
                  train_step=_truncated(4), nonfinite="skip")
    assert history.loss[1] != history.loss[1]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    once = _Recurrent()
    fit(once, torch.optim.SGD(once.parameters(), lr=0.1), poisoned[:1], epochs=1,
        loss_fn=nn.functional.mse_loss, progress=False, train_step=_truncated(4))
    assert all(torch.equal(a, b) for a, b in zip(once.state_dict().values(), model.state_dict().values()))
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
