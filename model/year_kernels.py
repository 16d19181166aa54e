"""Compiled kernels (numba) of a year's settlement: firms' positions at the equilibrium.

The pass here replaces a dozen numpy calls over the market's firms (a few microseconds each,
most of a national year's settlement) with one loop: :func:`model.market.positions` (offsets,
trades, shortfall and costs of every firm at the equilibrium). The registry's book of the year
is one pass too (:meth:`model.ledger.Ledger.settle`).

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
