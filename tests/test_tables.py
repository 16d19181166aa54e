"""The user's tables (firms.csv, mac.csv, ccer.csv): reading, defaults and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.errors import InputError
from model.population import (
    MAX_POTENTIAL_SHARE,
    ccer_project_table,
)
from model.tables import load_ccer_supply, load_firms


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
