"""The compiled clearing kernels give the numpy code they replaced to the last bit.

The numpy references are the code of the package before the kernels (kept here, not there).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from model import clearing_kernels as kernels
from model.mac import Knots, MACCurves
from model.market import solve_quantity

_SMALL, _BUCKETS = 2048, 1024


def _same(a: float, b: float) -> bool:
    """Equal to the last bit (NaNs equal, and the sign of a zero counts)."""
    return ((a == b and math.copysign(1.0, a) == math.copysign(1.0, b))
            or (math.isnan(a) and math.isnan(b)))


# ---------------------------------------------------------------------------------- sums
def _mixed(rng: np.random.Generator, n: int) -> np.ndarray:
    """Values of mixed signs and magnitudes (1e-12 .. 1e12), some zeros of either sign."""
    a = rng.standard_normal(n) * 10.0 ** rng.integers(-12, 13, n)
    a[rng.random(n) < 0.05] = 0.0
    a[rng.random(n) < 0.05] = -0.0
    return a


def test_add_reduce_is_numpys_sum_bit_for_bit() -> None:
    """numpy's pairwise summation, for every size to 2000 (the plain loop below 8, the 8
    accumulators to 128, the splits above) and some large ones."""
    rng = np.random.default_rng(0)
    for n in [*range(2001), 4095, 4096, 8191, 8192, 8193, 65_537, 1_000_003]:
        a = _mixed(rng, n)
        assert _same(kernels.add_reduce(a, n), a.sum()), n
        m = int(rng.integers(0, n + 1))  # a prefix (the kernels sum the first m of a buffer)
        assert _same(kernels.add_reduce(a, m), a[:m].sum()), (n, m)
    for special in ([-0.0], [-0.0, -0.0], [1e308, 1e308, -np.inf], [np.nan, 1.0], [np.inf] * 9):
        a = np.array(special)
        with np.errstate(over="ignore", invalid="ignore"):
            assert _same(kernels.add_reduce(a, a.size), a.sum())


def test_take_sums_are_numpys_sums_of_the_taken_values() -> None:
    """A market's totals over its firms: ``a.take(index).sum()`` (and ``b``'s) bit for bit, for
    indices in and out of order, with repeats, and none."""
    rng = np.random.default_rng(41)
    for n in [0, 1, 7, 8, 129, 2000, 9000]:
        a, b = _mixed(rng, n + 5), _mixed(rng, n + 5)
        for index in (np.sort(rng.choice(n + 5, n, replace=False)), rng.integers(0, n + 5, n)):
            got_a, got_b = kernels.take_sums(a, b, index)
            assert _same(got_a, a.take(index).sum()) and _same(got_b, b.take(index).sum())


# ---------------------------------------------------------------------------------- split_at
def _split_at_reference(k: Knots, price: float) -> tuple[float, float]:
    if not k.x.size or price == -np.inf:
        return 0.0, 0.0
    if price == np.inf:
        return k.total, 0.0
    below = k.x < price
    q = k.jump[below].sum()
    if k.sloped:
        q += (k.slope[below] * (price - k.x[below])).sum()
    return float(q), float(k.jump[k.x == price].sum())


def test_split_at_is_the_numpy_evaluation_bit_for_bit() -> None:
    rng = np.random.default_rng(1)
    for n in [0, 1, 3, 7, 8, 9, 100, 129, 300, 2257, 5000, 20_000]:
        for sloped in (False, True):
            x = np.round(rng.uniform(-10, 100, n), int(rng.integers(0, 3)))  # ties
            k = Knots(x, _mixed(rng, n), _mixed(rng, n) if sloped else np.zeros(n))
            prices = [*(rng.choice(x, 5) if n else []), *rng.uniform(-20, 120, 5),
                      0.0, math.inf, -math.inf, math.nan]
            for p in prices:
                got, want = k.split_at(p), _split_at_reference(k, p)
                assert all(map(_same, got, want)), (n, sloped, p)


# ---------------------------------------------------------------------------------- solve
def _solve_quantity_reference(knots: list[Knots], target: float) -> tuple[float, float]:
    """``solve_quantity`` in numpy (the code before the kernel)."""
    knots = [k for k in knots if k.x.size]
    if target <= 0.0 or not knots:
        return (-math.inf, 1.0) if target <= 0.0 else (math.inf, 1.0)
    total = sum(k.total for k in knots)
    if target > total and target > total + 1e-12 * max(sum(k.scale for k in knots), 1.0):
        return math.inf, 1.0
    sloped = any(k.sloped for k in knots)
    x, jump = _joined([k.x for k in knots]), _joined([k.jump for k in knots])
    slope = sx = None
    if sloped:
        slope = _joined([k.slope for k in knots])
        sx = slope * x
    cuts = list(itertools.accumulate((k.x.size for k in knots), initial=0))
    base_j = base_s = base_x = 0.0
    while x.size > _SMALL:
        lo, hi = float(x.min()), float(x.max())
        if not hi > lo:
            break
        width = (hi - lo) / _BUCKETS
        edges = lo + width * np.arange(_BUCKETS + 1)
        edges[-1] = np.inf
        q = x - lo
        q /= width
        b = q.astype(np.intp)
        np.minimum(b, _BUCKETS - 1, out=b)
        b -= x < edges[b]
        edges = edges[1:]
        b += x >= edges[b]
        jj = base_j + np.cumsum(_bucket_sums(b, jump, cuts))
        if sloped:
            ss = base_s + np.cumsum(_bucket_sums(b, slope, cuts))
            xx = base_x + np.cumsum(_bucket_sums(b, sx, cuts))
            with np.errstate(invalid="ignore"):
                value = np.where(np.isinf(edges), np.inf, jj + ss * edges - xx)
        else:
            value = np.where(np.isinf(edges), np.inf, jj)
        u = int(np.argmax(value >= target))
        if u > 0:
            base_j = jj[u - 1]
            if sloped:
                base_s, base_x = ss[u - 1], xx[u - 1]
        keep = np.flatnonzero(b == u)
        cuts = [0, keep.size] if len(cuts) == 2 else keep.searchsorted(cuts).tolist()
        x, jump = x[keep], jump[keep]
        if sloped:
            slope, sx = slope[keep], sx[keep]
    if not x.size:
        return float((target - base_j + base_x) / max(base_s, 1e-300)), 1.0
    order = np.argsort(x)
    xs = x[order]
    first = np.empty(x.size, dtype=bool)
    first[0] = True
    np.not_equal(xs[1:], xs[:-1], out=first[1:])
    ux = xs[first]
    inv = np.empty(x.size, dtype=np.intp)
    inv[order] = np.cumsum(first) - 1
    j_at = np.bincount(inv, jump, ux.size)
    cj = base_j + np.cumsum(j_at)
    if sloped:
        cs = base_s + np.cumsum(np.bincount(inv, slope, ux.size))
        cx = base_x + np.cumsum(np.bincount(inv, sx, ux.size))
        right = cj + cs * ux - cx
    else:
        right = cj
    left = right - j_at
    u = int(np.argmax(right >= target))
    if not right[u] >= target:
        s_after = cs[-1] if sloped else 0.0
        if s_after <= 0:
            return float(ux[-1]), 1.0
        return float(ux[-1] + (target - right[-1]) / s_after), 1.0
    if left[u] < target:
        return float(ux[u]), float(min(1.0, max(0.0, (target - left[u]) / j_at[u])))
    if not sloped:
        return float(ux[u]), 0.0
    if u == 0:
        s_before, q_before, x_before = base_s, None, None
    else:
        s_before, q_before, x_before = cs[u - 1], right[u - 1], ux[u - 1]
    if s_before <= 0:
        return float(ux[u]), 0.0
    if q_before is None:
        p = (target - base_j + base_x) / s_before
    else:
        p = x_before + (target - q_before) / s_before
    return float(min(p, ux[u])), 1.0


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _bucket_sums(b: np.ndarray, w: np.ndarray, cuts: list[int]) -> np.ndarray:
    out = np.zeros(_BUCKETS)
    for i, j in itertools.pairwise(cuts):
        if j > i:
            out += np.bincount(b[i:j], w[i:j], _BUCKETS)
    return out


def _random_set(rng: np.random.Generator, n: int, sloped: bool) -> Knots:
    """Knots with uniform, heavy-tailed, tied or outlying prices; sloped ones in pairs (a slope
    from a lower price and minus it from a higher one), jumps where no slope."""
    kind = int(rng.integers(0, 5))
    if kind == 0:
        x = rng.uniform(-50, 500, n)
    elif kind == 1:
        x = rng.lognormal(0, 4, n)  # crowded near zero: several passes
    elif kind == 2:
        x = np.round(rng.uniform(0, 100, n), 1)  # ties
    elif kind == 3:
        x = np.concatenate((rng.uniform(0, 1, max(n - 3, 0)), [1e6, -1e5, 1e9]))[:n]
    else:
        x = rng.standard_cauchy(n)
    rng.shuffle(x)
    jump = rng.uniform(0, 10, n) * (rng.random(n) < 0.8)
    slope = np.zeros(n)
    if sloped:
        k = n // 2
        r = rng.uniform(0, 3, k)
        slope = np.concatenate((r, -r, np.zeros(n - 2 * k)))
        x = np.concatenate((x[:k], x[:k] + rng.uniform(0, 5, k), x[2 * k:]))
        jump[:2 * k] = 0.0
    return Knots(x, jump, slope)


@pytest.mark.parametrize("seed", range(6))
def test_solve_quantity_is_the_numpy_algorithm_bit_for_bit(seed) -> None:
    """One to four sets (also empty ones), steps and slopes, sizes around the bucketing
    threshold and far above it (several passes), targets anywhere up to the total."""
    rng = np.random.default_rng(seed)
    for _ in range(25):
        sloped = bool(rng.random() < 0.5)
        sets = [_random_set(rng, int(rng.choice([0, 1, 5, 2048, 2049, 5000, 40_000])),
                            sloped and bool(rng.random() < 0.8))
                for _ in range(int(rng.integers(1, 5)))]
        total = sum(k.total for k in sets)
        for target in [*rng.uniform(0, 1, 6) * total, total, total * (1 - 1e-13), -1.0,
                       total * 1.1, 1e-9]:
            got = solve_quantity(sets, target)
            want = _solve_quantity_reference(sets, target)
            assert all(map(_same, got, want)), (seed, [k.x.size for k in sets], target)


def test_solve_quantity_bit_for_bit_on_market_curves() -> None:
    """Curves as the market builds them: steps from options, linear and mixed curves, the
    empty bucket on a long slope, all prices equal."""
    rng = np.random.default_rng(7)
    steps = MACCurves.from_options(rng.uniform(0, 10, (4000, 3)),
                                   rng.uniform(-20, 300, (4000, 3)).round(1)).knots()
    linear = MACCurves.linear(rng.uniform(1, 50, 3000), rng.uniform(10, 900, 3000)).knots()
    line = MACCurves.linear(np.array([1e6]), np.array([1e6])).knots()
    equal = Knots(np.full(5000, 7.0), rng.uniform(0, 1, 5000), np.zeros(5000))
    for sets in ([steps], [linear], [steps, linear], [steps, line], [equal], [equal, steps],
                 [steps.affine(0.1, 3.0, 0.1), linear]):
        total = sum(k.total for k in sets)
        for target in [*rng.uniform(0, 1, 20) * total, sets[0].total + 5e5]:
            got = solve_quantity(sets, target)
            assert all(map(_same, got, _solve_quantity_reference(sets, target)))


# ---------------------------------------------------------------------------------- MAC curves
def _widths_reference(c: MACCurves) -> tuple:
    da = c.abatement[1:] - c.abatement[:-1]
    idx = np.flatnonzero(da > 0)
    firm = np.repeat(np.arange(c.n_firms), np.diff(c.start))[idx]
    c0 = c.cost[idx]
    dc = c.cost[idx + 1] - c0
    return (firm, c.abatement[idx], da[idx], c0, dc), bool((dc == 0).all())


def _abatement_at_reference(c: MACCurves, price, theta: float) -> np.ndarray:
    (firm, _, da, c0, dc), steps = _widths_reference(c)
    p = price[firm] if np.ndim(price) else float(price)
    if np.ndim(price) == 0 and not np.isfinite(p):
        got = da.copy() if p > 0 else np.zeros_like(da)
    elif steps:
        got = np.where(c0 < p, da, 0.0)
        if theta != 0.0:
            at = c0 == p
            if at.any():
                got[at] = da[at] * theta
    else:
        sloped = dc > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(sloped, (p - c0) / np.where(sloped, dc, 1.0), 0.0)
        np.clip(frac, 0.0, 1.0, out=frac)
        flat_frac = np.where(c0 < p, 1.0, np.where(c0 == p, theta, 0.0))
        got = da * np.where(sloped, frac, flat_frac)
    return np.bincount(firm, weights=got, minlength=c.n_firms)


def _cost_of_reference(c: MACCurves, abatement: np.ndarray) -> np.ndarray:
    (firm, a0, da, c0, dc), steps = _widths_reference(c)
    t = np.asarray(abatement, dtype=np.float64)[firm] - a0
    np.minimum(np.maximum(t, 0.0, out=t), da, out=t)
    cost = t * c0
    if not steps:
        cost += dc / da * t * t / 2.0
    return np.bincount(firm, weights=cost, minlength=c.n_firms)


def _curves(rng: np.random.Generator, kind: str, n: int) -> MACCurves:
    """Step curves from options (zero potentials: vertical jumps), or long-format curves with
    as many or different numbers of points per firm (flats, slopes, jumps, ties in cost)."""
    if kind == "options":
        return MACCurves.from_options(rng.uniform(0, 10, (n, 4)) * (rng.random((n, 4)) < 0.8),
                                      rng.uniform(-30, 300, (n, 4)).round(0))
    count = np.full(n, 4) if kind == "uniform" else rng.integers(1, 7, n)
    firm = np.repeat(np.arange(n), count)
    a = rng.uniform(0, 100, firm.size).round(0)
    a = a[np.lexsort((a, firm))]
    a[np.r_[0, np.flatnonzero(np.diff(firm)) + 1]] = 0.0
    cost = rng.uniform(-20, 300, firm.size).round(0)
    cost = np.concatenate([np.sort(cost[firm == i]) for i in range(n)])
    return MACCurves.from_long(firm, a, cost, n)


@pytest.mark.parametrize("kind", ["options", "uniform", "general"])
def test_mac_kernels_are_the_numpy_evaluation_bit_for_bit(kind) -> None:
    """Segments, knots, abatement at one price or a price per firm (at knot prices, with theta
    0, a share or 1, at +-inf and NaN) and the cost of any abatement."""
    rng = np.random.default_rng(8)
    for n in (1, 7, 300, 3000):
        c = _curves(rng, kind, n)
        want, steps = _widths_reference(c)
        assert all(np.array_equal(g, w) for g, w in zip(c._widths, want, strict=True))
        assert c._steps == steps
        c0 = want[3]
        prices = [*rng.choice(c0, 5), rng.uniform(-40, 320), 0.0, math.inf, -math.inf, math.nan,
                  rng.uniform(-40, 320, n), rng.choice(c0, n)]
        for p in prices:
            for theta in (0.0, 0.3, 1.0):
                assert np.array_equal(c.abatement_at(p, theta),
                                      _abatement_at_reference(c, p, theta), equal_nan=True)
        for a in (rng.uniform(0, 1.2, n) * c.max_abatement, np.zeros(n), c.max_abatement,
                  c.abatement_at(50.0, 0.5), -c.max_abatement):
            assert np.array_equal(c.cost_of(a), _cost_of_reference(c, a))
    with pytest.raises(IndexError):
        c.cost_of(np.zeros(n - 1))


# ---------------------------------------------------------------------------------- banking
def test_banking_kernels_are_the_numpy_evaluation_bit_for_bit() -> None:
    from model.banking import banking_knots, firm_banking
    from model.market import Equilibrium

    rng = np.random.default_rng(9)
    for n in (0, 1, 10, 3447, 10_000):
        threshold = rng.uniform(0, 100, n).round(0)
        capacity = rng.uniform(0, 5, n) * (rng.random(n) < 0.6)
        borrowing = rng.uniform(0, 3, n) * (rng.random(n) < 0.5)
        k = banking_knots(threshold, capacity, borrowing)
        jump = capacity + borrowing
        keep = np.flatnonzero(jump > 0)
        assert np.array_equal(k.x, threshold[keep]) and np.array_equal(k.jump, jump[keep])
        assert not k.slope.any() and k.slope.size == keep.size
        assert _same(k.capacity, float(capacity[keep].sum()))
        for p in [*(rng.choice(threshold, 3) if n else []), 50.5, 0.0, math.inf]:
            theta = float(rng.uniform())
            eq = Equilibrium(p, p, p, 1.0, 1.0, 0.0, 0.0, False, theta_bank=theta)
            want = np.where(threshold > p, capacity, -borrowing)
            at = np.flatnonzero(threshold == p)
            want[at] = capacity[at] - theta * (capacity[at] + borrowing[at])
            got = firm_banking(threshold, capacity, borrowing, eq)
            assert np.array_equal(got, want) and np.array_equal(np.signbit(got), np.signbit(want))
    k = banking_knots(np.array([1.0, 2.0]), np.array([0.0, 3.0]), 0.0)  # (broadcast)
    assert k.x.tolist() == [2.0] and k.capacity == 3.0


# ---------------------------------------------------------------------------------- sorting
def _prices(rng: np.random.Generator, n: int) -> np.ndarray:
    """Prices with ties, near-ties (closer than a key resolves), both zeros, negatives, +-inf."""
    x = rng.integers(-20, 60, n) * rng.choice([1.0, 0.25, 123.456])
    x = x * (1.0 + rng.integers(0, 3, n) * rng.choice([0.0, 1e-15, 1e-12]))
    for special in (-0.0, math.inf, -math.inf):
        x[rng.random(n) < 0.05] = special
    return x


def test_key_bits_is_the_bit_length() -> None:
    """The index bits of the sort keys: ``max(1, (n - 1).bit_length())``, so that ``n <= 2**b``."""
    for n in [*range(0, 5000), 2**20, 2**20 + 1, 2**24, 2**24 + 1, 2**40 + 3]:
        assert kernels.key_bits(n) == max(1, (n - 1).bit_length())


def test_unpack_keys_is_the_order_and_running_sums_bit_for_bit() -> None:
    """From the sorted keys: the order (written over them), the prices in it, whether some
    neighbours share the high bits but differ in price, and ``np.cumsum(jump[order])``."""
    rng = np.random.default_rng(17)
    for n in [0, 1, 2, 3, 64, 1000, 5000]:
        for _ in range(3):
            x = _prices(rng, n)
            jump = _mixed(rng, n)
            b = max(1, (n - 1).bit_length())
            key = kernels.sort_keys(x, b)
            key.sort()
            order = key & ((1 << b) - 1)
            high = key >> b
            want_mixed = bool(((high[1:] == high[:-1]) & (x[order][1:] != x[order][:-1])).any())
            for sums in (False, True):
                k = key.copy()
                out, xs = np.full(n, np.nan), np.full(n, np.nan)
                mixed = (kernels.unpack_keys(k, b, x, jump, out, xs) if sums else
                         kernels.unpack_keys(k, b, x, np.empty(0), np.empty(0), xs))
                assert np.array_equal(k, order)
                assert xs.tobytes() == x[order].tobytes()
                assert mixed == want_mixed
                if sums:
                    assert out.tobytes() == np.cumsum(jump[order]).tobytes()


def test_running_sum_is_numpys_cumsum_bit_for_bit() -> None:
    """From -0.0 (numpy's first sum is the first value, also a -0.0)."""
    rng = np.random.default_rng(19)
    for v in [_mixed(rng, n) for n in (0, 1, 7, 1000)] + [np.array([-0.0, -0.0, 0.0, -0.0])]:
        n = v.size
        order = rng.permutation(n)
        out = np.empty(n)
        kernels.running_sum(v, order, out)
        assert out.tobytes() == np.cumsum(v[order]).tobytes()


def test_price_key_is_a_key_of_sort_keys() -> None:
    """One price's key (as the projection's supply builds them) is ``sort_keys``' for it."""
    rng = np.random.default_rng(29)
    x = _prices(rng, 500)
    for b in (9, 24):
        want = kernels.sort_keys(x, b)
        bits = (x + 0.0).view(np.int64)
        got = [kernels.price_key(bits[i], np.int64(-(1 << b)), i) for i in range(x.size)]
        assert np.array_equal(np.array(got), want)


def test_knot_counts_are_numpys_searchsorted() -> None:
    """Each row's counts are ``np.searchsorted(curve, prices, side="right")`` on its curve of the
    stack (ties, both zeros, +-inf, NaNs in the prices and at the end of a curve, empty curves,
    prices in and out of order); rows whose counts are known (``lo == hi``) keep them."""
    rng = np.random.default_rng(31)
    for _ in range(60):
        curves = [np.sort(_prices(rng, int(rng.integers(0, 300)))) for _ in range(6)]
        curves[1] = np.concatenate((curves[1], [np.nan, np.nan]))  # (NaNs sort last)
        size = np.array([c.size for c in curves], dtype=np.intp)
        start = np.concatenate(([0], np.cumsum(size + 3)[:-1])) + 3  # (pads between them)
        x = np.full(int(start[-1] + size[-1]), -7.0)
        for c, a in zip(curves, start):
            x[a:a + c.size] = c
        prices = np.sort(_prices(rng, 6 * 9).reshape(6, 9), axis=1)
        prices[1, -1] = prices[2, -1] = prices[4, 0] = np.nan
        ties = rng.choice(curves[3], 7) if size[3] else np.full(7, 5.0)  # (prices at knots)
        prices[3] = np.concatenate(([-0.0, 0.0], ties))
        prices[0] = rng.permutation(prices[0])  # (out of order: searched from the start)
        lo = np.zeros(6, dtype=np.intp)
        hi = size.copy()
        lo[5] = hi[5]  # (known)
        k = kernels.knot_counts(x, start, size, lo, hi, prices)
        for i, c in enumerate(curves):
            want = np.searchsorted(c, prices[i], side="right") if i != 5 else np.full(9, lo[5])
            assert np.array_equal(k[i], want)


def test_sort_small_is_numpys_stable_argsort_and_cumsum() -> None:
    """Curves of a few knots, one after the other: each one's stable order (ties in input order,
    both zeros equal, NaNs last), sorted prices and running sums (after a zero) bit for bit."""
    rng = np.random.default_rng(37)
    for _ in range(50):
        size = rng.integers(0, 17, 7).astype(np.intp)
        x = _prices(rng, int(size.sum()))
        x[rng.random(x.size) < 0.05] = np.nan
        jump = _mixed(rng, x.size)
        start = np.concatenate(([0], np.cumsum(size + 1)[:-1])) + 1
        xs, cj = np.full(int(start[-1] + size[-1]), 9.0), np.full(int(start[-1] + size[-1]), 9.0)
        order = kernels.sort_small(x, jump, size, start, xs, cj)
        a = 0
        for n, b in zip(size, start):
            want = np.argsort(x[a:a + n], kind="stable")
            assert np.array_equal(order[a:a + n], want)
            assert xs[b:b + n].tobytes() == x[a:a + n][want].tobytes()
            assert cj[b - 1] == 0.0
            assert cj[b:b + n].tobytes() == np.cumsum(jump[a:a + n][want]).tobytes()
            a += n
