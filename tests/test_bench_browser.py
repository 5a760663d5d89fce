"""The benchmark report in real headless Chromium: one self-contained file, every figure loads, no
console error, no request leaves the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from descentlab.bench import run_bench

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.browser


def test_the_bench_report_loads_in_chromium_without_errors(tmp_path):
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium); .ci/run installs it")
    pytest.importorskip("playwright.sync_api", reason="playwright's Python API is not installed")
    from playwright.sync_api import sync_playwright

    executable = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium"))
    out = run_bench(tmp_path / "run", workloads=["cancer-logreg", "digits-mlp"], optimizers=["adam", "sgd"],
                    studies=1, trials=2)
    alone = tmp_path / "elsewhere" / "report.html"  # self-contained: it works without its folder
    alone.parent.mkdir()
    shutil.copy(out / "report.html", alone)
    errors, requests = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(alone.as_uri(), wait_until="load")
            page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=20000)
            images = page.evaluate("Array.from(document.images).map(i => [i.naturalWidth, i.naturalHeight])")
            listed = page.evaluate("Array.from(document.querySelectorAll('ol.figures a')).map(a => a.hash)")
            ids = page.evaluate("Array.from(document.querySelectorAll('section[id]')).map(s => '#' + s.id)")
        finally:
            browser.close()
    assert errors == []
    assert len(images) >= 8 and all(w > 300 and h > 100 for w, h in images)
    assert listed and set(listed) <= set(ids)  # every figure is listed and its link lands on its section
    assert [url for url in requests if not url.startswith(("file://", "data:"))] == []
