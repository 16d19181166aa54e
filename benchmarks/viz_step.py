"""Time per step of the browser page at national scale, with the page open (printed, not asserted).

Starts ``solara run model/app.py --production`` on a free localhost port, opens it in Debian's
headless Chromium and clicks Step once per compliance year. A step's time runs from the click
(in the page) until the page shows the new year and the price and firm charts are redrawn: the
model's year, the counterfactual without trading, the chart data, the websocket and the browser's
drawing. For comparison it also times the same steps in this process without a browser (the
model's step alone, and the step with the six chart options built). Target: < 0.5 s per step.

Run: ``.venv/bin/python benchmarks/viz_step.py [--years N]`` (needs /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEP_IN_PAGE = """async (k) => {
  // [ms until the status line shows the new year, ms until the charts are redrawn too]
  const button = [...document.querySelectorAll('button')]
    .find(b => b.innerText.trim().toUpperCase() === 'STEP');
  const canvases = document.querySelectorAll('.solara-echarts canvas');
  const watched = [canvases[0], canvases[canvases.length - 1]];  // prices, firms
  const before = watched.map(c => c.toDataURL());
  const shown = () => (document.querySelector('.cets-status')?.innerText ?? '')
    .includes(`step ${k} of`);
  const t0 = performance.now();
  button.click();
  await new Promise((resolve) => {
    const obs = new MutationObserver(() => { if (shown()) { obs.disconnect(); resolve(); } });
    obs.observe(document.body, {subtree: true, childList: true, characterData: true});
  });
  const status = performance.now() - t0;
  while (!watched.every((c, i) => c.toDataURL() !== before[i])) {
    await new Promise(r => requestAnimationFrame(r));
    if (performance.now() - t0 > 30000) return [-1, -1];
  }
  return [status, performance.now() - t0];
}"""


def summary(label: str, ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=10)[-1] if len(ms) >= 2 else ms[0]
    return (f"{label}: median {statistics.median(ms):.0f} ms, 90th percentile {q:.0f} ms, "
            f"max {max(ms):.0f} ms over {len(ms)} steps")


def in_process(years: int) -> None:
    import json

    from model import app

    m = app.PolicyExplorer()
    step_ms, total_ms = [], []
    for _ in range(years):
        t0 = time.perf_counter()
        m.step()
        t1 = time.perf_counter()
        for make in app.CHARTS:
            json.dumps(make(m))
        t2 = time.perf_counter()
        step_ms.append(1e3 * (t1 - t0))
        total_ms.append(1e3 * (t2 - t0))
    print(summary("model step alone (this process)", step_ms))
    print(summary("model step + six chart options (this process)", total_ms))


def in_browser(years: int) -> list[tuple[float, float]]:
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "solara", "run", str(ROOT / "model" / "app.py"), "--production",
         "--host", "127.0.0.1", "--port", str(port), "--no-open"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > end or proc.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.25)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_text("Step 0 of").wait_for(timeout=60_000)
            page.locator(".solara-echarts canvas").nth(5).wait_for(timeout=60_000)
            page.wait_for_timeout(500)
            times = [page.evaluate(STEP_IN_PAGE, k) for k in range(1, years + 1)]
            browser.close()
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    if min(t for pair in times for t in pair) < 0:
        raise SystemExit("a step did not show within 30 s")
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", type=int, default=15, help="steps to time (default 15)")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    in_process(args.years)
    times = in_browser(args.years)
    ms = [t[1] for t in times]
    print("per step in the browser, ms:", " ".join(f"{x:.0f}" for x in ms))
    print(summary("status line updated (click -> new year shown)", [t[0] for t in times]))
    print(summary("time per step with the page open (click -> new year and charts drawn)", ms))
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
