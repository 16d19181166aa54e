"""Tests of model/population.py and the calibration data in model/data."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from model.population import (
    DATA_DIR,
    MAX_POTENTIAL_SHARE,
    THRESHOLD,
    benchmark_table,
    firm_type_table,
    sector_table,
    synthetic_firms,
    technology_table,
)
from model.scenario import SECTORS

NEW_SECTORS = ("steel", "cement", "aluminium")


@pytest.fixture(scope="module")
def pop2023():
    return synthetic_firms(np.random.default_rng(7), base_year=2023)


@pytest.fixture(scope="module")
def pop2024():
    return synthetic_firms(np.random.default_rng(7), base_year=2024)


def _by_sector(firms, values):
    return pd.Series(values).groupby(firms.sector).sum()


# ---------------------------------------------------------------------------------- data files
@pytest.mark.parametrize("name", sorted(p.name for p in DATA_DIR.glob("*.csv")))
def test_every_data_row_has_a_source_and_confidence(name):
    df = pd.read_csv(DATA_DIR / name)
    assert {"source", "confidence"} <= set(df.columns)
    assert df["source"].notna().all() and (df["source"].str.strip().str.len() > 0).all()
    assert df["confidence"].isin(["high", "medium", "low", "assumption"]).all()
    assumed = df[df["confidence"] == "assumption"]
    assert assumed["source"].str.contains("assumption").all()


def test_data_files_are_all_found():
    names = {p.name for p in DATA_DIR.glob("*.csv")}
    assert {"sectors.csv", "firm_types.csv", "benchmarks.csv", "technologies.csv",
            "ccer_projects.csv"} <= names


def test_sector_table_covers_exactly_the_model_sectors():
    s = sector_table()
    assert list(s["sector"]) == list(SECTORS)
    entry = s.set_index("sector")["default_entry_year"]
    assert entry["power"] == 2019 and all(entry[x] == 2024 for x in NEW_SECTORS)
    later = [x for x in SECTORS if x not in ("power",) + NEW_SECTORS]
    assert entry[later].isna().all()


def test_firm_type_shares_sum_to_one_per_sector():
    t = firm_type_table()
    assert set(t["sector"]) == set(SECTORS)
    sums = t.groupby("sector")[["share_of_firms", "share_of_emissions"]].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0)
    power = set(t.loc[t["sector"] == "power", "firm_type"])
    assert power == {"coal_gt300", "coal_le300", "coal_unconv", "gas"}


def test_benchmarks_hold_the_published_power_values_and_every_type():
    b = benchmark_table().set_index(["sector", "firm_type", "year"])["benchmark"].sort_index()
    assert b["power", "coal_gt300", 2019] == 0.877
    assert b["power", "coal_gt300", 2021] == 0.8218
    assert b["power", "coal_le300", 2023] == 0.7984
    assert b["power", "gas", 2024] == 0.3288
    assert b["power", "coal_unconv", 2020] == 1.146
    for t in ("coal_gt300", "coal_le300", "coal_unconv", "gas"):
        assert sorted(b["power", t].index) == list(range(2019, 2025))
    types = set(map(tuple, firm_type_table()[["sector", "firm_type"]].to_numpy()))
    assert set((s, t) for s, t, _ in b.index) == types


def test_technology_potentials_are_shares_below_one_per_sector():
    tech = technology_table()
    assert set(tech["sector"]) == set(SECTORS)
    assert (tech["cost"] > 0).all() and (tech["potential"] > 0).all()
    assert (tech.groupby("sector")["potential"].sum() < 1.0).all()
    power = set(tech.loc[tech["sector"] == "power", "option"])
    assert {"efficiency_retrofit", "biomass_cofiring", "ccs"} <= power


# ---------------------------------------------------------------------------------- synthetic
def test_counts_match_the_published_entity_numbers(pop2023):
    counts = pd.Series(1, index=pop2023.sector).groupby(level=0).sum()
    assert counts["power"] == 2257
    new = counts[list(NEW_SECTORS)]
    assert 1300 <= new.sum() <= 1500
    for sector, share in (("steel", 0.18), ("cement", 0.15), ("aluminium", 0.05)):
        assert abs(new[sector] - share * 3770) <= 1
    expected = sector_table().set_index("sector")["n_firms"]
    assert (counts[list(SECTORS)] == expected[list(SECTORS)]).all()


def test_sector_totals_match_the_calibration_exactly(pop2023, pop2024):
    s = sector_table().set_index("sector")
    e23 = _by_sector(pop2023, pop2023.emissions)
    e24 = _by_sector(pop2024, pop2024.emissions)
    assert e23["power"] == pytest.approx(5.1e9, rel=1e-9)
    assert e24[list(NEW_SECTORS)].sum() == pytest.approx(3.0e9, rel=1e-9)
    for sector in SECTORS:
        row = s.loc[sector]
        growth = (1 + row["output_growth"]) * (1 + row["intensity_change"])
        target = row["emissions_t"] * growth ** (2023 - row["reference_year"])
        assert e23[sector] == pytest.approx(target, rel=1e-9)
    # ≈ 8 Gt covered after the expansion (reference §1)
    assert 7.9e9 < e24[["power", *NEW_SECTORS]].sum() < 8.4e9


def test_every_firm_is_above_the_threshold(pop2023):
    assert pop2023.emissions.min() >= THRESHOLD
    higher = synthetic_firms(np.random.default_rng(1), threshold=50_000.0)
    assert higher.emissions.min() >= 50_000.0


def test_firm_types_follow_their_shares_and_mean_intensity(pop2023):
    types = firm_type_table().set_index(["sector", "firm_type"])
    df = pd.DataFrame({"sector": pop2023.sector, "firm_type": pop2023.firm_type,
                       "e": pop2023.emissions, "o": pop2023.output})
    g = df.groupby(["sector", "firm_type"]).agg(n=("e", "size"), e=("e", "sum"), o=("o", "sum"))
    assert set(g.index) == set(types.index)
    n_sector = g["n"].groupby(level=0).transform("sum")
    e_sector = g["e"].groupby(level=0).transform("sum")
    t = types.loc[g.index]
    np.testing.assert_allclose(g["n"] / n_sector, t["share_of_firms"], atol=1.0 / 500)
    np.testing.assert_allclose(g["e"] / e_sector, t["share_of_emissions"], rtol=1e-9)
    np.testing.assert_allclose(g["e"] / g["o"], t["intensity"], rtol=1e-9)
    assert np.isfinite(pop2023.output).all() and (pop2023.output > 0).all()
    firm_intensity = pop2023.emissions / pop2023.output
    assert firm_intensity.std() > 0  # firms differ around the mean


def test_ids_are_unique_and_formatted(pop2023):
    assert pop2023.firm_id.dtype == object
    assert len(set(pop2023.firm_id)) == pop2023.n
    assert pop2023.firm_id[0] == "power-00001"
    assert all(re.fullmatch(r"[a-z_]+-\d{5}", i) for i in pop2023.firm_id[::97])
    assert pop2023.allocation is None and pop2023.base_year == 2023


def test_same_seed_same_population_other_seed_other_firms():
    a = synthetic_firms(np.random.default_rng(42))
    b = synthetic_firms(np.random.default_rng(42))
    c = synthetic_firms(np.random.default_rng(43))
    for name in ("firm_id", "sector", "firm_type", "emissions", "output"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    for name in ("start", "abatement", "cost"):
        assert np.array_equal(getattr(a.mac, name), getattr(b.mac, name))
    assert not np.allclose(a.emissions, c.emissions)
    assert not np.allclose(a.mac.cost, c.mac.cost)
    assert a.emissions.sum() == pytest.approx(c.emissions.sum(), rel=1e-9)


def test_mac_potentials_are_below_emissions(pop2023):
    mac = pop2023.mac
    assert mac.n_firms == pop2023.n
    top = mac.max_abatement
    assert (top > 0).all()
    assert (top < pop2023.emissions).all()
    assert (top <= MAX_POTENTIAL_SHARE * pop2023.emissions * (1 + 1e-12)).all()
    firm = np.repeat(np.arange(mac.n_firms), np.diff(mac.start))
    same = firm[1:] == firm[:-1]
    assert (np.diff(mac.cost)[same] >= 0).all() and (np.diff(mac.abatement)[same] >= 0).all()
    assert (mac.abatement[mac.start[:-1]] == 0).all()
    # The mean potential share of power firms is the data's sum of option potentials.
    tech = technology_table()
    power = pop2023.sector == "power"
    share = (top[power] / pop2023.emissions[power]).mean()
    assert share == pytest.approx(tech.loc[tech["sector"] == "power", "potential"].sum(), rel=0.05)


def test_mac_costs_vary_across_firms_around_the_option_costs(pop2023):
    power = np.flatnonzero(pop2023.sector == "power")
    sub = pop2023.mac.select(power)
    # the cost at which a power firm's CCS (its most expensive option) starts: the last point
    last = sub.cost[sub.start[1:] - 1]
    assert np.median(last) == pytest.approx(400, rel=0.15)
    assert last.std() > 0
