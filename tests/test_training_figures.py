"""The report's training-practice figures: written, measured, captioned from the numbers; no pyplot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import descentlab

SRC = Path(descentlab.__file__).resolve().parents[1]
SCRIPT = """
import json, sys, random
import numpy as np, torch
torch.set_num_threads(1)
import matplotlib
backend = dict.__getitem__(matplotlib.rcParams, "backend")  # get_backend() would import pyplot
states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
from descentlab.training import training_practice_figures
found = training_practice_figures(sys.argv[1])
same_rng = (torch.equal(states[0], torch.get_rng_state())
            and np.array_equal(states[1], np.random.get_state()[1]) and states[2] == random.getstate())
print(json.dumps({"found": found, "pyplot": "matplotlib.pyplot" in sys.modules,
                  "backend_unchanged": dict.__getitem__(matplotlib.rcParams, "backend") is backend,
                  "same_rng": same_rng}))
"""


@pytest.mark.timeout(300)
def test_training_practice_figures(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("MPLBACKEND", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "figures")],
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert not result["pyplot"] and result["backend_unchanged"] and result["same_rng"]
    found = result["found"]
    assert set(found) == {"range_test", "early_stopping", "tbptt", "balanced_batches", "gradient_noise"}
    for name, entry in found.items():
        path = Path(entry["path"])
        assert path.parent == tmp_path / "figures" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert entry["caption"].endswith(".") and any(ch.isdigit() for ch in entry["caption"]), name
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(
        Path(e["path"]).name for e in found.values()
    )  # no temporary files left
    rt = found["range_test"]
    assert 1 / 3 <= rt["ratio"] <= 3 and f"{rt['suggested_lr']:.2g}" in rt["caption"]
    assert rt["curvature_lr"] == pytest.approx(2 / rt["lambda_max"])
    es = found["early_stopping"]
    assert es["stopped_epoch"] > es["best_epoch"] and es["train_loss_at_stop"] < es["train_loss_at_best"]
    tb = found["tbptt"]
    assert tb["memory_ratio"][tb["ks"].index(tb["T"] // 4)] <= 0.3
    bb = found["balanced_batches"]["missing_class_fraction"]
    assert bb["StratifiedBatchSampler"] == 0.0 < bb["WeightedRandomSampler + class_weights"]
    gn = found["gradient_noise"]
    assert all(abs(r - 1) < 0.1 for r in gn["ratio_to_formula"])
