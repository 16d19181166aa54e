"""Compiled kernels (numba) of the market clearing.

The inversion of aggregate supply (:func:`model.market.solve_quantity`), the one-pass evaluation
of a supply (:meth:`model.mac.Knots.split_at`), the segments of MAC curves and their per-firm
evaluation (:class:`model.mac.MACCurves`), the firms' banking demand (:mod:`model.banking`) and
the parts of :func:`model.mac.stable_argsort` around numpy's sort.
Thin Python wrappers in those modules keep the public signatures; the kernels take plain arrays
and floats.

Each kernel gives the numpy code it replaced to the last bit: every floating-point sum is formed
in the same order. numpy's ``.sum()`` of a float64 array is a pairwise summation, repeated by
:func:`add_reduce`; ``np.bincount`` with weights adds in input order from 0.0; ``np.cumsum`` is
sequential, and ``base + np.cumsum(v)`` adds the base to each running sum.
"""

from __future__ import annotations

import numba
import numpy as np

SMALL = 2048  # knots sorted directly below this many (solve_quantity)
BUCKETS = 1024  # buckets of one bucketing pass


# ---------------------------------------------------------------------------------- sums
@numba.njit(cache=True, nogil=True)
def _block(a, lo, n):  # pragma: no cover (compiled)
    """numpy's ``pairwise_sum`` of ``a[lo:lo + n]`` for ``n <= 128``: a plain loop below 8,
    else 8 accumulators over strides of 8, combined pairwise, then the rest one by one."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    top = lo + n - n % 8
    i = lo + 8
    while i < top:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < lo + n:
        res += a[i]
        i += 1
    return res


@numba.njit(cache=True, nogil=True)
def _pairwise(a, lo, n):  # pragma: no cover (compiled)
    """numpy's ``pairwise_sum`` of ``a[lo:lo + n]``: above 128 the sum of the two halves split
    at ``n // 2`` rounded down to a multiple of 8 (the recursion on a stack of its own: numba's
    cache does not keep recursive functions)."""
    if n <= 128:
        return _block(a, lo, n)
    # the nodes from the root to the current one: start, size, left half's sum (once known)
    start, size = np.empty(64, np.int64), np.empty(64, np.int64)
    left, has_left = np.empty(64), np.zeros(64, np.bool_)
    d = 0
    start[0], size[0] = lo, n
    while True:
        while size[d] > 128:  # down the left halves to a block
            half = size[d] // 2
            half -= half % 8
            start[d + 1], size[d + 1], has_left[d + 1] = start[d], half, False
            d += 1
        v = _block(a, start[d], size[d])
        while True:  # up while the node is a right half
            d -= 1
            if d < 0:
                return v
            if not has_left[d]:  # v is the left half: on to the right one
                left[d], has_left[d] = v, True
                half = size[d] // 2
                half -= half % 8
                start[d + 1], size[d + 1], has_left[d + 1] = start[d] + half, size[d] - half, False
                d += 1
                break
            v = left[d] + v


@numba.njit(cache=True, nogil=True)
def add_reduce(a, n):  # pragma: no cover (compiled)
    """``a[:n].sum()`` as numpy forms it for a contiguous float64 array (0.0 + pairwise sum)."""
    return 0.0 + _pairwise(a, 0, n)


@numba.njit(cache=True, nogil=True)
def take_sums(a, b, index):  # pragma: no cover (compiled)
    """``(a.take(index).sum(), b.take(index).sum())`` as numpy forms them (a market's totals
    over its firms ``index``), in one call."""
    buf = np.empty(index.size)
    for i in range(index.size):
        buf[i] = a[index[i]]
    sum_a = add_reduce(buf, index.size)
    for i in range(index.size):
        buf[i] = b[index[i]]
    return sum_a, add_reduce(buf, index.size)


# ---------------------------------------------------------------------------------- knots
@numba.njit(cache=True, nogil=True)
def split_at(x, jump, slope, sloped, price):  # pragma: no cover (compiled)
    """``Knots.split_at`` at a finite price: ``(Q(price-), jumps at price)``."""
    n = x.size
    buf = np.empty(n)
    m = 0
    for i in range(n):
        if x[i] < price:
            buf[m] = jump[i]
            m += 1
    q = add_reduce(buf, m)
    if sloped:
        m = 0
        for i in range(n):
            if x[i] < price:
                buf[m] = slope[i] * (price - x[i])
                m += 1
        q += add_reduce(buf, m)
    m = 0
    for i in range(n):
        if x[i] == price:
            buf[m] = jump[i]
            m += 1
    return q, add_reduce(buf, m)


# ---------------------------------------------------------------------------------- solve
@numba.njit(cache=True, nogil=True)
def solve_quantity(x, jump, slope, cuts, sloped, target):  # pragma: no cover (compiled)
    """``market.solve_quantity`` on the joined knot sets (``cuts`` delimits them)."""
    n = x.size
    sx = slope * x if sloped else np.empty(0)
    cuts = cuts.copy()
    base = np.zeros(3)  # (jumps, slopes, slopes x prices) below the knots left
    if n > SMALL:
        b = np.empty(n, dtype=np.int16)
        u = _bucket_pass(x, jump, slope, sx, n, cuts, sloped, target, base, b)
        if u >= 0:  # the knots kept, compacted into new arrays (the inputs are left alone)
            m = cuts[-1]
            xw, jw = np.empty(m), np.empty(m)
            sw, sxw = np.empty(m if sloped else 0), np.empty(m if sloped else 0)
            _compact(x, jump, slope, sx, n, b, u, sloped, xw, jw, sw, sxw)
            while m > SMALL:
                u = _bucket_pass(xw, jw, sw, sxw, m, cuts, sloped, target, base, b)
                if u < 0:
                    break
                _compact(xw, jw, sw, sxw, m, b, u, sloped, xw, jw, sw, sxw)
                m = cuts[-1]
            return _final(xw, jw, sw, sxw, m, sloped, target, base)
    return _final(x, jump, slope, sx, n, sloped, target, base)


@numba.njit(cache=True, nogil=True)
def _bucket_pass(x, jump, slope, sx, n, cuts, sloped, target,
                 base, b):  # pragma: no cover (compiled)
    """One bucketing pass over ``x[:n]``: the bucket ``u`` that holds the crossing (-1: none)."""
    lo = hi = x[0]
    nan = False
    for i in range(n):
        v = x[i]
        nan |= np.isnan(v)
        lo = min(lo, v)
        hi = max(hi, v)
    if nan or not hi > lo:  # (with a NaN numpy's min and max are NaN: no pass)
        return -1
    width = (hi - lo) / BUCKETS
    if not (width > 0.0 and width < np.inf):  # (infinite prices: sorted directly)
        return -1
    edges = np.empty(BUCKETS + 1)
    for k in range(BUCKETS):
        edges[k] = lo + width * k
    edges[BUCKETS] = np.inf  # the last bucket holds hi itself
    for i in range(n):  # (a loop of its own: vectorised)
        b[i] = min(int((x[i] - lo) / width), BUCKETS - 1)
    sums = np.zeros((3, BUCKETS))
    part = np.empty((3, BUCKETS))
    for s in range(cuts.size - 1):
        if cuts[s + 1] <= cuts[s]:
            continue
        part[:] = 0.0
        for i in range(cuts[s], cuts[s + 1]):
            xi = x[i]
            k = np.intp(b[i])
            # Mend rounding so that bucket k holds exactly edges[k] <= x < edges[k + 1].
            if xi < edges[k]:
                k -= 1
            elif xi >= edges[k + 1]:  # (not after a step down: x < edges[k] is the new top)
                k += 1
            b[i] = k
            part[0, k] += jump[i]
            if sloped:
                part[1, k] += slope[i]
                part[2, k] += sx[i]
        for k in range(BUCKETS):  # sums over a bucket: set by set
            sums[0, k] += part[0, k]
            if sloped:
                sums[1, k] += part[1, k]
                sums[2, k] += part[2, k]
    # Q at each bucket's right edge (without jumps exactly there: they lie in the next bucket)
    u = 0
    cj = cs = cx = 0.0
    jj = ss = xx = 0.0
    prev_j, prev_s, prev_x = base[0], base[1], base[2]
    for k in range(BUCKETS):
        cj = sums[0, k] if k == 0 else cj + sums[0, k]
        jj = base[0] + cj
        if sloped:
            cs = sums[1, k] if k == 0 else cs + sums[1, k]
            cx = sums[2, k] if k == 0 else cx + sums[2, k]
            ss, xx = base[1] + cs, base[2] + cx
        edge = edges[k + 1]
        if np.isinf(edge):
            value = np.inf
        elif sloped:
            value = jj + ss * edge - xx
        else:
            value = jj
        if value >= target:
            u = k
            break
        prev_j, prev_s, prev_x = jj, ss, xx
    if u > 0:
        base[0] = prev_j
        if sloped:
            base[1], base[2] = prev_s, prev_x
    # each set's share of the knots kept
    kept = 0
    for s in range(cuts.size - 1):
        c = 0
        for i in range(cuts[s], cuts[s + 1]):
            c += b[i] == u
        cuts[s] = kept
        kept += c
    cuts[-1] = kept
    return u


@numba.njit(cache=True, nogil=True)
def _compact(x, jump, slope, sx, n, b, u, sloped, xo, jo, so, sxo):  # pragma: no cover (compiled)
    """The knots of bucket ``u`` in order into ``xo, jo, so, sxo`` (may be the inputs)."""
    m = 0
    for i in range(n):
        if b[i] == u:
            xo[m], jo[m] = x[i], jump[i]
            if sloped:
                so[m], sxo[m] = slope[i], sx[i]
            m += 1


@numba.njit(cache=True, nogil=True)
def _final(x, jump, slope, sx, n, sloped, target, base):  # pragma: no cover (compiled)
    """The crossing among the last ``n`` knots, sorted: ``(price, theta)``."""
    base_j, base_s, base_x = base[0], base[1], base[2]
    if n == 0:  # the crossing is on the slopes through an empty bucket
        return (target - base_j + base_x) / max(base_s, 1e-300), 1.0
    # The distinct prices left (ux) and where each knot is among them (inv), as np.unique.
    order = np.argsort(x[:n])
    ux = np.empty(n)
    inv = np.empty(n, dtype=np.intp)
    m = 0
    for t in range(n):
        i = order[t]
        if t == 0 or x[i] != x[order[t - 1]]:
            ux[m] = x[i]
            m += 1
        inv[i] = m - 1
    j_at, s_at, x_at = np.zeros(m), np.zeros(m), np.zeros(m)
    for i in range(n):  # (np.bincount: input order)
        j_at[inv[i]] += jump[i]
        if sloped:
            s_at[inv[i]] += slope[i]
            x_at[inv[i]] += sx[i]
    right, cs = np.empty(m), np.empty(m)
    cj = ccs = ccx = 0.0
    u = -1
    for k in range(m):
        cj = j_at[0] if k == 0 else cj + j_at[k]
        if sloped:
            ccs = s_at[0] if k == 0 else ccs + s_at[k]
            ccx = x_at[0] if k == 0 else ccx + x_at[k]
            cs[k] = base_s + ccs
            right[k] = (base_j + cj) + cs[k] * ux[k] - (base_x + ccx)  # Q(x_u), flats included
        else:
            right[k] = base_j + cj
        if u < 0 and right[k] >= target:
            u = k
    u = max(u, 0)
    if not right[u] >= target:  # beyond the last remaining knot, on the last slope
        s_after = cs[m - 1] if sloped else 0.0
        if s_after <= 0:  # target equals the total supply up to rounding
            return ux[m - 1], 1.0
        return ux[m - 1] + (target - right[m - 1]) / s_after, 1.0
    left = right[u] - j_at[u]
    if left < target:  # the crossing is the jump at ux[u]
        return ux[u], min(1.0, max(0.0, (target - left) / j_at[u]))
    # Otherwise on the slope just below ux[u].
    if not sloped:
        return ux[u], 0.0
    s_before = base_s if u == 0 else cs[u - 1]
    if s_before <= 0:
        return ux[u], 0.0
    if u == 0:
        p = (target - base_j + base_x) / s_before
    else:
        p = ux[u - 1] + (target - right[u - 1]) / s_before
    return min(p, ux[u]), 1.0


# ---------------------------------------------------------------------------------- MAC curves
@numba.njit(cache=True, nogil=True)
def segments(start, abatement, cost):  # pragma: no cover (compiled)
    """``MACCurves._widths`` (firm, a0, da, c0, dc of the segments of positive width) and
    whether all of them are flat."""
    m = 0
    for p in range(abatement.size - 1):
        m += abatement[p + 1] - abatement[p] > 0
    firm = np.empty(m, dtype=np.int64)
    a0, da, c0, dc = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    f = 0
    j = 0
    steps = True
    for p in range(abatement.size - 1):
        d = abatement[p + 1] - abatement[p]
        if d > 0:
            while start[f + 1] <= p:  # the firm whose points hold p
                f += 1
            firm[j], a0[j], da[j], c0[j] = f, abatement[p], d, cost[p]
            dc[j] = cost[p + 1] - cost[p]
            steps &= dc[j] == 0
            j += 1
    return firm, a0, da, c0, dc, steps


@numba.njit(cache=True, nogil=True)
def abatement_at(firm, da, c0, dc, n, steps, price, prices, theta):  # pragma: no cover (compiled)
    """``MACCurves.abatement_at`` at ``price`` (``prices[firm]`` if ``prices`` is not empty)."""
    out = np.zeros(n)
    per_firm = prices.size > 0
    at_ok = theta != 0.0  # (theta 0: the flats at the price are left out, as zeros)
    f, s = -1, 0.0  # the firm summed now and its running sum (kept in a register)
    for j in range(firm.size):
        if firm[j] != f:
            if f >= 0:
                out[f] = s
            f = firm[j]
            s = out[f]
        p = prices[f] if per_firm else price
        c = c0[j]
        if steps:  # flat segments only: all of those below the price, theta of those at it
            d = da[j]
            g = d * theta if at_ok and c == p else 0.0
            g = d if c < p else g
        elif dc[j] > 0:  # the share of a sloped segment below the price
            g = da[j] * min(max((p - c) / dc[j], 0.0), 1.0)
        else:
            g = da[j] * (1.0 if c < p else (theta if c == p else 0.0))
        s += g  # (np.bincount: in input order)
    if f >= 0:
        out[f] = s
    return out


@numba.njit(cache=True, nogil=True)
def cost_of(firm, a0, da, c0, dc, n, steps, abatement):  # pragma: no cover (compiled)
    """``MACCurves.cost_of``: each firm's area under its curve up to its ``abatement``."""
    out = np.zeros(n)
    f, s, a = -1, 0.0, 0.0  # the firm summed now, its running sum, its abatement
    for j in range(firm.size):
        if firm[j] != f:
            if f >= 0:
                out[f] = s
            f = firm[j]
            s, a = out[f], abatement[f]
        t = min(max(a - a0[j], 0.0), da[j])  # the part of the segment used
        cost = t * c0[j]
        if not steps:
            cost += dc[j] / da[j] * t * t / 2.0
        s += cost  # (np.bincount: in input order)
    if f >= 0:
        out[f] = s
    return out


# ---------------------------------------------------------------------------------- banking
@numba.njit(cache=True, nogil=True)
def banking_knots(threshold, capacity, borrowing):  # pragma: no cover (compiled)
    """``banking.banking_knots``: the thresholds and jumps of the firms that release a positive
    quantity, and their total capacity."""
    m = 0
    for i in range(capacity.size):
        m += capacity[i] + borrowing[i] > 0
    x, jump, kept = np.empty(m), np.empty(m), np.empty(m)
    m = 0
    for i in range(capacity.size):
        j = capacity[i] + borrowing[i]
        if j > 0:
            x[m], jump[m], kept[m] = threshold[i], j, capacity[i]
            m += 1
    return x, jump, add_reduce(kept, m)


@numba.njit(cache=True, nogil=True)
def firm_banking(threshold, capacity, borrowing, price, theta):  # pragma: no cover (compiled)
    """``banking.firm_banking`` at the allowance ``price`` with the share ``theta`` released."""
    out = np.empty(capacity.size)
    for i in range(capacity.size):
        t = threshold[i]
        out[i] = capacity[i] if t > price else -borrowing[i]
        if t == price:
            out[i] = capacity[i] - theta * (capacity[i] + borrowing[i])
    return out


@numba.njit(cache=True, nogil=True)
def banking_demand(index, carry, total, free, borrowing_share, rule, rule_threshold, perfect,
                   plan, path_bank):  # pragma: no cover (compiled)
    """``banking.demand`` of the firms ``index``: thresholds, capacities, borrowing and the
    planned bank of those with perfect foresight; whether any has it."""
    m = index.size
    threshold, capacity, borrow = np.empty(m), np.empty(m), np.empty(m)
    planned, free_m = np.zeros(m), np.empty(m)
    foresight = False
    for r in range(m):
        i = index[r]
        free_m[r] = free[i]
        capacity[r] = min(carry[i], total)
        borrow[r] = borrowing_share * free[i]
        threshold[r] = rule_threshold[rule[i]]
        foresight |= rule[i] == perfect
    if plan and foresight:  # they hold the path's bank in proportion to their allocation
        denominator = max(add_reduce(free_m, m), 1e-300)
        for r in range(m):
            if rule[index[r]] == perfect:
                v = path_bank * (free_m[r] * 1.0 / denominator)
                lo = -borrow[r]
                v = v if (np.isnan(v) or v > lo) else lo  # (numpy's clip, to the sign of zero)
                planned[r] = v if (np.isnan(v) or v < capacity[r]) else capacity[r]
                capacity[r], borrow[r] = 0.0, 0.0
            else:
                v = path_bank * (free_m[r] * 0.0 / denominator)
                lo = -borrow[r]
                v = v if (np.isnan(v) or v > lo) else lo
                planned[r] = v if (np.isnan(v) or v < capacity[r]) else capacity[r]
    return threshold, capacity, borrow, planned, foresight


# ---------------------------------------------------------------------------------- sorting
@numba.njit(cache=True, nogil=True)
def sort_keys(x, b):  # pragma: no cover (compiled)
    """:func:`model.mac.stable_argsort`'s int64 keys: each price's bits (``-0.0 -> 0.0``; the
    magnitude bits flipped for negative numbers, so the keys order as the prices) with the
    lowest ``b`` bits replaced by the index."""
    n = x.size
    y = np.empty(n)
    for i in range(n):
        y[i] = x[i] + 0.0
    key = y.view(np.int64)
    high = np.int64(-(1 << b))
    for i in range(n):
        key[i] = price_key(key[i], high, i)
    return key


@numba.njit(cache=True, nogil=True)
def price_key(bits, high, i):  # pragma: no cover (compiled)
    """:func:`sort_keys`' key of the price with bits ``bits`` (of ``price + 0.0``) at index
    ``i``; ``high`` masks the bits kept (``-2**b``)."""
    return ((bits ^ ((bits >> 63) & np.int64(0x7FFFFFFFFFFFFFFF))) & high) | i


@numba.njit(cache=True, nogil=True)
def unpack_keys(key, b, x, jump, out, xs):  # pragma: no cover (compiled)
    """The order (written over the sorted keys of :func:`sort_keys`, in place) and the sorted
    prices (written to ``xs``); returns whether some neighbours share their high bits but differ
    in price (then ordered by index, not price). With ``jump`` (t, one per price), its running
    sums in that order are written to ``out`` in the same pass (as :func:`running_sum`; redone if
    the order changes)."""
    n = key.size
    low = np.int64((1 << b) - 1)
    mixed = False
    sums = jump.size == n
    s, high = -0.0, np.int64(0)  # (-0.0 + v is v: the first sum is the first value)
    for i in range(n):
        k = key[i]
        o = k & low
        key[i] = o
        xs[i] = x[o]
        if sums:
            s += jump[o]
            out[i] = s
        if i > 0 and (k >> b) == high and xs[i] != xs[i - 1]:
            mixed = True
        high = k >> b
    return mixed


@numba.njit(cache=True, nogil=True)
def knot_counts(x, start, size, lo, hi, prices):  # pragma: no cover (compiled)
    """The knots at or below each price of a stack of sorted curves: row ``i`` of ``prices``
    (yuan/t) against the curve ``x[start[i]:start[i] + size[i]]`` (yuan/t), as
    ``np.searchsorted(curve, prices[i], side="right")`` (NaNs sort last); a row where
    ``lo[i] == hi[i]`` is ``lo[i]`` throughout (its counts are known).

    A row's prices come in increasing order (the candidates of a search): each count is
    searched from the one before, first in steps doubling away from it, so that near prices
    cost a few looks at the curve (which is mostly out of the cache)."""
    m, c = prices.shape
    k = np.empty((m, c), dtype=np.intp)
    for i in range(m):
        if not lo[i] < hi[i]:
            for j in range(c):
                k[i, j] = lo[i]
            continue
        a, n = start[i], size[i]
        left, q = 0, np.nan  # the count at the price before, and that price
        for j in range(c):
            p = prices[i, j]
            if _before(p, q):  # (not in order: from the first knot)
                left = 0
            # the first knot above p lies in [left, right]: step out from left, then bisect
            step, right = 1, n
            while left + step - 1 < n:
                if _before(p, x[a + left + step - 1]):
                    right = left + step - 1
                    break
                left += step
                step *= 2
            while left < right:
                mid = (left + right) >> 1
                if _before(p, x[a + mid]):
                    right = mid
                else:
                    left = mid + 1
            k[i, j], q = left, p
    return k


@numba.njit(cache=True, nogil=True, inline="always")
def _before(p, v):  # pragma: no cover (compiled)
    """Whether price ``p`` sorts before ``v`` in numpy's order (NaNs last)."""
    return p < v or (v != v and p == p)


@numba.njit(cache=True, nogil=True)
def sort_small(x, jump, size, start, xs, cj):  # pragma: no cover (compiled)
    """Curves of a few knots, one after the other in ``x`` (yuan/t) and ``jump`` (t), ``size[i]``
    knots each: each curve's stable order by price (numpy's: NaNs last; insertion sorts),
    returned one after the other, with its sorted prices written to ``xs[start[i]:]`` and the
    running sums of its jumps in that order to ``cj[start[i]:]`` after a zero at
    ``cj[start[i] - 1]`` (summed as :func:`running_sum`)."""
    order = np.empty(x.size, dtype=np.intp)
    a = 0
    for i in range(size.size):
        n = size[i]
        for r in range(n):
            v = x[a + r]
            q = r
            while q > 0:  # (after the knots of lower or equal price)
                w = x[a + order[a + q - 1]]
                if not (v < w or (w != w and v == v)):
                    break
                order[a + q] = order[a + q - 1]
                q -= 1
            order[a + q] = r
        b = start[i]
        cj[b - 1] = 0.0
        s = -0.0  # (-0.0 + v is v, as numpy starts)
        for r in range(n):
            o = order[a + r]
            xs[b + r] = x[a + o]
            s += jump[a + o]
            cj[b + r] = s
        a += n
    return order


@numba.njit(cache=True, nogil=True)
def running_sum(values, order, out):  # pragma: no cover (compiled)
    """``np.cumsum(values[order], out=out)`` (sequential, as numpy's)."""
    s = -0.0  # (-0.0 + v is v, as numpy starts: also for v = -0.0)
    for i in range(order.size):
        s += values[order[i]]
        out[i] = s


@numba.njit(cache=True, nogil=True)
def key_bits(n):  # pragma: no cover (compiled)
    """The index bits ``b`` of :func:`sort_keys` for ``n`` prices: ``max(1, (n - 1).bit_length())``
    (so that ``n <= 2**b``)."""
    b = 1
    while (np.int64(1) << b) < n:
        b += 1
    return b
