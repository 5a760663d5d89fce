"""The diagnosis as a table: the flags raised, their advice, and every measurement against its bound."""

from __future__ import annotations

import math
import textwrap
from dataclasses import asdict, dataclass
from typing import Any

from .labels import Flag, Thresholds, gradient_ratio

__all__ = ["Diagnosis", "Measurement"]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.3g}"


@dataclass(frozen=True)
class Measurement:
    """One measured quantity (``value``, at ``layer`` and ``step`` if it has one) and the bounds the
    labels put on it, in words (``bound``)."""

    quantity: str
    value: float
    bound: str
    layer: str | None = None
    step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def gradient(
        layers: list[str], norms: list[float], t: Thresholds, step: int | None = None
    ) -> Measurement:
        where = f"{layers[0]} / {layers[-1]}" if layers else None
        return Measurement(
            "first/last layer gradient-norm ratio",
            gradient_ratio(norms) if norms else math.nan,
            f"vanishing < {t.vanishing_ratio:g}, exploding > {t.exploding_ratio:g}",
            where,
            step,
        )

    @staticmethod
    def activations(
        layers: list[str],
        kinds: list[str],
        dead: list[float],
        saturated: list[float],
        t: Thresholds,
        step: int | None = None,
    ) -> list[Measurement]:
        out = []
        relu = [(d, n) for n, k, d in zip(layers, kinds, dead) if k == "relu" and math.isfinite(d)]
        if relu:
            d, n = max(relu)
            out.append(
                Measurement("largest dead-unit fraction", d, f"dead-relu > {t.dead_fraction:g}", n, step)
            )
        sat = [(s, n) for n, k, s in zip(layers, kinds, saturated) if k != "relu" and math.isfinite(s)]
        if sat:
            s, n = max(sat)
            out.append(
                Measurement("largest saturated fraction", s, f"saturated > {t.saturated_fraction:g}", n, step)
            )
        return out

    @staticmethod
    def curvature(sharp: Any, step: int | None = None) -> Measurement | None:
        if sharp is None or not math.isfinite(sharp.lambda_max):
            return None
        if sharp.covered:
            return Measurement(
                "effective sharpness (η·λ_max)",
                sharp.effective,
                f"unstable-lr > {sharp.bound:.4g} ({sharp.formula})",
                None,
                step,
            )
        return Measurement("λ_max of the Hessian", sharp.lambda_max, sharp.note or "no bound", None, step)


@dataclass
class Diagnosis:
    """What a diagnosis found: ``flags`` (in the order raised), ``measurements`` (the worst value of
    each quantity over the run, with the bounds of its labels), over ``observed_steps`` steps."""

    flags: list[Flag]
    measurements: list[Measurement]
    observed_steps: int = 0
    notes: tuple[str, ...] = ()

    @property
    def labels(self) -> list[str]:
        """The distinct labels raised, in order of first appearance."""
        return list(dict.fromkeys(f.label for f in self.flags))

    @property
    def healthy(self) -> bool:
        """No flag of severity ``problem`` or ``warning``."""
        return not any(f.severity in ("problem", "warning") for f in self.flags)

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "labels": self.labels,
            "observed_steps": self.observed_steps,
            "flags": [f.to_dict() for f in self.flags],
            "measurements": [m.to_dict() for m in self.measurements],
            "notes": list(self.notes),
        }

    def _groups(self) -> list[list[Flag]]:
        """Consecutive flags of the same label raised at the same step, one table row each."""
        groups: list[list[Flag]] = []
        for flag in self.flags:
            last = groups[-1][-1] if groups else None
            if last is not None and (last.label, last.step) == (flag.label, flag.step):
                groups[-1].append(flag)
            else:
                groups.append([flag])
        return groups

    @staticmethod
    def _row(group: list[Flag]) -> tuple[str, str, str, str, str]:
        first = group[0]
        step = "-" if first.step is None else str(first.step)
        if len(group) == 1:
            return step, first.label, first.layer or "-", _fmt(first.value), _fmt(first.threshold)
        names = [f.layer or "-" for f in group]
        layers = (
            ", ".join(names) if len(names) <= 3 else f"{names[0]}, {names[1]} … {names[-1]} ({len(names)})"
        )
        values = [f.value for f in group]
        return step, first.label, layers, f"{_fmt(min(values))}…{_fmt(max(values))}", _fmt(first.threshold)

    def __str__(self) -> str:
        head = f"Diagnosis over {self.observed_steps} observed step(s): " + (
            "healthy, no flag raised"
            if not self.flags
            else f"{len(self.flags)} flag(s): {', '.join(self.labels)}"
        )
        lines = [head]
        if self.flags:
            rows = [("step", "label", "layer", "value", "threshold")]
            rows += [self._row(group) for group in self._groups()]
            widths = [max(len(r[i]) for r in rows) for i in range(5)]
            lines.append("")
            lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
            lines.append("")
            lines.append("Advice:")
            for label in self.labels:
                advice = next(f.advice for f in self.flags if f.label == label)
                lines += textwrap.wrap(
                    f"{label}: {advice}", width=100, initial_indent="  ", subsequent_indent="    "
                )
        if self.measurements:
            lines.append("")
            lines.append("Measurements (worst value over the run):")
            rows = [
                (
                    m.quantity,
                    _fmt(m.value),
                    (m.layer or "") + ("" if m.step is None else f" @ step {m.step}"),
                    m.bound,
                )
                for m in self.measurements
            ]
            widths = [max(len(r[i]) for r in rows) for i in range(3)]
            lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3] for r in rows]
        for note in self.notes:
            lines += textwrap.wrap(f"Note: {note}", width=100)
        return "\n".join(lines)
