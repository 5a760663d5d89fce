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


# -- galleries of captioned figures and the two training sections ----------------------------------------
def _gallery(page_html: str) -> list[tuple[str, str]]:
    """``(link, image)`` of every gallery figure: the link around each image and the image itself."""
    import re

    return re.findall(r'<a href="([^"]*)" title="full size"><img src="([^"]*)"', page_html)


def test_the_training_sections_show_linked_captioned_figures(built):
    from markupsafe import escape

    out, index, sections, _, _ = built
    html = index.read_text("utf-8")
    gallery = _gallery(html)
    by_slug = {s.slug: s for s in sections}
    practice, diagnosis = by_slug["training-practice"], by_slug["diagnosis"]
    assert len(practice.figures) == 5 and len(diagnosis.figures) == 7
    for section in (practice, diagnosis):
        assert section.image is None and section.finding and section.rows
        for figure in section.figures:
            assert (figure.image, figure.image) in gallery  # each thumbnail links to its full-size file
            with Image.open(out / figure.image) as image:
                assert image.format == "PNG" and image.width > 600
            assert figure.caption.endswith(".") and any(ch.isdigit() for ch in figure.caption)
            assert str(escape(figure.caption)) in html  # escaped, as every text
    rows = {row[0]: row for row in diagnosis.rows}
    assert rows["healthy"][2] == "none"  # the control raises no flag
    for name, row in rows.items():
        assert row[-1] == "yes", row  # each planted pathology raised its label
        if name != "healthy":
            assert row[1] in row[2].split(", ")
    assert all(row[-1] in ("yes", "") for row in practice.rows), practice.rows


def _fake_practice(directory, ratio=0.98, stratified=0.0):
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("range_test", "early_stopping", "tbptt", "balanced_batches", "gradient_noise"):
        paths[name] = str(directory / f"{name}.png")
    return {
        "range_test": {"path": paths["range_test"], "suggested_lr": 0.3 * ratio, "grid_best_lr": 0.3,
                       "ratio": ratio, "curvature_lr": 3.5, "lambda_max": 0.57, "rule": "combined",
                       "caption": "range test caption 1."},
        "early_stopping": {"path": paths["early_stopping"], "best_epoch": 11, "stopped_epoch": 21,
                           "best_val_loss": 0.7, "val_loss_at_stop": 0.8, "train_loss_at_best": 0.9,
                           "train_loss_at_stop": 0.5, "caption": "early stopping caption 2."},
        "tbptt": {"path": paths["tbptt"], "ks": [1, 4, 16, 64], "T": 64,
                  "memory_ratio": [0.02, 0.07, 0.27, 1.0], "gradient_error": [0.3, 0.2, 0.0617, 0.0],
                  "caption": "tbptt caption 3."},
        "balanced_batches": {"path": paths["balanced_batches"], "batch_size": 40, "batches": 281,
                             "missing_class_fraction": {"WeightedRandomSampler + class_weights": 0.23,
                                                        "StratifiedBatchSampler": stratified},
                             "caption": "batches caption 4."},
        "gradient_noise": {"path": paths["gradient_noise"], "batch_sizes": [4, 256], "critical_batch": 77.0,
                           "ratio_to_formula": [0.95, 1.02], "caption": "noise caption 5."},
    }


def test_the_training_practice_section_is_made_of_the_measured_numbers(tmp_path, monkeypatch):
    import descentlab.training as training

    monkeypatch.setattr(training, "training_practice_figures", lambda d: _fake_practice(Path(d)))
    section = report.training_practice(tmp_path, report.ReportOptions())
    names = ("range_test", "early_stopping", "tbptt", "balanced_batches", "gradient_noise")
    assert [f.image for f in section.figures] == [f"training-practice/{n}.png" for n in names]
    assert [f.caption for f in section.figures][2] == "tbptt caption 3."
    for text in ("0.98×", "epoch 11 of 21", "0.27× the memory", "6.2% gradient", "23%", "within 5%"):
        assert text in section.finding, text
    assert [row[-1] for row in section.rows] == ["yes"] * 7 + [""]
    assert section.rows[-1][1] == "77"
    monkeypatch.setattr(training, "training_practice_figures",
                        lambda d: _fake_practice(Path(d), ratio=4.0, stratified=0.01))
    failing = report.training_practice(tmp_path, report.ReportOptions())
    assert failing.rows[0][-1] == "no" and failing.rows[5][-1] == "no" and "4.00×" in failing.finding


def _fake_case(directory, name, expected, labels, measured):
    flags = [{"label": label, "step": 3, "layer": "0", "value": 1.0, "threshold": 2.0,
              "evidence": f"evidence of {label}", "advice": "", "severity": "problem"} for label in labels]
    return name, {"path": str(directory / f"diagnosis-{name}.png"), "expected": expected, "labels": labels,
                  "flags": flags, "measured": {"steps": 40, **measured}, "caption": f"{name} caption."}


def test_the_diagnosis_section_is_made_of_the_flags_raised(tmp_path, monkeypatch):
    import torch

    import descentlab.diagnostics as diagnostics

    seen = []

    def fake(directory, missed=False, noisy_control=False):
        directory = Path(directory)
        seen.append(torch.get_num_threads())
        torch.manual_seed(123)  # the cases seed torch: the section must put the RNG back
        return dict([
            _fake_case(directory, "healthy", None, ["saturated"] if noisy_control else [],
                       {"grad_ratio_min": 0.6, "grad_ratio_max": 0.84, "update_ratio_max": 0.078,
                        "update_ratio_min": 0.0066, "sharpness_max": 0.73, "sharpness_bound": 3.8}),
            _fake_case(directory, "vanishing", "vanishing", ["update-ratio-low"] if missed else
                       ["vanishing", "plateau:saddle"], {}),
            _fake_case(directory, "saturated", "saturated", ["saturated"], {}),
        ])

    torch.manual_seed(7)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(diagnostics, "diagnosis_figures", lambda d: fake(d))
        section = report.diagnosis(tmp_path, report.ReportOptions())
        assert seen == [1] and torch.get_num_threads() == 2  # one thread inside, put back after
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(torch.get_rng_state(), state)
    assert [row[0] for row in section.rows] == ["healthy", "vanishing", "saturated"]
    closest = "update ratio 0.078, 3.8× below the update-ratio-high threshold 0.3"
    assert section.rows[0][2:] == ["none", closest, "yes"]
    assert section.rows[1][3] == "evidence of vanishing (step 3)" and section.rows[1][-1] == "yes"
    assert section.finding.startswith("2 of 2 planted pathologies raised their label and the healthy "
                                      "control raised no flag; the control's closest approach to a "
                                      f"threshold: {closest}.")
    assert "1 of the 2 also raised other labels (vanishing: plateau:saddle)" in section.finding
    captions = ["healthy caption.", "vanishing caption.", "saturated caption."]
    assert [f.caption for f in section.figures] == captions
    monkeypatch.setattr(diagnostics, "diagnosis_figures", lambda d: fake(d, missed=True, noisy_control=True))
    failing = report.diagnosis(tmp_path, report.ReportOptions())
    assert [row[-1] for row in failing.rows] == ["no", "no", "yes"]
    assert failing.finding.startswith("1 of 2 planted pathologies raised their label and the healthy control "
                                      "raised flags")


def test_figures_are_escaped_and_a_section_needs_an_image_or_figures():
    hostile = "<script>alert('x')</script>"
    figure = report.Figure(image='c.png" onerror="alert(1)', caption=hostile)
    page = report.render_page([_section(image=None, figures=[figure])], 1.0)
    assert "<script>" not in page and 'onerror="' not in page and "&lt;script&gt;" in page
    parsed = _Page()
    parsed.feed(page)
    assert parsed.images == ['c.png" onerror="alert(1)']  # one attribute, quotes escaped
    assert _gallery(page) == [('c.png&#34; onerror=&#34;alert(1)', 'c.png&#34; onerror=&#34;alert(1)')]
    with pytest.raises(ValueError, match="needs an image or figures"):
        _section(image=None)
    with pytest.raises(ValueError, match=r"figures\[0\] must be a Figure"):
        _section(figures=["a.png"])
    with pytest.raises(TypeError):
        report.Figure("a.png", "caption")  # keywords only
    single = report.render_page([_section()], 1.0)
    assert 'class="gallery"' not in single and '<img src="a.png"' in single  # unchanged single-image sections


# -- the claims of the notes and the playground's snapshot -------------------------------------------------
def test_the_claims_section_lists_every_claim_with_its_verdict_and_command(built):
    import json

    from descentlab.claims import CLAIMS
    from descentlab.report.claims import SLOW_CLAIMS

    out, index, sections, _, _ = built
    section = {s.slug: s for s in sections}["claims"]
    rows = {row[1].split(" (")[0]: row for row in section.rows}
    assert list(rows) == [claim.slug for claim in CLAIMS]
    verdicts = {v["slug"]: v for v in json.loads((out / "claims" / "claims.json").read_text("utf-8"))}
    assert set(verdicts) == {c.slug for c in CLAIMS} - SLOW_CLAIMS
    for claim in CLAIMS:
        row = rows[claim.slug]
        assert row[-1] == f"descentlab claims {claim.slug} --out runs/claims"
        if claim.slug in SLOW_CLAIMS:
            assert row[0] == "not run here" and claim.slug in section.finding
            continue
        verdict = verdicts[claim.slug]
        assert row[0] == claim.expected  # "holds" or "refuted", as recorded: a ✗ would fail here
        assert row[3] == verdict["summary"] and verdict["numbers"]
        assert (out / verdict["figure"]).stat().st_size > 5000
    assert {f.image for f in section.figures} == {v["figure"] for v in verdicts.values()}
    refuted = [c.slug for c in CLAIMS if c.expected == "refuted" and c.slug not in SLOW_CLAIMS]
    assert f"{len(refuted)} are refuted" in section.finding
    assert 'href="claims/claims.json"' in index.read_text("utf-8")


def test_the_playground_snapshot_is_linked_and_replays_the_curated_races(built):
    import json

    from descentlab.lab import race
    from descentlab.report.claims import SNAPSHOT_RACES

    out, index, sections, _, _ = built
    section = {s.slug: s for s in sections}["playground"]
    assert section.link == "playground/index.html"
    assert 'href="playground/index.html"' in index.read_text("utf-8")
    page = (out / "playground" / "index.html").read_text("utf-8")
    assert '<script src="races.js"></script>' in page
    data = json.loads((out / "playground" / "races.json").read_text("utf-8"))
    assert [r["title"] for r in data["races"]] == [title for title, _ in SNAPSHOT_RACES]
    title, body = SNAPSHOT_RACES[2]
    expected = race(body["landscape"], body["optimizers"], start=body["start"], steps=body["steps"],
                    noise=body["noise"], seed=body["seed"])
    done = next(d for event, d in data["races"][2]["events"] if event == "done")
    assert [r["final_point"] for r in done["runs"]] == [run.final_point.tolist() for run in expected.runs]
    claims = json.loads((out / "claims" / "claims.json").read_text("utf-8"))
    assert [c["slug"] for c in data["claims"]] == [c["slug"] for c in claims]
    for claim in data["claims"]:  # each figure, from the snapshot page's folder
        assert (out / "playground" / claim["figure"]).resolve().is_file()


def test_the_snapshot_needs_no_web_server():
    import subprocess
    import sys

    code = ("import sys, descentlab.report, descentlab.playground.snapshot; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'anyio')))")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"
