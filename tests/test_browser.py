"""The demo report in real headless Chromium: every image loads, no console errors, no network."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from descentlab import report

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.browser


def _chromium_or_skip() -> Path:
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium); .ci/run installs it")
    pytest.importorskip("playwright.sync_api", reason="playwright's Python API is not installed")
    return CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium"))


def test_report_loads_in_chromium_without_errors(tmp_path):
    executable = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    index, sections = report.build_report(tmp_path, only=["two minima", "AdaGrad vs RMSprop", "schedules"])
    errors, requests = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(index.as_uri(), wait_until="load")
            page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
            page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=20000)
            images = page.evaluate("Array.from(document.images)"
                                   ".map(i => [i.getAttribute('src'), i.naturalWidth, i.naturalHeight])")
            headings = page.evaluate("Array.from(document.querySelectorAll('section h2'))"
                                     ".map(h => h.textContent)")
        finally:
            browser.close()
    assert errors == []
    assert len(images) >= len(sections)
    for source, width, height in images:
        assert width > 0 and height > 0, f"{source} did not load"
    assert headings == [section.title for section in sections]
    remote = [url for url in requests if not url.startswith("file://")]
    assert remote == []


def test_a_gallery_of_captioned_figures_loads_and_links_full_size(tmp_path):
    executable = _chromium_or_skip()
    from PIL import Image
    from playwright.sync_api import sync_playwright

    (tmp_path / "sub").mkdir()
    for i, size in enumerate([(700, 430), (980, 390), (1430, 1320)]):
        Image.new("RGB", size, (40 * i, 120, 200)).save(tmp_path / "sub" / f"f{i}.png")
    figures = [report.Figure(image=f"sub/f{i}.png", caption=f"caption {i} <measured>") for i in range(3)]
    section = report.Section(slug="gallery", title="Gallery: three figures", equation="$x^2$", lead="lead",
                             finding="finding", figures=figures, headers=["case", "as expected"],
                             rows=[["a", "yes"], ["b", "no"]])
    index = tmp_path / "index.html"
    index.write_text(report.render_page([section], 1.0), "utf-8")
    errors = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(index.as_uri(), wait_until="load")
            page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
            page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=20000)
            shown = page.evaluate(
                "Array.from(document.querySelectorAll('.gallery figure')).map(f => ["
                "f.querySelector('a').getAttribute('href'), f.querySelector('img').naturalWidth,"
                " f.querySelector('img').getBoundingClientRect().width,"
                " f.querySelector('figcaption').textContent])"
            )
            badges = page.evaluate("Array.from(document.querySelectorAll('.badge')).map(b => b.className)")
        finally:
            browser.close()
    assert errors == []
    assert [href for href, *_ in shown] == [f"sub/f{i}.png" for i in range(3)]
    for (_, natural, width, caption), i in zip(shown, range(3)):
        assert natural > 0 and 0 < width <= 640  # scaled into a column of the gallery
        assert caption.strip() == f"caption {i} <measured>"
    assert badges == ["badge ok", "badge bad"]
