"""Speed and memory figures of cets on this machine (printed, never asserted).

Targets (README): one clear of the calibrated national market <= 1 ms; one clear of 1,000,000
firms with <= 8 MAC points each <= 0.5 s with <= 1 GB peak memory; a full 2021-2060 run <= 0.3 s;
``cets run`` as a whole process on a bring-your-own table of 300,000 firms (about 1.2 M MAC points)
<= 4 s.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/bench.py [--quick]``).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from model import policy
from model.mac import MACCurves
from model.market import Bounds, clear, positions
from model.model import CarbonMarket
from model.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "experiments" / "scenarios" / "baseline.toml"


def best(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` calls, s."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def national_clear(repeat: int) -> None:
    sc = load_scenario(BASELINE)
    m = CarbonMarket(sc, agents=False)
    while m.year < 2030:
        m.step()
    f = m.firms
    _, em = policy.growth_factor(f, sc, 2030)
    cov = m.state["covered"] > 0
    curves = f.mac.select(cov).scaled(em[cov])
    e = f.emissions[cov] * em[cov]
    knots = curves.knots()
    ccer = policy.offset_supply(sc, 2030)
    supply = float(m.state["allocation"][cov].sum())
    t_clear = best(lambda: clear(knots, float(e.sum()), supply, ccer, 0.05, Bounds(penalty=500)),
                   repeat)
    t_full = best(lambda: positions(
        curves, e, np.full(e.size, supply / e.size),
        clear(curves.knots(), float(e.sum()), supply, ccer, 0.05, Bounds(penalty=500)), 500.0),
        repeat)
    print(f"national market, {cov.sum()} firms, {curves.abatement.size} MAC points:")
    print(f"  one clear (prices and totals)          {t_clear * 1e3:8.3f} ms   target <= 1 ms")
    print(f"  clear + every firm's position          {t_full * 1e3:8.3f} ms")


def million_clear(n: int) -> None:
    rng = np.random.default_rng(0)
    k = 4  # 4 options -> 8 points per firm
    curves = MACCurves.from_options(rng.uniform(0, 1e4, (n, k)), rng.uniform(-30, 800, (n, k)))
    e = rng.uniform(30_000, 1e6, n)
    supply = float(e.sum() - 0.4 * curves.max_abatement.sum())
    ccer = MACCurves.from_options(rng.uniform(0, 5e7, (1, 6)), rng.uniform(10, 300, (1, 6)))
    cknots = ccer.knots()
    t0 = time.perf_counter()
    knots = curves.knots()  # first use: builds the segment arrays of the curves
    t1 = time.perf_counter()
    eq = clear(knots, float(e.sum()), supply, cknots, 0.05, Bounds(penalty=1000))
    t2 = time.perf_counter()
    positions(curves, e, np.full(n, supply / n), eq, 1000.0)
    t3 = time.perf_counter()
    t_warm = best(lambda: clear(curves.knots(), float(e.sum()), supply, cknots, 0.05,
                                Bounds(penalty=1000)), 3)
    fresh = MACCurves(curves.start, curves.abatement, curves.cost)
    tracemalloc.start()
    positions(fresh, e, np.full(n, supply / n),
              clear(fresh.knots(), float(e.sum()), supply, cknots, 0.05, Bounds(penalty=1000)),
              1000.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{n:,} firms, {curves.abatement.size:,} MAC points:")
    print(f"  one clear (knots + prices and totals)  {t_warm:8.3f} s    target <= 0.5 s")
    print(f"  first clear incl. segment arrays       {t2 - t0:8.3f} s    "
          f"(segments {t1 - t0:.3f} s)")
    print(f"  + every firm's position                {t3 - t2:8.3f} s")
    print(f"  peak memory, first clear + positions   {peak / 2**30:8.3f} GB   target <= 1 GB")


def full_run(repeat: int) -> None:
    base = load_scenario(BASELINE)
    static = base.replace(investment={"enabled": False},
                          expectations={"myopic": 1.0, "adaptive": 0.0, "perfect": 0.0})
    print("full run 2021-2060, calibrated population (model built and run):")
    for label, sc, target in (("static market (myopic, no investment)", static, "<= 0.3 s"),
                              ("dynamic baseline (expectations, investment)", base, "")):
        CarbonMarket(sc, agents=False).run()  # warm the data caches
        t = best(lambda sc=sc: CarbonMarket(sc, agents=False).run(), repeat)
        print(f"  {label:<44} {t:6.3f} s    {target}")
    ta = best(lambda: CarbonMarket(base).run(), 1)
    print(f"  {'dynamic baseline with one agent per firm':<44} {ta:6.3f} s")


def byo_process(n: int) -> None:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        e = rng.uniform(30_000, 2e6, n)
        ids = np.char.add("f", np.arange(n).astype(str))
        pd.DataFrame({"firm_id": ids, "sector": rng.choice(["power", "steel", "cement"], n),
                      "emissions": e}).to_csv(d / "firms.csv", index=False)
        pts = 4
        share = np.sort(rng.uniform(0, 0.5, (n, pts)), axis=1)
        share[:, 0] = 0
        cost = np.sort(rng.uniform(-20, 600, (n, pts)), axis=1)
        pd.DataFrame({"firm_id": np.repeat(ids, pts), "abatement": (share * e[:, None]).ravel(),
                      "mac": cost.ravel()}).to_csv(d / "mac.csv", index=False)
        (d / "s.toml").write_text(
            'name = "byo"\nseed = 1\nstart_year = 2025\nend_year = 2025\n'
            '[firms]\ntable = "firms.csv"\nmac = "mac.csv"\n'
            '[allocation]\nbenchmark_decline = 0.05\n')
        cmd = [sys.executable, "-m", "model", "run", str(d / "s.toml"), "--out", str(d / "out"),
               "-q"]
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        dt = time.perf_counter() - t
        if r.returncode:
            print(r.stderr)
        t = time.perf_counter()
        subprocess.run(cmd + ["--agents"], capture_output=True, text=True, check=True)
        dt2 = time.perf_counter() - t
    print(f"`cets run` on {n:,} firms and {n * pts:,} MAC points (one year, whole process):")
    print(f"  cets run                               {dt:8.3f} s    target <= 4 s")
    print(f"  cets run --agents (one agent per firm) {dt2:8.3f} s")


def sweep_speed(n: int) -> None:
    """Runs per second per core of a sweep of national-scale 2021-2060 runs (target >= 20).

    The runs are the first ``n`` of the Sobol study's sample (policy levers, MAC cost scales,
    growth, CCER supply; one seed, as the study), over 2021-2060 instead of its 2021-2040.
    """
    import os
    import re

    from model import sweep as sweep_module
    from model.experiment import load_experiment
    from model.sweep import execute, sweep

    cores = os.cpu_count() or 1
    text = (ROOT / "experiments" / "sobol.toml").read_text()
    text = re.sub(r"(?m)^years = .*$", "years = [2021, 2060]", text)
    text = re.sub(r'(?m)^base = .*$', f'base = "{BASELINE}"', text)
    text = re.sub(r"(?m)^n = \d+", "n = 16", text)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "speed.toml").write_text(text)
        exp = load_experiment(d / "speed.toml")
        runs = exp.runs()[:n]
        execute(runs[0], exp.outputs, False)  # warm the data caches and the population
        t = time.perf_counter()
        for r in runs:
            execute(r, exp.outputs, False)
        serial = n / (time.perf_counter() - t)
        base_n = 1 << max(0, math.ceil(math.log2(4 * n / 13)))  # a power of 2, >= 4n / 13
        (d / "speed.toml").write_text(re.sub(r"(?m)^n = \d+", f"n = {base_n}", text))
        # (when the sweep learns of each finished run: the rate once every worker has started)
        done, processes = [], sweep_module._processes

        def stamped(*args: object, **kwargs: object):
            for outcome in processes(*args, **kwargs):
                done.append(time.perf_counter())
                yield outcome

        sweep_module._processes = stamped
        try:
            s = sweep(load_experiment(d / "speed.toml"), d / "out", engine="processes",
                      workers=cores, progress=False)
        finally:
            sweep_module._processes = processes
        # Once every worker has started (imports, compiled kernels loaded, population built):
        # the rate between the runs finished after each worker's second run and the last.
        k = 2 * cores
        steady = (len(done) - 1 - k) / (done[-1] - done[k])
    print("sweep of national-scale runs 2021-2060 (Sobol sample, calibrated population, "
          "agents=False):")
    print(f"  in-process, one core, {n} runs           {serial:8.2f} runs/s per core   "
          f"target >= 20")
    print(f"  process pool, {cores} cores, {s.runs} runs, started  {steady / cores:8.2f} "
          f"runs/s per core ({steady:.2f} runs/s)")
    print(f"  the same, including the pool's start     {s.rate / cores:8.2f} runs/s per core "
          f"({s.rate:.2f} runs/s; each worker imports the model and loads its kernels)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    a = ap.parse_args()
    # (the sweep first: its runs are timed in a process that has done nothing else yet, as a
    # sweep's worker; after the million-firm clear the heap is fragmented, ~5 % slower)
    sweep_speed(4 if a.quick else 40)
    national_clear(repeat=5 if a.quick else 50)
    million_clear(100_000 if a.quick else 1_000_000)
    full_run(repeat=1 if a.quick else 5)
    byo_process(30_000 if a.quick else 300_000)


if __name__ == "__main__":
    main()
