"""The playground in real headless Chromium: live against the server, and in snapshot mode from disk.

Skipped with a message where Debian's chromium or the playwright package is absent. A screenshot of each
mode is kept as a test artifact under the test's tmp_path (pytest prints the folder with -rA).
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

from descentlab.lab import race  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


def _chromium_or_skip() -> Path:
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium); .ci/run installs it")
    pytest.importorskip("playwright.sync_api", reason="playwright's Python API is not installed")
    return CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    import uvicorn

    from descentlab.playground.server import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(port=port), host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not running.started and time.time() < deadline:
        time.sleep(0.05)
    assert running.started, "the playground server did not start"
    yield f"http://127.0.0.1:{port}/"
    running.should_exit = True
    thread.join(timeout=10)


def _browser(playwright, executable: Path):
    return playwright.chromium.launch(executable_path=str(executable), headless=True, args=FLAGS)


def test_click_the_canvas_race_and_the_final_points_are_pythons(server, tmp_path):
    executable = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    errors = []
    with sync_playwright() as playwright:
        browser = _browser(playwright, executable)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(
                server + "#landscape=two-minima&seed=0&noise=0&steps=150&opt=sgd(lr%3D0.05)"
                "&opt=sgd(lr%3D0.05%2C%20momentum%3D0.9)&opt=adam(lr%3D0.1)&opt=rmsprop(lr%3D0.01)"
            )
            page.wait_for_selector("body[data-ready=yes]", timeout=30000)
            box = page.locator("#land").bounding_box()
            page.mouse.click(box["x"] + box["width"] * 0.82, box["y"] + box["height"] * 0.2)
            page.wait_for_selector("body[data-race-done=yes]", timeout=30000)
            shown = page.eval_on_selector_all(
                ".final-point", "cells => cells.map(c => [Number(c.dataset.x), Number(c.dataset.y)])"
            )
            state = parse_qs(page.evaluate("location.hash.slice(1)"))
            first_frame_ms = float(page.evaluate("document.body.dataset.firstFrameMs"))
            repro = page.inner_text("#repro")
            page.click("#pause")
            page.screenshot(path=str(tmp_path / "playground-live.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    start = [float(v) for v in state["start"][0].split(",")]
    specs = state["opt"]
    assert len(specs) == 4
    expected = race("two-minima", specs, start=start, steps=150, noise=0.0, seed=0)
    assert shown == [run.final_point.tolist() for run in expected.runs]
    assert f"--start {start[0]!r},{start[1]!r} --steps 150" in repro
    assert first_frame_ms > 0
    assert (tmp_path / "playground-live.png").stat().st_size > 20000
    print(
        f"screenshot: {tmp_path / 'playground-live.png'}; first frame {first_frame_ms:.0f} ms after the click"
    )


def test_a_bad_spec_shows_the_librarys_message(server):
    executable = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = _browser(playwright, executable)
        try:
            page = browser.new_page()
            page.goto(server)
            page.wait_for_selector("body[data-ready=yes]", timeout=30000)
            field = page.locator("#optimizers .opt input").first
            field.fill("sgd(lr=0.1, momentum=1.5)")
            field.dispatch_event("change")
            page.wait_for_function(
                "document.querySelector('#optimizers .err').textContent.length > 0", timeout=10000
            )
            message = page.inner_text("#optimizers .err")
        finally:
            browser.close()
    assert "momentum must be in [0, 1), got 1.5" in message


def test_snapshot_mode_replays_from_disk_without_a_server(tmp_path):
    executable = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    from descentlab.playground.snapshot import write_snapshot

    index = write_snapshot(
        tmp_path / "playground",
        races=[
            (
                "two minima",
                {
                    "landscape": "two-minima",
                    "optimizers": ["sgd(lr=0.05)", "sgd(lr=0.05, momentum=0.9)"],
                    "steps": 120,
                    "start": [1.6, 1.2],
                    "noise": 0.0,
                    "seed": 0,
                },
            ),
        ],
        claims=[],
    )
    errors, requests = [], []
    with sync_playwright() as playwright:
        browser = _browser(playwright, executable)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(index.as_uri())
            page.wait_for_selector("body[data-race-done=yes]", timeout=20000)
            banner = page.inner_text("#banner")
            mode = page.inner_text("#mode")
            shown = page.eval_on_selector_all(
                ".final-point", "cells => cells.map(c => [Number(c.dataset.x), Number(c.dataset.y)])"
            )
            page.wait_for_timeout(600)
            page.screenshot(path=str(tmp_path / "playground-snapshot.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert mode == "snapshot mode" and "no server" in banner and "replays 1 races" in banner
    expected = race("two-minima", ["sgd(lr=0.05)", "sgd(lr=0.05, momentum=0.9)"], start=[1.6, 1.2], steps=120)
    assert shown == [run.final_point.tolist() for run in expected.runs]
    assert [url for url in requests if not url.startswith("file://") and not url.startswith("data:")] == []
    assert (tmp_path / "playground-snapshot.png").stat().st_size > 20000


def test_the_reports_snapshot_shows_a_claims_verdict_and_figure_from_disk(tmp_path):
    """The demo report's playground: the claims panel lists the verdicts the report measured, and a click
    shows one with its figure, read from the report's claims/ folder next to the page's."""
    executable = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    from descentlab.claims import check
    from descentlab.playground.snapshot import write_snapshot

    (tmp_path / "claims").mkdir()
    verdict = check("adamax-keeps-a-steadier-rate", out=tmp_path / "claims")
    data = verdict.to_json() | {"figure": f"../claims/{verdict.figure}"}
    body = {"landscape": "saddle", "optimizers": ["sgd(lr=0.05)"], "steps": 60, "start": [0.0, 1.5]}
    index = write_snapshot(tmp_path / "playground", races=[("saddle", body)], claims=[data])
    errors = []
    with sync_playwright() as playwright:
        browser = _browser(playwright, executable)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(index.as_uri())
            page.wait_for_selector("body[data-race-done=yes]", timeout=20000)
            buttons = page.inner_text("#claimlist")
            page.click("#claimlist button")
            page.wait_for_function("document.querySelector('#verdict img') !== null", timeout=10000)
            width = page.evaluate(
                "new Promise(done => { const img = document.querySelector('#verdict img'); "
                "if (img.complete) done(img.naturalWidth); "
                "else img.onload = () => done(img.naturalWidth); })"
            )
            shown = page.inner_text("#verdict")
            page.screenshot(path=str(tmp_path / "playground-snapshot-claim.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert "✓ adamax-keeps-a-steadier-rate" in buttons
    assert verdict.summary in shown and verdict.claim.command in shown
    assert width > 300  # the figure loaded from ../claims/
