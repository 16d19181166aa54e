"""Firms over time: capital options with lock-in and technology learning.

Pure, vectorised building blocks (numpy only, no Mesa, no loop over firms) that the yearly step of
:class:`model.model.CarbonMarket` calls. Prices are in yuan/t CO2, quantities in t CO2 (per year
where they are flows), costs in yuan.

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

from dataclasses import dataclass

import numpy as np

from model.mac import Knots, MACCurves
from model.population import TechOptions


# ---------------------------------------------------------------------------------- costs
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
    factor = np.ones(options.n_options)
    if learning:
        c0 = options.initial_deployment
        cum = np.asarray(cumulative_adoption, dtype=np.float64)
        ratio = np.where(c0 > 0, np.maximum(cum, c0) / np.where(c0 > 0, c0, 1.0), 1.0)
        factor = ratio ** np.log2(1.0 - options.learning_rate)
        factor *= (1.0 - options.cost_decline) ** max(0, year - options.base_year)
    available = options.per_slot(year >= options.first_year, False)
    return np.where(available, options.cost * options.per_slot(factor, 1.0), np.inf)


def operational_curves(options: TechOptions, emissions: np.ndarray, year: int,
                       cumulative_adoption: np.ndarray, *, state: InvestmentState | None = None,
                       include_capital: bool = False, learning: bool = True,
                       costs: np.ndarray | None = None) -> MACCurves:
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
        costs: This year's :func:`option_costs` if already computed (saves the work).

    Returns:
        One curve per firm: flat at each option's cost over its potential (t), options sorted by
        cost; a firm without usable options gets the zero curve.
    """
    cost = (option_costs(options, year, cumulative_adoption, learning=learning)
            if costs is None else np.asarray(costs, dtype=np.float64))
    pot = options.tonnes(emissions)
    capital = options.per_slot(options.capital, False)
    include = ~capital
    if include_capital:
        if state is None:
            raise ValueError("include_capital needs the investment state")
        include |= capital & ~state.active(year)
    return _step_curves(cost, pot, include & (pot > 0) & np.isfinite(cost))


def option_knots(options: TechOptions, emissions: np.ndarray, year: int,
                 cumulative_adoption: np.ndarray, *, include_capital: bool = False,
                 learning: bool = True) -> Knots:
    """The aggregate supply of the firms' options in ``year`` (the knots of
    :func:`operational_curves` summed over firms, with nothing adopted yet), without building
    the per-firm curves: each usable option is a jump of its potential (t) at its cost (yuan/t).
    The perfect-foresight projection needs only this.
    """
    cost = option_costs(options, year, cumulative_adoption, learning=learning)
    pot = options.tonnes(emissions)
    use = (pot > 0) & np.isfinite(cost)
    if not include_capital:
        use &= ~options.per_slot(options.capital, False)
    return Knots(x=cost[use], jump=pot[use], slope=np.zeros(int(use.sum())))


def _step_curves(cost: np.ndarray, potential: np.ndarray, use: np.ndarray) -> MACCurves:
    """The step curves of each firm's usable slots (``use``), as ``MACCurves.from_options``
    gives them after compacting each firm's usable slots into the first columns (in slot order)
    and padding to the most any firm uses with zero-width options at the firm's cheapest cost.

    Built with whole-column operations over the few slots (numpy's sorts of many short rows are
    slow): an option's place is the number of usable options before it in a stable sort by cost
    (the cheaper ones, the equally cheap ones in earlier slots), after the padding if it is
    dearer than the cheapest. A firm without usable options gets the zero curve.
    """
    n, slots = use.shape
    use_t = use.T.copy()  # one contiguous row per slot
    c = np.where(use_t, cost.T, np.inf)
    count = np.zeros(n, dtype=np.int64)
    for j in range(slots):
        count += use_t[j]
    k = max(1, int(count.max(initial=0)))
    cheapest = _slot_reduce(np.minimum, c.T, np.inf)
    fill = np.where(np.isfinite(cheapest), cheapest, 0.0)
    pad = k - count
    c_sorted = np.repeat(fill, k)
    q = np.zeros(n * k)
    base = np.arange(n) * k
    used = [j for j in range(slots) if use_t[j].any()]  # slots no firm uses change nothing
    for j in used:
        place = base + np.where(c[j] > cheapest, pad, 0)
        for i in used:
            if i != j:
                place += (c[i] <= c[j]) if i < j else (c[i] < c[j])
        rows = np.flatnonzero(use_t[j])
        place = place[rows]
        c_sorted[place] = c[j, rows]
        q[place] = potential[rows, j]
    c_sorted, q = c_sorted.reshape(n, k), q.reshape(n, k)
    for j in range(1, k):  # cumulative abatement, as a cumsum
        q[:, j] += q[:, j - 1]
    a_pts = np.empty((n, 2 * k))
    a_pts[:, 0] = 0.0
    a_pts[:, 2::2] = q[:, :-1]
    a_pts[:, 1::2] = q
    c_pts = np.empty((n, 2 * k))
    c_pts[:, 0::2] = c_sorted
    c_pts[:, 1::2] = c_sorted
    return MACCurves(start=np.arange(n + 1, dtype=np.int64) * (2 * k), abatement=a_pts.ravel(),
                     cost=c_pts.ravel())


def _slot_reduce(ufunc: np.ufunc, x: np.ndarray, initial=0.0) -> np.ndarray:
    """``ufunc`` over the slots (axis 1) of a ``(n_firms, k)`` matrix, one slot after the other
    (for sums: in slot order). numpy's reductions along a short last axis are many times slower
    than these few whole-column operations."""
    if x.shape[1] == 0:
        return np.full(x.shape[0], initial, dtype=x.dtype)
    out = x[:, 0].copy()
    for j in range(1, x.shape[1]):
        ufunc(out, x[:, j], out=out)
    return out


# ---------------------------------------------------------------------------------- investment
@dataclass
class InvestmentState:
    """Adopted capital options of every firm and the cumulative adoption of every option.

    An option adopted in year ``y`` with lifetime ``L`` abates in years ``y .. y + L - 1``.
    Per-firm matrices are in the slot layout of :class:`TechOptions` (``option``);
    :attr:`adopted_from`, :attr:`adopted_until` and :attr:`annual_cost` give them with one column
    per option.

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
    horizon = max(1, int(lifetime.max(initial=0)))
    return _pv_average(_price_path(expected_prices, n_firms, horizon), discount_rate, lifetime)


def _pv_average(p: np.ndarray, discount_rate: np.ndarray | float, lifetime: np.ndarray,
                alive: np.ndarray | None = None, path: np.ndarray | None = None) -> np.ndarray:
    """:func:`pv_average` of the price paths ``p`` (``(n_paths, >= max lifetime)``).

    Args:
        p: The paths; firm ``i`` expects ``p[path[i]]`` (default: ``p[i]``).
        discount_rate: A scalar or one per firm.
        lifetime: ``(n_options,)`` or ``(n_firms, k)``.
        alive: Years per firm from the first (None: all): prices after them count as 0.
        path: Each firm's path, shape ``(n_firms,)``; firms that share a path (an expectation
            rule) share its sums.

    The sums run along a path one year after the other (as a cumsum does), so that stopping
    after ``alive`` years gives exactly the sum over the path with zeros afterwards.
    """
    length = np.maximum(lifetime, 1)
    longest = int(length.max(initial=1))
    r = np.asarray(discount_rate, dtype=np.float64)
    if r.ndim >= 1 and path is not None:  # weights per firm: one path per firm
        p, path = p[path], None
    r = r[:, None] if r.ndim == 1 else r
    w = (1.0 + r) ** -np.arange(longest, dtype=np.float64)
    pw = p[:, :longest] * w
    running = np.empty((longest, p.shape[0]))  # running[h, q]: path q's first h + 1 years
    running[0] = pw[:, 0]
    for h in range(1, longest):
        np.add(running[h - 1], pw[:, h], out=running[h])
    firm = np.arange(p.shape[0] if path is None else np.size(path))[:, None]
    row = firm if path is None else np.asarray(path)[:, None]
    top = length if alive is None else np.minimum(length, np.asarray(alive)[:, None])
    num = np.where(top > 0, running[np.maximum(top, 1) - 1, row], 0.0)
    den = np.cumsum(w, axis=-1)
    out = num / (den[length - 1] if den.ndim == 1 else den[firm, length - 1])
    return np.where(lifetime > 0, out, -np.inf)


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
    lifetime = np.asarray(lifetime, dtype=np.int64)
    life = np.append(lifetime, 0)[state.option]  # per slot; padding: never adopted
    n = costs.shape[0]
    cand = (life > 0) & (potential_t > 0) & np.isfinite(costs) & ~state.active(year)
    choice = _slot_reduce(np.logical_or, cand, False)  # firms with something to decide
    if eligible is not None:
        choice &= np.asarray(eligible, dtype=bool)
    rows = np.flatnonzero(choice)
    new = np.zeros_like(cand)
    if rows.size == 0:
        return new

    def sub(x):
        x = np.asarray(x, dtype=np.float64)
        return np.take(x, rows, axis=0) if x.ndim >= 1 and x.shape[0] == n else x

    rate, life_rows = sub(discount_rate), np.take(life, rows, axis=0)
    prices, which = sub(expected_prices), None
    if path is not None:
        prices, which = np.asarray(expected_prices, dtype=np.float64), np.asarray(path)[rows]
    if active_until is None and which is None and prices.ndim < 2:
        avg = pv_average(prices, rate, life_rows, n_firms=rows.size)
    else:  # with active_until, prices count until the firm closes (0 afterwards)
        horizon = max(1, int(lifetime.max(initial=0)))
        alive = (None if active_until is None
                 else np.clip(np.asarray(active_until)[rows] - year + 1, 0, horizon))
        prices = _price_path(prices, rows.size if which is None else None, horizon)
        avg = _pv_average(prices, rate, life_rows, alive, which)
    adopt = np.take(cand, rows, axis=0) & (np.take(costs, rows, axis=0) < avg)
    i, j = np.nonzero(adopt)  # row-major: by firm, then slot
    i = rows[i]
    new[i, j] = True
    pot = potential_t[i, j]
    state.slot_from[i, j] = year
    state.slot_until[i, j] = year + life[i, j]
    state.slot_cost[i, j] = costs[i, j] * pot
    state.cumulative += np.bincount(state.option[i, j], weights=pot,
                                    minlength=state.cumulative.size)
    return new


def locked_abatement(state: InvestmentState, potential_t: np.ndarray, year: int) -> np.ndarray:
    """Abatement by the capital options in use in ``year``, t per firm.

    Emissions after lock-in are ``unabated - locked = unabated x (1 - sum of adopted shares)``
    with ``potential_t = TechOptions.tonnes(unabated)`` of this year.
    """
    return _slot_reduce(np.add, np.where(state.active(year), potential_t, 0.0))


def capital_cost(state: InvestmentState, year: int) -> np.ndarray:
    """The yearly capital charge each firm pays in ``year`` for its options in use, yuan.

    The charge runs for the whole lifetime, also after the firm closes (a stranded investment).
    """
    return _slot_reduce(np.add, np.where(state.active(year), state.slot_cost, 0.0))
