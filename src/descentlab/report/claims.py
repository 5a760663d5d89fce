"""The report's claims section and the playground's snapshot, both from :mod:`descentlab.claims`.

:func:`claims_section` checks the notes' claims (:func:`descentlab.claims.check`) into a folder of their own
next to the page (``claims/``): each claim's figure, a gallery captioned with its verdict (✓, ✗ or
*refuted*) and what was measured, a table with the command that reproduces it, and ``claims.json``
with every number. The demo has a time budget, so the claims that take longest
(:data:`SLOW_CLAIMS`) are not run there: the section lists them with their command and says so.

:func:`playground_snapshot` writes the playground page in snapshot mode (``playground/``,
:func:`descentlab.playground.snapshot.write_snapshot`): the curated races of :data:`SNAPSHOT_RACES`
recorded beside the page, and the verdicts the claims section measured, replayed from disk with no
server. Both run on one torch intra-op thread and leave the RNGs as they found them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import plots
from .._io import atomic_write
from .._threads import intra_op_threads
from .section import Figure, Section

if TYPE_CHECKING:
    from .experiments import ReportOptions

__all__ = ["claims_section", "playground_snapshot", "SLOW_CLAIMS", "SNAPSHOT_RACES"]

#: the claims the demo lists but does not run, to stay within its budget (``make demo`` ≤ 3 minutes on
#: two cores): each took 13–24 s on a loaded two-core machine, together about 60 % of all twenty
#: (``descentlab claims`` runs them all); the other sixteen took 1–7 s each
SLOW_CLAIMS = frozenset({
    "raising-beta-needs-lower-lr",
    "adagrad-rate-decays-rmsprop-does-not",
    "larger-batch-is-like-lower-lr",
    "ill-conditioning-slows-gd-like-kappa",
})

#: the races recorded into the snapshot page, ``(title, request)`` as ``POST /api/race`` takes them
SNAPSHOT_RACES: list[tuple[str, dict[str, Any]]] = [
    ("two minima: GD, momentum, Adam, RMSprop from (1.6, 1.2)", {
        "landscape": "two-minima", "start": [1.6, 1.2], "steps": 250, "noise": 0.0, "seed": 0,
        "optimizers": ["sgd(lr=0.05)", "sgd(lr=0.05, momentum=0.9)", "adam(lr=0.1)", "rmsprop(lr=0.01)"]}),
    ("two minima from the other side, (−1.8, −1.2)", {
        "landscape": "two-minima", "start": [-1.8, -1.2], "steps": 250, "noise": 0.0, "seed": 0,
        "optimizers": ["sgd(lr=0.05)", "sgd(lr=0.05, momentum=0.9)",
                       "sgd(lr=0.05, momentum=0.9, nesterov=True)", "adam(lr=0.1)"]}),
    ("a saddle, gradient noise σ = 0.1: GD and momentum leave the ridge", {
        "landscape": "saddle", "start": [0.0, 1.5], "steps": 200, "noise": 0.1, "seed": 0,
        "optimizers": ["sgd(lr=0.05)", "sgd(lr=0.05, momentum=0.9)"]}),
    ("κ = 100: GD, heavy ball, Nesterov, Adam", {
        "landscape": "quadratic(kappa=100)", "steps": 300, "noise": 0.0, "seed": 0,
        "optimizers": ["sgd(lr=0.0198)", "heavyball(lr=0.0198, momentum=0.9)",
                       "sgd(lr=0.0198, momentum=0.9, nesterov=True)", "adam(lr=0.05)"]}),
    ("Rosenbrock's valley", {
        "landscape": "rosenbrock", "steps": 600, "noise": 0.0, "seed": 0,
        "optimizers": ["sgd(lr=0.001, momentum=0.9)", "adam(lr=0.02)", "rmsprop(lr=0.005)"]}),
]

_VERDICTS = "claims.json"


def _relative(path: Path, directory: Path) -> str:
    return path.resolve().relative_to(directory.resolve()).as_posix()


def _verdict_word(mark: str) -> str:
    return {"✓": "holds", "refuted": "refuted", "✗": "✗ no longer as recorded"}[mark]


def claims_section(directory: Path, options: ReportOptions | None = None) -> Section:
    """Every claim of the notes the demo's budget allows, checked by its predicate: verdict, figure,
    numbers and the command that reproduces it; the slow ones listed with their command."""
    from ..claims import CLAIMS, check

    folder = directory / "claims"
    folder.mkdir(parents=True, exist_ok=True)
    verdicts, figures, rows = [], [], []
    for claim in CLAIMS:
        if claim.slug in SLOW_CLAIMS:
            rows.append(["not run here", f"{claim.slug} ({claim.source})", f"“{claim.text}”",
                         "recorded: " + claim.expected, "—", claim.command])
            continue
        with intra_op_threads(1):
            verdict = check(claim, out=folder)
        verdicts.append(verdict)
        image = _relative(folder / verdict.figure, directory)
        figures.append(Figure(image=image, caption=f"{verdict.mark} {claim.slug} ({claim.source}): "
                                                   f"“{claim.text}” — {verdict.summary}."))
        rows.append([_verdict_word(verdict.mark), f"{claim.slug} ({claim.source})", f"“{claim.text}”",
                     verdict.summary, f"{verdict.seconds:.1f}", claim.command])
    data = [verdict.to_json() | {"figure": _relative(folder / verdict.figure, directory)}
            for verdict in verdicts]
    text = json.dumps(data, ensure_ascii=False, indent=1)
    atomic_write(folder / _VERDICTS, lambda tmp: Path(tmp).write_text(text, "utf-8"))
    marks = [verdict.mark for verdict in verdicts]
    held, refuted, changed = marks.count("✓"), marks.count("refuted"), marks.count("✗")
    refuted_names = ", ".join(v.claim.slug for v in verdicts if v.mark == "refuted") or "none"
    skipped = [claim.slug for claim in CLAIMS if claim.slug in SLOW_CLAIMS]
    finding = (
        f"Of the {len(verdicts)} claims run here, {held} hold and {refuted} are refuted by the measurement "
        f"({refuted_names})" + (f"; {changed} no longer measure as recorded" if changed else "") + "."
    )
    if skipped:
        finding += (f" Not run in the demo, to keep it within its time budget: {', '.join(skipped)} — each "
                    "row gives the command that runs it (descentlab claims runs all of them).")
    return Section(
        slug="claims",
        title="The notes' claims, checked: one experiment and one predicate per claim",
        equation=r"$\mathrm{verdict}=\mathrm{predicate}(\mathrm{numbers}),\qquad"
        r"\mathrm{numbers}=\mathrm{setup}()$",
        lead="Each claim quotes the notes, runs an experiment with stated hyperparameters and equal budgets, "
        "and a predicate judges the measured numbers: ✓ the measurement bears the claim out, refuted it does "
        "not (reported with its numbers, not tuned until it passes), ✗ it no longer measures as recorded. "
        "The test suite runs the same predicates.",
        finding=finding,
        figures=figures,
        headers=["verdict", "claim", "the notes say", "what was measured", "s", "reproduce"],
        rows=rows,
        link=_relative(folder / _VERDICTS, directory),
        link_text="every measured number, as JSON",
    )


def playground_snapshot(directory: Path, options: ReportOptions | None = None) -> Section:
    """The playground page in snapshot mode beside the report: curated races replayed from disk, and the
    claims panel with the verdicts the claims section measured."""
    from ..lab import race
    from ..playground.events import reproduce
    from ..playground.snapshot import write_snapshot

    folder = directory / "playground"
    verdicts_file = directory / "claims" / _VERDICTS
    verdicts = json.loads(verdicts_file.read_text("utf-8")) if verdicts_file.exists() else []
    for verdict in verdicts:  # the figures' paths, from the snapshot page's folder
        verdict["figure"] = "../" + verdict["figure"]
    with intra_op_threads(1):
        index = write_snapshot(folder, SNAPSHOT_RACES, claims=verdicts)
        data = json.loads((folder / "races.json").read_text("utf-8"))
        title, first = SNAPSHOT_RACES[0]
        result = race(first["landscape"], first["optimizers"], start=first["start"], steps=first["steps"],
                      noise=first["noise"], seed=first["seed"])
    image = "playground/first-race.png"
    plots.save_figure(plots.plot_race(result, title=title), directory / image)
    rows = []
    for recorded in data["races"]:
        request = recorded["request"]
        frames = sum(1 for event, _ in recorded["events"] if event == "frame")
        done = next(body for event, body in recorded["events"] if event == "done")
        best = min(done["runs"], key=lambda run: run["final_loss"] if run["final_loss"] is not None
                   else float("inf"))
        rows.append([recorded["title"], request["landscape"], str(len(request["optimizers"])), str(frames),
                     f"{best['label']} ({best['final_loss']:.3g})", reproduce(request)["cli"]])
    return Section(
        slug="playground",
        title="The playground, replayed: recorded races on the page that the live server drives",
        equation=r"$\mathrm{frame}_k=\left(w_k,\ f(w_k),\ \Vert\nabla f(w_k)\Vert\right)"
        r"\quad\mathrm{for\ every\ optimizer,\ every\ step}\ k$",
        lead="descentlab playground serves a page where a click on the landscape races up to 8 optimizers "
        "with the real library, streamed frame by frame. The same page is here in snapshot mode: "
        f"{len(rows)} races recorded by the same code as the server, with every frame, and the "
        f"{len(verdicts)} claims' verdicts, replayed from disk with no server and no network.",
        finding=f"Open {_relative(index, directory)}: it says it replays a snapshot, plays each race step by "
        "step (play / pause / step), draws the loss and gradient-norm curves and the curvature gauge, "
        "and shows each claim's verdict and figure. The figure above is the first race, drawn by "
        "plots.plot_race from the same run.",
        image=image,
        headers=["race", "landscape", "optimizers", "frames", "lowest final loss", "reproduce"],
        rows=rows,
        link=_relative(index, directory),
        link_text="open the playground (snapshot mode, from disk)",
    )
