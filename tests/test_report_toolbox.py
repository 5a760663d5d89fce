"""The report's toolbox sections: each figure written, and each number of the findings recomputed here
independently (plain torch / NumPy loops, the exact Hessian), so that a wrong sentence fails a test."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from descentlab import report
from descentlab.report import toolbox
from descentlab.training._problems import digits, mlp

NAMES = ["clipping", "initialisation", "gradient checking", "whitening", "Hessian spectrum",
         "Hessian-free / K-FAC"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("toolbox")
    index, sections = report.build_report(out, gif=False, only=NAMES)
    return out, index, {s.slug: s for s in sections}


def _numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", text)]


def test_every_toolbox_section_is_on_the_page_after_diagnosis(built):
    out, index, sections = built
    names = [name for name, _ in report.EXPERIMENTS]
    assert names[names.index("diagnosis") + 1: names.index("diagnosis") + 7] == NAMES
    html = index.read_text("utf-8")
    for slug, section in sections.items():
        assert f'id="{slug}"' in html
        with Image.open(out / section.image) as image:
            assert image.width > 600 and image.height > 250
        assert section.rows and all(len(row) == len(section.headers) for row in section.rows)


def test_sections_leave_the_global_rng_alone(tmp_path):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    toolbox.initialisation(tmp_path, None)
    assert torch.equal(before, torch.random.get_rng_state())


# -- clipping ------------------------------------------------------------------------------------------
def _torch_rnn_run(clip: float | None) -> list[float]:
    """The section's RNN, trained here with torch.nn.utils.clip_grad_norm_ as the reference."""
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(32, 40, 1, generator=g)
    targets = inputs.sum(1).clamp(-3, 3) / 3
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        rnn, head = nn.RNN(1, 16, batch_first=True), nn.Linear(16, 1)
    with torch.no_grad():
        w = rnn.weight_hh_l0
        w.copy_(w / torch.linalg.eigvals(w).abs().max() * 1.8)
    params = [*rnn.parameters(), *head.parameters()]
    opt = torch.optim.SGD(params, lr=0.2)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = F.mse_loss(head(rnn(inputs)[0][:, -1]), targets)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        losses.append(loss.item())
    return losses


def test_clipping_finding_matches_a_torch_reference(built):
    _, _, sections = built
    section = sections["clipping"]
    clipped = _torch_rnn_run(1.0)
    plain = _torch_rnn_run(None)
    row = section.rows[1]
    assert float(row[5]) == pytest.approx(clipped[-1], rel=5e-3)
    assert f"the loss ended at {clipped[-1]:.3g}" in section.finding
    assert not math.isfinite(plain[-1]) and section.rows[0][6] == "no"
    first_bad = next(i for i, v in enumerate(plain) if not math.isfinite(v)) + 1
    assert f"no longer finite from step {first_bad} on" in section.finding


def test_clipping_says_so_when_nothing_exploded(tmp_path, monkeypatch):
    calm = toolbox._run_summary(np.linspace(1.0, 0.5, 150), np.full(150, 0.5))
    monkeypatch.setattr(toolbox, "measure_clipping", lambda: {"none": calm, "clipped": calm})
    finding = toolbox.clipping(tmp_path, None).finding
    assert "did not explode" in finding and "changed little" in finding
    assert "capped its length" not in finding


# -- initialisation --------------------------------------------------------------------------------------
def test_initialisation_table_matches_a_plain_forward_pass(built):
    _, _, sections = built
    rows = {(r[0], r[1]): r for r in sections["initialisation"].rows}
    g = torch.Generator().manual_seed(0)
    h = torch.randn(512, 256, generator=g)
    torch.randn(256, generator=g)  # the read-out, drawn next
    for _ in range(10):
        w = torch.randn(256, 256, generator=g) * math.sqrt(2 / 256)  # He: N(0, 2/fan_in)
        h = torch.relu(h @ w.T)
    he = rows[("relu", "He (ReLU gain √2)")]
    assert float(he[3]) == pytest.approx(h.std().item(), rel=5e-3)
    assert he[6] == "keeps its scale"
    assert rows[("relu", "N(0, 1)")][6] == "explodes" and rows[("tanh", "N(0, 0.01²)")][6] == "vanishes"
    assert f"He with ReLU at {h.std().item():.3g}" in sections["initialisation"].finding


# -- gradient checking -------------------------------------------------------------------------------------
def test_gradient_check_catches_exactly_the_parameters_behind_the_bug(built):
    _, _, sections = built
    section = sections["gradient-checking"]
    results = {(r[0], r[1]): r[5] for r in section.rows}
    bug = "custom tanh, backward 1 − y (bug)"
    assert [p for (m, p), result in results.items() if result == "FAIL"] == [
        "0.weight", "0.bias", "the Function alone (torch.autograd.gradcheck)"]
    assert all(result == "pass" for (m, _), result in results.items() if m != bug)
    # independently: the buggy backward really is wrong, by my own central difference on the first bias
    x, y, _, _ = digits()
    model = toolbox._gradcheck_model(toolbox._BuggyTanh.apply).double()
    x, y = x[:64].double(), y[:64]
    F.cross_entropy(model(x), y).backward()
    b = model[0].bias
    with torch.no_grad():
        b[0] += 1e-6
        plus = F.cross_entropy(model(x), y).item()
        b[0] -= 2e-6
        minus = F.cross_entropy(model(x), y).item()
    numerical = (plus - minus) / 2e-6
    assert abs(b.grad[0].item() - numerical) > 1e-3 * abs(numerical)
    assert torch.autograd.gradcheck(toolbox._Tanh.apply, (torch.randn(4, dtype=torch.float64,
                                                                       requires_grad=True),))


# -- whitening ----------------------------------------------------------------------------------------------
def test_whitening_condition_numbers_and_steps_match_numpy(built):
    _, _, sections = built
    section = sections["whitening"]
    x, y = (t.numpy() for t in toolbox._correlated_regression())
    eig = np.linalg.eigvalsh(np.cov(x.T))
    kappa = eig.max() / eig.min()
    assert f"from {kappa:.3g} to 1" in section.finding
    # GD by NumPy at 2/(λ_max + λ_min) of the augmented Hessian, on raw inputs: steps to a 1e-6 gap
    a = np.hstack([x, np.ones((len(x), 1))])
    h = a.T @ a / len(x)
    e = np.linalg.eigvalsh(h)
    lr = 2 / (e.max() + e.min())
    w_star = np.linalg.lstsq(a, y, rcond=None)[0]
    f = lambda w: 0.5 * np.mean((a @ w - y) ** 2)  # noqa: E731
    w = np.zeros(a.shape[1])
    gap0 = f(w) - f(w_star)
    for _ in range(300):
        w = w - lr * a.T @ (a @ w - y) / len(x)
    raw = next(r for r in section.rows if r[:2] == ["least squares", "raw"])
    assert float(raw[5].split()[0]) == pytest.approx((f(w) - f(w_star)) / gap0, rel=0.05)
    reached = "not within 300 steps" if (f(w) - f(w_star)) / gap0 > 1e-6 else None
    if reached:
        assert raw[4] == reached and f"against {reached} with raw ones" in section.finding
    whitened = next(r for r in section.rows if r[:2] == ["least squares", "whitened"])
    assert whitened[2] == "1" and whitened[4] == "1 step"


# -- the Hessian spectrum -----------------------------------------------------------------------------------
def test_hessian_extremes_match_the_exact_hessian_at_initialisation(built):
    _, _, sections = built
    section = sections["hessian-spectrum"]
    x, y, _, _ = digits()
    model = mlp([64, 16, 10], seed=0, activation=nn.Tanh)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(v):
        pieces = torch.split(v, [math.prod(s) for s in shapes])
        params = {n: p.reshape(s) for n, p, s in zip(names, pieces, shapes)}
        return F.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    eig = torch.linalg.eigvalsh(torch.func.hessian(loss)(flat))
    row = section.rows[0]
    assert float(row[2]) == pytest.approx(eig.max().item(), rel=1e-2)
    assert float(row[3]) == pytest.approx(eig.min().item(), rel=2e-2)
    negative = (eig < -toolbox.NEGATIVE_CUT * eig.max()).double().mean().item()
    assert float(row[5].rstrip("%")) / 100 == pytest.approx(negative, abs=0.05)
    assert f"λ_max {'grew' if float(section.rows[1][2]) > float(row[2]) else 'fell'} from" in section.finding


# -- Hessian-free and K-FAC ---------------------------------------------------------------------------------
def test_second_order_budgets_are_equal_and_adam_matches_torch(built):
    _, _, sections = built
    section = sections["second-order"]
    rows = {r[0]: r for r in section.rows}
    budget = toolbox.SECOND_ORDER_BUDGET
    for name, row in rows.items():
        passes = int(row[3]) + int(row[4])
        assert budget <= passes <= budget + 25, name
    assert rows["Adam"][2] == str(budget) and rows["Hessian-free"][4] != "0"
    x, y, _, _ = digits()
    model = mlp([64, 32, 10], seed=0, activation=nn.Tanh)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(budget):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        final = F.cross_entropy(model(x), y).item()
    assert float(rows["Adam"][6]) == pytest.approx(final, rel=1e-3)
    order = sorted(rows, key=lambda n: float(rows[n][6]))
    assert section.finding.startswith(f"At an equal budget of about {budget} passes, {order[0]} reached")
    assert f"then {order[1]} ({rows[order[1]][6]})" in section.finding
