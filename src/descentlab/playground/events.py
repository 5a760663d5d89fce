"""What the playground's server and its snapshot share, without the web server: the checks of a request
and the events of a race.

:func:`race_request` checks a ``POST /api/race`` body against the :class:`Limits` (``BadRequest`` says
what is wrong); :func:`start_event`, :func:`frame_json` and :func:`done_json` are the ``start``, ``frame``
and ``done`` events the page draws; :func:`reproduce` gives the command line and the Python that draw
the same race. The server streams them (:mod:`~descentlab.playground.server`, Starlette), the demo report
records them beside the page (:mod:`~descentlab.playground.snapshot`, no Starlette needed).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..lab import Frame, RaceResult
from ..specs import build_from_spec
from ..validation import check_int, check_number
from . import compute

__all__ = ["Limits", "BadRequest", "STATIC", "reproduce", "race_request", "start_event", "frame_json",
           "done_json", "finite"]

#: the vendored page: index.html, app.js, app.css
STATIC = Path(__file__).with_name("static")


@dataclass(frozen=True)
class Limits:
    """The bounds on one request (see the module docstring)."""

    steps: int = 2000
    optimizers: int = 8
    grid: int = 101
    body_bytes: int = 16 * 1024
    seconds: float = 20.0
    concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)


class BadRequest(ValueError):
    """Answered with 400 and the message."""


def finite(value: Any) -> Any:
    """JSON cannot say inf or NaN: they become ``null`` (the page shows them as such)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value




def _get(body: dict, key: str, default: Any = None) -> Any:
    return body.get(key, default)


def _int(body: dict, key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    try:
        return check_int(key, value, low=low, high=high)
    except ValueError as error:
        raise BadRequest(str(error)) from None


def _landscape(body: dict):
    formula = _get(body, "formula")
    name = _get(body, "landscape", "two-minima")
    if formula is not None and not isinstance(formula, str):
        raise BadRequest(f"formula must be a text, got {formula!r}")
    if not isinstance(name, str):
        raise BadRequest(f"landscape must be a text such as 'two-minima', got {name!r}")
    return compute.landscape_from_request(name, formula, _get(body, "domain"))


def _start(body: dict, landscape) -> tuple[float, float] | None:
    start = _get(body, "start")
    if start is None:
        return None
    if not isinstance(start, list) or len(start) != 2:
        raise BadRequest(f"start must be [x, y], got {start!r}")
    return tuple(check_number(f"start[{i}]", v) for i, v in enumerate(start))


def reproduce(request: dict[str, Any]) -> dict[str, str]:
    """The command line and the Python that draw the same race (the values exactly as raced)."""
    opts = request["optimizers"]
    start, steps, noise, seed = request["start"], request["steps"], request["noise"], request["seed"]
    if request.get("formula"):
        domain = request.get("domain") or [[-2.0, 2.0], [-2.0, 2.0]]
        landscape = f"custom_landscape({request['formula']!r}, {domain!r})"
        python = (
            f"from descentlab.lab import race\nfrom descentlab.playground.compute import custom_landscape\n"
            f"result = race({landscape}, {opts!r}, start={tuple(start)!r}, steps={steps}, noise={noise!r}, "
            f"seed={seed})"
        )
        cli = "# a typed formula has no command-line form; use the Python"
    else:
        python = (
            f"from descentlab.lab import race\nfrom descentlab.plots import plot_race, save_figure\n"
            f"result = race({request['landscape']!r}, {opts!r}, start={tuple(start)!r}, steps={steps}, "
            f"noise={noise!r}, seed={seed})\nsave_figure(plot_race(result), 'race.png')"
        )
        quoted = " ".join(f"--opt '{spec}'" for spec in opts)
        cli = (
            f"descentlab race '{request['landscape']}' {quoted} --start {start[0]!r},{start[1]!r} "
            f"--steps {steps} --noise {noise!r} --seed {seed} --out race.png"
        )
    return {"cli": cli, "python": python}


def race_request(body: dict, limits: Limits) -> tuple[dict[str, Any], Any]:
    landscape = _landscape(body)
    optimizers = _get(body, "optimizers", [])
    if not isinstance(optimizers, list) or not optimizers or not all(isinstance(s, str) for s in optimizers):
        raise BadRequest('optimizers must be a list of spec strings such as ["adam(lr=0.05)"]')
    if len(optimizers) > limits.optimizers:
        raise BadRequest(f"at most {limits.optimizers} optimizers race at once, got {len(optimizers)}")
    steps = _int(body, "steps", 200, 1, limits.steps)
    seed = _int(body, "seed", 0, 0, 2**31 - 1)
    noise = _get(body, "noise", 0.0)
    try:
        noise = check_number("noise", noise, low=0.0, high=100.0)
    except ValueError as error:
        raise BadRequest(str(error)) from None
    start = _start(body, landscape) or landscape.start
    request = {
        # the spec as asked (quadratic(kappa=100)), not the landscape's bare name: the commands replay it
        "landscape": _get(body, "landscape", "two-minima") if not body.get("formula") else "custom",
        "formula": body.get("formula"),
        "domain": body.get("domain"),
        "optimizers": optimizers,
        "start": [float(v) for v in start],
        "steps": steps,
        "noise": noise,
        "seed": seed,
    }
    return request, landscape


def frame_json(frame: Frame) -> dict[str, Any]:
    return {
        "step": frame.step,
        "runs": [
            {"i": i, "w": point, "loss": loss, "grad_norm": norm} for i, point, loss, norm in frame.runs
        ],
    }


def done_json(result: RaceResult) -> dict[str, Any]:
    runs = []
    for run, row in zip(result.runs, result.rows()):
        curvature = compute.curvature_along(result.landscape, run.trajectory)
        runs.append(
            {
                "label": run.label,
                "status": run.status,
                "final_point": run.final_point.tolist(),
                "final_loss": run.final_loss,
                "converged_at": run.converged_at,
                "left_at": run.left_at,
                "minimum": run.minimum,
                "diverged_at": run.diverged_at,
                "failed_at": run.failed_at,
                "error": run.error,
                "evaluations": int(run.evaluations[-1]),
                "seconds": float(run.seconds[-1]),
                "row": row,
                "curvature": curvature,
            }
        )
    return {"runs": runs, "minima": [list(m) for m in result.landscape.minima]}



def lr_and_beta(spec: str) -> dict[str, float]:
    """The learning rate and momentum (or β₁) a spec races with, for the stability lines of the gauge."""
    from ..lab import optimizer_registry

    try:
        optimizer = build_from_spec(
            spec,
            optimizer_registry(),
            "optimizer",
            [__import__("torch").zeros(2, dtype=__import__("torch").float64, requires_grad=True)],
        )
    except ValueError:
        return {}
    group = optimizer.param_groups[0]
    import torch

    from ..optim import SGD, HeavyBall

    # the lines lr·λ_max < 2 (GD) and < 2(1 + β) (heavy ball) bound plain and momentum gradient descent only
    out: dict[str, Any] = {
        "gd": isinstance(optimizer, (SGD, HeavyBall, torch.optim.SGD)) and not group.get("nesterov")
    }
    if isinstance(group.get("lr"), (int, float)):
        out["lr"] = float(group["lr"])
    if isinstance(group.get("momentum"), (int, float)):
        out["beta"] = float(group["momentum"])
    return out


def start_event(labels: list[str], request: dict[str, Any]) -> dict[str, Any]:
    """The ``start`` event: the runs' labels, the request as raced, the commands that reproduce it and
    each run's learning rate and β for the curvature gauge's stability lines."""
    return {
        "labels": labels,
        "request": request,
        "reproduce": reproduce(request),
        "stability": {label: lr_and_beta(spec) for label, spec in zip(labels, request["optimizers"])},
    }
