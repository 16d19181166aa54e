"""Firms over time: plant retirement and entry, and per-firm output growth.

**Demography** (:func:`plan_demography`, :func:`demography`): per-firm output growth around the
sector rate, retirements and entrants from ``model/data/demography.csv``. All draws happen once,
when the population is planned, so that a firm keeps its growth rate and its retirement year
whatever the years simulated; the yearly call is then pure. The planned population carries
``active_from`` / ``active_until`` (entrants are in the arrays from the start, inactive before
their first year), so the firm arrays, the registry and the agents keep one size for the run.

Pure, vectorised functions (numpy only, no Mesa); :class:`model.model.CarbonMarket` plans the
demography once per population and asks for each year's multipliers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from model.mac import MACCurves
from model.population import Firms, demography_table

NEVER = 9999
"""``active_until`` of a firm that never retires (a year after any simulation)."""


@dataclass(frozen=True)
class Demography:
    """The planned demography of a population (see :func:`plan_demography`).

    Attributes:
        base_year: The population's base year (multipliers are 1 there).
        active_from: First year each firm operates (0 = from the start), shape ``(n_firms,)``.
        active_until: Last year each firm operates (``NEVER`` = no retirement).
        deviation: Each firm's output growth deviation from its sector rate, share/yr.
        group: Each firm's (sector, firm type) group index.
        weight: Base-year emissions of the incumbents (0 for entrants), t: the weights that keep
            each group's incumbent total on the sector path.
    """

    base_year: int
    active_from: np.ndarray
    active_until: np.ndarray
    deviation: np.ndarray
    group: np.ndarray
    weight: np.ndarray
    _years: dict[int, tuple[np.ndarray, np.ndarray]] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False)
    """:func:`demography` by year (the plan is fixed; a run asks for each year twice)."""


def is_active(firms: Firms, year: int) -> np.ndarray:
    """Firms operating in ``year`` from their ``active_from`` / ``active_until`` (None: all)."""
    active = np.ones(firms.n, dtype=bool)
    if firms.active_from is not None:
        active &= firms.active_from <= year
    if firms.active_until is not None:
        active &= year <= firms.active_until
    return active


def plan_demography(rng: np.random.Generator, firms: Firms, end_year: int, *,
                    table: pd.DataFrame | None = None) -> tuple[Firms, Demography]:
    """Draw growth deviations, retirements and entrants once for a run up to ``end_year``.

    Per (sector, firm type) row of ``table`` (default ``model/data/demography.csv``; types without
    a row have no spread, retirement or entry):

    * each firm's output grows at the sector rate times ``1 + d`` a year, ``d ~ N(0,
      growth_sigma)``; :func:`demography` rescales so that the incumbents' emission-weighted
      mean multiplier is 1, i.e. the group total follows the sector rate until firms retire;
    * each incumbent retires with probability ``retire_share``, its first year without output
      uniform in ``retire_from .. retire_until``;
    * ``round(entry_rate x n_type x years)`` entrants over the entry years after ``base_year`` up
      to ``end_year``, each with a first year uniform over them, copying a random incumbent of
      its type (options, MAC curve, user allocation) with emissions x ``entrant_size`` and
      intensity x ``entrant_intensity``. Entrant ids are ``entrant-<sector>-00001`` ....

    Args:
        rng: The only source of randomness (draw order fixed: deviations, retirements, entrants).
        firms: The base-year population (an existing ``active_from`` / ``active_until`` is kept
            and combined with the plan).
        end_year: Last simulated year (no entrant after it).
        table: A demography table with the columns of ``demography.csv``.

    Returns:
        The population with the entrants appended and ``active_from`` / ``active_until`` set,
        and its :class:`Demography`.
    """
    tab = demography_table() if table is None else table
    base, n = firms.base_year, firms.n
    groups, g = _group_keys(firms)
    tab_keys = tab["sector"].astype(str) + "|" + tab["firm_type"].astype(str)
    row = pd.Index(tab_keys).get_indexer(groups)
    has = row >= 0

    def col(name: str, default: float) -> np.ndarray:
        vals = tab[name].to_numpy(dtype=np.float64)
        return np.where(has, vals[np.maximum(row, 0)], default)

    sigma, share = col("growth_sigma", 0.0), col("retire_share", 0.0)
    r_lo = col("retire_from", base).astype(np.int64)
    r_hi = np.maximum(col("retire_until", base).astype(np.int64), r_lo)
    e_lo = np.maximum(col("entry_from", base), base + 1).astype(np.int64)
    e_hi = np.minimum(col("entry_until", base), end_year).astype(np.int64)
    size, intensity = col("entrant_size", 1.0), col("entrant_intensity", 1.0)
    rate = col("entry_rate", 0.0)
    n_group = np.bincount(g, minlength=groups.size)
    # incumbents
    deviation = np.maximum(sigma[g] * rng.standard_normal(n), -0.5)
    retire = rng.random(n) < share[g]
    first_off = rng.integers(r_lo[g], r_hi[g] + 1)
    until = np.where(retire, first_off - 1, NEVER)
    # entrants
    count = np.rint(rate * n_group * np.maximum(e_hi - e_lo + 1, 0)).astype(np.int64)
    eg = np.repeat(np.arange(groups.size), count)
    e_from = rng.integers(e_lo[eg], np.maximum(e_hi[eg], e_lo[eg]) + 1)
    members = np.argsort(g, kind="stable")
    offset = np.concatenate(([0], np.cumsum(n_group)[:-1]))
    template = members[offset[eg] + rng.integers(0, n_group[eg])]
    e_dev = np.maximum(sigma[eg] * rng.standard_normal(eg.size), -0.5)
    new = _entrants(firms, template, size[eg], intensity[eg])
    old_from = np.zeros(n, np.int64) if firms.active_from is None else firms.active_from
    old_until = np.full(n, NEVER, np.int64) if firms.active_until is None else firms.active_until
    active_from = np.concatenate((old_from, e_from)).astype(np.int64)
    active_until = np.concatenate((np.minimum(old_until, until), np.full(eg.size, NEVER)))
    planned = _append(firms, new, active_from, active_until.astype(np.int64))
    plan = Demography(base_year=base, active_from=planned.active_from,
                      active_until=planned.active_until,
                      deviation=np.concatenate((deviation, e_dev)),
                      group=np.concatenate((g, eg)),
                      weight=np.concatenate((firms.emissions, np.zeros(eg.size))))
    return planned, plan


def _group_keys(firms: Firms) -> tuple[np.ndarray, np.ndarray]:
    """The sorted unique ``"sector|firm_type"`` keys and each firm's index into them (as
    ``np.unique`` of the keys gives them; the strings are built for the few groups only)."""
    s_code, s_names = pd.factorize(firms.sector)
    t_code, t_names = pd.factorize(firms.firm_type)
    pairs, index = np.unique(s_code.astype(np.int64) * max(len(t_names), 1) + t_code,
                             return_inverse=True)
    keys = np.array([f"{s_names[p // len(t_names)]}|{t_names[p % len(t_names)]}"
                     for p in pairs.tolist()], dtype=str)
    order = np.argsort(keys, kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return keys[order], rank[index.reshape(-1)]


def demography(plan: Demography, year: int) -> tuple[np.ndarray, np.ndarray]:
    """Each firm's output multiplier on top of its sector path in ``year``, and the active mask.

    The multiplier is ``(1 + d_i) ** (year - base_year)`` divided by its emission-weighted mean
    over the incumbents of the firm's group (retired ones included, so retirements lower the
    total), and 0 for inactive firms, so that their output and emissions vanish and coverage
    (emissions >= threshold) drops them. Multiply output and unabated emissions by it.

    Returns:
        ``(multiplier, active)``, shape ``(n_firms,)`` each (read-only).
    """
    hit = plan._years.get(year)
    if hit is not None:
        return hit
    growth = (1.0 + plan.deviation) ** (year - plan.base_year)
    m = int(plan.group.max(initial=-1)) + 1
    num = np.bincount(plan.group, weights=plan.weight * growth, minlength=m)
    den = np.bincount(plan.group, weights=plan.weight, minlength=m)
    norm = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
    active = (plan.active_from <= year) & (year <= plan.active_until)
    out = np.where(active, growth / norm[plan.group], 0.0), active
    for a in out:
        a.flags.writeable = False
    if len(plan._years) > 256:
        plan._years.clear()
    plan._years[year] = out
    return out


def _entrants(firms: Firms, template: np.ndarray, size: np.ndarray,
              intensity: np.ndarray) -> Firms:
    """New firms copied from ``template`` incumbents, scaled in size and intensity."""
    sector = firms.sector[template]
    ids = np.empty(0, dtype=object)
    if template.size:  # numbered 1, 2, ... within each sector
        s = sector.astype(str)
        order = np.argsort(s, kind="stable")
        first = np.concatenate(([True], s[order][1:] != s[order][:-1]))
        start = np.maximum.accumulate(np.where(first, np.arange(template.size), 0))
        number = np.empty(template.size, dtype=np.int64)
        number[order] = np.arange(template.size) - start + 1
        digits = np.strings.zfill(number.astype(np.str_), 5)
        ids = np.strings.add(np.strings.add("entrant-", s), np.strings.add("-", digits))
        ids = ids.astype(object)
    return dataclasses.replace(
        firms, firm_id=ids, sector=sector, firm_type=firms.firm_type[template],
        emissions=firms.emissions[template] * size,
        output=firms.output[template] * size / intensity,
        allocation=None if firms.allocation is None else firms.allocation[template] * size,
        mac=firms.mac.select(template).scaled(size),
        options=None if firms.options is None else firms.options.take(template),
        active_from=None, active_until=None)


def _append(a: Firms, b: Firms, active_from: np.ndarray, active_until: np.ndarray) -> Firms:
    """The firms of ``a`` then ``b`` with the given activity years."""
    cat = np.concatenate
    mac = MACCurves(start=cat((a.mac.start[:-1], a.mac.start[-1] + b.mac.start)),
                    abatement=cat((a.mac.abatement, b.mac.abatement)),
                    cost=cat((a.mac.cost, b.mac.cost)))
    options = None
    if a.options is not None and b.options is not None:
        options = dataclasses.replace(a.options, cost=cat((a.options.cost, b.options.cost)),
                                      potential=cat((a.options.potential, b.options.potential)),
                                      option=cat((a.options.option, b.options.option)))
    return dataclasses.replace(
        a, firm_id=cat((a.firm_id, b.firm_id)), sector=cat((a.sector, b.sector)),
        firm_type=cat((a.firm_type, b.firm_type)), emissions=cat((a.emissions, b.emissions)),
        output=cat((a.output, b.output)),
        allocation=None if a.allocation is None else cat((a.allocation, b.allocation)),
        mac=mac, options=options, active_from=active_from, active_until=active_until)
