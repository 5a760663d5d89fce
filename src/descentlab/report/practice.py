"""The report's two training sections: training practice (issue 13) and the diagnosis of a run (issue 14).

Both draw their figures with the packages' own figure functions —
:func:`descentlab.training.training_practice_figures` and
:func:`descentlab.diagnostics.diagnosis_figures` — into a folder of their own next to the page
(``training-practice/``, ``diagnosis/``), and turn the numbers those functions measured into the
captions, the finding and the table: no number on the page is typed in by hand. Each runs on one
torch intra-op thread (see :mod:`descentlab._threads`) and leaves the RNGs as it found them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .._threads import intra_op_threads
from .section import Figure, Section

if TYPE_CHECKING:
    from .experiments import ReportOptions

__all__ = ["training_practice", "diagnosis"]


def _relative(path: str, directory: Path) -> str:
    return Path(path).resolve().relative_to(directory.resolve()).as_posix()


def _yes(condition: bool) -> str:
    return "yes" if condition else "no"


# -- training practice ------------------------------------------------------------------------------
def training_practice(directory: Path, options: ReportOptions | None = None) -> Section:
    """The notes' training advice, measured: the range test, early stopping, truncated BPTT, balanced
    batches and gradient noise against the batch size (five figures and a table of the numbers)."""
    from ..training import training_practice_figures

    with intra_op_threads(1):
        found = training_practice_figures(directory / "training-practice")
    rt, es, tb = found["range_test"], found["early_stopping"], found["tbptt"]
    bb, gn = found["balanced_batches"], found["gradient_noise"]
    quarter = tb["ks"].index(tb["T"] // 4)
    memory, error = tb["memory_ratio"][quarter], tb["gradient_error"][quarter]
    errors = tb["gradient_error"]
    weighted = bb["missing_class_fraction"]["WeightedRandomSampler + class_weights"]
    stratified = bb["missing_class_fraction"]["StratifiedBatchSampler"]
    worst = max(abs(r - 1) for r in gn["ratio_to_formula"])
    sizes = gn["batch_sizes"]
    rows = [
        ["range test: suggested η / grid-best η",
         f"{rt['suggested_lr']:.2g} / {rt['grid_best_lr']:.2g} = {rt['ratio']:.2f}×",
         f"within 3× (the {rt['rule']!r} rule, SGD + momentum, 3 seeds)", _yes(1 / 3 <= rt["ratio"] <= 3)],
        ["curvature limit 2/λ_max at the start", f"{rt['curvature_lr']:.2g} (λ_max = {rt['lambda_max']:.3g})",
         "a landmark above the suggestion, not a suggestion", _yes(rt["curvature_lr"] > rt["suggested_lr"])],
        ["early stopping: best → stopped epoch",
         f"{es['best_epoch']} → {es['stopped_epoch']}; val loss {es['best_val_loss']:.3f} → "
         f"{es['val_loss_at_stop']:.3f}",
         f"stops once the val loss rises while the train loss falls ({es['train_loss_at_best']:.3f} → "
         f"{es['train_loss_at_stop']:.3f})",
         _yes(es["stopped_epoch"] > es["best_epoch"]
              and es["train_loss_at_stop"] < es["train_loss_at_best"])],
        [f"TBPTT memory for backward at k = T/4 = {tb['ks'][quarter]}", f"{memory:.2f}× full BPTT", "≤ 0.3×",
         _yes(memory <= 0.3)],
        [f"TBPTT gradient error, k = {tb['ks'][0]} → T/4 → T",
         f"{errors[0]:.1%} → {error:.1%} → {errors[-1]:.1%}", "shrinks as k grows; 0 at k = T",
         _yes(all(a >= b for a, b in zip(errors, errors[1:])) and errors[-1] == 0)],
        [f"batches of {bb['batch_size']} missing a class ({bb['batches']} batches)",
         f"weighted {weighted:.0%}, stratified {stratified:.0%}",
         f"stratified: exactly {bb['batch_size'] // 10} of each class in every batch", _yes(stratified == 0)],
        [f"batch-gradient variance / tr Σ/B·(N−B)/(N−1), B = {sizes[0]} … {sizes[-1]}",
         f"{min(gn['ratio_to_formula']):.3f} … {max(gn['ratio_to_formula']):.3f}", "within 10 %",
         _yes(worst < 0.1)],
        ["critical batch tr Σ / ‖ḡ‖²", f"{gn['critical_batch']:.0f}",
         "much larger batches gain little per step: the noise is already small next to ‖ḡ‖² "
         "(McCandlish et al. 2018)", ""],
    ]
    order = [("range_test", "range test"), ("early_stopping", "early stopping"), ("tbptt", "truncated BPTT"),
             ("balanced_batches", "balanced batches"), ("gradient_noise", "gradient noise")]
    figures = [Figure(image=_relative(found[key]["path"], directory), caption=found[key]["caption"])
               for key, _ in order]
    finding = (
        f"The range test suggests {rt['ratio']:.2f}× the best fixed rate of a quarter-decade grid; early "
        f"stopping keeps epoch {es['best_epoch']} of {es['stopped_epoch']} while the training loss still "
        f"falls; truncating BPTT at k = T/4 holds {memory:.2f}× the memory for a {error:.1%} gradient "
        f"error; weighted sampling leaves {weighted:.0%} of the batches without some class, the stratified "
        f"sampler none; and the variance of a batch gradient follows tr Σ/B·(N−B)/(N−1) within {worst:.0%}."
    )
    return Section(
        slug="training-practice",
        title="Training practice: the range test, early stopping, truncated BPTT, balanced batches, "
        "gradient noise",
        equation=r"$\eta_i=\eta_{start}\,(\eta_{end}/\eta_{start})^{i/(n-1)},\qquad "
        r"\mathbb{E}\Vert g_B-\bar{g}\Vert^2=\frac{\mathrm{tr}\,\Sigma}{B}\,\frac{N-B}{N-1}$",
        lead="The notes' advice on how to train, measured with descentlab.training on scikit-learn's digits "
        "and a small RNN: tune the learning rate first (notes 001), stop when the validation loss stops "
        "falling (002), truncate back-propagation through long sequences (002), balance the mini-batches "
        "(000), and a larger batch lowers the gradient's variance much as a lower learning rate does "
        "(001, 002).",
        finding=finding,
        figures=figures,
        headers=["measured", "value", "claim", "as expected"],
        rows=rows,
    )


# -- diagnosis ---------------------------------------------------------------------------------------
def _healthy_margins(measured: dict[str, Any]) -> list[tuple[float, str]]:
    """``(margin, text)`` for each measured quantity of a run against its label's threshold; margin > 1
    means on the healthy side (how many times)."""
    from ..diagnostics import Thresholds

    t = Thresholds()
    checks = [
        ("first/last gradient ratio", "grad_ratio_min", t.vanishing_ratio, "above", "vanishing"),
        ("first/last gradient ratio", "grad_ratio_max", t.exploding_ratio, "below", "exploding"),
        ("saturated fraction", "saturated_max", t.saturated_fraction, "below", "saturated"),
        ("dead fraction", "dead_max", t.dead_fraction, "below", "dead-relu"),
        ("update ratio", "update_ratio_max", t.update_ratio_high, "below", "update-ratio-high"),
        ("update ratio", "update_ratio_min", t.update_ratio_low, "above", "update-ratio-low"),
        ("η·λ_max", "sharpness_max", measured.get("sharpness_bound"), "below", "unstable-lr"),
    ]
    margins = []
    for name, key, threshold, side, label in checks:
        value = measured.get(key)
        if value is None or threshold is None or not math.isfinite(value) or value <= 0:
            continue
        margin = threshold / value if side == "below" else value / threshold
        text = f"{name} {value:.2g}, {margin:.1f}× {side} the {label} threshold {threshold:.2g}"
        margins.append((margin, text))
    return sorted(margins)


def diagnosis(directory: Path, options: ReportOptions | None = None) -> Section:
    """The planted pathologies of :mod:`descentlab.diagnostics.planted`, each with its dashboard and the
    flags it raised, and the healthy control with none."""
    from ..diagnostics import diagnosis_figures

    with intra_op_threads(1), torch.random.fork_rng(devices=[]):  # the cases seed torch themselves
        found = diagnosis_figures(directory / "diagnosis")
    rows, figures, planted, hits = [], [], 0, 0
    control: list[tuple[float, str]] = []
    clean_controls = []
    for name, case in found.items():
        expected = case["expected"]
        raised = case["labels"]
        if expected is None:
            ok = not raised
            clean_controls.append((name, ok))
            control = _healthy_margins(case["measured"])
            key = control[0][1] if control else "—"
        else:
            planted += 1
            ok = expected in raised
            hits += ok
            flag = next((f for f in case["flags"] if f["label"] == expected), None)
            key = "—" if flag is None else f"{flag['evidence']} (step {flag['step']})"
        rows.append([name, expected or "none (control)", ", ".join(raised) or "none", key, _yes(ok)])
        figures.append(Figure(image=_relative(case["path"], directory), caption=case["caption"]))
    quiet = all(ok for _, ok in clean_controls)
    count = len(clean_controls)
    controls = f"the healthy control{'s' if count > 1 else ''}" if count else "no healthy control"
    finding = (
        f"{hits} of {planted} planted pathologies raised their label and {controls} raised "
        f"{'no flag' if quiet else 'flags'}"
        + (f"; the control's closest approach to a threshold: {control[0][1]}" if control else "")
        + "."
    )
    extra = {name: [label for label in case["labels"] if label != case["expected"]]
             for name, case in found.items() if case["expected"] is not None}
    extra = {name: labels for name, labels in extra.items() if labels}
    if extra:
        name, labels = next(iter(extra.items()))
        finding += (f" A sick net often shows more than one symptom: {len(extra)} of the {planted} also "
                    f"raised other labels ({name}: {', '.join(labels)}).")
    steps = max(case["measured"]["steps"] for case in found.values())
    return Section(
        slug="diagnosis",
        title="Diagnosis of a training run: planted pathologies and a healthy control",
        equation=r"$r=\frac{\Vert\nabla_{W_1}L\Vert}{\Vert\nabla_{W_L}L\Vert}\in(10^{-3},\,10^{2}),\qquad "
        r"\eta\,\lambda_{max}<2(1+\beta)$",
        lead=f"The notes' pathologies planted in load_digits MLPs — vanishing and exploding gradients, "
        f"saturated sigmoids, dead ReLUs, a learning rate 100× too large, a saddle at tiny weights — and a "
        f"healthy control, each trained for up to {steps} full-batch steps inside "
        "descentlab.diagnostics.watch, which compares what it measures (gradient flow, activations, "
        "update ratios, λ_max by Lanczos) with documented thresholds and names what goes wrong.",
        finding=finding,
        figures=figures,
        headers=["case", "expected", "raised", "key measurement vs threshold", "as expected"],
        rows=rows,
    )
