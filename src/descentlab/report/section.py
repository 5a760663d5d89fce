"""One block of the report page, as the experiments return it and the template draws it."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Section"]


@dataclass(kw_only=True)
class Section:
    """One block of the page: a figure, an equation, a table and what it shows.

    Built with keywords only; every text is plain text (the page template escapes it), except
    ``equation``, which is mathtext (``$...$``) rendered to inline SVG.

    Attributes:
        slug: the block's ``id`` on the page (and its anchor in the navigation).
        title: the heading; the part before a ``:`` is the navigation label.
        equation: the update rule or function, in matplotlib mathtext.
        lead: what the experiment sets up.
        finding: what it shows, computed from the race so that it stays true.
        image: file name of the main figure, next to the page.
        headers: column names of the table.
        rows: the table's rows, one string per column.
        extra_image: file name of a second figure (or animation), if any.
        seconds: how long the experiment took (set by the report builder).
        link: a page of its own this section points to (relative URL), if any — the bench
            section's report.
        link_text: the words of that link.
    """

    slug: str
    title: str
    equation: str
    lead: str
    finding: str
    image: str
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    extra_image: str | None = None
    seconds: float = 0.0
    link: str | None = None
    link_text: str = "open its own report"
