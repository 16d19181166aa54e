"""The compiled passes of a year's settlement against the numpy code they replaced, bit for bit."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from model import year_kernels


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal to the last bit (signs of zero and NaNs included)."""
    return a.shape == b.shape and np.array_equal(np.asarray(a, np.float64).view(np.int64),
                                                 np.asarray(b, np.float64).view(np.int64))


@numba.njit
def _pairwise(f, a, b):  # (each kernel helper over arrays, for the test)
    out = np.empty(a.size)
    for i in range(a.size):
        out[i] = f(a[i], b[i])
    return out


def test_maximum_and_minimum_are_numpys() -> None:
    """NaN wins; of equal values (zeros of either sign) the second; else the larger/smaller."""
    v = np.array([-0.0, 0.0, np.nan, -1.0, 2.0, np.inf, -np.inf])
    a, b = np.repeat(v, v.size), np.tile(v, v.size)
    assert same(_pairwise(year_kernels.maximum, a, b), np.maximum(a, b))
    assert same(_pairwise(year_kernels.minimum, a, b), np.minimum(a, b))


@pytest.mark.parametrize("seed", range(4))
def test_book_and_carry_limits_are_the_array_rule(seed) -> None:
    rng = np.random.default_rng(seed)
    n = 500
    index = np.flatnonzero(rng.random(n) < 0.5)
    m = index.size
    market = [np.where(rng.random(m) < 0.2, 0.0, rng.normal(0, 1e3, m)) for _ in range(4)]
    banked = np.where(rng.random(m) < 0.3, -0.0, rng.normal(0, 50, m))
    grand = rng.random(n) < 0.1
    grand[index] = False
    e = rng.uniform(0, 1e4, n)
    got = year_kernels.book(n, index, *market, banked, grand, e)
    want = [np.zeros(n) for _ in range(5)]
    for row, v in zip(want, (*market, np.maximum(-banked, 0.0))):
        row[index] = v
    want[1][grand] = e[grand]
    for g, w in zip(got[:5], want):
        assert same(g, w)
    assert same(got[5], -want[2])
    assert got[6] == np.maximum(-banked, 0.0).sum()
    net_sales = got[5]
    capacity = np.where(rng.random(m) < 0.2, np.inf, rng.uniform(0, 1e3, m))
    base = rng.choice([1e4, 1e5], n)
    for multiple in (1.5, None):
        limit, carry = year_kernels.carry_limits(
            net_sales, base, np.nan if multiple is None else multiple, index, capacity, banked)
        want_limit = base.copy() if multiple is None else base + multiple * np.maximum(
            net_sales, 0.0)
        want_carry = want_limit.copy()
        want_carry[index] = np.maximum(want_limit.take(index), np.maximum(capacity, banked))
        assert same(limit, want_limit) and same(carry, want_carry)
