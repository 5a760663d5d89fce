"""The playground page in snapshot mode: curated races recorded beside it, replayed with no server.

:func:`write_snapshot` runs each race through the same code as the server (the same request checks,
:func:`descentlab.lab.race_stream`, the same events) and writes, into one folder::

    index.html        the playground page, with one more <script> tag: races.js
    static/app.js     the page's script and style, as the server serves them
    static/app.css
    races.json        the recorded races (landscape grid, every event), and the claims' verdicts
    races.js          the same data as ``window.DESCENTLAB_SNAPSHOT = {...}``: a page opened from disk
                      (file://) may not fetch a JSON file, but it may load a script next to it

It needs no web server (nothing of Starlette's is imported), so the demo report writes it with the runtime
dependencies alone. The page finds the data, says it is replaying a snapshot from disk, and replays it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write
from ..lab import RaceResult, race_stream
from . import compute
from .events import STATIC, Limits, done_json, finite, frame_json, race_request, start_event

__all__ = ["record_race", "write_snapshot"]


def record_race(title: str, body: dict[str, Any], resolution: int = 81) -> dict[str, Any]:
    """One race as the server would stream it: ``{"title", "request", "grid", "events"}``."""
    request, landscape = race_request(dict(body), Limits())
    stream = race_stream(
        landscape,
        request["optimizers"],
        request["start"],
        request["steps"],
        noise=request["noise"],
        seed=request["seed"],
        errors="record",
    )
    first = next(stream)
    events: list[list[Any]] = [["start", start_event(first.labels, request)], ["frame", frame_json(first)]]
    for item in stream:
        if isinstance(item, RaceResult):
            events.append(["done", done_json(item)])
        else:
            events.append(["frame", frame_json(item)])
    return {
        "title": title,
        "request": request,
        "grid": compute.landscape_grid(landscape, resolution),
        "events": events,
    }


def write_snapshot(
    directory: str | os.PathLike,
    races: Sequence[tuple[str, dict[str, Any]]],
    claims: Sequence[dict[str, Any]] = (),
) -> Path:
    """Record ``races`` (``(title, request)`` pairs, requests as ``POST /api/race`` takes them) and write the
    snapshot page into ``directory``; ``claims`` are verdicts (:meth:`descentlab.claims.Verdict.to_json`,
    ``figure`` a path relative to the page). Returns the page's path."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("descentlab")
    except PackageNotFoundError:
        number = "(source tree)"
    folder = Path(directory)
    (folder / "static").mkdir(parents=True, exist_ok=True)
    data = finite(
        {
            "version": number,
            "races": [record_race(title, body) for title, body in races],
            "claims": list(claims),
        }
    )
    text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    for name in ("app.js", "app.css"):
        atomic_write(folder / "static" / name, lambda tmp, name=name: shutil.copyfile(STATIC / name, tmp))
    atomic_write(folder / "races.json", lambda tmp: Path(tmp).write_text(text, "utf-8"))
    script = "window.DESCENTLAB_SNAPSHOT = " + text.replace("</", "<\\/") + ";\n"
    atomic_write(folder / "races.js", lambda tmp: Path(tmp).write_text(script, "utf-8"))
    page = (
        (STATIC / "index.html")
        .read_text("utf-8")
        .replace(
            '<script src="static/app.js"></script>',
            '<script src="races.js"></script>\n<script src="static/app.js"></script>',
        )
    )
    return atomic_write(folder / "index.html", lambda tmp: Path(tmp).write_text(page, "utf-8"))
