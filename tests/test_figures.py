"""Figures: every recipe on tiny experiments writes PNG, SVG and CSV, the same bytes twice."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from model.errors import InputError
from model.figures import RECIPES, make_figures
from tests.conftest import write_scenario, write_tables

COMMON = 'base = "scenarios/baseline.toml"\nseeds = 1\n'
EXPERIMENTS = {
    "coverage_x_stringency": COMMON + """
outputs = ["cea_price", "emissions", "allocation", "total_cost"]
[[parameter]]
name = "coverage"
labels = ["power", "power + steel, cement"]
[[parameter.values]]
"coverage.sectors" = { power = 2025 }
[[parameter.values]]
"coverage.sectors" = { power = 2025, steel = 2025, cement = 2025 }
[[parameter]]
key = "allocation.benchmark_decline"
values = [0.0, 0.05]
[[parameter]]
name = "absolute_caps"
labels = ["published (2026)", "never"]
[[parameter.values]]
"allocation.absolute_cap_from" = 2026
[[parameter.values]]
"allocation.absolute_cap_from" = "none"
""",
    "offset_limit": COMMON + """
outputs = ["cea_price", "ccer_price", "ccer_used", "resource_cost"]
[[parameter]]
key = "offsets.limit"
values = [0.0, 0.05]
[[parameter]]
key = "offsets.supply_scale"
values = [1.0, 10.0]
""",
    "trading_gains": COMMON + """
counterfactual = true
outputs = ["cea_price", "resource_cost", "gain_from_trade"]
[[parameter]]
key = "market.trading"
values = [true, false]
labels = ["trading", "no trading"]
[[parameter]]
key = "allocation.benchmark_decline"
values = [0.0, 0.05]
""",
}
SENSITIVITY = COMMON + """
outputs = ["cea_price", "emissions"]
[design]
method = "{method}"
{size}
resamples = 50
[metrics]
cea_price_2028 = {{ column = "cea_price", year = 2028 }}
emissions_2025_2028 = {{ column = "emissions", stat = "sum" }}
[[parameter]]
key = "allocation.benchmark_decline"
bounds = [0.0, 0.05]
[[parameter]]
key = "mac.cost_scale.power"
bounds = [0.5, 2.0]
log = true
"""


@pytest.fixture
def experiments(tmp_path: Path) -> Path:
    folder = tmp_path / "experiments"
    (folder / "scenarios").mkdir(parents=True)
    write_tables(folder / "scenarios")
    scenario = write_scenario(folder / "scenarios", "[allocation]\nabsolute_cap_from = 2026\n",
                              years=(2025, 2028))
    scenario.rename(folder / "scenarios" / "baseline.toml")
    for name, body in EXPERIMENTS.items():
        (folder / f"{name}.toml").write_text(f'name = "{name}"\n' + body)
    for method, size in (("sobol", "n = 4"), ("morris", "trajectories = 2")):
        (folder / f"{method}.toml").write_text(
            f'name = "{method}"\n' + SENSITIVITY.format(method=method, size=size))
    return folder


def test_every_figure_is_written_deterministically(experiments: Path, tmp_path: Path):
    out = tmp_path / "figures"
    files = make_figures(experiments, tmp_path / "sweeps", out, engine="serial", progress=False)
    names = {r.name for r in RECIPES}
    assert {f.name for f in files} == {f"{n}.{x}" for n in names for x in ("png", "svg", "csv")}
    assert all(f.stat().st_size > 100 for f in files)
    assert (out / "sobol_indices.png").read_bytes()[:4] == b"\x89PNG"
    first = {f.name: f.read_bytes() for f in files}
    again = make_figures(experiments, tmp_path / "sweeps", tmp_path / "again", progress=False)
    assert {f.name: f.read_bytes() for f in again} == first  # from the stored sweeps
    assert "Date" not in first["gain_from_trade.svg"].decode()


def test_unknown_figure_is_an_input_error(experiments: Path, tmp_path: Path):
    with pytest.raises(InputError, match="unknown figure 'nope'"):
        make_figures(experiments, tmp_path / "sweeps", tmp_path / "f", only=["nope"])


def test_only_draws_the_named_figures_and_reruns_a_changed_experiment(experiments: Path,
                                                                      tmp_path: Path, capsys):
    sweeps, out = tmp_path / "sweeps", tmp_path / "f"
    make_figures(experiments, sweeps, out, only=["offset_limit"], engine="serial", progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "offset_limit.csv", "offset_limit.png", "offset_limit.svg"]
    assert [p.name for p in sweeps.iterdir()] == ["offset_limit"]
    path = experiments / "offset_limit.toml"
    path.write_text(path.read_text().replace("[1.0, 10.0]", "[1.0, 3.0]"))
    make_figures(experiments, sweeps, out, only=["offset_limit"], engine="serial", progress=False)
    assert set(pd.read_csv(out / "offset_limit.csv")["supply_scale"]) == {1.0, 3.0}
    assert capsys.readouterr().err.count("the experiment changed") == 1
