"""One block of the report page, as the experiments return it and the template draws it."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Section", "Figure"]


@dataclass(frozen=True, kw_only=True)
class Figure:
    """A captioned figure of a section: the image file next to the page and what it shows.

    Attributes:
        image: file name (or path relative to the page) of the PNG; the page shows it scaled down
            and links it to the full-size file.
        caption: plain text (escaped by the template), made from the measured run.
    """

    image: str
    caption: str


@dataclass(kw_only=True)
class Section:
    """One block of the page: a figure (or a gallery of captioned figures), an equation, a table and
    what it shows.

    Built with keywords only; every text is plain text (the page template escapes it), except
    ``equation``, which is mathtext (``$...$``) rendered to inline SVG.

    Attributes:
        slug: the block's ``id`` on the page (and its anchor in the navigation).
        title: the heading; the part before a ``:`` is the navigation label.
        equation: the update rule or function, in matplotlib mathtext.
        lead: what the experiment sets up.
        finding: what it shows, computed from the race so that it stays true.
        image: file name of the main figure, next to the page (``None`` when the section has only
            ``figures``).
        headers: column names of the table.
        rows: the table's rows, one string per column.
        extra_image: file name of a second figure (or animation), if any.
        figures: captioned figures (:class:`Figure`), drawn as a gallery after ``image``; each links
            to its full-size file.
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
    image: str | None = None
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    extra_image: str | None = None
    figures: list[Figure] = field(default_factory=list)
    seconds: float = 0.0
    link: str | None = None
    link_text: str = "open its own report"

    def __post_init__(self) -> None:
        if self.image is None and not self.figures:
            raise ValueError(f"section {self.slug!r} needs an image or figures")
        for i, figure in enumerate(self.figures):
            if not isinstance(figure, Figure):
                raise ValueError(f"section {self.slug!r}: figures[{i}] must be a Figure, got "
                                 f"{type(figure).__name__}")
