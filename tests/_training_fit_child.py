"""A training run for the resume test, run as a subprocess:

    python _training_fit_child.py CHECKPOINT OUT KILL_AT OPTIMIZER

It trains a small digits MLP with dropout, a shuffling DataLoader with its own generator, an
augmentation that draws from NumPy's and Python's global RNGs, a per-step schedule, early stopping and
a fake monitor. The monitor prints ``step N`` after every optimizer step; at step KILL_AT it sleeps so
that the parent can SIGKILL the process there (KILL_AT = -1: never). At the end it writes the final
parameters, optimizer state, history and monitor log to OUT.
"""

from __future__ import annotations

import random
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import descentlab.optim as dl
from descentlab.schedules import CosineAnnealing, ScheduleLR
from descentlab.training import EarlyStopping, accuracy, fit
from descentlab.training._problems import digits


class Augmented(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        # the global NumPy and Python RNGs, on purpose: fit must checkpoint and restore them
        noise = np.random.normal(0.0, 0.05, size=64).astype(np.float32) * random.random()  # noqa: NPY002
        return self.x[i] + torch.from_numpy(noise), self.y[i]


class FakeMonitor:
    def __init__(self, kill_at: int):
        self.logs: list = []
        self.kill_at = kill_at

    def log(self, step=None, **scalars):
        self.logs.append([step, sorted(scalars.items())])
        if "loss" in scalars:
            print(f"step {step}", flush=True)
            if step == self.kill_at:
                time.sleep(120)  # the parent kills us here
        return []

    def state_dict(self):
        return {"logs": [list(entry) for entry in self.logs]}

    def load_state_dict(self, state):
        self.logs = [list(entry) for entry in state["logs"]]


def main() -> None:
    checkpoint, out, kill_at, optimizer_name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002
    random.seed(0)
    x, y, xv, yv = digits(256)
    train = DataLoader(
        Augmented(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1)
    )
    val = [(xv[:200], yv[:200])]
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 10))
    if optimizer_name == "descentlab-adam":
        opt = dl.Adam(model.parameters(), lr=3e-3)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = ScheduleLR(opt, CosineAnnealing(eta_max=opt.param_groups[0]["lr"], T_max=64))
    monitor = FakeMonitor(kill_at)
    history = fit(
        model,
        opt,
        train,
        epochs=5,
        loss_fn=nn.functional.cross_entropy,
        val=val,
        metrics={"acc": accuracy},
        scheduler=scheduler,
        scheduler_interval="step",
        early_stopping=EarlyStopping(monitor="val_acc", mode="max", patience=10),
        monitor=monitor,
        checkpoint=checkpoint,
        checkpoint_every=3,
        progress=False,
    )
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "history": history.state_dict(),
            "monitor": monitor.logs,
        },
        out,
    )


if __name__ == "__main__":
    main()
