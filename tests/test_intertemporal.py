"""The perfect-foresight price path against an independent multi-year LP (HiGHS)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from model.intertemporal import YearMarket, _Years, hotelling_path, use_at_price
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
    """min sum_t d^t c.x_t s.t. E_t - sum x_t + B_t - B_{t-1} <= Q_t,  B_t >= -borrow, B_T >= 0."""
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
    _, prices_lp, _ = lp(curves, emissions, issued, 0.03, borrow=0.02 * emissions.mean())
    assert some.prices == pytest.approx(prices_lp, rel=1e-6, abs=1e-6)


# ------------------------------------------------------------ the vectorised evaluation


def mixed_markets(rng: np.random.Generator, n_years: int, round_costs: bool) -> list[YearMarket]:
    """Small markets with what the fast evaluation must get right: step curves (with
    ``round_costs``, costs that recur across years, so that prices land on flats), sloped
    curves, cheap offsets whose limit binds at high prices, a floor and an upper bound."""

    def costs(values: list[float], shape: tuple[int, int]) -> np.ndarray:
        if round_costs:
            return rng.choice(values, shape)
        return rng.uniform(min(values), max(values), shape)

    out = []
    for _ in range(n_years):
        n_firms = int(rng.integers(1, 6))
        if rng.random() < 0.7:
            curves = MACCurves.from_options(rng.uniform(0, 50, (n_firms, 3)),
                                            costs([10.0, 20.0, 35.0, 60.0, 90.0], (n_firms, 3)))
        else:
            curves = MACCurves.linear(rng.uniform(0, 80, n_firms), rng.uniform(20, 150, n_firms),
                                      rng.uniform(-5, 10, n_firms))
        emissions = float(rng.uniform(300, 600) * n_firms)
        issued = emissions - float(curves.max_abatement.sum()) * rng.uniform(0.0, 0.9)
        offsets = MACCurves.from_options(rng.uniform(0, 0.2 * emissions, (2, 1)),
                                         costs([5.0, 20.0, 35.0], (2, 1))).knots()
        limit = float(rng.choice([0.0, 0.02, 0.1]))
        lower = float(rng.choice([0.0, 15.0]))
        upper = float(rng.choice([math.inf, 80.0]))
        out.append(YearMarket(curves.knots(), emissions, issued, offsets, limit, upper, lower))
    return out


def scalar_bank(years: list[YearMarket], g: float, p0: float,
                b: float) -> tuple[np.ndarray, np.ndarray]:
    """Prices and bank from year 0 at starting price ``p0``, one ``use_at_price`` at a time."""
    prices = np.array([min(max(p0 * g ** t, m.lower), m.upper) for t, m in enumerate(years)])
    use = [use_at_price(m, p)[0] for m, p in zip(years, prices)]
    use = [min(u, m.issued) if p >= m.upper else u for u, m, p in zip(use, years, prices)]
    return prices, b + np.cumsum([m.issued - u for m, u in zip(years, use)])


def test_fast_evaluation_is_use_at_price_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    on_flats = binding = 0
    for case in range(60):
        years = mixed_markets(rng, int(rng.integers(1, 6)), round_costs=True)
        g = 1.0 if case % 2 else 1.05
        b = float(rng.uniform(-50, 50))
        # random starting prices, the knots of every year (with g = 1 a year's price is the
        # starting price, so these land on flats), the bounds, and prices far out
        knots = np.concatenate([m.firms.x for m in years] + [m.offsets.x for m in years])
        p0 = np.unique(np.concatenate((rng.uniform(-10, 200, 20), knots, [0.0, 15.0, 80.0, 1e4])))
        stack = _Years(years, g)
        trial = stack.evaluate(0, len(years), p0, b, *stack.whole(0))
        binding += trial.pending is not None
        for j, p in enumerate(p0):
            prices, bank = scalar_bank(years, g, float(p), b)
            col = trial.column(j)
            np.testing.assert_array_equal(col.prices, prices)
            np.testing.assert_array_equal(col.bank, bank)
            on_flats += sum(price in m.firms.x for m, price in zip(years, prices))
        # between two of the prices, with their knot counts as bounds (most years need no search)
        i, k = np.sort(rng.choice(p0.size, 2, replace=False))
        inner = stack.evaluate(0, len(years), p0[i:k + 1], b, trial.column(i), trial.column(k))
        for j, p in enumerate(p0[i:k + 1]):
            np.testing.assert_array_equal(inner.column(j).bank, scalar_bank(years, g, p, b)[1])
    assert on_flats > 100 and binding > 10  # the cases that matter were there


def plain_bisection(years: list[YearMarket], r: float, bank0: float = 0.0,
                    borrow_limit: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The search before it was vectorised: bisection, one starting price and year at a time."""
    n, g = len(years), 1.0 + r
    limit = np.full(n, borrow_limit)
    limit[-1] = 0.0
    prices, bank = np.zeros(n), np.zeros(n)

    def trajectory(p0: float, s: int, b: float):
        p, bk = scalar_bank(years[s:], g, p0, b)
        return p, bk, bool((bk >= -limit[s:] - 1e-9).all())

    s, b = 0, bank0
    while s < n:
        lo = years[s].lower
        p_lo, bank_lo, ok = trajectory(lo, s, b)
        if ok:
            prices[s:], bank[s:] = p_lo, bank_lo
            break
        hi = max(years[s].upper if math.isfinite(years[s].upper) else 0.0, lo, 1.0)
        while not trajectory(hi, s, b)[2] and hi <= 1e9:
            hi *= 2.0
        a = lo
        for _ in range(100):
            mid = 0.5 * (a + hi)
            a, hi = (a, mid) if trajectory(mid, s, b)[2] else (mid, hi)
            if hi - a <= 1e-13 * max(hi, 1.0):
                break
        p, bk, _ = trajectory(hi, s, b)
        _, bk0, _ = trajectory(a, s, b)
        tau = int(np.argmin(bk + limit[s:]))
        span = bk[tau] - bk0[tau]
        if span > 0 and bk0[tau] < -limit[s + tau]:
            bk = bk0 + (-limit[s + tau] - bk0[tau]) / span * (bk - bk0)
        prices[s:s + tau + 1], bank[s:s + tau + 1] = p[:tau + 1], bk[:tau + 1]
        bank[s + tau] = -limit[s + tau]
        s, b = s + tau + 1, -limit[s + tau]
    return prices, bank


def test_path_is_that_of_plain_bisection_with_offsets_and_bounds() -> None:
    # Costs drawn at random: where knots lift the bank in several years at the same starting
    # price (round costs and r = 0), how those jumps are shared between the years depends on
    # exactly where a search stops, in the bisection as in the passes.
    rng = np.random.default_rng(3)
    for _ in range(40):
        years = mixed_markets(rng, int(rng.integers(1, 7)), round_costs=False)
        r = float(rng.choice([0.0, 0.05]))
        bank0 = float(rng.choice([0.0, 100.0]))
        borrow = float(rng.choice([0.0, 50.0]))
        path = hotelling_path(years, r, bank0=bank0, borrow_limit=borrow)
        prices, bank = plain_bisection(years, r, bank0, borrow)
        np.testing.assert_allclose(path.prices, prices, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(path.bank, bank, rtol=0, atol=1e-6 * max(np.abs(bank).max(), 1))


def test_stacked_step_curves_are_the_sorted_knots_bit_for_bit() -> None:
    """The stack sorts step curves itself: its sums, and the cache it fills for one year, are
    those of ``Knots._sorted`` (ties and -0.0 included); sloped curves are read from the cache."""
    from model.intertemporal import _Stack

    rng = np.random.default_rng(5)
    curves = [Knots(rng.choice([-2.0, -0.0, 0.0, 1.5, 30.0], 40), rng.uniform(0, 9, 40),
                    np.zeros(40)),
              Knots(rng.uniform(-5, 500, 3000), rng.uniform(0, 9, 3000), np.zeros(3000)),
              EMPTY,
              Knots(np.array([1.0, 3.0]), np.array([0.0, 0.0]), np.array([2.0, -2.0])),
              Knots(np.array([-0.0]), np.array([-0.0]), np.zeros(1)),  # (one knot: in order)
              Knots(np.array([7.0]), np.array([3.0]), np.zeros(1))]
    stack = _Stack(curves)
    for t, c in enumerate(curves):
        want = Knots(c.x, c.jump, c.slope)._sorted
        got = stack.cj[stack.base[t]:stack.base[t] + c.x.size + 1]
        assert got[0] == 0.0 and (got[1:] == want[1]).all()
        assert stack.x[t].tobytes() == want[0].tobytes()
        stack.prime(t)
        for a, b in zip(c._sorted, want):
            assert a.tobytes() == b.tobytes()
    assert stack.sloped
    assert (stack.cs[stack.base[3]:stack.base[3] + 3] == [0.0, 2.0, 0.0]).all()
    assert (stack.cs[stack.base[1]:stack.base[1] + 3001] == 0.0).all()


@pytest.mark.parametrize("seed", range(3))
def test_projected_knots_come_with_keys_that_sort_to_the_stable_order(seed) -> None:
    """``option_knots_keyed``: the knots of ``option_knots`` bit for bit, with the sort keys of
    ``stable_argsort`` laid out as one run in order per cost decline (for firms in ascending
    order), or in knot order where a slot has no place or a firm comes twice; the stack sorts
    them to the same order and sums as without them."""
    from model import clearing_kernels as ck
    from model import investment as inv
    from model.intertemporal import _Stack
    from tests.test_investment import make_options

    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 300)), int(rng.integers(1, 6))
    decline = rng.choice([0.0, 0.01, 0.03], k)
    cost = rng.integers(-30, 400, (n, k)).astype(float)
    cost[rng.random((n, k)) < 0.05] = -0.0
    o = make_options(cost,
                     rng.choice([0.0, 0.05, 0.2], (n, k)), kind=rng.choice(["operational",
                                                                            "capital"], k),
                     first_year=rng.choice([2000, 2030], k), cost_decline=decline,
                     learning_rate=rng.uniform(0, 0.2, k))
    e = rng.uniform(3e4, 1e6, n)
    e[rng.random(n) < 0.1] = 0.0  # (no knots)
    some = np.sort(rng.choice(n, n // 2, replace=False))
    twice = np.sort(np.r_[some, some[:1]])
    for year in (2025, 2031, 2060):
        for rows, known in ((None, None), (some, some), (some[::-1], some), (some, some[1:]),
                            (twice, some)):
            in_market = np.ones(n, dtype=bool)
            if known is not None:
                in_market[:] = False
                in_market[known] = True
            place = inv.cost_places(o, in_market)
            got, key = inv.option_knots_keyed(o, e, year, o.initial_deployment, place,
                                              include_capital=True, rows=rows)
            want = inv.option_knots(o, e, year, o.initial_deployment, include_capital=True,
                                    rows=rows)
            for name in ("x", "jump", "slope"):
                assert getattr(got, name).tobytes() == getattr(want, name).tobytes()
            in_order = ck.sort_keys(want.x, ck.key_bits(want.x.size))
            assert np.array_equal(np.sort(key), np.sort(in_order))
            odd = inv.option_knots(o, e, year, o.initial_deployment, include_capital=True,
                                   rows=some[:1]).x.size  # (knots of the firm twice / unknown)
            if rows is not None and odd and (rows is twice or known.size < rows.size):
                assert np.array_equal(key, in_order)  # (a knot without a place)
            elif rows is None or rows is some:
                assert (key[1:] < key[:-1]).sum() < np.unique(decline).size
            stack, plain = _Stack([got], [key]), _Stack([want])
            assert stack.cj.tobytes() == plain.cj.tobytes()
            assert stack.x[0].tobytes() == plain.x[0].tobytes()
            assert np.array_equal(stack.order[0], plain.order[0])
