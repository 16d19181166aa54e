"""The browser page in a real browser, started as a user starts it.

``solara run model/app.py --production`` runs in a subprocess on a free localhost port; Debian's
headless Chromium (``apt-get install chromium``; Playwright cannot download a browser here) loads
the page with every request outside localhost blocked (the page must work offline), a slider is
changed, the model reset and stepped three times; the price chart and the step counter must
change and no error may appear. The page is saved as a screenshot in the test's temporary
folder, or where ``CETS_SCREENSHOT`` points (``CETS_SCREENSHOT=docs/screenshot.png`` refreshes the
README's). A missing Chromium fails the test (CI installs it: .ci/run).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
READY_TIMEOUT = 90.0  # s, a cold start imports Mesa, Solara and builds the population


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if it dies or times out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"no answer from {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server by its process id (SIGTERM, then SIGKILL)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The page served by ``solara run model/app.py --production``; yields its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "solara.log"
    env = {**os.environ, "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "solara", "run", str(ROOT / "model" / "app.py"),
             "--production", "--host", "127.0.0.1", "--port", str(port), "--no-open"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc, log, READY_TIMEOUT)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop(proc)
    errors = [line for line in log.read_text().splitlines() if "Traceback" in line]
    assert not errors, log.read_text()[-3000:]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: the browser test needs Debian's Chromium "
                    "(apt-get install chromium; .ci/run does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def canvas_image(page, index: int) -> str:
    return page.locator(".solara-echarts canvas").nth(index).evaluate("c => c.toDataURL()")


def test_the_page_steps_in_a_real_browser_offline(server: str, browser, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    outside, failed, console_errors = [], [], []

    def route(r):
        host = urlparse(r.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            r.continue_()
        else:  # no internet: anything fetched from elsewhere would be missing
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400
            else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    page.on("console", lambda m: console_errors.append(f"{m.text} ({m.location})")
            if m.type == "error" else None)
    page.set_default_timeout(30_000)

    page.goto(server)
    page.get_by_text("Step 0 of").wait_for()
    charts = page.locator(".solara-echarts canvas")
    charts.nth(5).wait_for()
    assert charts.count() == 6
    # not blank: the controls, the chart titles (drawn on the canvases) and a non-empty canvas
    for text in ("Controls", "Model Parameters", "Offset limit", "Model on screen"):
        assert page.get_by_text(text).first.is_visible(), text
    price_before = canvas_image(page, 0)
    assert len(price_before) > 5000  # an empty canvas encodes to a few hundred bytes

    # a slider: the offset limit 5 % -> 10 % (the keyboard moves the thumb by its step)
    thumb = page.get_by_role("slider", name="Offset limit")
    thumb.focus()
    for _ in range(5):
        thumb.press("ArrowRight")
    assert thumb.get_attribute("aria-valuenow") == "0.1"
    page.get_by_role("button", name="Reset").click()
    page.get_by_text("offset limit 10%").wait_for()

    for k in range(1, 4):
        page.get_by_role("button", name="Step").click()
        page.get_by_text(f"step {k} of").wait_for()
    page.get_by_text("Time: 3.0").wait_for()
    page.wait_for_timeout(300)  # let the canvases repaint
    assert canvas_image(page, 0) != price_before
    assert page.locator(".v-alert.error").count() == 0
    body = page.inner_text("body")
    for bad in ("Traceback", "error in step", "Error:"):
        assert bad not in body, bad

    # the README's screenshot: a few more years so the charts have something to show
    for k in range(4, 12):
        page.get_by_role("button", name="Step").click()
        page.get_by_text(f"step {k} of").wait_for()
    page.set_viewport_size({"width": 1600, "height": 1420})  # all six charts
    page.wait_for_timeout(500)
    shot = Path(os.environ.get("CETS_SCREENSHOT", tmp_path / "screenshot.png"))
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    page.close()
    assert not outside, f"requests outside localhost: {outside}"
    assert not failed, f"failed requests: {failed}"
    assert not console_errors, console_errors


def test_cets_viz_serves_the_page_on_the_port_it_prints(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "viz.log"
    env = {k: v for k, v in os.environ.items() if k != "SOLARA_TELEMETRY_MIXPANEL_ENABLE"}
    with open(log, "w") as out:  # `cets viz` becomes the server process (same pid)
        proc = subprocess.Popen([sys.executable, "-m", "model", "viz", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc, log, READY_TIMEOUT)
        environ = Path(f"/proc/{proc.pid}/environ")
        if environ.exists():  # Linux: the server runs without telemetry
            assert b"SOLARA_TELEMETRY_MIXPANEL_ENABLE=False" in environ.read_bytes().split(b"\0")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.status == 200 and b"solara" in r.read().lower()
    finally:
        stop(proc)
    assert f"http://127.0.0.1:{port}/" in log.read_text().splitlines()[0]
