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

from model.clearing_kernels import key_bits, price_key, sort_keys


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
    cost ``base_cost x factor[option]`` and potential ``potential x emissions`` of the firms
    ``rows`` (a slot is usable if its option is available, its cost finite and its potential
    positive); the CSR arrays of the curves of the usable options ``in_curve`` (each firm's
    sorted by cost as it goes, then padded to the most any firm has), and
    the candidates (flat index, firm, lifetime, cost, potential)."""
    k = option.shape[1]
    n = rows.size
    uc = np.empty((n, k))  # each firm's usable curve options: cost, potential (sorted by cost)
    up = np.empty((n, k))
    cnt = np.zeros(n, dtype=np.int64)
    mc = n * k if candidates else 0
    flat, firm, life = np.empty(mc, np.int64), np.empty(mc, np.int64), np.empty(mc, np.int64)
    c_cost, c_tonnes = np.empty(mc), np.empty(mc)
    width, m = 1, 0
    for r in range(n):
        i = rows[r]
        e = emissions[i]
        u = 0
        for j in range(k):
            o = option[i, j]
            if o < 0 or not available[o]:
                continue
            c = base_cost[i, j] * factor[o]
            p = potential[i, j] * e
            if not (p > 0 and np.isfinite(c)):
                continue
            if in_curve[o]:
                u = insert_option(uc, up, r, u, c, p)
            if (candidates and lifetime[o] > 0
                    and not (slot_from[i, j] <= year < slot_until[i, j])):
                flat[m], firm[m], life[m] = i * k + j, i, lifetime[o]
                c_cost[m], c_tonnes[m] = c, p
                m += 1
        cnt[r] = u
        if u > width:
            width = u
    if not curves:
        return (np.zeros(1, dtype=np.int64), np.zeros(0), np.zeros(0), flat[:m], firm[:m],
                life[:m], c_cost[:m], c_tonnes[:m])
    start, a_pts, c_pts = step_points(uc, up, cnt, width)
    return start, a_pts, c_pts, flat[:m], firm[:m], life[:m], c_cost[:m], c_tonnes[:m]


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
def option_points_keyed(base_cost, factor, usable, potential, emissions, option, rows,
                        place):  # pragma: no cover (compiled)
    """:func:`option_points` and the sort keys of its knots (``clearing_kernels.sort_keys``)
    laid out by their slots' ``place`` (per flat slot index: distinct places from 0, or -1).
    In knot order if some knot's slot has no place (or a firm is twice in ``rows``). The
    knots are views of arrays for every slot of ``rows`` (no copies)."""
    k = option.shape[1]
    x, jump = np.empty(rows.size * k), np.empty(rows.size * k)
    knot_place = np.empty(rows.size * k, dtype=np.int32)
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
                knot_place[m] = place[i * k + j]
                m += 1
    n = 0  # places up to the last knot's
    for q in range(m):
        n = max(n, knot_place[q] + 1)
    at = np.full(n + 1, -1, dtype=np.int32)  # the knot at each place (at[n]: no place)
    for q in range(m):  # (apart from the loop above, which it would slow down ~2x)
        at[knot_place[q] if knot_place[q] >= 0 else n] = q
    key = np.empty(m + 1, dtype=np.int64)
    bits = x.view(np.int64)  # (the prices are finite: only -0.0 differs from price + 0.0)
    high = np.int64(-(1 << key_bits(m)))
    placed = 0
    for q in range(n):  # (no branch: places without a knot write a key the next overwrites)
        i = at[q]
        v = bits[i] if bits[i] != np.int64(-0x8000000000000000) else np.int64(0)
        key[placed] = price_key(v, high, i)
        placed += i >= 0
    if placed != m:
        return x[:m], jump[:m], sort_keys(x[:m], key_bits(m))
    return x[:m], jump[:m], key[:m]


@numba.njit(cache=True, nogil=True)
def firm_slots(option, firms, cost):  # pragma: no cover (compiled)
    """The option slots of the firms ``firms`` (a mask): their flat indices into the
    ``(n_firms, k)`` slots, in order, and their costs (yuan/t)."""
    n, k = option.shape
    slots, c = np.empty(n * k, dtype=np.int64), np.empty(n * k)
    m = 0
    for i in range(n):
        if firms[i]:
            for j in range(k):  # (no branch: a padding slot is overwritten by the next)
                slots[m], c[m] = i * k + j, cost[i, j]
                m += option[i, j] >= 0
    return slots[:m].copy(), c[:m].copy()


@numba.njit(cache=True, nogil=True)
def decline_places(slots, flat, group):  # pragma: no cover (compiled)
    """The place of each slot of ``slots`` (flat indices, in their order) once laid out by the
    decline ``group`` of their options (by group, then in the order given: a counting sort),
    per flat slot index; -1 for the other slots. ``flat``: the option of each flat slot."""
    n_groups = 0
    for g in range(group.size):
        n_groups = max(n_groups, group[g] + 1)
    start = np.zeros(n_groups + 1, dtype=np.int64)
    of = np.empty(slots.size, dtype=np.int64)  # each slot's group
    for q in range(slots.size):
        of[q] = group[flat[slots[q]]]
        start[of[q] + 1] += 1
    for g in range(n_groups):
        start[g + 1] += start[g]
    place = np.full(flat.size, -1, dtype=np.int32)
    for q in range(slots.size):
        place[slots[q]] = start[of[q]]
        start[of[q]] += 1
    return place


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
    """Each firm's sum of ``x`` over its slots in use in ``year``, in slot order."""
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
def candidate_averages(running, weight, per_row, row, firm, life, until,
                       year):  # pragma: no cover (compiled)
    """``running[row, top] / weight[row or 0, life]`` per candidate, ``top`` its lifetime or
    (with ``until``, each firm's last year) the years its firm is still active, at least 0."""
    out = np.empty(life.size)
    for c in range(life.size):
        top = life[c]
        if until.size:
            top = max(min(top, until[firm[c]] - (year - 1)), 0)
        out[c] = running[row[c], top] / weight[row[c] if per_row else 0, life[c]]
    return out


@numba.njit(cache=True, nogil=True)
def step_points(uc, up, cnt, width):  # pragma: no cover (compiled)
    """The CSR arrays (start, abatement, cost) of step curves from each firm's ``cnt`` usable
    options, sorted by cost (``uc``, yuan/t) with their potentials (``up``, t), padded to
    ``width`` options with zero-width steps after the firm's cheapest options (a firm without
    options: the zero curve)."""
    n = cnt.size
    a_pts, c_pts = np.empty(n * 2 * width), np.empty(n * 2 * width)  # (every point is set)
    for r in range(n):
        u = cnt[r]
        at = r * 2 * width
        if u == 0:
            for j in range(2 * width):
                a_pts[at + j] = c_pts[at + j] = 0.0
            continue
        cheapest = uc[r, 0]
        q = 0.0
        place = 0
        for t in range(u):  # the padding comes after the cheapest options
            c = uc[r, t]
            if t > 0 and c > cheapest and place == t:
                for _ in range(width - u):
                    a_pts[at + 2 * place] = q
                    a_pts[at + 2 * place + 1] = q + 0.0
                    c_pts[at + 2 * place] = cheapest
                    c_pts[at + 2 * place + 1] = cheapest
                    place += 1
            a_pts[at + 2 * place] = q
            q = q + up[r, t]
            a_pts[at + 2 * place + 1] = q
            c_pts[at + 2 * place] = c
            c_pts[at + 2 * place + 1] = c
            place += 1
        while place < width:
            a_pts[at + 2 * place] = q
            a_pts[at + 2 * place + 1] = q + 0.0
            c_pts[at + 2 * place] = c_pts[at + 2 * place - 1]
            c_pts[at + 2 * place + 1] = c_pts[at + 2 * place - 1]
            place += 1
    start = np.arange(0, (n + 1) * 2 * width, 2 * width).astype(np.int64)
    return start, a_pts, c_pts


@numba.njit(cache=True, nogil=True)
def market_slots(base_cost, factor, available, in_curve, potential, emissions, option, lifetime,
                 rows, slot_from, slot_until, slot_cost, cumulative, year, running, weight, path,
                 until):  # pragma: no cover (compiled)
    """The kernel of ``investment.market_year``: per firm of ``rows``, its slots' costs and
    potentials (as ``year_slots``), its curve's usable options, the capital options it adopts
    (a candidate adopts if its cost is below ``running[path, top] / weight[0, life]``, as
    ``candidate_averages``; the slot matrices are updated) and then the sums over its options
    in use (locked abatement, t; capital charges, yuan). The cumulative adoption grows by the
    potentials adopted, added up first in firm and slot order (as ``adopt_slots``)."""
    k = option.shape[1]
    n = rows.size
    uc = np.empty((n, k))
    up = np.empty((n, k))
    cnt = np.zeros(n, dtype=np.int64)
    locked, capex = np.zeros(n), np.zeros(n)
    added = np.zeros(cumulative.size)
    width = 1
    for r in range(n):
        i = rows[r]
        e = emissions[i]
        u = 0
        for j in range(k):
            o = option[i, j]
            if o < 0 or not available[o]:
                continue
            c = base_cost[i, j] * factor[o]
            p = potential[i, j] * e
            if not (p > 0 and np.isfinite(c)):
                continue
            if in_curve[o]:
                u = insert_option(uc, up, r, u, c, p)
            life = lifetime[o]
            if life > 0 and not (slot_from[i, j] <= year < slot_until[i, j]):
                top = life
                if until.size:
                    top = max(min(top, until[i] - (year - 1)), 0)
                if c < running[path[i], top] / weight[0, life]:
                    slot_from[i, j] = year
                    slot_until[i, j] = year + life
                    slot_cost[i, j] = c * p
                    added[o] += p
        cnt[r] = u
        if u > width:
            width = u
        a = q = 0.0
        for j in range(k):  # the options in use, adopted now included
            if slot_from[i, j] <= year < slot_until[i, j]:
                a += potential[i, j] * e
                q += slot_cost[i, j]
        locked[r], capex[r] = a, q
    for o in range(cumulative.size):
        cumulative[o] += added[o]
    start, a_pts, c_pts = step_points(uc, up, cnt, width)
    return start, a_pts, c_pts, locked, capex, step_segments(uc, up, cnt)


@numba.njit(cache=True, nogil=True)
def step_segments(uc, up, cnt):  # pragma: no cover (compiled)
    """The segments of positive width of the curves of :func:`step_points` (the
    ``clearing_kernels.segments`` of its points, without reading them): one flat step per
    option, ``(firm, a0, da, c0, dc)`` with ``da`` the difference of the step's end points as
    stored (their padding and the jumps between options have no width)."""
    m = 0
    for r in range(cnt.size):
        m += cnt[r]
    firm = np.empty(m, dtype=np.int64)
    a0, da, c0, dc = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    s = 0
    for r in range(cnt.size):
        q = 0.0
        for t in range(cnt[r]):
            end = q + up[r, t]
            d = end - q
            if d > 0:
                firm[s], a0[s], da[s], c0[s] = r, q, d, uc[r, t]
                dc[s] = uc[r, t] - uc[r, t]
                s += 1
            q = end
    return firm[:s], a0[:s], da[:s], c0[:s], dc[:s]


@numba.njit(cache=True, nogil=True)
def discounted_running(p, w):  # pragma: no cover (compiled)
    """``running[q, h] = sum_{k < h} p[q, k] w[k]`` for ``h = 0 .. w.size`` (yuan/t), summed as
    ``np.cumsum(p[:, :L] * w, axis=1)`` (one product, then the running sum, year by year)."""
    n, longest = p.shape[0], w.size
    running = np.zeros((n, longest + 1))
    for q in range(n):
        s = 0.0
        for h in range(longest):
            v = p[q, h] * w[h]
            s = v if h == 0 else s + v
            running[q, h + 1] = s
    return running


@numba.njit(cache=True, nogil=True)
def insert_option(uc, up, r, u, c, p):  # pragma: no cover (compiled)
    """Insert cost ``c`` and potential ``p`` into row ``r``'s ``u`` options sorted by cost,
    after those of equal cost (a stable insertion sort); returns the new count."""
    t = u
    while t > 0 and uc[r, t - 1] > c:
        uc[r, t] = uc[r, t - 1]
        up[r, t] = up[r, t - 1]
        t -= 1
    uc[r, t] = c
    up[r, t] = p
    return u + 1

