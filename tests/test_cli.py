"""The command line as a user runs it: outputs, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from model.cli import main
from tests.conftest import ROOT, write_scenario

YEARS_COLUMNS = ["year", "cea_price", "ccer_price", "emissions", "abatement", "allocation",
                 "ccer_used", "abatement_cost", "offset_cost", "shortfall", "reserve_sales",
                 "banked", "covered_firms", "covered_emissions"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_help_lists_run() -> None:
    r = cli("--help")
    assert r.returncode == 0 and "run" in r.stdout


def test_run_writes_the_three_tables(tables: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = cli("run", str(write_scenario(tables, years=(2025, 2027))), "--out", str(out))
    assert r.returncode == 0, r.stderr
    years = pd.read_csv(out / "years.csv")
    assert list(years.columns[: len(YEARS_COLUMNS)]) == YEARS_COLUMNS
    assert list(years.year) == [2025, 2026, 2027]
    assert not years.isna().any().any()
    sectors = pd.read_csv(out / "sectors.csv")
    firms = pd.read_csv(out / "firms.csv")
    assert {"year", "firm_id", "emissions", "abatement", "allocation", "cea_bought",
            "ccer_used", "abatement_cost"} <= set(firms.columns)
    by_year = firms.groupby("year")[["emissions", "abatement", "ccer_used"]].sum()
    for col in ("emissions", "abatement", "ccer_used"):
        assert by_year[col].to_numpy() == pytest.approx(years[col].to_numpy(), rel=1e-9)
        assert sectors.groupby("year")[col].sum().to_numpy() == pytest.approx(
            years[col].to_numpy(), rel=1e-9)
    assert "CEA yuan/t" in r.stdout


def bad(tables: Path, tmp_path: Path, edit) -> tuple[subprocess.CompletedProcess, Path]:
    scenario = write_scenario(tables)
    edit(tables, scenario)
    out = tmp_path / "out"
    return cli("run", str(scenario), "--out", str(out)), out


def _csv_edit(name: str, fn):
    def edit(folder: Path, _scenario: Path) -> None:
        df = pd.read_csv(folder / name)
        fn(df).to_csv(folder / name, index=False)
    return edit


def _set(col: str, row: int, value):
    def fn(df: pd.DataFrame) -> pd.DataFrame:
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
        return df
    return fn


CASES = {
    "missing file": (lambda f, s: (f / "firms.csv").unlink(), "firms.csv"),
    "nan emissions": (_csv_edit("firms.csv", _set("emissions", 3, "")), "firms.csv"),
    "negative emissions": (_csv_edit("firms.csv", _set("emissions", 2, -5.0)), "firms.csv"),
    "unknown sector": (_csv_edit("firms.csv", _set("sector", 1, "banking")), "firms.csv"),
    "decreasing mac": (_csv_edit("mac.csv", _set("mac", 1, -999.0)), "mac.csv"),
    "unknown firm in mac": (_csv_edit("mac.csv", _set("firm_id", 0, "ghost")), "mac.csv"),
    "unknown key": (lambda f, s: s.write_text(s.read_text() + "\n[market]\nspeed = 1\n"),
                    "scenario.toml"),
    "limit out of range": (lambda f, s: s.write_text(
        s.read_text().replace('[offsets]\n', '[offsets]\nlimit = 1.5\n')), "scenario.toml"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_line(tables: Path, tmp_path: Path, case: str) -> None:
    edit, file_named = CASES[case]
    r, out = bad(tables, tmp_path, edit)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert file_named in lines[0]
    assert "Traceback" not in r.stderr
    assert not out.exists() or not any(out.iterdir())


def test_main_returns_2_in_process(tmp_path: Path, capsys) -> None:
    assert main(["run", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nope.toml" in err and len(err.strip().splitlines()) == 1
