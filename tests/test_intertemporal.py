"""The perfect-foresight price path against an independent multi-year LP (HiGHS)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from model.intertemporal import YearMarket, hotelling_path
from model.mac import Knots, MACCurves

EMPTY = Knots(np.empty(0), np.empty(0), np.empty(0))


def instance(seed: int, n_years: int, n_firms: int):
    rng = np.random.default_rng(seed)
    k = 3
    pot = rng.uniform(0, 100, (n_firms, k))
    cost = rng.uniform(5, 400, (n_firms, k))
    growth = np.cumprod(np.r_[1.0, rng.uniform(0.98, 1.05, n_years - 1)])
    emissions = rng.uniform(800, 1200, n_firms).sum() * growth
    curves = [MACCurves.from_options(pot * g, cost * (1 - 0.02 * t))
              for t, g in enumerate(growth)]
    total = np.array([c.max_abatement.sum() for c in curves])
    # allowances: generous early, tight late, so that firms bank
    issued = emissions - total * np.linspace(rng.uniform(-0.3, 0.1), rng.uniform(0.4, 0.9),
                                             n_years)
    return curves, emissions, issued


def lp(curves, emissions, issued, r, bank0=0.0, borrow=0.0):
    """min sum_t d^t c.x_t  s.t.  E_t - sum x_t + B_t - B_{t-1} <= Q_t,  B_t >= -borrow, B_T >= 0."""
    n = len(curves)
    flats = []
    for c in curves:
        da = np.diff(c.abatement)
        keep = np.ones(da.size, bool)
        keep[c.start[1:-1] - 1] = False
        m = keep & (da > 0)
        flats.append((da[m], c.cost[:-1][m]))
    sizes = [f[0].size for f in flats]
    nx = sum(sizes)
    d = (1 + r) ** -np.arange(n)
    cvec = np.concatenate([f[1] * d[t] for t, f in enumerate(flats)] + [np.zeros(n)])
    A = np.zeros((n, nx + n))
    off = np.cumsum([0] + sizes)
    for t in range(n):
        A[t, off[t]:off[t + 1]] = -1.0
        A[t, nx + t] = 1.0
        if t > 0:
            A[t, nx + t - 1] = -1.0
    b = issued - emissions + np.r_[bank0, np.zeros(n - 1)]
    bounds = [(0, w) for f in flats for w in f[0]] + [(-borrow, None)] * (n - 1) + [(0, None)]
    res = linprog(cvec, A_ub=A, b_ub=b, bounds=bounds, method="highs")
    assert res.status == 0, res.message
    prices = -res.ineqlin.marginals / d
    return res.fun, prices, res.x[nx:]


def least_cost_of(curves: MACCurves, amount: float) -> float:
    """Cheapest way to abate ``amount`` from step curves: fill the flats in order of cost."""
    da = np.diff(curves.abatement)
    keep = np.ones(da.size, bool)
    keep[curves.start[1:-1] - 1] = False
    m = keep & (da > 0)
    w, c = da[m], curves.cost[:-1][m]
    order = np.argsort(c)
    w, c = w[order], c[order]
    take = np.clip(amount - np.r_[0, np.cumsum(w)[:-1]], 0, w)
    return float((take * c).sum())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_years=st.integers(2, 8), r=st.sampled_from([0.0, 0.03, 0.08]))
def test_path_is_the_intertemporal_least_cost_solution(seed, n_years, r) -> None:
    curves, emissions, issued = instance(seed, n_years, 30)
    markets = [YearMarket(c.knots(), float(e), float(q), EMPTY, 0.0)
               for c, e, q in zip(curves, emissions, issued)]
    path = hotelling_path(markets, r)
    cost_lp, prices_lp, bank_lp = lp(curves, emissions, issued, r)
    prev = np.r_[0.0, path.bank[:-1]]
    abated = emissions - issued + path.bank - prev
    assert (abated >= -1e-6).all()
    d = (1 + r) ** -np.arange(n_years)
    cost = sum(d[t] * least_cost_of(curves[t], max(abated[t], 0.0)) for t in range(n_years))
    assert cost == pytest.approx(cost_lp, rel=1e-6, abs=1e-6)
    assert path.bank == pytest.approx(bank_lp, rel=1e-6, abs=1e-6 * emissions.max())
    assert path.prices == pytest.approx(prices_lp, rel=1e-6, abs=1e-6)


def test_hotelling_rule_while_the_bank_is_positive() -> None:
    curves, emissions, issued = instance(5, 8, 40)
    markets = [YearMarket(c.knots(), float(e), float(q), EMPTY, 0.0)
               for c, e, q in zip(curves, emissions, issued)]
    r = 0.05
    path = hotelling_path(markets, r)
    banked = path.bank[:-1] > 1e-6
    assert banked.any()
    growth = path.prices[1:][banked] / path.prices[:-1][banked]
    assert growth == pytest.approx(np.full(banked.sum(), 1 + r), rel=1e-9)
    assert (path.bank >= -1e-6).all()


def test_borrowing_limit_is_respected_and_lowers_early_prices() -> None:
    curves, emissions, issued = instance(11, 6, 30)
    issued = issued[::-1].copy()  # tight early, generous late: firms would like to borrow
    markets = [YearMarket(c.knots(), float(e), float(q), EMPTY, 0.0)
               for c, e, q in zip(curves, emissions, issued)]
    no = hotelling_path(markets, 0.03)
    some = hotelling_path(markets, 0.03, borrow_limit=0.02 * emissions.mean())
    assert (some.bank >= -0.02 * emissions.mean() - 1e-6).all()
    assert some.prices[0] <= no.prices[0] + 1e-9
    cost_lp, prices_lp, _ = lp(curves, emissions, issued, 0.03, borrow=0.02 * emissions.mean())
    assert some.prices == pytest.approx(prices_lp, rel=1e-6, abs=1e-6)
