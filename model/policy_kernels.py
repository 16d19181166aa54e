"""One year's exogenous inputs of the market in two compiled passes over the firms.

:func:`year_rules` gives what :func:`model.policy.growth_factor`,
:func:`model.demography.demography`, :func:`model.policy.covered`,
:func:`model.policy.grandfathered` and :func:`model.policy.allocate` give together (the yearly
rules of :meth:`model.model.CarbonMarket._exogenous`), with the same numbers to the last bit: the
same operands in the same order, the scalar powers taken per sector or (sector, firm type) key in
Python as the plain rules take them, sector totals added in firm order, and the auctioned total
in numpy's pairwise order (:func:`model.clearing_kernels.add_reduce`). The plain rules stay the
reference (the tests compare the two); the passes save their ~25 whole-array numpy calls and
~40 small Python steps a year. What does not change with the year is kept per scenario
(:func:`run_rules`), and the firm pass (output, emissions, coverage: :func:`firm_year`) per
population and growth, coverage and grandfathering rules, which the runs of a sweep share
(a Sobol design changes them in few of its runs).
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np

from model import policy
from model.clearing_kernels import add_reduce
from model.demography import Demography, demography
from model.population import Firms
from model.scenario import Scenario

NEVER = np.iinfo(np.int64).max
"""A year that never comes (no entry, no cap)."""
BEFORE_ANY = np.iinfo(np.int64).min
"""A year before any (no grandfathering)."""


class YearRules(NamedTuple):
    """One year's inputs of the firms (arrays over firms; see :func:`year_rules`)."""

    output: np.ndarray  # output in the sector's unit
    emissions: np.ndarray  # unabated emissions, t
    emissions_factor: np.ndarray  # unabated emissions relative to the base year (growth only)
    covered: np.ndarray
    grandfathered: np.ndarray
    market: np.ndarray  # covered and not grandfathered: the firms that trade
    market_index: np.ndarray  # their indices
    free: np.ndarray  # free allocation (grandfathered firms: their emissions), t
    auctioned: float  # allowances sold by auction, t


@dataclass(frozen=True)
class RunRules:
    """A scenario's rules for each sector and (sector, firm type) key of a population (the
    order of :func:`model.policy.sector_groups`): what does not change with the year.

    Attributes:
        sectors: The sector names.
        rates: Yearly output growth and intensity change per sector (:func:`policy.sector_rates`).
        entry: First year of each sector in the market (``NEVER``: not covered).
        grandfather_until: Last year a sector is allocated its emissions (``BEFORE_ANY``: none).
        cap_start: First year of a sector's absolute cap (``NEVER``: no cap).
        gas: Keys of gas units (never short).
        coal: Keys of coal units (shortfall cap).
        runs: Runs of consecutive firms with one key: ``runs[j]`` is the first firm of run ``j``
            and ``runs[-1]`` the number of firms.
        run_sector: The sector of each run.
        run_key: The key of each run.
        no_cap: No sector's cap fixed yet (read-only, as ``no_cap_fixed``).
        firm_rules: What the firm pass depends on besides the population and the year (growth
            rates with their types, entry years, threshold, grandfathering).
        firm_rules_id: A number for ``firm_rules`` (the same for equal rules): a cheap key.
    """

    sectors: tuple[str, ...]
    rates: tuple[tuple[float, ...], tuple[float, ...]]
    entry: np.ndarray
    grandfather_until: np.ndarray
    cap_start: np.ndarray
    gas: np.ndarray
    coal: np.ndarray
    runs: np.ndarray
    run_sector: np.ndarray
    run_key: np.ndarray
    no_cap: np.ndarray
    no_cap_fixed: np.ndarray
    firm_rules: tuple
    firm_rules_id: int


_RULES: dict[tuple[int, int, int], tuple] = {}
_RULES_LOCK = threading.Lock()  # the browser page builds models in several threads
_FIRM_RULES_IDS: dict[tuple, int] = {}
_NUMBERS = itertools.count()  # (never reused: a number names one set of rules)


def run_rules(firms: Firms, scenario: Scenario) -> RunRules:
    """:class:`RunRules` of ``scenario`` for the population of ``firms``, kept per scenario
    object (a scenario is immutable: a changed scenario is a new object) and population."""
    key = (id(scenario), id(firms.sector), id(firms.firm_type))
    hit = _RULES.get(key)
    if (hit is not None and hit[0] is scenario and hit[1] is firms.sector
            and hit[2] is firms.firm_type):
        return hit[3]
    sectors, s_inv, _, t_inv = policy.sector_groups(firms)
    names = tuple(str(s) for s in sectors)
    entry, until = scenario.coverage.sectors, scenario.allocation.grandfather_until
    starts = [policy.cap_start(scenario, s) for s in names]
    runs = np.concatenate(([0], np.flatnonzero(np.diff(t_inv)) + 1, [t_inv.size])) if (
        t_inv.size) else np.zeros(1, dtype=np.int64)
    rates = policy.sector_rates(firms, scenario)
    firm_rules = (tuple((type(g), g) for g in rates[0] + rates[1]),
                  tuple(entry.get(s, NEVER) for s in names), float(scenario.coverage.threshold),
                  tuple(until.get(s, BEFORE_ANY) for s in names))
    with _RULES_LOCK:
        if len(_FIRM_RULES_IDS) > 4096:
            _FIRM_RULES_IDS.clear()
        firm_rules_id = _FIRM_RULES_IDS.setdefault(firm_rules, next(_NUMBERS))
    rules = RunRules(
        sectors=names, rates=rates,
        entry=np.array([entry.get(s, NEVER) for s in names], dtype=np.int64),
        grandfather_until=np.array([until.get(s, BEFORE_ANY) for s in names], dtype=np.int64),
        cap_start=np.array([NEVER if y is None else y for y in starts], dtype=np.int64),
        gas=policy.key_type_mask(firms, ("gas",)),
        coal=policy.key_type_mask(firms, policy.COAL_TYPES),
        runs=runs.astype(np.int64), run_sector=s_inv[runs[:-1]].astype(np.int64),
        run_key=t_inv[runs[:-1]].astype(np.int64), no_cap=np.zeros(len(names)),
        no_cap_fixed=np.zeros(len(names), dtype=bool), firm_rules=firm_rules,
        firm_rules_id=firm_rules_id)
    for a in (rules.entry, rules.grandfather_until, rules.cap_start, rules.runs,
              rules.run_sector, rules.run_key, rules.no_cap, rules.no_cap_fixed):
        a.flags.writeable = False
    with _RULES_LOCK:
        if len(_RULES) > 64:
            _RULES.clear()
        _RULES[key] = (scenario, firms.sector, firms.firm_type, rules)
    return rules


_NONE, _NO_FIRMS = np.zeros(0), np.zeros(0, dtype=bool)  # arguments the pass does not read
_NO_KEYS = np.zeros(0, dtype=np.int64)
_NONE.flags.writeable = _NO_FIRMS.flags.writeable = _NO_KEYS.flags.writeable = False


class FirmYear(NamedTuple):
    """What the firm pass gives for a year (arrays over firms, read-only; see :func:`firm_year`)."""

    output: np.ndarray  # output in the sector's unit
    emissions: np.ndarray  # unabated emissions, t
    emissions_factor: np.ndarray  # unabated emissions relative to the base year (growth only)
    covered: np.ndarray
    grandfathered: np.ndarray
    market: np.ndarray  # covered and not grandfathered: the firms that trade
    market_index: np.ndarray  # their indices
    open_run: np.ndarray  # whether each run of firms (RunRules.runs) is in the market
    any_grandfathered: bool


_FIRM_YEARS: OrderedDict[tuple, tuple] = OrderedDict()  # newest last
_FIRM_YEARS_KEPT = 3  # rule sets kept (each up to ~9 MB for 40 years of the national population)


def firm_year(firms: Firms, scenario: Scenario, year: int, plan: Demography | None) -> FirmYear:
    """Each firm's output, unabated emissions (t) and coverage in ``year`` (:func:`firm_pass`).

    Kept per population (read-only arrays), demography plan, :attr:`RunRules.firm_rules` and
    year for the last few rule sets: the runs of a sweep that change only other rules share them.
    """
    return _firm_year(run_rules(firms, scenario), firms, year, plan)


def _firm_year(r: RunRules, firms: Firms, year: int, plan: Demography | None) -> FirmYear:
    """:func:`firm_year` with the scenario's :class:`RunRules`."""
    user = firms.allocation is not None
    population = (firms.output, firms.emissions, firms.sector, firms.firm_type, plan)
    key = (id(firms.output), id(firms.emissions), id(firms.sector), id(firms.firm_type),
           id(plan), firms.base_year, user, r.firm_rules_id)
    with _RULES_LOCK:
        hit = _FIRM_YEARS.get(key)
        years = None
        if hit is not None and hit[0][0] is firms.output and hit[0][1] is firms.emissions and (
                hit[0][2] is firms.sector and hit[0][3] is firms.firm_type and hit[0][4] is plan):
            _FIRM_YEARS.move_to_end(key)
            years = hit[1]
    if years is not None and year in years:
        return years[year]
    out_factor, intensity_factor = policy.growth_powers(r.rates, year - firms.base_year)
    multiplier, active = (_NONE, _NO_FIRMS) if plan is None else demography(plan, year)
    result = FirmYear(*firm_pass(
        firms.output, firms.emissions, r.runs, r.run_sector, out_factor, intensity_factor,
        plan is not None, multiplier, active, year, r.entry, r.firm_rules[2],
        r.grandfather_until, user))
    for a in result[:-1]:
        a.setflags(write=False)
    if any(a.flags.writeable for a in population[:4]):
        return result  # (a population that may change is not kept)
    with _RULES_LOCK:
        if years is None:
            years = {}
            _FIRM_YEARS[key] = (population, years)
            while len(_FIRM_YEARS) > _FIRM_YEARS_KEPT:
                _FIRM_YEARS.popitem(last=False)
        years[year] = result
    return result


def year_rules(firms: Firms, scenario: Scenario, year: int, plan: Demography | None,
               cap_state: policy.CapState) -> YearRules:
    """Output, unabated emissions, coverage and allocation of every firm in ``year``.

    Args:
        firms: The population.
        scenario: The scenario.
        year: The vintage.
        plan: The population's planned demography (None: every firm active, on its sector path).
        cap_state: Absolute caps fixed so far (updated in place in a cap's first year).

    Returns:
        The year's :class:`YearRules`: the arrays of :func:`firm_year` (read-only, possibly
        shared with other runs) and a new ``free``.
    """
    r = run_rules(firms, scenario)
    cfg = scenario.allocation
    fy = _firm_year(r, firms, year, plan)
    user = firms.allocation is not None
    if user:  # (no benchmarks)
        bench, powers = policy.BenchmarkSchedule(_NONE, _NONE, [], _NO_KEYS), _NONE
    else:
        bench = policy.benchmark_schedule(firms, year)
        powers = policy.decline_powers(bench, year, cfg.benchmark_decline)
    first = cap_state.first
    if first:
        fixed = np.array([s in first for s in r.sectors], dtype=bool)
        cap = np.array([first.get(s, 0.0) for s in r.sectors], dtype=np.float64)
    else:
        fixed, cap = r.no_cap_fixed, r.no_cap
    free, auctioned, cap, now_fixed = allocation_pass(
        fy.output, fy.emissions, fy.grandfathered, fy.market, fy.open_run,
        fy.any_grandfathered, r.runs, r.run_sector, r.run_key, year, user,
        np.asarray(firms.allocation, dtype=np.float64) if user else _NONE, bench.value,
        bench.last_value, bench.key_group, powers, r.cap_start, fixed, cap,
        float(cfg.linear_reduction_factor), cfg.gas_never_short, r.gas,
        cfg.coal_shortfall_cap is not None, r.coal, 1.0 + (cfg.coal_shortfall_cap or 0.0),
        0.0 if user else float(policy.auction_share(scenario, year)))
    if now_fixed.any():
        for code in np.flatnonzero(now_fixed).tolist():  # caps fixed this year, in sector order
            first[r.sectors[code]] = float(cap[code])
    return YearRules(fy.output, fy.emissions, fy.emissions_factor, fy.covered, fy.grandfathered,
                     fy.market, fy.market_index, free, auctioned)


@numba.njit(cache=True, nogil=True)
def firm_pass(base_output, base_emissions, runs, run_sector, out_factor, intensity_factor,
              with_demography, multiplier, active, year, entry, threshold, grandfather_until,
              user):  # pragma: no cover (compiled)
    """Each firm's output, unabated emissions (t) and coverage in ``year``, as the plain rules
    compute them.

    Per firm of sector ``s``: ``emissions_factor = out_factor[s] x intensity_factor[s]``;
    ``output = base_output x out_factor[s] (x multiplier)``, ``emissions = base_emissions x
    emissions_factor (x multiplier)`` (t); covered if its sector has entered (``entry``), it
    emits at least ``threshold`` (t) and, with demography, is active; grandfathered if covered
    and its sector is (``grandfather_until``; never with a ``user``-given allocation); in the
    market if covered and not grandfathered.

    Returns:
        The fields of :class:`FirmYear`.
    """
    n = base_output.size
    output, emissions, em_factor = np.empty(n), np.empty(n), np.empty(n)
    covered = np.empty(n, dtype=np.bool_)
    grand = np.empty(n, dtype=np.bool_)
    market = np.empty(n, dtype=np.bool_)
    open_run = np.zeros(run_sector.size, dtype=np.bool_)
    any_grand = False
    # Loops over slices from 0 (not over lo..hi) so that they compile to vector instructions.
    for j in range(run_sector.size):  # runs of firms of one key: the factors are scalars
        lo, hi, s = runs[j], runs[j + 1], run_sector[j]
        m = hi - lo
        f_out = out_factor[s]
        f_em = f_out * intensity_factor[s]
        q, e, cov = output[lo:hi], emissions[lo:hi], covered[lo:hi]
        q0, e0 = base_output[lo:hi], base_emissions[lo:hi]
        em_factor[lo:hi] = f_em
        if with_demography:
            mult, act = multiplier[lo:hi], active[lo:hi]
            for i in range(m):
                q[i] = q0[i] * f_out * mult[i]
                e[i] = e0[i] * f_em * mult[i]
            for i in range(m):
                cov[i] = (e[i] >= threshold) & act[i]
        else:
            for i in range(m):
                q[i] = q0[i] * f_out
                e[i] = e0[i] * f_em
            for i in range(m):
                cov[i] = e[i] >= threshold
        if entry[s] > year:  # the sector has not entered
            cov[:] = False
        if entry[s] > year or (not user and year <= grandfather_until[s]):
            grand[lo:hi] = cov
            market[lo:hi] = False
            any_grand = any_grand or cov.any()
        else:
            grand[lo:hi] = False
            market[lo:hi] = cov
            open_run[j] = True
    return (output, emissions, em_factor, covered, grand, market, np.flatnonzero(market),
            open_run, any_grand)


@numba.njit(cache=True, nogil=True)
def allocation_pass(output, emissions, grand, market, open_run, any_grand, runs, run_sector,
                    run_key, year, user, allocation, benchmark, last_benchmark,
                    benchmark_group, decline, cap_start, cap_fixed, cap_first, reduction,
                    gas_never_short, gas, coal_capped, coal, coal_divisor,
                    share):  # pragma: no cover (compiled)
    """Free allocation of every firm (t) and the auctioned volume (t), as
    :func:`model.policy.allocate` computes them (plus the emissions of grandfathered firms).

    Firms in the market (``market``; runs of firms of one key in ``open_run``) get the
    user-given ``allocation``, or their key's benchmark x ``output`` (t): ``benchmark[k]``, or
    past the benchmark table ``last_benchmark[k] x decline[g]`` (``g = benchmark_group[k] >=
    0``: the factor of its group, :func:`policy.decline_powers`). Then (benchmark allocation
    only) each sector's absolute cap from ``cap_start`` (fixed at its first year's total,
    falling by ``reduction`` of it a year; ``cap_fixed``/``cap_first``: caps fixed before)
    scales its allocation; gas units (keys ``gas``) are never short and coal units (keys
    ``coal``) short of at most ``emissions / coal_divisor`` in uncapped sectors; ``share`` of
    the total is auctioned; grandfathered firms get their emissions.

    Returns:
        ``(free, auctioned, cap_first, newly_fixed)``: free allocation per firm (t), the
        auctioned volume (t), each sector's first cap (t) and whether it was fixed this year.
    """
    n, n_sectors = output.size, cap_start.size
    alloc = np.empty(n)
    totals = np.zeros(n_sectors)  # each sector's allocation in the market, added in firm order
    count = np.zeros(n_sectors, dtype=np.int64)
    for j in range(run_sector.size):
        lo, hi, s, k = runs[j], runs[j + 1], run_sector[j], run_key[j]
        m = hi - lo
        a, q, mk = alloc[lo:hi], output[lo:hi], market[lo:hi]
        if not open_run[j]:  # nobody in the market: allocation 0 (adding it changes nothing)
            a[:] = 0.0
            continue
        if user:
            b = allocation[lo:hi]
            for i in range(m):
                a[i] = b[i] if mk[i] else 0.0
            continue
        bench = benchmark[k]
        if benchmark_group[k] >= 0:  # past the table: its last value, falling
            bench = last_benchmark[k] * decline[benchmark_group[k]]
        for i in range(m):
            a[i] = bench * q[i] if mk[i] else 0.0
        total = totals[s]
        for i in range(m):  # in firm order (one chain: not vectorised)
            total += a[i]
        totals[s] = total
        c = 0
        for i in range(m):
            c += mk[i]
        count[s] += c
    first, newly = cap_first.copy(), np.zeros(n_sectors, dtype=np.bool_)
    if user:  # a user-given allocation is used as is (nobody grandfathered, no auction)
        return alloc, 0.0, first, newly
    factor, capped = np.ones(n_sectors), np.zeros(n_sectors, dtype=np.bool_)
    exempt = False  # a sector in the market without a cap: its exemptions apply
    for s in range(n_sectors):
        if count[s] == 0:
            continue
        if year < cap_start[s]:
            exempt = True
            continue
        capped[s] = True
        if not cap_fixed[s]:
            first[s], newly[s] = totals[s], True
        left = 1.0 - reduction * (year - cap_start[s])
        cap = first[s] * (left if left > 0.0 else 0.0)  # Python's max(0.0, left)
        if totals[s] > 0:
            factor[s] = cap / totals[s]
    for j in range(run_sector.size):
        lo, hi, s, k = runs[j], runs[j + 1], run_sector[j], run_key[j]
        m = hi - lo
        a, e, mk = alloc[lo:hi], emissions[lo:hi], market[lo:hi]
        f = factor[s]
        if f != 1.0:  # (x 1.0 changes nothing)
            for i in range(m):
                a[i] = a[i] * f
        if exempt and not capped[s] and gas_never_short and gas[k]:
            for i in range(m):
                a[i] = _maximum(a[i], e[i]) if mk[i] else a[i]
        if exempt and not capped[s] and coal_capped and coal[k]:
            for i in range(m):
                a[i] = _maximum(a[i], e[i] / coal_divisor) if mk[i] else a[i]
    auctioned = add_reduce(alloc, n) * share
    free_share = 1.0 - share
    free = alloc  # (in place)
    for i in range(n):
        free[i] = alloc[i] * free_share
    if any_grand:
        for i in range(n):
            free[i] = free[i] + (emissions[i] if grand[i] else 0.0)
    return free, auctioned, first, newly


@numba.njit(cache=True, nogil=True)
def _maximum(a, b):  # pragma: no cover (compiled)
    """``np.maximum(a, b)`` of two floats: NaN if either is, ``b`` of two equal values."""
    return a if (a > b or np.isnan(a)) else b
