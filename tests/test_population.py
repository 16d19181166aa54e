"""Tests of model/population.py and the calibration data in model/data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.errors import InputError
from model.population import (
    DATA_DIR,
    MAX_POTENTIAL_SHARE,
    THRESHOLD,
    benchmark_table,
    ccer_project_table,
    firm_type_table,
    load_ccer_supply,
    load_firms,
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


# ---------------------------------------------------------------------------------- user tables
def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


FIRMS = ("firm_id,sector,emissions,output,allocation,firm_type\n"
         "007,power,1000000,1250000,900000,coal_gt300\n"
         "b,steel,200000,125000,210000,bf_bof\n"
         "c,cement,300000,350000,300000,clinker\n")


def test_load_firms_reads_the_tables(tmp_path):
    firms = _write(tmp_path / "firms.csv", FIRMS)
    mac = _write(tmp_path / "mac.csv", "firm_id,abatement,mac\n007,0,10\n007,50000,10\n"
                 "007,50000,80\n\n007,200000,120\nb,1000,30\n")
    f = load_firms(firms, mac, np.random.default_rng(0), 2023)
    assert list(f.firm_id) == ["007", "b", "c"] and f.firm_id.dtype == object
    assert list(f.sector) == ["power", "steel", "cement"]
    np.testing.assert_array_equal(f.emissions, [1e6, 2e5, 3e5])
    np.testing.assert_array_equal(f.output, [1.25e6, 1.25e5, 3.5e5])
    np.testing.assert_array_equal(f.allocation, [9e5, 2.1e5, 3e5])
    np.testing.assert_array_equal(f.mac.max_abatement, [2e5, 1000, 0])
    first = slice(f.mac.start[0], f.mac.start[1])
    np.testing.assert_array_equal(f.mac.abatement[first], [0, 5e4, 5e4, 2e5])
    np.testing.assert_array_equal(f.mac.cost[first], [10, 10, 80, 120])
    assert f.base_year == 2023 and f.n == 3


def test_load_firms_defaults_and_calibrated_curves(tmp_path):
    firms = _write(tmp_path / "firms.csv", "firm_id,sector,emissions\n"
                   "a,power,786100\nb,aluminium,156900\nc,paper,50000\n")
    f1 = load_firms(firms, None, np.random.default_rng(3), 2025)
    f2 = load_firms(firms, None, np.random.default_rng(3), 2025)
    assert f1.allocation is None
    assert list(f1.firm_type) == ["coal_gt300", "electrolysis", "pulp_paper"]
    np.testing.assert_allclose(f1.output, [1e6, 1e5, 1e5])  # emissions / mean intensity
    top = f1.mac.max_abatement
    assert (top > 0).all() and (top <= MAX_POTENTIAL_SHARE * f1.emissions * (1 + 1e-12)).all()
    assert np.array_equal(f1.mac.cost, f2.mac.cost)


BAD_FIRMS = [
    ("firm_id,sector\na,power\n", 1, "emissions", "missing required column"),
    ("firm_id,sector,emissions,colour\na,power,1,red\n", 1, "colour", "unknown column"),
    ("firm_id,sector,emissions\na,power,5\nb,power,\n", 3, "emissions", "empty"),
    ("firm_id,sector,emissions\na,power,NaN\n", 2, "emissions", "empty or NaN"),
    ("firm_id,sector,emissions\na,power,5\nb,power,abc\n", 3, "emissions", "not a number"),
    ("firm_id,sector,emissions\na,power,5\nb,power,inf\n", 3, "emissions", "not finite"),
    ("firm_id,sector,emissions\na,power,5\n\nb,power,-1\n", 4, "emissions", "negative"),
    ("firm_id,sector,emissions,output\na,power,5,-2\n", 2, "output", "negative"),
    ("firm_id,sector,emissions,allocation\na,power,5,-2\n", 2, "allocation", "negative"),
    ("firm_id,sector,emissions\na,power,5\nb,power,6\na,steel,7\n", 4, "firm_id",
     "duplicate firm_id 'a' (first on line 2)"),
    ("firm_id,sector,emissions\na,power,5\nb,coal,6\n", 3, "sector",
     "unknown sector 'coal' (allowed: power, steel"),
    ("firm_id,sector,emissions,firm_type\na,steel,5,coal_gt300\n", 2, "firm_type",
     "unknown firm_type 'coal_gt300' for sector 'steel' (allowed: bf_bof)"),
    ("firm_id,sector,emissions,firm_type\na,power,5,\n", 2, "firm_type", "empty"),
    ("firm_id,sector,emissions\n,power,5\n", 2, "firm_id", "empty"),
    ("firm_id,sector,emissions\na,power,5\nb,power,6,7\n", 3, None, "4 fields"),
    ("firm_id,sector,emissions\n", None, None, "no firms"),
    ("", None, None, "file is empty"),
]


def _assert_one_line(err: InputError, name: str, line, field) -> None:
    text = str(err)
    assert "\n" not in text and text.startswith(str(err.file)) and err.file.endswith(name)
    assert err.line == line and err.field == field
    if line is not None:
        assert f"line {line}" in text
    if field is not None:
        assert f"field '{field}'" in text


@pytest.mark.parametrize("text,line,field,problem", BAD_FIRMS)
def test_bad_firms_table_gives_one_line_input_error(tmp_path, text, line, field, problem):
    path = _write(tmp_path / "firms.csv", text)
    with pytest.raises(InputError) as info:
        load_firms(path, None, np.random.default_rng(0), 2023)
    _assert_one_line(info.value, "firms.csv", line, field)
    assert problem in info.value.problem


def test_missing_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="file not found") as info:
        load_firms(tmp_path / "nope.csv", None, np.random.default_rng(0), 2023)
    _assert_one_line(info.value, "nope.csv", None, None)
    firms = _write(tmp_path / "firms.csv", FIRMS)
    with pytest.raises(InputError, match="file not found") as info:
        load_firms(firms, tmp_path / "mac.csv", np.random.default_rng(0), 2023)
    _assert_one_line(info.value, "mac.csv", None, None)
    with pytest.raises(InputError, match="file not found"):
        load_ccer_supply(tmp_path / "ccer.csv", 2025, 1.0, 2023)


BAD_MAC = [
    ("firm_id,abatement,mac\n007,0,10\nzz,10,20\n", 3, "firm_id", "'zz' is not in firms.csv"),
    ("firm_id,abatement,mac\n007,0,10\n007,10,20\n007,20,15\n", 4, "mac", "decreases"),
    ("firm_id,abatement,mac\nb,10,20\n007,-5,20\n", 3, "abatement", "negative"),
    ("firm_id,abatement,mac\n007,0,10\n007,x,20\n", 3, "abatement", "not a number"),
    ("firm_id,abatement,mac\n007,0,\n", 2, "mac", "empty"),
    ("firm_id,abatement,mac\nb,0,1\nb,300000,2\n", 3, "abatement", "exceeds the firm's emissions"),
    ("firm_id,abatement\n007,0\n", 1, "mac", "missing required column"),
    ("firm_id,abatement,mac,note\n007,0,1,x\n", 1, "note", "unknown column"),
]


@pytest.mark.parametrize("text,line,field,problem", BAD_MAC)
def test_bad_mac_table_gives_one_line_input_error(tmp_path, text, line, field, problem):
    firms = _write(tmp_path / "firms.csv", FIRMS)
    mac = _write(tmp_path / "mac.csv", text)
    with pytest.raises(InputError) as info:
        load_firms(firms, mac, np.random.default_rng(0), 2023)
    _assert_one_line(info.value, "mac.csv", line, field)
    assert problem in info.value.problem


# ---------------------------------------------------------------------------------- CCER
def _steps_ok(q: np.ndarray, c: np.ndarray) -> None:
    assert q[0] == 0 and (np.diff(q) >= 0).all() and (np.diff(c) >= 0).all()


def test_ccer_supply_from_projects_follows_the_vintage_windows():
    p = ccer_project_table().set_index("project_type")
    new = p.loc[["offshore_wind", "solar_thermal", "afforestation", "mangrove"], "quantity"].sum()
    assert new == pytest.approx(9.67e6, rel=0.01)  # first shortlist, reference §4
    q23, c23 = load_ccer_supply(None, 2023, 1.0, 2023)
    _steps_ok(q23, c23)
    assert q23[-1] == pytest.approx(p.loc["old_ccer", "quantity"])
    q24, c24 = load_ccer_supply(None, 2024, 1.0, 2023)
    _steps_ok(q24, c24)
    assert q24[-1] == pytest.approx(new)
    q24_old, _ = load_ccer_supply(None, 2024, 1.0, 2024)
    assert q24_old[-1] == pytest.approx(new + p.loc["old_ccer", "quantity"])
    q26, c26 = load_ccer_supply(None, 2026, 2.0, 2023)
    extra = p.loc[["coal_mine_methane", "tunnel_lighting"], "quantity"].sum()
    assert q26[-1] == pytest.approx(2.0 * (new + extra))
    assert set(c26) == set(p.loc[p["first_year"] <= 2026].drop("old_ccer")["cost"])
    q_none, c_none = load_ccer_supply(None, 2010, 1.0, 2023)
    assert q_none.max() == 0 and c_none.max() == 0


def test_ccer_supply_from_a_user_table(tmp_path):
    path = _write(tmp_path / "ccer.csv", "quantity,cost\n1000,20\n\n1000,40\n5000,40\n")
    q, c = load_ccer_supply(path, 2025, 0.5, 2023)
    np.testing.assert_array_equal(q, [0, 500, 500, 2500])
    np.testing.assert_array_equal(c, [0, 20, 40, 40])


BAD_CCER = [
    ("quantity,cost\n1000,20\n2000,10\n", 3, "cost", "decreases"),
    ("quantity,cost\n1000,20\n-5,30\n", 3, "quantity", "negative"),
    ("quantity,cost\n1000,-20\n", 2, "cost", "negative"),
    ("quantity,cost\n1000,abc\n", 2, "cost", "not a number"),
    ("quantity,price\n1000,20\n", 1, "price", "unknown column"),
]


@pytest.mark.parametrize("text,line,field,problem", BAD_CCER)
def test_bad_ccer_table_gives_one_line_input_error(tmp_path, text, line, field, problem):
    path = _write(tmp_path / "ccer.csv", text)
    with pytest.raises(InputError) as info:
        load_ccer_supply(path, 2025, 1.0, 2023)
    _assert_one_line(info.value, "ccer.csv", line, field)
    assert problem in info.value.problem
