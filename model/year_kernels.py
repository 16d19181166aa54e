"""Compiled kernels (numba) of a year's settlement: firms' positions and the registry's book.

Each pass here replaces a dozen numpy calls over the market's firms (a few microseconds each,
most of a national year's settlement) with one loop: :func:`model.market.positions` (offsets,
trades, shortfall and costs of every firm at the equilibrium) and the yearly book of the
simulation (:meth:`model.model.CarbonMarket._simulate_year`: the market's results spread over
every firm of the registry).

As in :mod:`model.clearing_kernels`, each kernel gives the numpy code it replaced to the last
bit: the same operations in the same order, numpy's pairwise sums repeated by
:func:`model.clearing_kernels.add_reduce`, and ``np.maximum`` / ``np.minimum`` as numpy forms
them (:func:`maximum`, :func:`minimum`: a NaN wins, and of two equal values, zeros of either sign
included, the second).
"""

from __future__ import annotations

import numba
import numpy as np

from model.clearing_kernels import add_reduce


@numba.njit(cache=True, nogil=True, inline="always")
def maximum(a, b):  # pragma: no cover (compiled)
    """``np.maximum(a, b)`` of two floats, as numpy forms it."""
    if a != a:
        return a
    return a if a > b else b


@numba.njit(cache=True, nogil=True, inline="always")
def minimum(a, b):  # pragma: no cover (compiled)
    """``np.minimum(a, b)`` of two floats, as numpy forms it."""
    if a != a:
        return a
    return a if a < b else b


@numba.njit(cache=True, nogil=True)
def positions(abatement, emissions, holdings, banked, offsets, shortfall, surplus, ccer_price,
              cea_price, penalty):  # pragma: no cover (compiled)
    """:func:`model.market.positions` after the firms' abatement (t) is known.

    Args:
        abatement, emissions, holdings: Per firm, t.
        banked: Per firm (t; empty: no banking demand).
        offsets, shortfall, surplus: The equilibrium's totals, t.
        ccer_price, cea_price: yuan/t.
        penalty: yuan/t (0 where the penalty is infinite).

    Returns:
        ``(offsets, surrendered, cea_bought, shortfall, unsold, offset_cost, trade_cost,
        penalty_cost)`` per firm (t and yuan).
    """
    n = abatement.size
    verified = np.empty(n)
    for i in range(n):
        verified[i] = emissions[i] - abatement[i]
    tv = add_reduce(verified, n)
    o, need, net = np.zeros(n), np.empty(n), np.empty(n)
    for i in range(n):
        if tv > 0:  # offsets shared in proportion to verified emissions
            o[i] = offsets * verified[i] / tv
        need[i] = verified[i] - o[i]
        net[i] = (need[i] + banked[i] if banked.size else need[i]) - holdings[i]
    short, unsold = np.zeros(n), np.zeros(n)
    if shortfall > 0:  # a shortfall in proportion to net purchases
        buy = np.empty(n)
        for i in range(n):
            buy[i] = maximum(net[i], 0.0)
        total = add_reduce(buy, n)
        if total > 0:
            for i in range(n):
                short[i] = shortfall * buy[i] / total
    if surplus > 0:  # unsold allowances in proportion to net sales
        sell = np.empty(n)
        for i in range(n):
            sell[i] = maximum(-net[i], 0.0)
        total = add_reduce(sell, n)
        if total > 0:
            for i in range(n):
                unsold[i] = surplus * sell[i] / total
    surrendered, bought = np.empty(n), np.empty(n)
    offset_cost, trade_cost, penalty_cost = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        bought[i] = net[i] - short[i] + unsold[i]
        surrendered[i] = need[i] - short[i]
        offset_cost[i] = o[i] * ccer_price
        trade_cost[i] = bought[i] * cea_price
        penalty_cost[i] = short[i] * penalty
    return o, surrendered, bought, short, unsold, offset_cost, trade_cost, penalty_cost


@numba.njit(cache=True, nogil=True)
def book(n, index, offsets_m, surrendered_m, bought_m, shortfall_m, banked_m, grandfathered,
         emissions):  # pragma: no cover (compiled)
    """The year's book of the registry over all ``n`` firms from the market's arrays (firms
    ``index``; 0 elsewhere): CCER and CEA surrendered (a grandfathered firm surrenders its
    emissions), CEA bought, shortfall, borrowed (``max(-banked, 0)``), and net sales
    (``-bought``), t; and the total borrowed (summed over the market's firms, t)."""
    offsets, surrendered, bought = np.zeros(n), np.zeros(n), np.zeros(n)
    shortfall, borrowed, net_sales = np.zeros(n), np.zeros(n), np.empty(n)
    borrowed_m = np.empty(index.size)
    for r in range(index.size):
        i = index[r]
        offsets[i], surrendered[i] = offsets_m[r], surrendered_m[r]
        bought[i], shortfall[i] = bought_m[r], shortfall_m[r]
        b = -banked_m[r]
        borrowed_m[r] = borrowed[i] = maximum(b, 0.0)
    for i in range(n):
        if grandfathered[i]:
            surrendered[i] = emissions[i]
        net_sales[i] = -bought[i]
    return (offsets, surrendered, bought, shortfall, borrowed, net_sales,
            add_reduce(borrowed_m, index.size))


@numba.njit(cache=True, nogil=True)
def carry_limits(net_sales, base, multiple, index, capacity, banked_m):  # pragma: no cover
    """The carry-over limit of every firm for the year's ``net_sales`` (t), ``base + multiple x
    max(net sales, 0)`` (:func:`model.policy.carry_over_rule`; ``base`` alone for a NaN
    ``multiple``), and what each may hold into the next year: its limit, or for a firm of the
    market (``index``) more if its banking ``capacity`` or what it banks is more."""
    n = base.size
    limit = np.empty(n)
    for i in range(n):
        limit[i] = base[i] if multiple != multiple else base[i] + multiple * maximum(
            net_sales[i], 0.0)
    carry = limit.copy()
    for r in range(index.size):
        i = index[r]
        carry[i] = maximum(limit[i], maximum(capacity[r], banked_m[r]))
    return limit, carry
