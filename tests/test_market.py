"""Market clearing against independent solutions: dense evaluation, an LP (HiGHS) and theory."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from model.banking import demand
from model.mac import Knots, MACCurves
from model.market import (
    Bounds,
    Equilibrium,
    _settle,
    banking_knots,
    clear,
    clear_at_price,
    firm_banking,
    positions,
    solve_quantity,
    supply_at,
)


def random_knots(rng: np.random.Generator, n: int) -> tuple[MACCurves, Knots]:
    """Random mixed curves: linear, step and general piecewise-linear ones."""
    firm = np.repeat(np.arange(n), 4)
    a = np.cumsum(rng.uniform(0, 100, size=(n, 4)), axis=1)
    a[:, 0] = 0.0  # negative costs need a point at abatement 0
    a[:, 2] = a[:, 1]  # a vertical jump in every curve
    c = np.sort(rng.uniform(-20, 300, size=(n, 4)), axis=1)
    c[:, 3] = np.where(rng.random(n) < 0.5, c[:, 2], c[:, 3])  # flats in half of them
    curves = MACCurves.from_long(firm, a.ravel(), c.ravel(), n)
    return curves, curves.knots()


def dense_supply(curves: MACCurves, price: float) -> float:
    return float(curves.abatement_at(price).sum())


@pytest.mark.parametrize("n", [5, 300, 3000])
def test_solve_quantity_matches_direct_evaluation(n: int) -> None:
    rng = np.random.default_rng(n)
    curves, knots = random_knots(rng, n)
    total = curves.max_abatement.sum()
    assert knots.total == pytest.approx(total, rel=1e-12)
    for target in rng.uniform(0.01, 0.99, 20) * total:
        p, theta = solve_quantity([knots], target)
        got = float(curves.abatement_at(p, theta).sum())
        assert got == pytest.approx(target, rel=1e-9)
        # p is the lowest such price: just below it supply falls short
        assert dense_supply(curves, p - 1e-7 * max(1, abs(p))) <= target * (1 + 1e-9)
        assert supply_at(knots, p, theta) == pytest.approx(target, rel=1e-9)


def test_solve_quantity_edges() -> None:
    curves = MACCurves.linear(np.array([10.0, 20.0]), np.array([100.0, 100.0]))
    k = curves.knots()
    assert solve_quantity([k], 0.0)[0] == -math.inf
    assert solve_quantity([k], 31.0)[0] == math.inf
    assert solve_quantity([k], 15.0)[0] == pytest.approx(50.0)
    step = MACCurves.from_options(np.array([[10.0]]), np.array([[40.0]]))
    assert solve_quantity([step.knots()], 4.0) == (40.0, pytest.approx(0.4))


def lp_least_cost(firm_flats, ccer_flats, emissions, supply, limit, bounds):
    """The least-cost solution as an LP solved by HiGHS; prices are the constraint duals."""
    fa, fc = firm_flats
    ya, yc = ccer_flats
    nx, ny = fa.size, ya.size
    cost = [fc, yc]
    ub = [fa, ya]
    extra = []
    if math.isfinite(bounds.ceiling):
        extra.append(("reserve", bounds.ceiling, -1.0))
    if math.isfinite(bounds.penalty):
        extra.append(("shortfall", bounds.penalty, -1.0))
    if bounds.floor > 0:
        extra.append(("withheld", -bounds.floor, 1.0))
    cost.append(np.array([e[1] for e in extra]))
    ub.append(np.array([supply if e[0] == "withheld" else np.inf for e in extra]))
    c = np.concatenate(cost)
    row_cea = np.concatenate((-np.ones(nx), -np.ones(ny), [e[2] for e in extra]))
    row_lim = np.concatenate((limit * np.ones(nx), np.ones(ny), np.zeros(len(extra))))
    res = linprog(
        c,
        A_ub=np.vstack((row_cea, row_lim)),
        b_ub=np.array([supply - emissions, limit * emissions]),
        bounds=list(zip(np.zeros(c.size), np.concatenate(ub))),
        method="highs",
    )
    assert res.status == 0, res.message
    p_cea = -res.ineqlin.marginals[0]
    mu = -res.ineqlin.marginals[1]
    return {
        "cost": res.fun,
        "cea_price": p_cea,
        "ccer_price": p_cea - mu,
        "abatement": res.x[:nx].sum(),
        "offsets": res.x[nx:nx + ny].sum(),
    }


def flats_of(curves: MACCurves) -> tuple[np.ndarray, np.ndarray]:
    da = np.diff(curves.abatement)
    dc = np.diff(curves.cost)
    keep = np.ones(da.size, bool)
    keep[curves.start[1:-1] - 1] = False
    m = keep & (da > 0)
    assert (dc[m] == 0).all()
    return da[m], curves.cost[:-1][m]


def ccer_resource_cost(ccer: MACCurves, used: float) -> float:
    return float(ccer.cost_of(np.array([used]))[0])


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 40),
    tight=st.floats(0.05, 1.2),
    limit=st.sampled_from([0.0, 0.02, 0.05, 0.1, 0.3]),
    ccer_scale=st.floats(0.0, 2.0),
    bound=st.sampled_from(["none", "ceiling", "penalty", "floor"]),
)
@example(seed=0, n=3, tight=1.0, limit=0.0, ccer_scale=0.0, bound="none")  # every option used
@example(seed=386377, n=16, tight=0.618, limit=0.3, ccer_scale=1.27, bound="floor")
def test_clearing_equals_least_cost_lp(seed, n, tight, limit, ccer_scale, bound) -> None:
    """Montgomery: the market outcome is the least-cost solution (prices = LP duals)."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 5))
    firms = MACCurves.from_options(
        rng.uniform(0, 1000, (n, k)) * (rng.random((n, k)) < 0.9), rng.uniform(-30, 400, (n, k))
    )
    emissions = float(rng.uniform(2000, 5000, n).sum())
    supply = emissions - tight * firms.max_abatement.sum()
    ccer = MACCurves.from_options(rng.uniform(0, 300, (1, 4)) * ccer_scale * n,
                                  rng.uniform(5, 300, (1, 4)))
    bounds = {
        "none": Bounds(),
        "ceiling": Bounds(ceiling=float(rng.uniform(50, 300))),
        "penalty": Bounds(penalty=float(rng.uniform(50, 300))),
        "floor": Bounds(floor=float(rng.uniform(10, 300))),
    }[bound]
    if bound in ("none", "floor") and tight > 1.0:
        bounds = Bounds(floor=bounds.floor, penalty=500.0)
    assume(firms.max_abatement.sum() > 0)
    eq = clear(firms.knots(), emissions, supply, ccer.knots(), limit, bounds)
    lp = lp_least_cost(flats_of(firms), flats_of(ccer), emissions, supply, limit, bounds)
    holdings = np.full(n, supply / n)
    pos = positions(firms, np.full(n, emissions / n), holdings, eq, bounds.penalty)
    cost = (
        pos.abatement_cost.sum()
        + ccer_resource_cost(ccer, eq.offsets)
        + (bounds.ceiling * eq.reserve_sales if eq.reserve_sales else 0.0)
        + (bounds.penalty * eq.shortfall if eq.shortfall else 0.0)
        - bounds.floor * eq.withheld
    )
    scale = max(1.0, abs(lp["cost"]), emissions)
    assert cost == pytest.approx(lp["cost"], rel=1e-6, abs=1e-6 * scale)
    assert eq.abatement == pytest.approx(lp["abatement"], rel=1e-6, abs=1e-6 * emissions)
    assert eq.offsets == pytest.approx(lp["offsets"], rel=1e-6, abs=1e-6 * emissions)
    if eq.abatement + eq.offsets > 0 and eq.surplus == 0:
        assert eq.cea_price == pytest.approx(lp["cea_price"], rel=1e-6, abs=1e-6)
        if eq.offsets > 0:
            assert eq.ccer_price == pytest.approx(lp["ccer_price"], rel=1e-6, abs=1e-6)
    assert eq.ccer_price <= eq.cea_price + 1e-9
    if eq.limit_binds:
        assert eq.ccer_price < eq.cea_price
    balance = emissions - eq.abatement - eq.offsets
    assert balance == pytest.approx(
        supply + eq.reserve_sales + eq.shortfall - eq.withheld - eq.surplus, rel=1e-9
    )


def test_linear_curves_abate_to_the_blended_price() -> None:
    """With sloped MACs each firm's marginal cost equals the price it faces (KKT)."""
    rng = np.random.default_rng(1)
    n = 50
    curves = MACCurves.linear(rng.uniform(100, 1000, n), rng.uniform(50, 500, n))
    e = rng.uniform(2000, 3000, n)
    ccer = MACCurves.linear(np.array([20000.0]), np.array([30.0]), 10.0)
    supply = e.sum() - 0.5 * curves.max_abatement.sum()
    eq = clear(curves.knots(), e.sum(), supply, ccer.knots(), 0.05)
    assert eq.limit_binds and eq.ccer_price < eq.cea_price
    pos = positions(curves, e, np.full(n, supply / n), eq, math.inf)
    mc = curves.marginal_cost(pos.abatement)
    inside = (pos.abatement > 0) & (pos.abatement < curves.max_abatement)
    blended = 0.95 * eq.cea_price + 0.05 * eq.ccer_price
    assert np.allclose(mc[inside], blended, rtol=1e-9)
    assert pos.offsets.sum() == pytest.approx(0.05 * (e - pos.abatement).sum())
    assert (pos.surrendered + pos.offsets).sum() == pytest.approx((e - pos.abatement).sum())


def test_bounds_report_reserve_shortfall_and_withheld() -> None:
    curves = MACCurves.linear(np.array([100.0]), np.array([100.0]))
    none = Knots(np.empty(0), np.empty(0), np.empty(0))
    eq = clear(curves.knots(), 1000.0, 800.0, none, 0.05, Bounds(ceiling=60.0))
    assert eq.cea_price == 60.0 and eq.reserve_sales == pytest.approx(140.0)
    eq = clear(curves.knots(), 1000.0, 800.0, none, 0.05, Bounds(penalty=250.0))
    assert eq.cea_price == 250.0 and eq.shortfall == pytest.approx(100.0)
    eq = clear(curves.knots(), 1000.0, 980.0, none, 0.05, Bounds(floor=50.0))
    assert eq.cea_price == 50.0 and eq.withheld == pytest.approx(30.0)
    eq = clear(curves.knots(), 1000.0, 1200.0, none, 0.05)
    assert eq.cea_price == 0.0 and eq.surplus == pytest.approx(200.0)
    # an unmeetable cap with no bound at all still returns finite numbers
    eq = clear(curves.knots(), 1000.0, 800.0, none, 0.05)
    assert math.isinf(eq.cea_price) or eq.shortfall >= 0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.floats(0.0, 0.3), dl=st.floats(0.0, 0.1))
def test_monotone_in_cap_and_offset_limit(seed, cut, dl) -> None:
    rng = np.random.default_rng(seed)
    n = 30
    curves, knots = random_knots(rng, n)
    ccer = MACCurves.from_options(rng.uniform(0, 500, (1, 3)), rng.uniform(0, 200, (1, 3)))
    e = float(rng.uniform(2000, 5000, n).sum())
    supply = e - 0.5 * curves.max_abatement.sum()
    b = Bounds(penalty=1000.0)
    base = clear(knots, e, supply, ccer.knots(), 0.05, b)
    tighter = clear(knots, e, supply - cut * curves.max_abatement.sum(), ccer.knots(), 0.05, b)
    looser_limit = clear(knots, e, supply, ccer.knots(), 0.05 + dl, b)
    assert tighter.cea_price >= base.cea_price - 1e-9
    assert looser_limit.cea_price <= base.cea_price + 1e-9


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), share=st.floats(0.0, 1.0))
def test_supply_cost_is_the_area_under_the_curve(seed, share) -> None:
    """supply_cost(knots at the clearing price) equals the curve's own cost of that quantity."""
    from model.market import supply_cost
    rng = np.random.default_rng(seed)
    curve, knots = random_knots(rng, 1)
    q = share * curve.max_abatement[0]
    p, theta = solve_quantity([knots], q)
    if not math.isfinite(p):
        p, theta = float(knots.x.min()), 0.0
    expected = float(curve.cost_of(np.array([q]))[0])
    assert supply_cost(knots, p, theta) == pytest.approx(expected, rel=1e-9, abs=1e-6)


def _check_solution(sets: list[Knots], target: float, p: float, theta: float) -> None:
    """``(p, theta)`` meets ``target`` and is the lowest such price."""
    total = sum(k.total for k in sets)
    assert sum(supply_at(k, p, theta) for k in sets) == pytest.approx(target, rel=1e-9)
    assert sum(supply_at(k, p, 0.0) for k in sets) <= target + 1e-9 * total
    below = p - 1e-7 * max(1.0, abs(p))
    assert sum(supply_at(k, below, 1.0) for k in sets) <= target + 1e-9 * total


@pytest.mark.parametrize("sloped", [False, True])
def test_solve_quantity_with_several_sets_and_passes(sloped) -> None:
    """Several knot sets, bucketed over one or more passes (one set's knots crowded near zero
    under a far outlier), sets that drop out of the bucket of the crossing."""
    rng = np.random.default_rng(4)
    crowd = MACCurves.from_options(rng.uniform(0, 10, (20_000, 1)), rng.uniform(0, 1, (20_000, 1)))
    low = MACCurves.from_options(rng.uniform(0, 10, (3000, 2)), rng.uniform(-20, 5, (3000, 2)))
    wide = (MACCurves.linear(rng.uniform(1, 50, 3000), rng.uniform(10, 900, 3000)) if sloped else
            MACCurves.from_options(rng.uniform(0, 50, (3000, 2)), rng.uniform(10, 900, (3000, 2))))
    outlier = Knots(np.array([1e6]), np.array([5.0]), np.zeros(1))
    sets = [crowd.knots(), low.knots(), wide.knots(), outlier]
    total = sum(k.total for k in sets)
    for share in (0.02, 0.1, 0.3, 0.5, 0.8, 0.99, 0.9999):
        p, theta = solve_quantity(sets, share * total)
        _check_solution(sets, share * total, p, theta)
        for order in (sets[::-1], sets[1:] + sets[:1]):  # the order of the sets does not matter
            q, th = solve_quantity(order, share * total)
            assert q == pytest.approx(p, rel=1e-12, abs=1e-12)
            assert th == pytest.approx(theta, rel=1e-9, abs=1e-9)


def test_solve_quantity_on_a_slope_through_an_empty_bucket() -> None:
    """The crossing lies on a long slope where no knot is near: the bucket that holds it is
    empty (used to fail)."""
    rng = np.random.default_rng(0)
    steps = MACCurves.from_options(rng.uniform(1, 10, (3000, 1)), rng.uniform(0, 100, (3000, 1)))
    line = MACCurves.linear(np.array([1e6]), np.array([1e6]))  # 1 t per yuan/t up to 1e6
    sets = [steps.knots(), line.knots()]
    p, theta = solve_quantity(sets, sets[0].total + 5e5)
    assert p == pytest.approx(5e5, rel=1e-12) and theta == 1.0


def _clear_at_price_reference(firms, emissions, supply, offsets, limit, price, banking, bounds):
    """clear_at_price as each set evaluated by itself (supply_at), one evaluation per use."""
    sets = [k for k in (firms, offsets if limit > 0 else None, banking)
            if k is not None and k.x.size]
    bank_max = banking.capacity if banking is not None and banking.x.size else 0.0
    target = emissions - supply + bank_max
    low = sum(supply_at(k, price, 0.0) for k in sets)
    high = sum(supply_at(k, price, 1.0) for k in sets)
    tol = 1e-9 * max(abs(emissions), 1.0)
    if not (low - tol <= target <= high + tol):
        return None
    theta = 1.0 if high <= low else min(1.0, max(0.0, (target - low) / (high - low)))
    a = supply_at(firms, price, theta)
    o = supply_at(offsets, price, theta) if limit > 0 and offsets.x.size else 0.0
    if o > limit * (emissions - a) * (1 + 1e-12) + 1e-9:
        return None
    if not bounds.floor <= price <= bounds.upper:
        return None
    banked = bank_max - (supply_at(banking, price, theta) if bank_max else 0.0)
    return _settle(Equilibrium(price, price, price, theta, theta, a, o, limit_binds=False,
                               banked=banked, theta_bank=theta), emissions, supply, bounds)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), limit=st.sampled_from([0.0, 0.05, 0.3]),
       bank=st.booleans(), tight=st.floats(0.1, 0.9))
def test_clear_at_price_equals_evaluating_each_set(seed, limit, bank, tight) -> None:
    """At prices within the vertical range of supply (a knot: theta in (0, 1)) and elsewhere,
    the same equilibrium (or None) as evaluating each set separately, to the last bit."""
    rng = np.random.default_rng(seed)
    n = 200
    firms = MACCurves.from_options(rng.uniform(0, 100, (n, 3)), rng.uniform(-20, 300, (n, 3)))
    ccer = MACCurves.from_options(rng.uniform(0, 300, (1, 4)), rng.uniform(5, 300, (1, 4)))
    e = float(rng.uniform(2000, 5000, n).sum())
    supply = e - tight * firms.max_abatement.sum()
    banking = None
    if bank:
        banking = banking_knots(rng.uniform(0, 300, n).round(0), rng.uniform(0, 50, n),
                                rng.uniform(0, 10, n) * (rng.random(n) < 0.5))
    knots, offsets, bounds = firms.knots(), ccer.knots(), Bounds(floor=5.0, penalty=250.0)
    eq = clear(knots, e, supply, offsets, limit, bounds, banking=banking)
    prices = [eq.cea_price, *rng.choice(knots.x, 5), *rng.uniform(-30, 320, 5), math.inf]
    for p in prices:
        got = clear_at_price(knots, e, supply, offsets, limit, p, banking, bounds)
        want = _clear_at_price_reference(knots, e, supply, offsets, limit, p, banking, bounds)
        assert got == want


def test_banking_knots_and_firm_banking() -> None:
    rng = np.random.default_rng(2)
    n = 500
    threshold = rng.uniform(0, 100, n).round(0)
    capacity = rng.uniform(0, 50, n) * (rng.random(n) < 0.8)
    borrowing = rng.uniform(0, 10, n) * (rng.random(n) < 0.5)
    k = banking_knots(threshold, capacity, borrowing)
    keep = capacity + borrowing > 0
    assert np.array_equal(k.x, threshold[keep])
    assert np.array_equal(k.jump, (capacity + borrowing)[keep])
    assert not k.slope.any() and k.capacity == float(capacity[keep].sum())
    for p, theta in ((42.0, 0.25), (42.5, 1.0), (-1.0, 0.0), (1e3, 1.0)):
        eq = Equilibrium(p, p, p, theta, theta, 0.0, 0.0, limit_binds=False, theta_bank=theta)
        got = firm_banking(threshold, capacity, borrowing, eq)
        want = np.where(threshold > p, capacity, -borrowing)
        at = threshold == p
        want[at] = capacity[at] - theta * (capacity[at] + borrowing[at])
        assert np.array_equal(got, want)
        # the market's banked total is the firms' total
        assert k.capacity - supply_at(k, p, theta) == pytest.approx(got.sum(), rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_banking_demand_is_the_array_rule(seed):
    """banking.demand equals the rule written with numpy (as the model had it), bit for bit:
    thresholds by expectation rule, capacity within the carry-over limit and what is held,
    borrowing as a share of allocation, the foresight firms' planned bank."""
    rng = np.random.default_rng(seed)
    n = 300
    index = np.flatnonzero(rng.random(n) < 0.6)
    carry = np.where(rng.random(n) < 0.2, np.inf, rng.uniform(0, 5e5, n))
    free = np.where(rng.random(n) < 0.1, 0.0, rng.uniform(0, 1e6, n))
    rule = rng.integers(0, 3, n).astype(np.int8)
    rule_threshold = rng.uniform(0, 200, 3)
    held = float(rng.choice([1e5, 1e9]))
    share = float(rng.choice([0.0, 0.1]))
    path_bank = float(rng.choice([-3e6, 0.0, 4e7]))
    for plan in (False, True):
        got = demand(index, carry, held, free, share, rule, rule_threshold, 2, plan, path_bank)
        free_m = free.take(index)
        capacity = np.minimum(carry.take(index), held)
        borrow = share * free_m
        planned = np.zeros(index.size)
        foresight = rule.take(index) == 2
        if plan and foresight.any():
            part = free_m * foresight / max(float(free_m.sum()), 1e-300)
            planned = np.clip(path_bank * part, -borrow, capacity)
            capacity, borrow = np.where(foresight, 0.0, capacity), np.where(foresight, 0.0, borrow)
        want = (rule_threshold.take(rule).take(index), capacity, borrow, planned)
        for a, b in zip(got[:4], want):
            assert np.array_equal(a.view(np.int64), b.view(np.int64))  # (signs of zero too)
        assert got[4] == bool(foresight.any())


def _positions_reference(curves, emissions, holdings, eq, penalty, banked=None):
    """:func:`positions` as numpy code (as the model had it before its compiled pass)."""
    a = curves.abatement_at(eq.abatement_price, eq.theta_firms)
    verified = emissions - a
    tv = verified.sum()
    o = eq.offsets * verified / tv if tv > 0 else np.zeros_like(verified)
    need = verified - o
    net = need - holdings if banked is None else need + banked - holdings
    short, unsold = np.zeros_like(net), np.zeros_like(net)
    if eq.shortfall > 0 and (buy := np.maximum(net, 0.0)).sum() > 0:
        short = eq.shortfall * buy / buy.sum()
    if eq.surplus > 0 and (sell := np.maximum(-net, 0.0)).sum() > 0:
        unsold = eq.surplus * sell / sell.sum()
    bought = net - short + unsold
    return (a, o, need - short, bought, short, unsold, curves.cost_of(a), o * eq.ccer_price,
            bought * eq.cea_price, short * (penalty if math.isfinite(penalty) else 0.0))


@pytest.mark.parametrize("seed", range(6))
def test_positions_are_the_array_rule(seed):
    """positions (one compiled pass) equals the numpy rule bit for bit, signs of zero included:
    with and without banking, a shortfall, a surplus, no verified emissions, zero net trades."""
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 7, 300, 2500]))
    curves, _ = random_knots(rng, n)
    e = rng.uniform(0, 400, n) * (rng.random(n) < 0.9)
    holdings = rng.uniform(0, 300, n)
    price = float(rng.choice([-50.0, 40.0, 150.0, 1e4]))
    cases = [(dict(), None), (dict(shortfall=2e3), None), (dict(surplus=3e3), None),
             (dict(shortfall=1e3, surplus=1e3), rng.uniform(-20, 20, n))]
    for kw, banked in cases:
        offsets = 0.0 if seed % 2 else float(rng.uniform(0, 500))
        eq = Equilibrium(price, 0.8 * price, price, 0.4, 1.0, 0.0, offsets, limit_binds=False,
                         **kw)
        h = holdings.copy()
        if seed % 2:  # net trades of exactly zero (signed zeros in the shares)
            h = e - curves.abatement_at(price, 0.4) + (0.0 if banked is None else banked)
        for penalty in (math.inf, 300.0):
            got = positions(curves, e, h, eq, penalty, banked=banked)
            want = _positions_reference(curves, e, h, eq, penalty, banked)
            names = ("abatement", "offsets", "surrendered", "cea_bought", "shortfall", "unsold",
                     "abatement_cost", "offset_cost", "trade_cost", "penalty_cost")
            for name, w in zip(names, want):
                g = getattr(got, name)
                assert np.array_equal(g.view(np.int64), w.view(np.int64)), name
