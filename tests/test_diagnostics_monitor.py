"""watch(): hooks, statistics against a NumPy transcription, state, optimizers, compile, dict inputs,
gradient accumulation, bad input, report and dashboard."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

from descentlab import optim as dl
from descentlab.diagnostics import Monitor, Probe, Thresholds, diagnosis_figures, watch
from descentlab.diagnostics.planted import digits, mlp, run_case

CE = nn.functional.cross_entropy


def no_hooks_left(model: nn.Module, opt: torch.optim.Optimizer) -> bool:
    module_hooks = any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
        for m in model.modules()
    )
    return not module_hooks and not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks


def train(model, opt, monitor, x, y, steps, micro=1):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        for xs, ys in zip(x.chunk(micro), y.chunk(micro)):
            loss = CE(model(xs), ys) / micro
            loss.backward()
        opt.step()
        losses.append(float(loss.detach()) * micro)
        monitor.log(loss=losses[-1])
    return losses


@pytest.fixture(scope="module")
def data():
    return digits(128)


def test_no_hook_remains_after_the_block(data):
    model, x, y = mlp(3, "relu"), *data
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, opt, every=2) as monitor:
        assert opt._optimizer_step_pre_hooks and opt._optimizer_step_post_hooks
        assert any(m._forward_hooks for m in model.modules())  # sampled: attached before step 0
        train(model, opt, monitor, x, y, steps=5)
    assert no_hooks_left(model, opt)
    probed = watch(model, opt, probe=Probe(x, y, CE), curvature_every=2)
    with probed:
        train(model, opt, probed, x, y, steps=3)
    assert no_hooks_left(model, opt)
    assert torch.is_grad_enabled()


def test_statistics_match_numpy(data):
    """Per-layer gradient norms from .grad, update ratios from parameter copies and dead/saturated
    fractions from the test's own hooks, all in NumPy, against the monitor's history."""
    x, y = data
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    captured = {}
    hooks = [
        model[i].register_forward_hook(lambda m, a, out, i=i: captured.__setitem__(i, out.detach().numpy()))
        for i in (1, 3)
    ]
    expected = {}
    with watch(model, opt, every=3) as monitor:
        for step in range(7):
            opt.zero_grad()
            CE(model(x), y).backward()
            if step % 3 == 0:
                layers = [model[0], model[2], model[4]]
                grads = [np.concatenate([p.grad.numpy().ravel() for p in m.parameters()]) for m in layers]
                before = [
                    np.concatenate([p.detach().numpy().ravel() for p in m.parameters()]) for m in layers
                ]
            opt.step()
            if step % 3 == 0:
                after = [np.concatenate([p.detach().numpy().ravel() for p in m.parameters()]) for m in layers]
                relu, tanh = captured[1], captured[3]
                expected[step] = {
                    "grad_norm": [np.linalg.norm(g) for g in grads],
                    "update_ratio": [
                        np.linalg.norm(a - b) / np.linalg.norm(b) for a, b in zip(after, before)
                    ],
                    "dead": (relu > 0).sum(axis=0).__eq__(0).mean(),
                    "saturated": (np.abs(tanh) > 0.99).mean(),
                    "descent": -sum(float(g @ (a - b)) for g, a, b in zip(grads, after, before)),
                }
    for h in hooks:
        h.remove()
    history = monitor.history
    assert history.layers == ["0", "2", "4"] and history.activation_layers == ["1", "3"]
    assert sorted(expected) == [0, 3, 6] == [s for s in history.steps if "grad_norm" in history[s]]
    for step, e in expected.items():
        r = history[step]
        np.testing.assert_allclose(r["grad_norm"], e["grad_norm"], rtol=1e-5)
        np.testing.assert_allclose(r["update_ratio"], e["update_ratio"], rtol=1e-5)
        assert r["dead"][0] == pytest.approx(e["dead"]) and math.isnan(r["dead"][1])
        assert r["saturated"][1] == pytest.approx(e["saturated"]) and math.isnan(r["saturated"][0])
        assert r["descent"] == pytest.approx(e["descent"], rel=1e-4)
        assert r["grad_ratio"] == pytest.approx(e["grad_norm"][0] / e["grad_norm"][-1], rel=1e-5)
    assert history.lr == [0.5] * 7 and history[0]["momentum"] == 0.9
    steps, grid = history.layer_series("grad_norm")
    assert steps == [0, 3, 6] and grid.shape == (3, 3)


def test_gradient_accumulation_pools_every_micro_batch(data):
    x, y = data
    model = mlp(3, "relu", bias=-0.5)  # some units fire on few examples only
    opt = dl.SGD(model.parameters(), lr=0.05)
    seen = []
    hook = model[1].register_forward_hook(lambda m, a, out: seen.append(out.detach()))
    with watch(model, opt, every=1) as monitor:
        opt.zero_grad()
        for xs, ys in zip(x.chunk(4), y.chunk(4)):
            (CE(model(xs), ys) / 4).backward()
        accumulated = [math.sqrt(sum(float(p.grad.pow(2).sum()) for p in m.parameters())) for m in model[::2]]
        opt.step()
    hook.remove()
    pooled_dead = float(((torch.cat(seen) > 0).sum(0) == 0).float().mean())
    per_chunk = [float(((s > 0).sum(0) == 0).float().mean()) for s in seen]
    assert len(seen) == 4 and max(per_chunk) > pooled_dead  # pooling matters for this net
    assert monitor.history[0]["dead"][0] == pytest.approx(pooled_dead)
    np.testing.assert_allclose(monitor.history[0]["grad_norm"], accumulated, rtol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        lambda p: torch.optim.Adam(p, lr=1e-3),
        lambda p: dl.SGD(p, lr=0.1, momentum=0.9),
        lambda p: dl.Adam(p, lr=1e-3),
    ],
    ids=["torch-SGD", "torch-Adam", "descentlab-SGD", "descentlab-Adam"],
)
def test_torch_and_descentlab_optimizers(data, make):
    x, y = data
    model = mlp(3, "tanh")
    opt = make(model.parameters())
    with watch(model, opt, every=2, probe=Probe(x, y, CE), curvature_every=2) as monitor:
        w0 = model[0].weight.detach().clone()
        b0 = model[0].bias.detach().clone()
        train(model, opt, monitor, x, y, steps=1)
    change = torch.cat([(model[0].weight - w0).flatten(), (model[0].bias - b0).flatten()]).norm()
    size = torch.cat([w0.flatten(), b0.flatten()]).norm()
    assert monitor.history[0]["update_ratio"][0] == pytest.approx(float(change / size), rel=1e-5)
    assert math.isfinite(monitor.history[0]["lambda_max"])
    assert monitor.flags == [] and no_hooks_left(model, opt)


def test_compiled_model(data):
    x, y = data
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10))
    compiled = torch.compile(model)
    opt = torch.optim.SGD(compiled.parameters(), lr=0.1)
    with watch(compiled, opt, every=1, probe=Probe(x, y, CE), curvature_every=2) as monitor:
        for _ in range(3):
            opt.zero_grad()
            CE(compiled(x), y).backward()
            expected = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model[0].parameters()))
            opt.step()
            monitor.log(loss=0.0)
    h = monitor.history
    assert h.layers == ["0", "2"] and h.activation_layers == ["1"]
    assert h[2]["grad_norm"][0] == pytest.approx(expected, rel=1e-6)
    assert all(math.isfinite(h[s]["saturated"][0]) for s in (0, 1, 2))  # measured on the probe, eagerly
    assert math.isfinite(h[2]["lambda_max"])
    assert no_hooks_left(compiled, opt) and no_hooks_left(model, opt)
    # without a probe the compiled forward ignores hooks added after compilation: said, not faked
    with watch(compiled, opt, every=1) as monitor:
        opt.zero_grad()
        CE(compiled(x), y).backward()
        opt.step()
    assert "dead" not in monitor.history[0] and "probe=" in " ".join(monitor.report().notes)


class Block(nn.Module):
    """LayerNorm → self-attention → ReLU feed-forward → mean-pooled head, on a dict batch."""

    def __init__(self, d: int = 8):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, d))
        self.head = nn.Linear(d, 3)

    def forward(self, batch):
        h = self.norm(batch["tokens"])
        a, _ = self.attn(h, h, h, key_padding_mask=batch["mask"], need_weights=False)
        h = h + a
        return self.head((h + self.ff(h)).mean(dim=1))


def test_layernorm_attention_and_dict_inputs():
    torch.manual_seed(0)
    model = Block()
    batch = {"tokens": torch.randn(12, 5, 8), "mask": torch.zeros(12, 5, dtype=torch.bool)}
    batch["mask"][:, -1] = True
    y = torch.randint(0, 3, (12,))
    opt = dl.Adam(model.parameters(), lr=1e-2)
    with watch(model, opt, every=1, probe=Probe(batch, y, CE), curvature_every=2) as monitor:
        for _ in range(3):
            opt.zero_grad()
            loss = CE(model(batch), y)
            loss.backward()
            opt.step()
            monitor.log(loss=loss)
    h = monitor.history
    assert h.layers == ["norm", "attn", "attn.out_proj", "ff.0", "ff.2", "head"]
    assert h.activation_layers == ["ff.1"] and math.isfinite(h[2]["dead"][0])
    assert math.isfinite(h[2]["lambda_max"]) and math.isfinite(h[2]["sharpness"])  # preconditioned (Adam)
    assert all(math.isfinite(v) and v > 0 for v in h[2]["grad_norm"])
    assert no_hooks_left(model, opt)


def test_log_merges_and_returns_new_flags(data):
    x, y = data
    model = mlp(20, "sigmoid")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, opt, every=1) as monitor:
        opt.zero_grad()
        loss = CE(model(x), y)
        loss.backward()
        opt.step()
        first = monitor.log(loss=loss, lr=0.1)
        second = monitor.log(val_loss=torch.tensor(2.5), accuracy=0.1)
        opt.zero_grad()
        CE(model(x), y).backward()
        opt.step()
        third = monitor.log(step=1, loss=2.3)
    assert "vanishing" in {f.label for f in first} and second == []
    assert "vanishing" not in {f.label for f in third}  # raised once, when it starts
    assert {"loss", "lr", "val_loss", "accuracy", "grad_norm"} <= set(monitor.history[0])
    assert monitor.history[1]["loss"] == 2.3
    nan_flags = monitor.log(loss=float("nan"))
    assert [(f.label, f.layer) for f in nan_flags] == [("exploding", None)]


def test_nan_gradient_in_the_loop_is_exploding(data):
    x, y = data
    model = mlp(3, "tanh")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, opt, every=1) as monitor:
        opt.zero_grad()
        CE(model(x), y).backward()
        model[0].bias.grad[3] = float("nan")
        opt.step()
        flags = monitor.log(loss=1.0)
    assert ("exploding", "0") in {(f.label, f.layer) for f in flags}


def test_state_dict_round_trip(data, tmp_path):
    x, y = data
    model = mlp(20, "sigmoid")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, opt, every=2) as monitor:
        train(model, opt, monitor, x, y, steps=5)
        monitor.log(val_loss=3.0)
    torch.save({"monitor": monitor.state_dict()}, tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)["monitor"]
    with watch(model, opt, every=2) as resumed:
        resumed.load_state_dict(state)
        assert resumed.steps == 5
        assert json.dumps(resumed.history.records, sort_keys=True) == json.dumps(
            monitor.history.records, sort_keys=True
        )  # NaN too
        assert resumed.flags == monitor.flags
        train(model, opt, resumed, x, y, steps=2)
    assert resumed.steps == 7 and sorted(resumed.history.records)[-1] == 6
    assert "vanishing" not in {
        f.label for f in resumed.flags[len(monitor.flags) :]
    }  # still active, not re-raised
    small = mlp(3, "tanh")
    other = watch(small, torch.optim.SGD(small.parameters(), lr=0.1))
    with other, pytest.raises(ValueError, match="state was saved for layers"):
        other.load_state_dict(state)


def test_report_and_dashboard(data, tmp_path):
    x, y = data
    model = mlp(4, "relu", bias=-10.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pyplot_loaded = "matplotlib.pyplot" in sys.modules
    with watch(model, opt, every=2, probe=Probe(x, y, CE), curvature_every=4) as monitor:
        train(model, opt, monitor, x, y, steps=6)
    report = monitor.report()
    text = str(report)
    assert "dead-relu" in text and "notes 002" in text and "largest dead-unit fraction" in text
    assert report.to_dict()["labels"] == report.labels and not report.healthy
    path = monitor.plot(tmp_path / "dash" / "diagnosis.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["diagnosis.png"]  # atomic: no temporary left
    assert ("matplotlib.pyplot" in sys.modules) is pyplot_loaded


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"model": nn.ReLU()}, r"model must have at least one trainable parameter, got ReLU"),
        ({"model": "net"}, r"model must be a torch.nn.Module, got str"),
        ({"every": 0}, r"every must be an integer in \[1, inf\], got 0"),
        ({"every": 2.5}, r"every must be an integer in \[1, inf\], got 2.5"),
        ({"curvature_every": 0}, r"curvature_every must be an integer in \[1, inf\], got 0"),
        ({"curvature_every": 5}, r"curvature_every=5 needs a probe with targets and loss_fn"),
        ({"probe": torch.randn(4, 7)}, r"probe does not match the model Sequential: RuntimeError"),
        (
            {"probe": Probe(torch.randn(4, 64), torch.zeros(4), lambda o, t: o)},
            r"probe does not match .*loss_fn must return a scalar tensor",
        ),
        ({"thresholds": {"dead_fraction": 0.5}}, r"thresholds must be a Thresholds, got dict"),
        ({"activations": 1}, r"activations must be True or False, got 1"),
        ({"optimizer": "sgd"}, r"optimizer must be a torch.optim.Optimizer, got str"),
        (
            {"optimizer": torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)},
            r"optimizer must optimise parameters of model",
        ),
    ],
)
def test_bad_input(kwargs, message):
    model = kwargs.pop("model", mlp(2, "relu"))
    has_params = isinstance(model, nn.Module) and list(model.parameters())
    default = torch.optim.SGD((model if has_params else nn.Linear(1, 1)).parameters(), lr=0.1)
    opt = kwargs.pop("optimizer", default)
    with pytest.raises(ValueError, match=message):
        watch(model, opt, **kwargs)


def test_bad_log_values(data):
    model = mlp(2, "relu")
    monitor = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match=r"loss must be a number or a one-element tensor, got str 'low'"):
        monitor.log(loss="low")
    with pytest.raises(ValueError, match=r"step must be an integer in \[0, inf\], got -1"):
        monitor.log(step=-1, loss=1.0)
    assert not monitor.attached  # a Monitor made directly attaches on `with` or attach()


README_EXAMPLE = """
import torch
from descentlab.diagnostics import watch

layers = [m for i in range(11) for m in (torch.nn.Linear(20 if i == 0 else 64, 64), torch.nn.Sigmoid())]
model = torch.nn.Sequential(*layers, torch.nn.Linear(64, 2))   # 11 sigmoid layers deep (notes 002)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
x, y = torch.randn(256, 20), torch.randint(0, 2, (256,))
with watch(model, opt, every=10) as monitor:            # public torch hooks, removed at the end
    for step in range(50):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        monitor.log(loss=loss)
print(monitor.report())              # vanishing: flags, the notes' advice, measurements vs thresholds
monitor.plot("diagnosis.png")        # the six-panel dashboard
"""


def test_readme_example(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(README_EXAMPLE, "README", "exec"), {})
    out = capsys.readouterr().out
    assert "vanishing" in out and "Advice:" in out
    assert (tmp_path / "diagnosis.png").exists()


def test_diagnosis_figures(tmp_path):
    results = diagnosis_figures(tmp_path, steps=21, cases=["healthy", "plateau:saddle"])
    assert results["healthy"]["labels"] == [] and "no flag raised" in results["healthy"]["caption"]
    saddle = results["plateau:saddle"]
    assert "plateau:saddle" in saddle["labels"] and "raised plateau:saddle" in saddle["caption"]
    assert f"{saddle['measured']['loss_last']:.4f}" in saddle["caption"]  # captions quote the measurements
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "diagnosis-healthy.png",
        "diagnosis-plateau-saddle.png",
    ]
    with pytest.raises(ValueError, match=r"cases must be names from .*got \['sick'\]"):
        diagnosis_figures(tmp_path, cases=["sick"])


@pytest.mark.parametrize("name", ["vanishing", "exploding", "saturated", "dead-relu"])
def test_planted_cases_in_a_watched_loop(name):
    monitor, _ = run_case(name, steps=6)
    first = monitor.flags[0] if name != "dead-relu" else next(f for f in monitor.flags if f.label == name)
    assert first.label == name and first.step == 0


def test_thresholds_are_used(data):
    x, y = data
    model = mlp(4, "relu")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    strict = Thresholds(dead_fraction=0.0)
    with watch(model, opt, every=1, probe=Probe(x, y, CE), thresholds=strict) as monitor:
        train(model, opt, monitor, x, y, steps=1)
    dead = monitor.history[0]["dead"]
    assert {f.layer for f in monitor.flags if f.label == "dead-relu"} == {
        name for name, d in zip(monitor.history.activation_layers, dead) if d > 0
    }


def test_overfitting_through_log():
    """fit's calls: loss after every step, val_loss after each validation, merged per step."""
    model = mlp(2, "relu")
    monitor = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1))
    raised = []
    for step in range(60):
        raised += monitor.log(step=step, loss=1.0 / (1 + step), lr=0.1)
        if step % 10 == 9:
            raised += monitor.log(step=step, val_loss=0.5 + 0.1 * ((step - 29) / 30) ** 2)  # best: 29
    assert [(f.label, f.step) for f in raised] == [("overfitting", 49)]
    assert monitor.history[49]["val_loss"] == pytest.approx(0.5 + 0.1 * (20 / 30) ** 2)  # +8.9 %: flagged
    assert monitor.history[49]["loss"] == pytest.approx(1 / 50)
