"""The report page: :class:`~descentlab.report.Section` objects rendered by a Jinja2 template.

The template (``templates/page.html.j2``, with ``templates/report.css`` inlined) ships in the
package and is rendered with autoescaping on, so every text of a section — titles, findings,
table cells — is escaped. The only markup that is not escaped is each section's equation, which
matplotlib's mathtext renders to inline SVG (:func:`descentlab.plots.render_equation`). The page
needs no network: inline CSS and SVG, images next to it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import jinja2
import torch
from markupsafe import Markup

from .. import plots
from ..validation import check_number
from .section import Section

__all__ = ["render_page"]

TEMPLATE = "page.html.j2"


@dataclass(frozen=True)
class _Cell:
    text: str
    badge: str | None  # CSS class of a status badge ("ok", "bad", "idle"), or None for plain text


@dataclass(frozen=True)
class _Block:
    """What the template needs of one section, computed here rather than in the template."""

    section: Section
    nav_label: str
    equation: Markup
    rows: list[list[_Cell]]


def _badge(header: str, value: str) -> str | None:
    if header == "as expected" and value in ("yes", "no"):
        return "ok" if value == "yes" else "bad"
    if header == "diverged":
        return "idle" if value == "no" else "bad"
    if header == "verdict":
        return {"holds": "ok", "refuted": "warn", "not run here": "idle"}.get(value, "bad")
    if header == "converged at":
        return "idle" if value == "—" else "ok"
    return None


def _block(section: Section) -> _Block:
    rows = [[_Cell(value, _badge(header, value)) for header, value in zip(section.headers, row)]
            for row in section.rows]
    # matplotlib writes the SVG and escapes the text in it; it is the one piece of markup on the page
    equation = Markup(plots.render_equation(section.equation))
    return _Block(section, section.title.split(":")[0], equation, rows)


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("descentlab.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_page(sections: Sequence[Section], seconds: float, *, template: str = TEMPLATE,
                **context: object) -> str:
    """The whole page as one self-contained HTML string (inline CSS and SVG, local images only).

    ``template`` names another template of ``report/templates/`` (the benchmark's ``bench.html.j2``),
    which receives ``context`` besides the blocks."""
    for i, section in enumerate(sections):
        if not isinstance(section, Section):
            raise ValueError(f"sections[{i}] must be a Section, got {type(section).__name__}")
    check_number("seconds", seconds, low=0.0)
    page = _environment().get_template(template)
    return page.render(blocks=[_block(s) for s in sections], seconds=seconds,
                       torch_version=torch.__version__, **context)
