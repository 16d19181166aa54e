"""The compiled passes of a year's settlement against the numpy code they replaced, bit for bit."""

from __future__ import annotations

import numba
import numpy as np

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
