"""The Mesa model end to end: conservation, determinism, Coase, monotonicity, bounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.agents import Firm
from model.model import CarbonMarket
from model.results import write_results
from model.scenario import Scenario, load_scenario
from tests.conftest import BASELINE, write_scenario, write_tables


def run(path: Path, **changes) -> CarbonMarket:
    sc = load_scenario(path)
    if changes:
        sc = sc.replace(**changes)
    m = CarbonMarket(sc)
    m.run()
    return m


def test_baseline_runs_and_is_calibrated() -> None:
    m = run(BASELINE, end_year=2025)
    years = pd.DataFrame(m.history)
    y21 = years.set_index("year").loc[2021]
    y25 = years.set_index("year").loc[2025]
    assert 2000 <= y21.covered_firms <= 2400  # power: about 2,257 entities
    assert 4.5e9 < y21.covered_emissions < 5.6e9  # about 5.1 Gt
    assert 3400 <= y25.covered_firms <= 3900  # + steel, cement, aluminium
    assert 7.5e9 < y25.covered_emissions < 8.7e9  # about 8 Gt
    assert len(m.agents) == m.firms.n
    assert all(isinstance(a, Firm) for a in m.agents)
    df = m.datacollector.get_model_vars_dataframe()
    assert list(df["cea_price"]) == list(years["cea_price"])


def test_same_seed_same_bytes_and_different_seeds_differ(tmp_path: Path) -> None:
    sc = load_scenario(BASELINE).replace(end_year=2024)
    outs = []
    for seed, name in ((1, "a"), (1, "b"), (2, "c")):
        m = CarbonMarket(sc.replace(seed=seed))
        m.run()
        write_results(m, tmp_path / name)
        outs.append({f: (tmp_path / name / f).read_bytes()
                     for f in ("years.csv", "sectors.csv", "firms.csv")})
    assert outs[0] == outs[1]
    assert outs[0]["firms.csv"] != outs[2]["firms.csv"]


def test_runs_sharing_a_population_do_not_change_each_other() -> None:
    """Runs of one seed share the population (built once); a run with other MAC costs, or a
    policy change during a run, must leave it as it was."""
    sc = load_scenario(BASELINE).replace(end_year=2027)

    def years(scenario: Scenario, change: bool = False) -> list[dict]:
        m = CarbonMarket(scenario, agents=False, record_firms=False)
        m.step()
        if change:  # an unannounced policy change after the first year
            m.config = m.config.replace(allocation={"benchmark_decline": 0.2})
        m.run()
        return m.history

    first = years(sc)
    other = years(sc.replace(mac={"cost_scale": {"power": 3.0}}), change=True)
    assert other != first
    assert years(sc) == first
    # the same population is reused, read-only
    a = CarbonMarket(sc, agents=False, record_firms=False)
    b = CarbonMarket(sc, agents=False, record_firms=False)
    assert a.firms.emissions is b.firms.emissions
    with pytest.raises(ValueError):
        a.firms.emissions[0] = 0.0


def test_runs_without_firm_records_give_the_same_years() -> None:
    """A sweep's runs keep neither per-firm rows nor the registry's past records: same totals."""
    sc = load_scenario(BASELINE).replace(end_year=2026)
    full = CarbonMarket(sc, agents=False)
    lean = CarbonMarket(sc, agents=False, record_firms=False)
    full.run()
    lean.run()
    assert full.history == lean.history
    assert len(full.ledger.records) == 6 and len(full.firm_rows) == 6
    assert [r.year for r in lean.ledger.records] == [2026] and lean.firm_rows == []


def test_allowances_conserved_every_year(tables: Path) -> None:
    path = write_scenario(tables, "[allocation]\nbenchmark_decline = 0.2\n"
                          "auction_share = 0.1\n[banking]\ncarry_over = \"unlimited\"\n",
                          years=(2025, 2030))
    m = run(path)
    for rec in m.ledger.records:  # the ledger checks each year; check again here
        inflow = rec.allocated + rec.bank_in.sum() + rec.reserve_sales
        outflow = rec.surrendered.sum() + rec.banked.sum() + rec.cancelled
        assert inflow == pytest.approx(outflow, rel=1e-9)
    for a, b in zip(m.ledger.records, m.ledger.records[1:]):
        assert b.bank_in.sum() == pytest.approx(a.banked.sum())


def test_coase_allocation_split_does_not_change_the_price(tmp_path: Path) -> None:
    """How allowances are split between firms does not change the price or abatement."""
    rng = np.random.default_rng(3)
    firms = write_tables(tmp_path, n=40, seed=3)
    total = 0.9 * firms["emissions"].sum()
    results = []
    for split in (rng.dirichlet(np.ones(40)), firms["emissions"] / firms["emissions"].sum()):
        write_tables(tmp_path, n=40, seed=3, allocation=np.asarray(split) * total)
        m = run(write_scenario(tmp_path, years=(2025, 2025)))
        results.append((m.history[0], m.state))
    (h1, s1), (h2, s2) = results
    assert h1["cea_price"] > 0
    assert h1["cea_price"] == pytest.approx(h2["cea_price"], rel=1e-9)
    assert np.allclose(s1["abatement"], s2["abatement"], rtol=1e-9, atol=1e-6)
    assert not np.allclose(s1["cea_bought"], s2["cea_bought"])


@pytest.mark.parametrize("knob,values,direction", [
    ("benchmark_decline", [0.0, 0.03, 0.06, 0.1], +1),
    ("limit", [0.0, 0.05, 0.1, 0.2], -1),
])
def test_price_monotone_in_cap_and_offset_limit(tables: Path, knob, values, direction) -> None:
    prices = []
    for v in values:
        section = "allocation" if knob == "benchmark_decline" else "offsets"
        body = (f"[{section}]\n{knob} = {v}\n[compliance]\npenalty = 2000.0\n"
                "[banking]\nenabled = false\n")  # the static market: no banking demand
        m = run(write_scenario(tables, body, years=(2025, 2028)))
        prices.append([r["cea_price"] for r in m.history])
    prices = np.array(prices)
    diffs = np.diff(prices, axis=0) * direction
    assert (diffs >= -1e-9).all()
    assert (np.abs(diffs) > 0).any()


def test_penalty_caps_the_price_and_reports_shortfall(tables: Path) -> None:
    body = "[allocation]\nbenchmark_decline = 0.5\n[compliance]\npenalty = 150.0\n"
    m = run(write_scenario(tables, body, years=(2025, 2026)))
    last = m.history[-1]
    assert last["cea_price"] == pytest.approx(150.0)
    assert last["shortfall"] > 0
    # the shortfall is deducted from the next year's allocation
    assert m.ledger.records[1].deducted.sum() > 0


def test_ceiling_sells_reserve_and_floor_withholds(tables: Path) -> None:
    tight = "[allocation]\nbenchmark_decline = 0.5\n[prices]\nceiling = 80.0\n"
    m = run(write_scenario(tables, tight, years=(2025, 2026)))
    assert m.history[-1]["cea_price"] == pytest.approx(80.0)
    assert m.history[-1]["reserve_sales"] > 0
    loose = "[allocation]\nbenchmark_decline = -0.3\n[prices]\nfloor = 40.0\n"
    m = run(write_scenario(tables, loose, years=(2025, 2026)))
    assert m.history[-1]["cea_price"] == pytest.approx(40.0)
    assert m.history[-1]["withheld"] > 0


def test_no_trading_counterfactual_costs_more(tables: Path) -> None:
    body = "[allocation]\nbenchmark_decline = 0.1\n[market]\ntrading = false\n"
    m = run(write_scenario(tables, body, years=(2025, 2027)))
    for row in m.history:
        assert row["gain_from_trade"] >= -1e-6 * abs(row["total_cost"])
    assert any(row["gain_from_trade"] > 0 for row in m.history)
    assert all(v == 0 for v in m.state["cea_bought"])


def test_offset_limit_binds_with_cheap_ccer(tables: Path) -> None:
    body = "[allocation]\nbenchmark_decline = 0.15\n[offsets]\nlimit = 0.01\n"
    m = run(write_scenario(tables, body, years=(2025, 2026)))
    row = m.history[-1]
    assert row["limit_binds"]
    assert row["ccer_price"] < row["cea_price"]
    firms = m.state
    used = firms["ccer_used"][firms["covered"] > 0]
    verified = firms["emissions"][firms["covered"] > 0]
    assert np.all(used <= 0.01 * verified * (1 + 1e-9))


def test_coverage_follows_entry_years_and_threshold(tables: Path) -> None:
    body = "[coverage]\nsectors = { power = 2025, steel = 2026 }\nthreshold = 500000.0\n"
    m = run(write_scenario(tables, body, years=(2025, 2026)))
    firms = pd.read_csv(tables / "firms.csv")
    covered_2025 = m.firm_rows[0]["index"]
    assert set(firms.sector.iloc[covered_2025]) == {"power"}
    assert (firms.emissions.iloc[covered_2025] >= 500000.0 * 0.9).all()
    assert set(firms.sector.iloc[m.firm_rows[1]["index"]]) <= {"power", "steel"}


def test_scenario_from_dict_runs() -> None:
    sc = Scenario.from_dict({"name": "d", "seed": 1, "start_year": 2021, "end_year": 2021})
    m = CarbonMarket(sc, agents=False)
    m.step()
    assert m.done and not m.running and len(m.history) == 1


def test_agents_are_views_of_the_arrays() -> None:
    sc = load_scenario(BASELINE).replace(end_year=2021, investment={"enabled": False})
    m = CarbonMarket(sc)
    m.step()
    covered = [a for a in m.agents if a.covered]
    assert len(covered) == m.history[0]["covered_firms"]
    assert sum(a.emissions for a in covered) == pytest.approx(m.history[0]["emissions"])
    a = covered[0]
    assert a.intensity == pytest.approx(a.emissions / a.output)
    assert a.sector == "power" and a.firm_id.startswith("power")
