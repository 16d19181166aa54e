"""China's ETS rules as functions of the year: coverage, allocation, offsets, penalty, carry-over.

Each rule is a scenario setting (see :mod:`model.scenario`) and a small vectorised function over
the firm arrays, so that the simulation (:mod:`model.model`) only wires them together.

Allocation follows the published design (reference §2):

* **intensity benchmarks** x actual output, per firm type; the published power benchmarks for
  2019-2024, then the last value falling by ``benchmark_decline`` a year (the stringency knob);
* **grandfathering** to verified emissions for a sector's first vintages (steel, cement and
  aluminium for 2024); such firms hold exactly what they emit and take no part in the market;
* an **absolute cap** from a chosen year for chosen sectors, falling linearly by the linear
  reduction factor (a share of the first cap each year), shared in proportion to benchmark
  allocation;
* an **auction share** of the allocation sold instead of given free;
* **gas units never short** and an optional **shortfall cap for coal units** (an obligation of at
  most allocation x (1 + cap)). Both are applied as a top-up of allocation computed from
  unabated emissions, which keeps each firm's problem convex (documented simplification: it
  keeps the incentive to abate that the ex-post rule removes for the exempted tonnes).

A user-given allocation (``allocation`` column of ``firms.csv``) is used as is.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np

from model.mac import Knots, MACCurves
from model.population import Firms, benchmark_table, sector_table
from model.scenario import Scenario
from model.tables import load_ccer_supply

COAL_TYPES = ("coal_gt300", "coal_le300", "coal_unconv")
_GROUPS: dict[tuple[int, int], tuple] = {}


def sector_groups(firms: Firms) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unique sectors and (sector, type) keys of a population with each firm's index into them.

    Computed once per population (string sorting is the slow part of the yearly rules); copies
    of a population that share its ``sector`` and ``firm_type`` arrays share the result.
    """
    key = (id(firms.sector), id(firms.firm_type))  # copies of a population share the arrays
    hit = _GROUPS.get(key)
    if hit is not None and hit[0] is firms.sector and hit[1] is firms.firm_type:
        return hit[2]
    sectors, s_inv = np.unique(firms.sector.astype(str), return_inverse=True)
    keys = np.char.add(np.char.add(firms.sector.astype(str), "|"), firms.firm_type.astype(str))
    types, t_inv = np.unique(keys, return_inverse=True)
    if len(_GROUPS) > 8:
        _GROUPS.clear()
    _GROUPS[key] = (firms.sector, firms.firm_type, (sectors, s_inv, types, t_inv))
    return sectors, s_inv, types, t_inv
NEW_SECTOR_BASE_EXEMPT = ("power",)  # sectors that use the 10,000 t carry-over base


def _type_mask(firms: Firms, types: tuple[str, ...]) -> np.ndarray:
    """Firms whose type is one of ``types`` (read-only; kept per population)."""
    arrays = (firms.sector, firms.firm_type)
    mask = _recall("type_mask", arrays, types)
    if mask is None:
        mask = key_type_mask(firms, types)[sector_groups(firms)[3]]
        mask.flags.writeable = False
        _remember("type_mask", arrays, types, mask)
    return mask


def key_type_mask(firms: Firms, types: tuple[str, ...]) -> np.ndarray:
    """The (sector, firm type) keys of :func:`sector_groups` whose type is one of ``types``
    (read-only; kept per population)."""
    arrays = (firms.sector, firms.firm_type)
    mask = _recall("key type mask", arrays, types)
    if mask is None:
        keys = sector_groups(firms)[2]
        mask = np.isin(np.array([k.split("|", 1)[1] for k in keys]), types)
        mask.flags.writeable = False
        _remember("key type mask", arrays, types, mask)
    return mask


_DERIVED: dict[tuple, tuple] = {}  # values derived from read-only population arrays


def _recall(name: str, arrays: tuple[np.ndarray, ...], *extra) -> object | None:
    """What :func:`_remember` kept for these very arrays (and ``extra``), or None."""
    hit = _DERIVED.get((name, *map(id, arrays), *extra))
    if hit is not None and all(a is b for a, b in zip(hit[0], arrays)):
        return hit[1]
    return None


def _remember(name: str, arrays: tuple[np.ndarray, ...], *extra_and_value) -> None:
    """Keep a value derived from ``arrays`` (and the extra key parts), if the arrays are all
    read-only (as the shared calibrated population's are): their values then never change.
    The kept references pin the arrays, so their ids are not reused."""
    *extra, value = extra_and_value
    if any(a.flags.writeable for a in arrays):
        return
    if len(_DERIVED) > 256:
        _DERIVED.clear()
    _DERIVED[(name, *map(id, arrays), *extra)] = (arrays, value)


def growth_factor(firms: Firms, scenario: Scenario, year: int) -> tuple[np.ndarray, np.ndarray]:
    """Output and emission factors of each firm in ``year`` relative to its base year.

    Output grows at the sector's rate; emission intensity changes at the sector's autonomous rate
    (both from ``sectors.csv`` unless the scenario's ``[growth]`` overrides them).

    Returns:
        ``(output_factor, emissions_factor)``, arrays over firms.
    """
    _, inverse, _, _ = sector_groups(firms)
    out, intensity = sector_growth(firms, scenario, year)
    out = out.take(inverse)
    return out, out * intensity.take(inverse)


def sector_growth(firms: Firms, scenario: Scenario, year: int) -> tuple[np.ndarray, np.ndarray]:
    """Output and emission-intensity factors of each sector of the population (in the order of
    :func:`sector_groups`) in ``year`` relative to the base year."""
    return growth_powers(sector_rates(firms, scenario), year - firms.base_year)


def sector_rates(firms: Firms, scenario: Scenario) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Yearly output growth and intensity change of each sector of :func:`sector_groups`."""
    g, ic = _rates(tuple(sorted(scenario.growth.output.items())),
                   tuple(sorted(scenario.growth.intensity.items())))
    sectors = sector_groups(firms)[0]
    return tuple(g[s] for s in sectors), tuple(ic[s] for s in sectors)


def growth_powers(rates: tuple[tuple[float, ...], tuple[float, ...]],
                  dt: int) -> tuple[np.ndarray, np.ndarray]:
    """The output and intensity factors ``(1 + rate) ** dt`` of :func:`sector_rates` after
    ``dt`` years (one scalar power per sector: numpy's vectorised power may differ in the last
    bit)."""
    return (np.array([(1.0 + g) ** dt for g in rates[0]]),
            np.array([(1.0 + c) ** dt for c in rates[1]]))


@functools.lru_cache(maxsize=64)
def _rates(output: tuple, intensity: tuple) -> tuple[dict[str, float], dict[str, float]]:
    """Yearly output growth and intensity change by sector: data, then scenario overrides."""
    growth, intensity_change = _table_rates()
    return growth | dict(output), intensity_change | dict(intensity)


@functools.lru_cache(maxsize=1)
def _table_rates() -> tuple[dict[str, float], dict[str, float]]:
    """The yearly output growth and intensity change of ``sectors.csv`` by sector (read once:
    a sweep's runs each override them differently)."""
    table = sector_table().set_index("sector")
    return table["output_growth"].to_dict(), table["intensity_change"].to_dict()


def covered(firms: Firms, emissions: np.ndarray, scenario: Scenario, year: int) -> np.ndarray:
    """Firms covered in ``year``: their sector has entered and they emit at least the threshold."""
    entered = sectors_entered(firms, scenario, year).take(sector_groups(firms)[1])
    return entered & (emissions >= scenario.coverage.threshold)


def sectors_entered(firms: Firms, scenario: Scenario, year: int) -> np.ndarray:
    """Whether each sector of :func:`sector_groups` has entered the market by ``year``."""
    entry = scenario.coverage.sectors
    return np.array([s in entry and entry[s] <= year for s in sector_groups(firms)[0]],
                    dtype=bool)


def grandfathered(firms: Firms, scenario: Scenario, year: int) -> np.ndarray:
    """Firms whose allocation equals their verified emissions this year (and that do not trade)."""
    if firms.allocation is not None:
        return np.zeros(firms.n, dtype=bool)
    return sectors_grandfathered(firms, scenario, year).take(sector_groups(firms)[1])


def sectors_grandfathered(firms: Firms, scenario: Scenario, year: int) -> np.ndarray:
    """Whether each sector of :func:`sector_groups` is allocated its verified emissions in
    ``year`` (whatever a user-given allocation says)."""
    until = scenario.allocation.grandfather_until
    return np.array([s in until and year <= until[s] for s in sector_groups(firms)[0]],
                    dtype=bool)


def benchmarks(firms: Firms, year: int, decline: float) -> np.ndarray:
    """Each firm's intensity benchmark in ``year``, t CO2 per unit of output.

    The table's value for the year; after the table's last year that value falls by ``decline`` a
    year; before its first year, the first value. A firm type without a row uses its sector's
    rows (their mean), and a sector without rows its firms' mean intensity in the base year.
    """
    return key_benchmarks(firms, year, decline).take(sector_groups(firms)[3])


def key_benchmarks(firms: Firms, year: int, decline: float) -> np.ndarray:
    """The intensity benchmark of each (sector, firm type) key of :func:`sector_groups` in
    ``year``, t CO2 per unit of output (see :func:`benchmarks`)."""
    schedule = benchmark_schedule(firms, year)
    value = schedule.value
    if schedule.groups:
        value = value.copy()
        for (_, keys), power in zip(schedule.groups, decline_powers(schedule, year, decline)):
            value[keys] = schedule.last_value[keys] * power
    return value


class BenchmarkSchedule(NamedTuple):
    """The benchmarks of a population's keys in one year, before the decline (see
    :func:`benchmarks`; arrays over the keys of :func:`sector_groups`, read-only)."""

    value: np.ndarray  # the table's value for the year (keys within the table's years)
    last_value: np.ndarray  # the table's last value
    groups: list[tuple[np.int64, np.ndarray]]  # keys past the table, by its last year
    key_group: np.ndarray  # each key's index into ``groups`` (-1: within the table's years)


def benchmark_schedule(firms: Firms, year: int) -> BenchmarkSchedule:
    """:class:`BenchmarkSchedule` of the population in ``year`` (kept per population)."""
    arrays = (firms.sector, firms.firm_type, firms.emissions, firms.output)
    schedule = _recall("benchmark rows", arrays, year)  # (the part without the decline)
    if schedule is None:
        value, last_year, last_value = (np.array(v) for v in zip(
            *(_schedule(firms, k, year) for k in sector_groups(firms)[2])))
        after = year >= last_year  # after the table's last year: its last value, falling
        groups = [(np.int64(y), np.flatnonzero(after & (last_year == y)))
                  for y in np.unique(last_year[after]).tolist()]
        key_group = np.full(value.size, -1, dtype=np.int64)
        for g, (_, keys) in enumerate(groups):
            key_group[keys] = g
        for a in (value, last_value, key_group):  # kept: the years after the table copy them
            a.flags.writeable = False
        schedule = BenchmarkSchedule(value, last_value, groups, key_group)
        _remember("benchmark rows", arrays, year, schedule)
    return schedule


def decline_powers(schedule: BenchmarkSchedule, year: int, decline: float) -> np.ndarray:
    """The factor ``(1 - decline) ** (year - last table year)`` of each group of
    :class:`BenchmarkSchedule` (one numpy scalar power per group, with its int64 year: numpy's
    vectorised power may differ in the last bit). Each power is kept: the runs of a Sobol design
    share their declines."""
    powers = np.empty(len(schedule.groups))
    for g, (last, _) in enumerate(schedule.groups):
        powers[g] = _decline_power(decline, type(decline), int(year - last))
    return powers


@functools.lru_cache(maxsize=4096)
def _decline_power(decline: float, kind: type, years: int) -> np.float64:
    """``(1 - decline) ** years`` with ``years`` an int64, as :func:`key_benchmarks` took it
    (``kind``, the type of ``decline``, keys the cache: equal values of two types may not give
    the same power)."""
    return (1.0 - decline) ** np.int64(years)


def _schedule(firms: Firms, key: str, year: int) -> tuple[float, float, float]:
    """The benchmark of one (sector, firm type) in ``year`` within its table's years, the
    table's last year and value (see :func:`benchmarks`; a key without rows: its sector's mean
    intensity, and no last year)."""
    years, vals = _benchmark_rows(key)
    if years.size == 0:
        return _mean_intensity(firms, key.split("|", 1)[0]), np.inf, np.nan
    inside = float(vals[0]) if year <= years[0] else float(vals[years <= year][-1])
    return inside, float(years[-1]), float(vals[-1])


def _mean_intensity(firms: Firms, sector: str) -> float:
    """The base-year emissions per unit of output of ``sector``'s firms (kept per population)."""
    arrays = (firms.sector, firms.emissions, firms.output)
    value = _recall("intensity", arrays, sector)
    if value is None:
        m = (firms.sector == sector) & (firms.output > 0)
        value = float(firms.emissions[m].sum() / max(firms.output[m].sum(), 1e-12))
        _remember("intensity", arrays, sector, value)
    return value


@functools.lru_cache(maxsize=256)
def _benchmark_rows(key: str) -> tuple[np.ndarray, np.ndarray]:
    """Published/assumed benchmark years and values of a ``sector|firm_type`` key."""
    tab = benchmark_table()
    sector, ftype = key.split("|", 1)
    rows = tab[(tab.sector == sector) & (tab.firm_type == ftype)]
    if rows.empty:
        rows = tab[tab.sector == sector].groupby("year", as_index=False)["benchmark"].mean()
    rows = rows.sort_values("year")
    return rows["year"].to_numpy(), rows["benchmark"].to_numpy(dtype=float)


def cap_start(scenario: Scenario, sector: str) -> int | None:
    """The first year of ``sector``'s absolute cap, or None: ``absolute_cap_from`` for the
    ``absolute_cap_sectors``, ``absolute_cap_all_from`` for every sector."""
    cfg = scenario.allocation
    years = [y for y, applies in ((cfg.absolute_cap_from, sector in cfg.absolute_cap_sectors),
                                  (cfg.absolute_cap_all_from, True)) if y is not None and applies]
    return min(years) if years else None


@dataclass
class CapState:
    """The absolute cap of each capped sector, fixed in the cap's first year (t)."""

    first: dict[str, float]


def allocate(
    firms: Firms,
    scenario: Scenario,
    year: int,
    output: np.ndarray,
    emissions: np.ndarray,
    in_market: np.ndarray,
    cap_state: CapState,
) -> tuple[np.ndarray, np.ndarray]:
    """Allowances for ``year`` of the market's firms (benchmark, cap, corrections, auction).

    Args:
        firms: The population.
        scenario: The scenario.
        year: The vintage.
        output: Each firm's output this year.
        emissions: Each firm's unabated emissions this year, t.
        in_market: Covered firms that take part in the market (not grandfathered).
        cap_state: Absolute caps fixed so far (updated in place in a cap's first year).

    Returns:
        ``(free, auctioned)``: free allocation per firm (t, zero outside the market) and the
        volume sold by auction this year (t).
    """
    cfg = scenario.allocation
    if firms.allocation is not None:
        return np.where(in_market, firms.allocation, 0.0), 0.0
    sectors, s_inv, _, _ = sector_groups(firms)
    # benchmark x output in the market (0 elsewhere), and the sectors' totals (t) and firms in it
    alloc, totals, count = _benchmark_allocation(
        benchmarks(firms, year, cfg.benchmark_decline), np.asarray(output, dtype=np.float64),
        np.asarray(in_market, dtype=bool), s_inv, sectors.size)
    present = count > 0
    factor, is_capped = cap_factors(scenario, sectors, year, totals, present, cap_state)
    if is_capped.any():
        alloc *= factor.take(s_inv)
    # Exemptions of the intensity-based system; a sector under an absolute cap has none (none
    # to apply when every sector in the market is capped).
    exempt = (cfg.gas_never_short or cfg.coal_shortfall_cap is not None) and bool(
        (present > is_capped).any())
    if exempt:
        uncapped = in_market & ~is_capped.take(s_inv)
    if exempt and cfg.gas_never_short:
        gas = uncapped & _type_mask(firms, ("gas",))
        np.maximum(alloc, emissions, out=alloc, where=gas)
    if exempt and cfg.coal_shortfall_cap is not None:
        coal = uncapped & _type_mask(firms, COAL_TYPES)
        np.maximum(alloc, emissions / (1.0 + cfg.coal_shortfall_cap), out=alloc, where=coal)
    share = auction_share(scenario, year)
    return alloc * (1.0 - share), float(alloc.sum() * share)


def cap_factors(scenario: Scenario, sectors: np.ndarray, year: int, totals: np.ndarray,
                present: np.ndarray, cap_state: CapState) -> tuple[np.ndarray, np.ndarray]:
    """The factor on each sector's benchmark allocation that brings it to its absolute cap, and
    whether the sector is capped this year.

    Args:
        scenario: The scenario.
        sectors: The sector names (of :func:`sector_groups`).
        year: The vintage.
        totals: Each sector's benchmark allocation in the market, t.
        present: Whether the sector has firms in the market (only those are capped).
        cap_state: Absolute caps fixed so far (a cap's first year fixes it at ``totals``).
    """
    lrf = scenario.allocation.linear_reduction_factor
    factor, is_capped = np.ones(sectors.size), np.zeros(sectors.size, dtype=bool)
    for code in np.flatnonzero(present):
        sector = str(sectors[code])
        start = cap_start(scenario, sector)
        if start is None or year < start:
            continue
        is_capped[code] = True
        if sector not in cap_state.first:
            cap_state.first[sector] = float(totals[code])
        cap = cap_state.first[sector] * max(0.0, 1.0 - lrf * (year - start))
        if totals[code] > 0:
            factor[code] = cap / totals[code]
    return factor, is_capped


def auction_share(scenario: Scenario, year: int) -> float:
    """The share of ``year``'s allocation sold by auction (between 0 and 1)."""
    cfg = scenario.allocation
    return min(1.0, max(0.0, cfg.auction_share + cfg.auction_share_growth
                        * (year - scenario.start_year)))


def offset_supply(scenario: Scenario, year: int) -> Knots:
    """The CCER supply curve usable for vintage ``year`` as knots (cost yuan/t, quantity t).

    The curve of a (table, year, scale) is read once and kept (a sweep reads it in every run,
    and the runs of a Sobol design share their scales); ``supply_scale`` multiplies its
    quantities. A user table is read again when it changes. The knots are read-only.
    """
    o = scenario.offsets
    stamp = None if o.supply is None else Path(o.supply).stat().st_mtime_ns
    scale = float(o.supply_scale)
    if scale == 1.0:
        return _offset_knots(o.supply, stamp, year, o.old_ccer_until)
    if scale == 0.0:  # (-0.0 == 0.0 as a key, but not in the quantities)
        return _scale_knots(_offset_knots(o.supply, stamp, year, o.old_ccer_until), scale)
    return _scaled_offset_knots(o.supply, stamp, year, o.old_ccer_until, scale)


@functools.lru_cache(maxsize=1024)
def _scaled_offset_knots(path: Path | None, stamp: int | None, year: int, old_until: int,
                         scale: float) -> Knots:
    """:func:`_offset_knots` with quantities x ``scale`` (kept: shared by every caller)."""
    return _scale_knots(_offset_knots(path, stamp, year, old_until), scale)


def _scale_knots(k: Knots, scale: float) -> Knots:
    """Knots with quantities (jumps and slopes) x ``scale`` (read-only)."""
    scaled = Knots(k.x, k.jump * scale, k.slope * scale)
    for a in (scaled.jump, scaled.slope):
        a.flags.writeable = False
    if not k.sloped and math.isfinite(scale):  # (known: zero slopes stay zeros)
        scaled.__dict__["sloped"] = False
    return scaled


@functools.lru_cache(maxsize=512)
def _offset_knots(path: Path | None, stamp: int | None, year: int, old_until: int) -> Knots:
    """The unscaled CCER supply knots of ``path`` (None: the project table) for ``year``;
    ``stamp`` (the file's modification time) keys the cache."""
    q, c = load_ccer_supply(path, year, 1.0, old_until)
    k = MACCurves.from_long(np.zeros(q.size, dtype=np.int64), q, c, 1).knots()
    for a in (k.x, k.jump, k.slope):  # shared by every caller: nobody may change them
        a.flags.writeable = False
    return k


def penalty_level(scenario: Scenario, previous_price: float | None) -> float:
    """The price (yuan/t) above which firms pay the penalty rather than buy allowances.

    A flat ``penalty``; or ``penalty_multiple`` x the previous year's average CEA price (the
    Interim Regulations of 2024: 5-10 x the average price before the deadline), never below the
    multiple of ``reference_price`` so that one year of low prices cannot make non-compliance free.
    """
    c = scenario.compliance
    if c.penalty is not None:
        return float(c.penalty)
    ref = c.reference_price if previous_price is None else max(previous_price, c.reference_price)
    return float(c.penalty_multiple * ref)


def carry_over_limit(firms: Firms, scenario: Scenario, net_sales: np.ndarray) -> np.ndarray:
    """How many allowances each firm may bank into the next year (t).

    ``"china"``: base + ``sales_multiple`` x net sales (base 10,000 t for power, 100,000 t for the
    new sectors; ICAP Oct 2024, ClearBlue Nov 2025); ``"unlimited"``; ``"none"``. The model
    applies it with the larger of the net sales of the year closed and of the year before (the
    latter is what a firm knows when it decides to hold allowances).
    """
    base, multiple = carry_over_rule(firms, scenario)
    return base if multiple is None else base + multiple * np.maximum(net_sales, 0.0)


def carry_over_rule(firms: Firms, scenario: Scenario) -> tuple[np.ndarray, float | None]:
    """:func:`carry_over_limit` as ``base + multiple x max(net sales, 0)``: each firm's base (t;
    read-only) and the multiple, None where the limit is the base alone (no banking: 0;
    ``"unlimited"``: inf)."""
    b = scenario.banking
    if not b.enabled or b.carry_over == "none":
        return np.zeros(firms.n), None
    if b.carry_over == "unlimited":
        return np.full(firms.n, np.inf), None
    arrays = (firms.sector, firms.firm_type)
    base = _recall("carry_base", arrays, b.base, b.base_new_sectors)
    if base is None:
        sectors, s_inv, _, _ = sector_groups(firms)
        base = np.where(np.isin(sectors, NEW_SECTOR_BASE_EXEMPT), b.base,
                        b.base_new_sectors)[s_inv]
        base.flags.writeable = False
        _remember("carry_base", arrays, b.base, b.base_new_sectors, base)
    return base, b.sales_multiple


@numba.njit(cache=True, nogil=True)
def _benchmark_allocation(benchmark, output, in_market, sector, n_sectors):  # pragma: no cover
    """``benchmark x output`` of each firm in the market (0 elsewhere), t; each sector's total
    (summed in firm order) and its number of firms in the market (one compiled pass)."""
    alloc = np.zeros(benchmark.size)
    totals = np.zeros(n_sectors)
    count = np.zeros(n_sectors, dtype=np.int64)
    for i in range(benchmark.size):
        if in_market[i]:
            alloc[i] = benchmark[i] * output[i]
            count[sector[i]] += 1
        totals[sector[i]] += alloc[i]
    return alloc, totals, count
