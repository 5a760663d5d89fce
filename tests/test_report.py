"""The demo report: every figure present, offline, tables that match the races, written atomically."""

from __future__ import annotations

import html.parser
import math
from pathlib import Path

import pytest
from PIL import Image

from descentlab import report
from descentlab.lab import race


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.ids, self.cells, self.svgs = [], [], [], [], 0
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag in ("a", "link", "script"):
            self.links.append(attrs.get("href") or attrs.get("src") or "")
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "svg":
            self.svgs += 1
        self._in_cell = tag == "td"

    def handle_data(self, data):
        if self._in_cell and data.strip():
            self.cells.append(data.strip())
            self._in_cell = False


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    seen = []
    index, sections = report.build_report(out, progress=seen.append)
    page = _Page()
    page.feed(index.read_text("utf-8"))
    return out, index, sections, page, seen


def test_every_experiment_has_a_section_and_progress(built):
    _, _, sections, page, seen = built
    assert seen == [name for name, _ in report.EXPERIMENTS]
    for section in sections:
        assert section.slug in page.ids
        assert section.finding and section.lead


def test_every_image_exists_and_is_local(built):
    out, _, sections, page, _ = built
    assert len(page.images) >= len(sections)
    for source in page.images:
        assert "://" not in source
        with Image.open(out / source) as image:
            assert image.format in ("PNG", "GIF") and image.width > 300
    for link in page.links:
        assert "://" not in link


def test_equations_are_inline_svg(built):
    _, _, sections, page, _ = built
    assert page.svgs >= len(sections)


def test_tables_match_a_fresh_race(built):
    _, _, sections, page, _ = built
    fresh = race("quadratic(kappa=100)", [("GD", "sgd(lr=0.01)"), ("momentum", "sgd(lr=0.01, momentum=0.9)"),
                                          ("Nesterov", "sgd(lr=0.01, momentum=0.9, nesterov=True)"),
                                          ("Adam", "adam(lr=0.1)")], steps=300)
    section = next(s for s in sections if s.slug == "kappa-100")
    assert section.rows == [list(row.values()) for row in fresh.rows()]
    for row in section.rows:
        assert row[0] in page.cells


def notes_warm_restarts(num_epochs):
    """The notes' (002) code sample, transcribed."""
    t_i, t_mult, t_cur, min_lr, max_lr, rates = 10, 2, 0, 0.01, 0.1, []
    for epoch in range(num_epochs):
        if epoch > 0 and t_cur == t_i:
            t_cur = 0
            t_i *= t_mult
        rates.append(min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * t_cur / t_i)))
        t_cur += 1
    return rates


def test_schedule_finding_matches_the_notes_code(built):
    _, _, sections, _, _ = built
    rates = notes_warm_restarts(150)
    restarts = [t for t in range(1, 150) if rates[t] > rates[t - 1]]
    section = next(s for s in sections if s.slug == "schedules")
    assert f"restarts at steps {', '.join(map(str, restarts))}" in section.finding


def test_the_two_minima_finding_names_the_runs_in_the_deep_well(built):
    _, _, sections, _, _ = built
    section = next(s for s in sections if s.slug == "two-minima")
    for row in section.rows:
        label, minimum = row[0], row[2]
        if "global" in minimum:
            assert label in section.finding.split("reached the deeper")[0]


def test_a_crash_leaves_the_previous_page_untouched(tmp_path, monkeypatch):
    index = tmp_path / "index.html"
    index.write_text("previous report")

    def broken(directory: Path, options):
        raise RuntimeError("boom")

    monkeypatch.setattr(report, "EXPERIMENTS", [("plateau", report.plateau), ("broken", broken)])
    with pytest.raises(RuntimeError, match="boom"):
        report.build_report(tmp_path)
    assert index.read_text() == "previous report"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_unwritable_output_is_a_value_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        report.build_report(blocker)
    with pytest.raises(ValueError, match="unknown experiment"):
        report.build_report(tmp_path, only=["nope"])


def _section(**overrides):
    fields = dict(slug="s", title="A title: more", equation="$x^2$", lead="lead", finding="finding",
                  image="a.png", headers=["optimizer", "diverged"], rows=[["sgd", "no"]])
    return report.Section(**{**fields, **overrides})


def test_the_page_escapes_every_text_but_the_equation():
    hostile = "<script>alert('x')</script>"
    page = report.render_page([_section(title=hostile, lead=hostile, finding=hostile, rows=[[hostile, "no"]],
                                        extra_image='b.png" onerror="alert(1)')], 1.0)
    assert "<script>" not in page and "onerror=\"" not in page
    assert page.count("&lt;script&gt;") >= 4
    parsed = _Page()
    parsed.feed(page)
    assert parsed.svgs == 1 and parsed.ids[0] == "s"
    assert parsed.images == ["a.png", 'b.png" onerror="alert(1)']  # one attribute, quotes escaped
    assert '<span class="badge idle">no</span>' in page


def test_sections_are_built_with_keywords():
    with pytest.raises(TypeError):
        report.Section("s", "title", "$x$", "lead", "finding", "a.png")
    assert _section().extra_image is None


def test_the_template_ships_in_the_package():
    from importlib.resources import files

    templates = files("descentlab.report") / "templates"
    assert (templates / "page.html.j2").is_file() and (templates / "report.css").is_file()


def test_every_experiment_takes_directory_and_options(tmp_path):
    import inspect

    for name, experiment in report.EXPERIMENTS:
        assert list(inspect.signature(experiment).parameters) == ["directory", "options"], name
    section = report.schedules(tmp_path, report.ReportOptions(gif=False))
    assert section.slug == "schedules" and (tmp_path / section.image).exists()
    with pytest.raises(ValueError, match="gif"):
        report.ReportOptions(gif="yes")


def test_no_gif_means_no_animation(tmp_path):
    section = report.two_minima(tmp_path, report.ReportOptions(gif=False))
    assert section.extra_image is None and not (tmp_path / "two-minima.gif").exists()
