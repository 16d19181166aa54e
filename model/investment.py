"""Firms over time: capital options with lock-in and technology learning.

Pure building blocks on arrays (no Mesa) that the yearly step of :class:`model.model.CarbonMarket`
calls; their loops over firms and option slots are compiled (:mod:`model.investment_kernels`).
Prices are in yuan/t CO2, quantities in t CO2 (per year where they are flows), costs in yuan.

**Technology options** (:class:`model.population.TechOptions`, the rows of
``model/data/technologies.csv`` drawn per firm by :func:`model.population.synthetic_firms`, in a
compact layout: per firm one slot per option of its sector, ``TechOptions.option`` mapping the
slots to table rows, so per-firm matrices are ``(n_firms, k)`` with ``k`` the most options of a
sector and per-option vectors are ``(n_options,)``):

* *operational* options are chosen each year: they make the yearly MAC curve that the market
  clears (:func:`operational_curves`);
* *capital* options are investments with a lifetime. A firm adopts one (:func:`decide`) when its
  levelised cost is below the present-value-weighted average of the firm's expected price path
  over the option's lifetime. Once adopted the option abates its share of the firm's unabated
  emissions every year of its lifetime whatever the price (lock-in, :func:`locked_abatement`), and
  the firm pays a yearly capital charge fixed at adoption (:func:`capital_cost`).

Design decision: capital options enter the market only through investment. By default the yearly
curve holds the operational options alone; ``include_capital=True`` adds the capital options not
adopted yet as if they could be rented for one year (the static model's reading of
``Firms.mac``). All shares are shares of *unabated* emissions and a firm's shares sum to at most
``MAX_POTENTIAL_SHARE``, so locked and operational abatement together never exceed emissions.

**Costs** (:func:`option_costs`): an option's cost in ``year`` is

    c = c0 * (C / C0) ** log2(1 - learning_rate) * (1 - cost_decline) ** (year - base_year)

with ``C`` the cumulative adoption of the option (t CO2/yr of abatement capacity adopted, starting
at ``C0 = initial_deployment``): each doubling of ``C`` cuts the cost by ``learning_rate``.
Cumulative adoption counts capital adoptions only (operational options learn with time alone).
Before the option's ``first_year`` its cost is ``+inf`` and nobody uses it.

Entry and retirement of plants are in :mod:`model.demography`.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import numpy as np

from model import investment_kernels as kernels
from model.mac import Knots, MACCurves, stable_argsort
from model.population import TechOptions

# ---------------------------------------------------------------------------------- slot layout
# The yearly functions below map per-option vectors onto the ``(n_firms, k)`` slots. What depends
# only on the layout and the option table (e.g. each slot's lifetime) is computed once and kept
# for read-only arrays, which are taken to never change: the shared population's are read-only
# (``model._synthetic_population``), so every year of every run of a sweep reuses it. Nothing
# derived from a writable array is kept.
_MEMO: dict[tuple, tuple[tuple[np.ndarray, ...], object]] = {}
_MEMO_SIZE = 64
_MEMO_LOCK = threading.Lock()


def _memo(name: str, arrays: tuple[np.ndarray, ...], build, *extra):
    """``build()``, a function of ``arrays`` (and ``extra``), kept while the arrays are all
    :func:`_frozen` (keyed by their identity, which the kept references pin). The result is
    shared: callers must not change it."""
    for a in arrays:
        if not isinstance(a, np.ndarray) or a.flags.writeable:  # it may change
            return build()
    key = (name, *map(id, arrays), *extra)
    hit = _MEMO.get(key)
    if hit is None:
        hit = (arrays, build())
        with _MEMO_LOCK:  # (the browser page runs models in several threads)
            if len(_MEMO) >= _MEMO_SIZE:
                _MEMO.pop(next(iter(_MEMO)))
            _MEMO[key] = hit
    return hit[1]


def _frozen(a: np.ndarray) -> bool:
    """Whether ``a`` is read-only (then its values are taken to never change)."""
    return isinstance(a, np.ndarray) and not a.flags.writeable


def _per_slot(option: np.ndarray, values: np.ndarray, fill) -> np.ndarray:
    """``TechOptions.per_slot``: per-option ``values`` at each slot, ``fill`` in padding."""
    values = np.asarray(values)
    return _gather(option, np.append(values, np.asarray(fill, dtype=values.dtype)))


def _gather(option: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[option]`` (the last entry in padding) with ``take``, faster than fancy indexing.
    For the shared population, whose firms have one of a few layouts (a sector's options), the
    table is gathered for each layout, then each firm's layout (fewer, larger reads)."""
    if not _frozen(option):
        return table.take(option)
    n = table.size - 1
    layouts, firm_layout = _memo("layouts", (option,), lambda: _layouts(option, n), n)
    return table.take(layouts).take(firm_layout, axis=0)


def _layouts(option: np.ndarray, n_options: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``option`` (padding at ``n_options``) and each firm's row."""
    layouts, firm_layout = np.unique(np.where(option < 0, n_options, option), axis=0,
                                     return_inverse=True)
    return layouts, firm_layout.reshape(-1)


# ---------------------------------------------------------------------------------- costs
def _cost_factor(options: TechOptions, year: int, cumulative_adoption: np.ndarray,
                 learning: bool) -> np.ndarray:
    """Each option's cost in ``year`` over its cost in ``options.base_year``, ``(n_options,)``
    (read-only: the parts that depend on the option table and the year alone are kept for the
    shared population)."""
    if not learning:
        return np.ones(options.n_options)
    c0 = options.initial_deployment
    rate, decline = options.learning_rate, options.cost_decline
    positive, c0_or_1, exponent, kept = _memo("factor", (c0, rate, decline), lambda: (
        bool((c0 > 0).all()), np.where(c0 > 0, c0, 1.0), np.log2(1.0 - rate), {}))
    years = max(0, year - options.base_year)
    time = kept.get(years)
    if time is None:  # the decline with time
        time = (1.0 - decline) ** years
        time.flags.writeable = False
        if len(kept) < 256:
            kept[years] = time
    if cumulative_adoption is c0:  # nothing adopted (the projection): 1 ** exponent * time
        return time
    factor = np.maximum(np.asarray(cumulative_adoption, dtype=np.float64), c0)
    factor /= c0_or_1  # the cumulative adoption over its start, never below 1
    if not positive:
        factor = np.where(c0 > 0, factor, 1.0)
    np.power(factor, exponent, out=factor)
    factor *= time
    return factor


def option_costs(options: TechOptions, year: int, cumulative_adoption: np.ndarray, *,
                 learning: bool = True) -> np.ndarray:
    """Each firm's cost of each of its options in ``year`` with learning and time decline.

    Args:
        options: The firms' options (costs in ``options.base_year``).
        year: The year of the costs.
        cumulative_adoption: Shape ``(n_options,)``, t CO2/yr of each option adopted so far,
            including ``options.initial_deployment`` (as in :attr:`InvestmentState.cumulative`).
        learning: False keeps the base-year costs (only availability applies).

    Returns:
        Shape ``(n_firms, k)`` (the slots of ``options.option``), yuan/t; ``+inf`` where
        ``year < first_year`` and in padding slots.
    """
    factor = _cost_factor(options, year, cumulative_adoption, learning)
    return kernels.slot_costs(options.cost, options.option, factor, year >= options.first_year)


def operational_curves(options: TechOptions, emissions: np.ndarray, year: int,
                       cumulative_adoption: np.ndarray, *, state: InvestmentState | None = None,
                       include_capital: bool = False, learning: bool = True) -> MACCurves:
    """The yearly step MAC curves of the firms from their available operational options.

    Args:
        options: The firms' options.
        emissions: Shape ``(n_firms,)``, unabated emissions this year, t/yr (potentials are
            shares of them).
        year: The year.
        cumulative_adoption: As in :func:`option_costs`.
        state: The investment state of the same firms (needed with ``include_capital``).
        include_capital: Also put the capital options that are not adopted (locked in) this year
            in the curve, as one-year options at their levelised cost.
        learning: As in :func:`option_costs`.

    Returns:
        One curve per firm: flat at each option's cost over its potential (t), options sorted by
        cost; a firm without usable options gets the zero curve.
    """
    usable = np.ones(options.n_options, dtype=bool) if include_capital else ~options.capital
    potential = options.potential
    if include_capital:
        if state is None:
            raise ValueError("include_capital needs the investment state")
        # the capital options in use are not in the curve: as if their potential were 0
        potential = np.where(_per_slot(options.option, options.capital, False)
                             & state.active(year), 0.0, potential)
    return year_options(options, emissions, np.arange(options.n_firms), year,
                        cumulative_adoption, in_curve=usable, potential=potential,
                        learning=learning).curves


@dataclass(frozen=True)
class YearOptions:
    """One year's options of some firms (``rows``): the MAC curves of their operational options
    and the capital options they may adopt (the candidates of :func:`adopt`).

    Attributes:
        rows: The firms, indices into the population (the curves are in this order).
        curves: Their step MAC curves (:func:`operational_curves`).
        flat: The candidate slots, flat indices into the ``(n_firms, k)`` slot matrices (by
            firm, then slot): capital options available this year, with a positive potential,
            not in use. Empty without an investment state.
        firm: The candidates' firms (indices into the population).
        life: Their options' lifetimes, years.
        cost: Their costs this year, yuan/t.
        tonnes: Their potentials this year, t/yr.
    """

    rows: np.ndarray
    curves: MACCurves
    flat: np.ndarray
    firm: np.ndarray
    life: np.ndarray
    cost: np.ndarray
    tonnes: np.ndarray


def year_options(options: TechOptions, emissions: np.ndarray, rows: np.ndarray, year: int,
                 cumulative_adoption: np.ndarray, state: InvestmentState | None = None, *,
                 in_curve: np.ndarray | None = None, potential: np.ndarray | None = None,
                 learning: bool = True) -> YearOptions:
    """The curves and the investment candidates of the firms ``rows`` in ``year``, in one pass
    over their slots (costs as :func:`option_costs`, potentials as ``options.tonnes``).

    Args:
        options, emissions, year, cumulative_adoption, learning: As in
            :func:`operational_curves` (``emissions`` of every firm, t/yr).
        rows: The firms (indices, increasing).
        state: The investment state (its candidates are found only with one).
        in_curve: Per option, whether it goes in the curve (default: the operational ones).
        potential: The slots' potential shares to use instead of ``options.potential``.
    """
    factor = _cost_factor(options, year, cumulative_adoption, learning)
    in_curve = ~options.capital if in_curve is None else in_curve
    slot_from = slot_until = np.zeros((0, 0), dtype=np.int64)
    if state is not None:
        slot_from, slot_until = state.slot_from, state.slot_until
    out = kernels.year_slots(options.cost, factor, year >= options.first_year, in_curve,
                             options.potential if potential is None else potential,
                             np.asarray(emissions, dtype=np.float64), options.option,
                             np.asarray(options.lifetime, dtype=np.int64),
                             np.asarray(rows, np.intp), slot_from, slot_until, year, True,
                             state is not None)
    start, a_pts, c_pts, flat, firm, life, cost, tonnes = out
    return YearOptions(np.asarray(rows), MACCurves(start=start, abatement=a_pts, cost=c_pts),
                       flat, firm, life, cost, tonnes)


def option_knots(options: TechOptions, emissions: np.ndarray, year: int,
                 cumulative_adoption: np.ndarray, *, include_capital: bool = False,
                 learning: bool = True, rows: np.ndarray | None = None) -> Knots:
    """The aggregate supply of the firms' options in ``year`` (the knots of
    :func:`operational_curves` summed over firms, with nothing adopted yet), without building
    the per-firm curves: each usable option is a jump of its potential (t) at its cost (yuan/t),
    by firm, then slot. The perfect-foresight projection needs only this.

    ``rows``: only these firms (indices, in this order), as if ``options`` and ``emissions`` were
    taken at them.
    """
    x, jump = kernels.option_points(*_knot_inputs(options, emissions, year, cumulative_adoption,
                                                  include_capital, learning, rows))
    return Knots.steps(x, jump)


def option_knots_keyed(options: TechOptions, emissions: np.ndarray, year: int,
                       cumulative_adoption: np.ndarray, place: np.ndarray, *,
                       include_capital: bool = False, learning: bool = True,
                       rows: np.ndarray | None = None) -> tuple[Knots, np.ndarray]:
    """:func:`option_knots` and the sort keys of its knots for
    :func:`model.mac.stable_argsort`, laid out by their slots' ``place`` (:func:`cost_places`):
    a few runs already in order, which the sort merges."""
    x, jump, key = kernels.option_points_keyed(
        *_knot_inputs(options, emissions, year, cumulative_adoption, include_capital, learning,
                      rows), place)
    return Knots.steps(x, jump), key


def cost_places(options: TechOptions, firms: np.ndarray) -> np.ndarray:
    """Each option slot's place (per flat index into the ``(n_firms, k)`` slots) by the options'
    cost decline, then base cost (ties in slot order); -1: padding, firms not in ``firms`` (mask).

    With nothing adopted (the projection), an option's cost in a year is its base cost times a
    factor of its cost decline and the year: laid out by place, the projection's ~10,000 knots a
    year are a few runs already in order (one per decline), which the sort merges.
    """
    option = np.ascontiguousarray(options.option)
    slots, cost = kernels.firm_slots(option, np.asarray(firms, dtype=np.bool_),
                                     np.ascontiguousarray(options.cost, dtype=np.float64))
    decline = np.unique(options.cost_decline, return_inverse=True)[1].reshape(-1)
    return kernels.decline_places(slots[stable_argsort(cost)[0]], option.reshape(-1), decline)


def _knot_inputs(options: TechOptions, emissions: np.ndarray, year: int, adopted: np.ndarray,
                 capital: bool, learning: bool, rows: np.ndarray | None) -> tuple:
    """The arguments of the kernels of :func:`option_knots` (up to ``rows``)."""
    usable = (year >= options.first_year) & (capital | ~options.capital)  # per option
    return (options.cost, _cost_factor(options, year, adopted, learning), usable,
            options.potential, np.asarray(emissions, dtype=np.float64), options.option,
            np.arange(options.n_firms) if rows is None else np.asarray(rows, np.intp))


# ---------------------------------------------------------------------------------- investment
@dataclass
class InvestmentState:
    """Adopted capital options of every firm and the cumulative adoption of every option.

    An option adopted in year ``y`` with lifetime ``L`` abates in years ``y .. y + L - 1``.
    Per-firm matrices are in the slot layout of :class:`TechOptions` (``option``);
    :attr:`adopted_from`, :attr:`adopted_until` and :attr:`annual_cost` give them with one column
    per option. The slot matrices change only through :func:`decide`.

    Attributes:
        option: Shape ``(n_firms, k)``, the option (table row) of each slot, -1 for padding.
        slot_from: Same shape, year of the current adoption, 0 = never.
        slot_until: Same shape, first year without the option (``y + L``); 0 = not adopted.
        slot_cost: Same shape, the yearly capital charge fixed at adoption (levelised cost x the
            potential in the adoption year), yuan/yr.
        cumulative: Shape ``(n_options,)``, t CO2/yr: ``initial_deployment`` plus the potential
            of every adoption so far (replacements after a lifetime count again).
    """

    option: np.ndarray
    slot_from: np.ndarray
    slot_until: np.ndarray
    slot_cost: np.ndarray
    cumulative: np.ndarray

    @classmethod
    def new(cls, options: TechOptions) -> InvestmentState:
        """Nothing adopted; cumulative adoption at the options' initial deployment."""
        shape = options.cost.shape
        return cls(option=options.option, slot_from=np.zeros(shape, dtype=np.int64),
                   slot_until=np.zeros(shape, dtype=np.int64), slot_cost=np.zeros(shape),
                   cumulative=options.initial_deployment.astype(np.float64).copy())

    def active(self, year: int) -> np.ndarray:
        """Slots adopted and within their lifetime in ``year``, shape ``(n_firms, k)``."""
        return (self.slot_from <= year) & (year < self.slot_until)

    def _dense(self, values: np.ndarray) -> np.ndarray:
        out = np.zeros((self.option.shape[0], self.cumulative.size), dtype=values.dtype)
        firm, j = np.nonzero(self.option >= 0)
        out[firm, self.option[firm, j]] = values[firm, j]
        return out

    @property
    def adopted_from(self) -> np.ndarray:
        """Year of the current adoption per firm and option, ``(n_firms, n_options)``, 0 = never."""
        return self._dense(self.slot_from)

    @property
    def adopted_until(self) -> np.ndarray:
        """First year without the option per firm and option; 0 = not adopted."""
        return self._dense(self.slot_until)

    @property
    def annual_cost(self) -> np.ndarray:
        """The yearly capital charge per firm and option, yuan/yr."""
        return self._dense(self.slot_cost)


def pv_average(expected_prices: np.ndarray | float, discount_rate: np.ndarray | float,
               lifetime: np.ndarray, n_firms: int | None = None) -> np.ndarray:
    """Present-value-weighted average expected price over each option's lifetime.

    ``sum_k d^k p_k / sum_k d^k`` over ``k = 0 .. L - 1`` with ``d = 1 / (1 + r)``; a path
    shorter than the lifetime is extended with its last price.

    Args:
        expected_prices: yuan/t; shape ``(n_firms, horizon)`` with column ``k`` the price
            expected for ``year + k``, or ``(n_firms,)`` / a scalar for a flat path.
        discount_rate: 1/yr, a scalar or one per firm.
        lifetime: Years; shape ``(n_options,)`` (the same for every firm) or ``(n_firms, k)``
            (per firm and slot); lifetime 0 gets ``-inf``.
        n_firms: Number of firms when ``expected_prices`` is a scalar.

    Returns:
        Shape ``(n_firms, n_options)`` or ``(n_firms, k)``, yuan/t.
    """
    lifetime = np.asarray(lifetime, dtype=np.int64)
    if np.ndim(expected_prices) < 2:  # a flat path: the average is the price itself
        p = _price_path(expected_prices, n_firms, 1)
        return np.where(lifetime > 0, p, -np.inf)
    length = np.maximum(lifetime, 1)
    longest = int(length.max(initial=1))
    running, weight = _discounted_sums(_price_path(expected_prices, n_firms, longest),
                                       discount_rate, longest)
    firm = np.arange(running.shape[0])[:, None]
    out = running[firm, length] / (weight[length] if weight.ndim == 1 else weight[firm, length])
    return np.where(lifetime > 0, out, -np.inf)


def _discounted_sums(p: np.ndarray, discount_rate: np.ndarray | float,
                     longest: int) -> tuple[np.ndarray, np.ndarray]:
    """``running[q, h] = sum_{k < h} d^k p[q, k]`` (yuan/t) and ``weight[h] = sum_{k < h} d^k``
    (``weight[q, h]`` with a rate per path) for ``h = 0 .. longest``, ``d^k = (1 + r)^-k``: the
    average over ``L`` years with the prices after ``top <= L`` years counted as 0 (a firm that
    closes) is ``running[q, top] / weight[L]``. The sums run along a path one year after the
    other (a cumsum): the sum of the first ``h`` years is the same whatever the path's length."""
    r = np.asarray(discount_rate, dtype=np.float64)
    if r.ndim == 0:  # one rate (the model's): its weights are kept
        w, weight = _weights(float(r), longest)
        if p.ndim == 2 and p.shape[1] >= longest:  # (numpy's cumsum, in one compiled pass)
            return kernels.discounted_running(np.asarray(p, dtype=np.float64), w), weight
    else:
        w, weight = _weights_of(r[:, None], longest)
    running = np.zeros((p.shape[0], longest + 1))
    np.cumsum(p[:, :longest] * w, axis=1, out=running[:, 1:])
    return running, weight


def _weights_of(r: np.ndarray | float, longest: int) -> tuple[np.ndarray, np.ndarray]:
    """The discount weights ``(1 + r)^-k``, ``k < longest``, and their sums from ``h = 0``."""
    w = (1.0 + np.asarray(r, dtype=np.float64)) ** -np.arange(longest, dtype=np.float64)
    weight = np.zeros((*w.shape[:-1], longest + 1))
    np.cumsum(w, axis=-1, out=weight[..., 1:])
    return w, weight


@functools.lru_cache(maxsize=16)
def _weights(r: float, longest: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_weights_of` of one rate, kept (read-only)."""
    w, weight = _weights_of(r, longest)
    w.flags.writeable = weight.flags.writeable = False
    return w, weight


def _price_path(expected_prices: np.ndarray | float, n_firms: int | None,
                horizon: int) -> np.ndarray:
    """Expected prices as ``(n_firms, horizon)``: flat paths broadcast, short ones extended."""
    p = np.asarray(expected_prices, dtype=np.float64)
    if p.ndim < 2:
        p = np.broadcast_to(np.reshape(p, (-1, 1)), (p.size if n_firms is None else n_firms, 1))
    if p.shape[1] < horizon:
        p = np.concatenate((p, np.repeat(p[:, -1:], horizon - p.shape[1], axis=1)), axis=1)
    return p[:, :horizon]


def decide(state: InvestmentState, costs: np.ndarray, expected_prices: np.ndarray | float,
           discount_rate: np.ndarray | float, year: int, lifetime: np.ndarray,
           potential_t: np.ndarray, *, eligible: np.ndarray | None = None,
           active_until: np.ndarray | None = None, path: np.ndarray | None = None) -> np.ndarray:
    """Firms adopt the capital options that pay at their expected prices; updates ``state``.

    A firm adopts an available capital option (finite cost, positive potential, not in use) iff
    its levelised cost is strictly below :func:`pv_average` of its expected price path over the
    option's lifetime, i.e. iff the net present value of abating at the locked cost is positive.
    The adoption abates from ``year`` to ``year + lifetime - 1`` (lock-in) at a yearly charge of
    ``cost x potential_t`` yuan fixed now, and adds ``potential_t`` to the cumulative adoption.

    Args:
        state: Updated in place.
        costs: Shape ``(n_firms, k)``, this year's costs (:func:`option_costs`), yuan/t.
        expected_prices: The firms' expected price paths from ``year`` on (see
            :func:`pv_average`), yuan/t.
        discount_rate: 1/yr, a scalar or one per firm.
        year: The year of the decision (the first year the option abates).
        lifetime: Shape ``(n_options,)``, years; 0 marks operational options (never adopted).
        potential_t: Shape ``(n_firms, k)``, t/yr each slot's option would abate this year.
        eligible: Shape ``(n_firms,)``, firms that may invest (e.g. the covered ones); default all.
        active_until: Shape ``(n_firms,)``, each firm's last year; expected prices after it count
            as 0 (a firm that closes earlier recovers less of the investment). Default: never.
        path: Shape ``(n_firms,)``, each firm's row of ``expected_prices``, which then holds the
            distinct paths ``(n_paths, horizon)`` (firms with one expectation rule share one, and
            its discounted sums are computed once). Default: row ``i`` for firm ``i``.

    Returns:
        The slots adopted now, boolean ``(n_firms, k)``.
    """
    costs = np.asarray(costs, dtype=np.float64)
    n, k = costs.shape
    rows = np.arange(n) if eligible is None else np.flatnonzero(eligible)
    ones = np.ones(max(n, np.size(lifetime)))  # (x 1.0 changes nothing)
    _, _, _, flat, firm, life, cost, tonnes = kernels.year_slots(
        costs, ones, np.ones(np.size(lifetime), dtype=bool), np.zeros(np.size(lifetime), bool),
        np.asarray(potential_t, dtype=np.float64), ones, state.option,
        np.asarray(lifetime, dtype=np.int64), rows, state.slot_from, state.slot_until, year,
        False, True)
    new = np.zeros((n, k), dtype=bool)
    adopt(state, YearOptions(rows, None, flat, firm, life, cost, tonnes), expected_prices,
          discount_rate, year, active_until=active_until, path=path, new=new)
    return new


def adopt(state: InvestmentState, options: YearOptions, expected_prices: np.ndarray | float,
          discount_rate: np.ndarray | float, year: int, *,
          active_until: np.ndarray | None = None, path: np.ndarray | None = None,
          new: np.ndarray | None = None) -> None:
    """:func:`decide` for the candidates of :func:`year_options` (the arguments as there;
    ``new``, if given, marks the slots adopted)."""
    if options.flat.size == 0:
        return
    average = _candidate_averages(expected_prices, discount_rate, year, options.life,
                                  options.firm, state.option.shape[0], active_until, path)
    kernels.adopt_slots(options.flat, options.life, average, options.cost, options.tonnes,
                        state.option, year, np.zeros((0, 0), dtype=bool) if new is None else new,
                        state.slot_from, state.slot_until, state.slot_cost, state.cumulative)


def _candidate_averages(expected_prices: np.ndarray | float, discount_rate: np.ndarray | float,
                        year: int, life: np.ndarray, firm: np.ndarray, n: int,
                        active_until: np.ndarray | None, path: np.ndarray | None) -> np.ndarray:
    """:func:`pv_average` for :func:`decide`'s candidate slots only: options of ``life`` years
    (>= 1) of the firms ``firm`` (sorted), ``n`` firms in all, the other arguments as there. The
    discounted sums of each distinct path (of each firm with a candidate if the rate is one per
    firm) are computed once, then each candidate looks its average up."""
    prices = np.asarray(expected_prices, dtype=np.float64)
    if active_until is None and path is None and prices.ndim < 2:
        flat = prices.reshape(-1)  # a flat path: the average is the price itself
        return flat.take(firm) if flat.size == n else np.broadcast_to(flat, firm.shape)
    longest = int(life.max())
    r = np.asarray(discount_rate, dtype=np.float64)
    per_firm = r.ndim >= 1 and r.shape[0] == n  # weights per firm
    if path is not None and not per_firm:  # a few shared paths
        table, row = _price_path(prices, None, longest), np.asarray(path).take(firm)
    else:  # one path per firm with a candidate
        change = np.empty(firm.size, dtype=bool)
        change[0] = True
        np.not_equal(firm[1:], firm[:-1], out=change[1:])
        firms = firm[change]
        row = np.cumsum(change) - 1
        if path is not None:
            prices = _price_path(prices, None, longest)[np.asarray(path)[firms]]
        elif prices.ndim >= 1 and prices.shape[0] == n:
            prices = prices[firms]
        table = _price_path(prices, firms.size, longest)
        r = r[firms] if per_firm else r
    running, weight = _discounted_sums(table, r, longest)
    # each candidate's discounted sum up to its lifetime, or to its firm's last year (prices
    # after it count as 0), over the weights of its lifetime
    until = np.zeros(0, np.int64) if active_until is None else np.asarray(active_until, np.int64)
    return kernels.candidate_averages(running, np.atleast_2d(weight), weight.ndim == 2,
                                      np.asarray(row, np.int64), firm, life, until, year)


def locked_abatement(state: InvestmentState, potential_t: np.ndarray, year: int) -> np.ndarray:
    """Abatement by the capital options in use in ``year``, t per firm.

    Emissions after lock-in are ``unabated - locked = unabated x (1 - sum of adopted shares)``
    with ``potential_t = TechOptions.tonnes(unabated)`` of this year.
    """
    return _sum_in_use(state, potential_t, year)


def capital_cost(state: InvestmentState, year: int) -> np.ndarray:
    """The yearly capital charge each firm pays in ``year`` for its options in use, yuan.

    The charge runs for the whole lifetime, also after the firm closes (a stranded investment).
    """
    return _sum_in_use(state, state.slot_cost, year)


def _sum_in_use(state: InvestmentState, x: np.ndarray, year: int) -> np.ndarray:
    """Each firm's sum of ``x`` (``(n_firms, k)``) over its slots in use in ``year``, in slot
    order."""
    return kernels.sum_active(state.slot_from, state.slot_until, np.asarray(x, dtype=np.float64),
                              year)


@dataclass(frozen=True)
class MarketYear:
    """The market's firms in one year (:func:`market_year`), arrays over them.

    Attributes:
        curves: Their step MAC curves of the operational options (costs before this year's
            adoptions: learning from them shows next year).
        locked: The abatement locked in by their capital options in use, t.
        capital_cost: The yearly capital charges of those options, yuan.
    """

    curves: MACCurves
    locked: np.ndarray
    capital_cost: np.ndarray


def market_year(options: TechOptions, emissions: np.ndarray, rows: np.ndarray, year: int,
                state: InvestmentState, expected_prices: np.ndarray, discount_rate: float, *,
                path: np.ndarray, active_until: np.ndarray | None = None,
                learning: bool = True) -> MarketYear:
    """:func:`year_options`, :func:`adopt` and :func:`locked_abatement` / :func:`capital_cost`
    of the firms ``rows`` in one pass over their slots (the yearly step of the model): the
    curves, the adoptions (``state`` is updated) and the options in use after them.

    Args:
        options, emissions, year, learning: As in :func:`year_options`.
        rows: The firms in the market (indices, increasing): they may invest.
        state: The investment state, updated in place.
        expected_prices: The distinct expected price paths ``(n_paths, horizon)``, yuan/t, at
            least as long as the longest lifetime; ``path``: each firm's row.
        discount_rate: 1/yr.
        active_until: Each firm's last year (prices after it count as 0), as in :func:`decide`.
    """
    factor = _cost_factor(options, year, state.cumulative, learning)
    longest = options.longest_lifetime
    running, weight = _discounted_sums(
        _price_path(np.asarray(expected_prices, dtype=np.float64), None, longest),
        float(discount_rate), longest)
    until = np.zeros(0, np.int64) if active_until is None else np.asarray(active_until, np.int64)
    start, a_pts, c_pts, locked, capex, segments = kernels.market_slots(
        options.cost, factor, year >= options.first_year, options.operational, options.potential,
        np.asarray(emissions, dtype=np.float64), options.option,
        np.asarray(options.lifetime, dtype=np.int64), np.asarray(rows, np.intp),
        state.slot_from, state.slot_until, state.slot_cost, state.cumulative, year, running,
        np.atleast_2d(weight), np.asarray(path, np.int64), until)
    curves = MACCurves(start=start, abatement=a_pts, cost=c_pts)
    curves.__dict__["_segments"] = (*segments, True)  # (read off the options: flat steps)
    return MarketYear(curves, locked, capex)
