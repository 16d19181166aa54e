"""The user's own tables: firms.csv, mac.csv and ccer.csv -> validated arrays.

Every problem is reported as one line naming the file, the line and the column
(:class:`model.errors.InputError`); nothing is read half. Large tables are read vectorised
(300,000 firms and 1.2 M MAC points in about a second). The CCER supply curve of a vintage comes
from the user's ``ccer.csv`` or from the calibrated project data.
"""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from model.errors import InputError
from model.mac import CurveError, MACCurves
from model.population import (
    Firms,
    _draw_mac,
    ccer_project_table,
    default_firm_types,
    firm_type_table,
)
from model.scenario import SECTORS


# ---------------------------------------------------------------------------------- firms, MAC
def _parse_csv(path: Path, required: tuple[str, ...], dtype: dict | None) -> pd.DataFrame:
    """``pandas.read_csv`` keeping blank lines (row i is file line i + 2); errors as InputError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)  # mixed types: checked later
            return pd.read_csv(path, skip_blank_lines=False, index_col=False,
                               encoding="utf-8-sig", dtype=dtype)
    except pd.errors.EmptyDataError:
        raise InputError(path, "file is empty (expected a header line with columns "
                         + ", ".join(required) + ")") from None
    except pd.errors.ParserError as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if m is None:
            raise InputError(path, f"cannot read CSV: {' '.join(str(e).split())}") from None
        raise InputError(path, f"{m.group(3)} fields, but the header has {m.group(1)}",
                         line=int(m.group(2))) from None
    except UnicodeDecodeError:
        raise InputError(path, "not a UTF-8 text file") from None


def _read_table(
    path: Path, required: tuple[str, ...], optional: tuple[str, ...] = (),
    text: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a user CSV and check its columns; return the table and each row's file line number.

    Blank lines are skipped but counted, so line numbers are those of the file (header = 1).
    Text columns are read as strings (never as numbers, so "007" stays "007") and stripped of
    surrounding blanks; an empty cell is NaN.

    Raises:
        InputError: missing file, unreadable CSV, missing or unknown column.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    df = _parse_csv(path, required, None)
    raw_names = {str(c).strip(): c for c in df.columns}
    numeric_text = [raw_names[c] for c in text if c in raw_names
                    and not pd.api.types.is_string_dtype(df[raw_names[c]])
                    and df[raw_names[c]].notna().any()]
    if numeric_text:  # ids such as 007 were parsed as numbers: read them again as text
        df = _parse_csv(path, required, {c: str for c in numeric_text})
    df.columns = [str(c).strip() for c in df.columns]
    allowed = required + optional
    for c in df.columns:
        if c not in allowed:
            raise InputError(path, "unknown column (allowed: " + ", ".join(allowed) + ")",
                             line=1, field=c)
    for c in required:
        if c not in df.columns:
            raise InputError(path, "missing required column", line=1, field=c)
    for c in text:
        if c in df.columns and df[c].notna().any():  # an all-empty column is float NaN
            df[c] = df[c].str.strip().replace("", np.nan)
    if len(df.columns) and df[df.columns[0]].isna().any():  # blank lines are all-NaN rows
        df = df.loc[~df.isna().all(axis=1).to_numpy()]
    return df, df.index.to_numpy(dtype=np.int64) + 2


def _check_filled(path: Path, df: pd.DataFrame, lines: np.ndarray, col: str) -> None:
    bad = df[col].isna().to_numpy()
    if bad.any():
        raise InputError(path, "empty or NaN value", line=int(lines[np.argmax(bad)]), field=col)


def _numeric(path: Path, df: pd.DataFrame, lines: np.ndarray, col: str,
             nonnegative: bool = True) -> np.ndarray:
    """A column as float64; InputError for empty, non-numeric, infinite or negative values."""
    raw = df[col]
    if pd.api.types.is_bool_dtype(raw.dtype):
        raise InputError(path, f"not a number: '{raw.iloc[0]}'", line=int(lines[0]), field=col)
    if pd.api.types.is_numeric_dtype(raw.dtype):
        values = raw.to_numpy(dtype=np.float64)
    else:
        conv = pd.to_numeric(raw.astype(object).where(raw.notna(), None), errors="coerce")
        wrong = (conv.isna() & raw.notna()).to_numpy()
        if wrong.any():
            i = int(np.argmax(wrong))
            raise InputError(path, f"not a number: {str(raw.iloc[i]).strip()!r}",
                             line=int(lines[i]), field=col)
        values = conv.to_numpy(dtype=np.float64)
    for bad, problem in ((np.isnan(values), "empty or NaN value"),
                         (np.isinf(values), "value is not finite")):
        if bad.any():
            raise InputError(path, problem, line=int(lines[np.argmax(bad)]), field=col)
    if nonnegative and (values < 0).any():
        i = int(np.argmax(values < 0))
        raise InputError(path, f"negative value {values[i]:g} (must be >= 0)",
                         line=int(lines[i]), field=col)
    return values


def _ids(path: Path, df: pd.DataFrame, lines: np.ndarray) -> np.ndarray:
    _check_filled(path, df, lines, "firm_id")
    return df["firm_id"].to_numpy(dtype=object)


def _check_curve(path: Path, lines: np.ndarray, build, field: str, what: str) -> MACCurves:
    """Run a curve constructor, turning a CurveError into an InputError at the offending line."""
    try:
        return build()
    except CurveError as e:
        problem = e.message
        if "decreases:" in problem:
            problem = f"{field} decreases along the {what} (it must not fall as quantity grows)"
        raise InputError(path, problem, line=int(lines[e.point_index]), field=field) from None


def load_firms(
    table: Path, mac: Path | None, rng: np.random.Generator, base_year: int
) -> Firms:
    """Firms from the user's tables.

    ``firms.csv``: columns ``firm_id``, ``sector``, ``emissions`` (t CO2/yr in ``base_year``),
    optional ``output`` (sector unit), ``allocation`` (t, used as is every year) and
    ``firm_type`` (a type of the firm's sector in ``firm_types.csv``; default: the sector's type
    with the largest share of emissions). Output defaults to emissions / the type's mean intensity.
    Every cell of a present column must be filled.

    ``mac.csv`` (long format, one row per curve point): ``firm_id``, ``abatement`` (cumulative t,
    >= 0, at most the firm's emissions), ``mac`` (yuan/t, non-decreasing along the curve). Firms
    without rows get a zero curve. Without ``mac.csv`` each firm gets a curve drawn with ``rng``
    from its sector's technology options, scaled to its emissions.

    Raises:
        InputError: Any problem with the files, naming the file, line and field.
    """
    table = Path(table)
    df, lines = _read_table(table, ("firm_id", "sector", "emissions"),
                            ("output", "allocation", "firm_type"),
                            text=("firm_id", "sector", "firm_type"))
    if len(df) == 0:
        raise InputError(table, "no firms (the table has a header but no rows)")
    firm_id = _ids(table, df, lines)
    _check_filled(table, df, lines, "sector")
    sector = df["sector"].to_numpy(dtype=object)
    unknown = ~df["sector"].isin(SECTORS).to_numpy()
    if unknown.any():
        i = int(np.argmax(unknown))
        raise InputError(table, f"unknown sector {sector[i]!r} (allowed: {', '.join(SECTORS)})",
                         line=int(lines[i]), field="sector")
    emissions = _numeric(table, df, lines, "emissions")
    dup = df["firm_id"].duplicated().to_numpy()
    if dup.any():
        i = int(np.argmax(dup))
        first = int(lines[np.argmax(firm_id == firm_id[i])])
        raise InputError(table, f"duplicate firm_id {firm_id[i]!r} (first on line {first})",
                         line=int(lines[i]), field="firm_id")
    types = firm_type_table()
    if "firm_type" in df.columns:
        _check_filled(table, df, lines, "firm_type")
        firm_type = df["firm_type"].to_numpy(dtype=object)
        known = pd.MultiIndex.from_frame(types[["sector", "firm_type"]])
        ok = pd.MultiIndex.from_arrays([sector, firm_type]).isin(known)
        if not ok.all():
            i = int(np.argmax(~ok))
            allowed = types.loc[types["sector"] == sector[i], "firm_type"]
            raise InputError(table, f"unknown firm_type {firm_type[i]!r} for sector "
                             f"{sector[i]!r} (allowed: {', '.join(allowed)})",
                             line=int(lines[i]), field="firm_type")
    else:
        firm_type = df["sector"].map(default_firm_types()).to_numpy(dtype=object)
    if "output" in df.columns:
        output = _numeric(table, df, lines, "output")
    else:
        key = pd.MultiIndex.from_arrays([sector, firm_type])
        intensity = types.set_index(["sector", "firm_type"])["intensity"].reindex(key)
        output = emissions / intensity.to_numpy(dtype=np.float64)
    allocation = (_numeric(table, df, lines, "allocation")
                  if "allocation" in df.columns else None)
    options = None
    if mac is None:
        curves, options = _draw_mac(rng, sector, emissions, base_year)
    else:
        curves = _load_mac(Path(mac), table, df["firm_id"], emissions)
    return Firms(firm_id=firm_id, sector=sector, firm_type=firm_type, emissions=emissions,
                 output=output, allocation=allocation, mac=curves, base_year=base_year,
                 options=options)


def _load_mac(path: Path, table: Path, firm_id: pd.Series, emissions: np.ndarray) -> MACCurves:
    """Read ``mac.csv`` (firm_id, abatement, mac) into curves for the (unique) ``firm_id``."""
    df, lines = _read_table(path, ("firm_id", "abatement", "mac"), text=("firm_id",))
    _check_filled(path, df, lines, "firm_id")
    abatement = _numeric(path, df, lines, "abatement")
    cost = _numeric(path, df, lines, "mac", nonnegative=False)
    n = len(firm_id)
    # One hash pass over both id columns: codes of the firms' ids map codes to firm indices.
    codes, _ = pd.factorize(pd.concat([firm_id, df["firm_id"]], ignore_index=True))
    to_firm = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
    to_firm[codes[:n]] = np.arange(n)
    index = to_firm[codes[n:]]
    missing = index < 0
    if missing.any():
        i = int(np.argmax(missing))
        raise InputError(path, f"firm_id {df['firm_id'].iloc[i]!r} is not in {table.name}",
                         line=int(lines[i]), field="firm_id")
    over = abatement > emissions[index] * (1.0 + 1e-9)
    if over.any():
        i = int(np.argmax(over))
        raise InputError(path, f"abatement {abatement[i]:g} t exceeds the firm's emissions "
                         f"{emissions[index[i]]:g} t", line=int(lines[i]), field="abatement")
    return _check_curve(path, lines, lambda: MACCurves.from_long(
        index, abatement, cost, firm_id.size), "mac", "firm's MAC curve")


# ---------------------------------------------------------------------------------- CCER supply
def load_ccer_supply(
    path: Path | None, year: int, scale: float, old_ccer_until: int
) -> tuple[np.ndarray, np.ndarray]:
    """The CCER supply curve usable for compliance of vintage ``year``.

    Points (cumulative quantity t, cost yuan/t) with the MAC-curve conventions: non-decreasing,
    starting at (0, 0) unless a point at quantity 0 is given; equal quantities are a vertical jump.

    From ``path`` (a user ``ccer.csv`` with columns ``quantity``, ``cost``: the curve's points,
    quantities >= 0 cumulative, costs >= 0 and non-decreasing along the curve), or, when ``path``
    is None, from ``ccer_projects.csv``: the project types with ``first_year <= year <=
    last_year`` (for ``old_ccer`` the last year is ``old_ccer_until``) as steps sorted by cost.
    In both cases quantities are multiplied by ``scale``.

    Raises:
        InputError: Problems with ``ccer.csv``, naming the file and line.
        ValueError: ``scale`` is negative.
    """
    if scale < 0:
        raise ValueError("scale must be >= 0")
    if path is not None:
        path = Path(path)
        df, lines = _read_table(path, ("quantity", "cost"))
        q = _numeric(path, df, lines, "quantity")
        c = _numeric(path, df, lines, "cost")
        curve = _check_curve(path, lines, lambda: MACCurves.from_long(
            np.zeros(q.size, dtype=np.int64), q, c, 1), "cost", "supply curve")
        return curve.abatement * scale, curve.cost.copy()
    old, quantity, cost, first, last = _ccer_projects()
    use = (first <= year) & (year <= np.where(old, old_ccer_until, last))
    if not use.any():
        return np.zeros(2), np.zeros(2)
    curve = MACCurves.from_options(quantity[None, use] * scale, cost[None, use])
    return curve.abatement, curve.cost


@functools.cache
def _ccer_projects() -> tuple[np.ndarray, ...]:
    """``ccer_projects.csv`` as arrays (read-only): is old_ccer, quantity, cost, first and last
    year (read once: the supply curve is built every simulated year)."""
    p = ccer_project_table()
    cols = ((p["project_type"] == "old_ccer").to_numpy(dtype=bool),
            p["quantity"].to_numpy(dtype=np.float64), p["cost"].to_numpy(dtype=np.float64),
            p["first_year"].to_numpy(dtype=np.int64), p["last_year"].to_numpy(dtype=np.int64))
    out = tuple(np.array(c) for c in cols)
    for c in out:
        c.flags.writeable = False
    return out
