"""The course notes' claims as checked experiments.

Each :class:`Claim` quotes one sentence of the notes (``text``, with its ``source`` file), states the
experiment that tests it (``hyperparameters``: every learning rate, step budget and seed, equal budgets
for everything compared) and carries two functions: ``setup()`` runs the experiment and returns a
:class:`Measurement` (the numbers and a figure), ``predicate(numbers)`` decides, from the numbers
alone, whether the measurement bears the claim out, and says why in one sentence.

Claims are judged, not tuned: ``expected`` records what the measurement showed when the claim was
written down (``"holds"`` or ``"refuted"``), so a refuted claim is reported as refuted with its
numbers, and the tests (``tests/test_claims.py``) fail if a change in the library turns a verdict
around. :func:`check` runs one claim and returns its :class:`Verdict`::

    from descentlab.claims import CLAIMS, check
    verdict = check("momentum-jumps-local-minima")
    print(verdict.mark, verdict.summary)

``descentlab claims [SLUG ...] --out DIR`` runs them from the command line and writes the figures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .._io import save_figure
from ..validation import check_choice

__all__ = ["Claim", "Measurement", "Verdict", "CLAIMS", "get_claim", "check", "NOTES"]

#: the notes' files, by the number the claims cite
NOTES = {
    "000": "000_7d948ab7020973bd.txt",
    "001": "001_6cb447feb8d53bb0.txt",
    "002": "002_c1a3cbaf983f78e0.txt",
    "003": "003_161db8f6a3084633.txt",
    "004": "004_38aae3d424283583.txt",
}


@dataclass
class Measurement:
    """What a claim's setup measured: named numbers (floats, ints or short strings) and a figure.

    ``race`` is the :class:`~descentlab.lab.RaceResult` when the experiment is one race (the
    playground replays it); ``draw()`` makes the figure (a matplotlib ``Figure``, Agg canvas).
    """

    numbers: dict[str, Any]
    draw: Callable[[], Figure]
    race: Any = None


@dataclass(frozen=True)
class Claim:
    """One claim of the notes with the experiment that tests it.

    Attributes:
        slug: a short name (``"momentum-jumps-local-minima"``).
        text: the claim as the notes state it (a quotation).
        source: the note it is quoted from, ``"notes 001"`` (file name in :data:`NOTES`).
        hyperparameters: the setup in one paragraph: every number it uses, equal budgets.
        setup: runs the experiment: ``setup() -> Measurement``.
        predicate: ``predicate(numbers) -> (holds, why)``, from the numbers alone.
        expected: ``"holds"`` or ``"refuted"``: what the measurement showed when the claim was recorded.
        playground: the race the playground loads for this claim (landscape, start, optimizers, steps,
            noise, seed), or ``None`` when the experiment is not a race on a landscape.
    """

    slug: str
    text: str
    source: str
    hyperparameters: str
    setup: Callable[[], Measurement]
    predicate: Callable[[Mapping[str, Any]], tuple[bool, str]]
    expected: str
    playground: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        check_choice("expected", self.expected, ("holds", "refuted"))
        note = self.source.split()[-1]
        if note not in NOTES:
            raise ValueError(
                f"claim {self.slug!r}: source must name one of notes {sorted(NOTES)}, got {self.source!r}"
            )

    @property
    def note_file(self) -> str:
        return NOTES[self.source.split()[-1]]

    @property
    def command(self) -> str:
        """The command that reproduces the claim's verdict and figure."""
        return f"descentlab claims {self.slug} --out runs/claims"


@dataclass
class Verdict:
    """The outcome of one claim: whether it held, why, and every number measured.

    ``mark`` is ``"✓"`` when the claim holds, ``"refuted"`` when the measurement refutes it as recorded,
    and ``"✗"`` when the measurement no longer agrees with the recorded verdict (the tests fail then).
    """

    claim: Claim
    holds: bool
    summary: str
    numbers: dict[str, Any]
    seconds: float
    figure: str | None = None
    measurement: Measurement | None = field(default=None, repr=False)

    @property
    def as_recorded(self) -> bool:
        return self.holds == (self.claim.expected == "holds")

    @property
    def mark(self) -> str:
        if not self.as_recorded:
            return "✗"
        return "✓" if self.holds else "refuted"

    def to_json(self) -> dict[str, Any]:
        claim = self.claim
        return {
            "slug": claim.slug,
            "text": claim.text,
            "source": claim.source,
            "note_file": claim.note_file,
            "hyperparameters": claim.hyperparameters,
            "holds": self.holds,
            "mark": self.mark,
            "expected": claim.expected,
            "summary": self.summary,
            "numbers": _plain(self.numbers),
            "seconds": round(self.seconds, 3),
            "command": claim.command,
            "figure": self.figure,
            "playground": claim.playground,
        }


def _plain(numbers: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in numbers.items():
        if isinstance(value, (bool, int, str)) or value is None:
            out[key] = value
        elif isinstance(value, float):
            out[key] = float(f"{value:.6g}")
        elif isinstance(value, (list, tuple)):
            out[key] = [float(f"{v:.6g}") if isinstance(v, float) else v for v in value]
        else:
            out[key] = float(f"{float(value):.6g}")
    return out


def get_claim(slug: str) -> Claim:
    """The claim named ``slug`` (``ValueError`` listing the slugs otherwise)."""
    for claim in CLAIMS:
        if claim.slug == slug:
            return claim
    import difflib

    close = difflib.get_close_matches(slug, [c.slug for c in CLAIMS], n=1, cutoff=0.4)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"unknown claim {slug!r}; {hint}claims: {', '.join(c.slug for c in CLAIMS)}")


def check(claim: Claim | str, out: str | os.PathLike | None = None) -> Verdict:
    """Run a claim's setup and predicate; with ``out``, also write its figure ``out/<slug>.png``."""
    from .._threads import intra_op_threads

    claim = get_claim(claim) if isinstance(claim, str) else claim
    began = time.perf_counter()
    import torch

    with intra_op_threads(1), torch.random.fork_rng(devices=[]):
        measurement = claim.setup()
    seconds = time.perf_counter() - began
    holds, summary = claim.predicate(measurement.numbers)
    figure = None
    if out is not None:
        path = Path(out) / f"{claim.slug}.png"
        save_figure(measurement.draw(), path)
        figure = path.name
    return Verdict(claim, bool(holds), summary, dict(measurement.numbers), seconds, figure, measurement)


from .registry import CLAIMS  # noqa: E402  (the claims use Claim and Measurement above)
