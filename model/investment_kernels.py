"""Compiled loops over the firms' option slots for :mod:`model.investment` (numba).

The yearly step of a national run evaluates a few thousand firms with a few options each. Written
as numpy calls, each of its many small steps costs ~5-30 µs of overhead whatever the size; the
loops over firms and slots are compiled instead, and one pass gives a year's costs, potentials,
step curves and investment candidates. Each kernel is the inside of a documented function of
:mod:`model.investment` (which says what it computes, with units) and adds the same numbers in
the same order as the numpy code it replaced, so results are the same to the last bit (tested
against numpy references in ``tests/test_investment.py``). Compiled code is cached in
``__pycache__`` (first use of a new install compiles, ~10 s).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def slot_costs(cost, option, factor, available):  # pragma: no cover (compiled)
    """``cost x factor[option]`` per slot; ``+inf`` in padding and unavailable options."""
    n, k = cost.shape
    out = np.empty((n, k))
    for i in range(n):
        for j in range(k):
            o = option[i, j]
            out[i, j] = cost[i, j] * factor[o] if o >= 0 and available[o] else np.inf
    return out


@numba.njit(cache=True, nogil=True)
def year_slots(base_cost, factor, available, in_curve, potential, emissions, option, lifetime,
               rows, slot_from, slot_until, year, curves, candidates):  # pragma: no cover
    """The kernel of ``investment.year_options`` (and of ``decide``, without curves): each slot's
    cost ``base_cost x factor[option]`` (``+inf`` if unavailable) and potential
    ``potential x emissions`` of the firms ``rows``; their curves' CSR arrays, and the
    candidates (flat index, firm, lifetime, cost, potential)."""
    k = option.shape[1]
    n = rows.size
    cost = np.empty((n, k))
    pot = np.empty((n, k))
    use = np.zeros((n, k), dtype=np.bool_)
    flat = np.empty(n * k if candidates else 0, dtype=np.int64)
    width, m = 1, 0
    for r in range(n):
        i = rows[r]
        count = 0
        for j in range(k):
            o = option[i, j]
            c = base_cost[i, j] * factor[o] if o >= 0 and available[o] else np.inf
            p = potential[i, j] * emissions[i]
            cost[r, j], pot[r, j] = c, p
            if o < 0 or not (p > 0 and np.isfinite(c)):
                continue
            if in_curve[o]:
                use[r, j] = True
                count += 1
            if (candidates and lifetime[o] > 0
                    and not (slot_from[i, j] <= year < slot_until[i, j])):
                flat[m] = i * k + j
                m += 1
        width = max(width, count)
    flat = flat[:m]
    firm = flat // k
    life = np.empty(m, dtype=np.int64)
    c_cost, c_tonnes = np.empty(m), np.empty(m)
    r = 0
    for c in range(m):
        while rows[r] != firm[c]:
            r += 1
        j = flat[c] - firm[c] * k
        life[c], c_cost[c], c_tonnes[c] = lifetime[option[firm[c], j]], cost[r, j], pot[r, j]
    if not curves:
        return (np.zeros(1, dtype=np.int64), np.zeros(0), np.zeros(0), flat, firm, life, c_cost,
                c_tonnes)
    a_pts, c_pts = np.zeros(n * 2 * width), np.zeros(n * 2 * width)
    order = np.empty(k, dtype=np.int64)
    for r in range(n):
        u = 0
        for j in range(k):
            if use[r, j]:
                order[u] = j
                u += 1
        firm_points(cost[r], pot[r], order, u, width, a_pts, c_pts, r * 2 * width)
    start = np.arange(0, (n + 1) * 2 * width, 2 * width).astype(np.int64)
    return start, a_pts, c_pts, flat, firm, life, c_cost, c_tonnes


@numba.njit(cache=True, nogil=True)
def option_points(base_cost, factor, usable, potential, emissions, option,
                  rows):  # pragma: no cover (compiled)
    """The knots of ``investment.option_knots``: each usable slot's cost ``base_cost x
    factor[option]`` and potential ``potential x emissions`` (finite cost, positive potential)
    of the firms ``rows``, by firm, then slot."""
    k = option.shape[1]
    x, jump = np.empty(rows.size * k), np.empty(rows.size * k)
    m = 0
    for r in range(rows.size):
        i = rows[r]
        for j in range(k):
            o = option[i, j]
            if o < 0 or not usable[o]:
                continue
            c = base_cost[i, j] * factor[o]
            p = potential[i, j] * emissions[i]
            if np.isfinite(c) and p > 0:
                x[m], jump[m] = c, p
                m += 1
    return x[:m].copy(), jump[:m].copy()


@numba.njit(cache=True, nogil=True)
def step_points(cost, potential, use):  # pragma: no cover (compiled)
    """The CSR arrays of ``investment._step_curves``: ``start``, ``abatement`` and ``cost``."""
    n, slots = use.shape
    k = 1
    for i in range(n):
        k = max(k, use[i].sum())
    a_pts, c_pts = np.zeros(n * 2 * k), np.zeros(n * 2 * k)
    order = np.empty(slots, dtype=np.int64)
    for i in range(n):
        m = 0
        for j in range(slots):
            if use[i, j]:
                order[m] = j
                m += 1
        firm_points(cost[i], potential[i], order, m, k, a_pts, c_pts, i * 2 * k)
    return np.arange(0, (n + 1) * 2 * k, 2 * k).astype(np.int64), a_pts, c_pts


@numba.njit(cache=True, nogil=True)
def firm_points(cost, potential, order, m, k, a_pts, c_pts, at):  # pragma: no cover
    """One firm's step curve from its ``m`` usable slots ``order[:m]`` (in slot order; sorted
    here by cost, stably), padded to ``k`` options, written at ``at`` of the point arrays."""
    for t in range(1, m):  # insertion sort (a firm has a few options)
        j = order[t]
        u = t
        while u > 0 and cost[order[u - 1]] > cost[j]:
            order[u] = order[u - 1]
            u -= 1
        order[u] = j
    if m == 0:
        return  # the zero curve (the arrays hold zeros)
    cheapest = cost[order[0]]
    q = 0.0
    place = 0
    for t in range(m):
        c = cost[order[t]]
        if t > 0 and c > cheapest and place == t:  # the padding, after the cheapest
            for _ in range(k - m):
                a_pts[at + 2 * place] = q
                a_pts[at + 2 * place + 1] = q + 0.0
                c_pts[at + 2 * place] = cheapest
                c_pts[at + 2 * place + 1] = cheapest
                place += 1
        a_pts[at + 2 * place] = q
        q = q + potential[order[t]]
        a_pts[at + 2 * place + 1] = q
        c_pts[at + 2 * place] = c
        c_pts[at + 2 * place + 1] = c
        place += 1
    while place < k:  # the padding at the end (every option at the cheapest cost)
        a_pts[at + 2 * place] = q
        a_pts[at + 2 * place + 1] = q + 0.0
        c_pts[at + 2 * place] = c_pts[at + 2 * place - 1]
        c_pts[at + 2 * place + 1] = c_pts[at + 2 * place - 1]
        place += 1


@numba.njit(cache=True, nogil=True)
def adopt_slots(flat, years, average, cost, tonnes, option, year, new, slot_from, slot_until,
           slot_cost, cumulative):  # pragma: no cover (compiled)
    """The candidates whose cost is below their ``average`` expected price adopt: the slot
    matrices, the cumulative adoption and ``new`` (if not empty) are updated in place."""
    k = option.shape[1]
    added = np.zeros(cumulative.size)  # (added up first, then to the cumulative adoption)
    for c in range(flat.size):
        if cost[c] < average[c]:
            i, j = flat[c] // k, flat[c] % k
            if new.size:
                new[i, j] = True
            slot_from[i, j] = year
            slot_until[i, j] = year + years[c]
            slot_cost[i, j] = cost[c] * tonnes[c]
            added[option[i, j]] += tonnes[c]
    for o in range(cumulative.size):
        cumulative[o] += added[o]


@numba.njit(cache=True, nogil=True)
def sum_active(slot_from, slot_until, x, year):  # pragma: no cover (compiled)
    n, k = x.shape
    out = np.zeros(n)
    for i in range(n):
        s = 0.0
        for j in range(k):
            if slot_from[i, j] <= year < slot_until[i, j]:
                s += x[i, j]
        out[i] = s
    return out


@numba.njit(cache=True, nogil=True)
def rows_in_use(slot_from, slot_until, potential, emissions, slot_cost, rows,
                 year):  # pragma: no cover (compiled)
    n, k = rows.size, potential.shape[1]
    locked, capex = np.zeros(n), np.zeros(n)
    for r in range(n):
        i = rows[r]
        a = c = 0.0
        for j in range(k):
            if slot_from[i, j] <= year < slot_until[i, j]:
                a += potential[i, j] * emissions[i]
                c += slot_cost[i, j]
        locked[r], capex[r] = a, c
    return locked, capex
