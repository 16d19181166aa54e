"""Shared fixtures: small scenarios and bring-your-own firm tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "experiments" / "scenarios" / "baseline.toml"


def write_tables(folder: Path, n: int = 40, seed: int = 0, allocation: np.ndarray | None = None):
    """A small firm table, MAC table (mixed linear and step curves) and CCER table."""
    rng = np.random.default_rng(seed)
    sectors = rng.choice(["power", "steel", "cement"], n)
    emissions = rng.uniform(50_000, 2_000_000, n)
    firms = pd.DataFrame({"firm_id": [f"f{i:03d}" for i in range(n)], "sector": sectors,
                          "emissions": emissions})
    if allocation is not None:
        firms["allocation"] = allocation
    firms.to_csv(folder / "firms.csv", index=False)
    rows = []
    for i in range(n):
        share = np.sort(rng.uniform(0, 0.4, 3))
        cost = np.sort(rng.uniform(-10, 400, 3))
        if i % 2:  # step curve: flats with vertical jumps
            pts = [(0, cost[0]), (share[0], cost[0]), (share[0], cost[1]), (share[1], cost[1])]
        else:
            pts = [(share[0], cost[1]), (share[2], cost[2])]
            if cost[0] < 0:
                pts = [(0, cost[0])] + pts
        rows += [(f"f{i:03d}", s * emissions[i], c) for s, c in pts]
    pd.DataFrame(rows, columns=["firm_id", "abatement", "mac"]).to_csv(folder / "mac.csv",
                                                                         index=False)
    pd.DataFrame({"quantity": [0, 200_000, 200_000, 600_000], "cost": [20, 20, 60, 60]}).to_csv(
        folder / "ccer.csv", index=False)
    return firms


def write_scenario(folder: Path, body: str = "", *, tables: bool = True, years=(2025, 2027),
                   name: str = "test") -> Path:
    """A scenario TOML in ``folder`` (with the small tables when ``tables``)."""
    text = f'name = "{name}"\nseed = 7\nstart_year = {years[0]}\nend_year = {years[1]}\n'
    if tables:
        text += '[firms]\ntable = "firms.csv"\nmac = "mac.csv"\n'
        if "[offsets]" in body:
            body = body.replace("[offsets]\n", '[offsets]\nsupply = "ccer.csv"\n')
        else:
            text += '[offsets]\nsupply = "ccer.csv"\n'
    text += body
    path = folder / "scenario.toml"
    path.write_text(text)
    return path


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    write_tables(tmp_path)
    return tmp_path
