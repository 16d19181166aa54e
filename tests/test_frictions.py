"""Market clearing with frictions: the frictionless limit, an LP with frictions, and theory."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from model.frictions import (
    FULL,
    NO_TRADE,
    OWN_SURPLUS,
    clear_with_frictions,
    firm_cost,
    friction_costs,
    participation_types,
    social_cost,
)
from model.mac import Knots, MACCurves
from model.market import Bounds, autarky, clear, positions, supply_at

NO_OFFSETS = Knots(np.empty(0), np.empty(0), np.empty(0))


# ------------------------------------------------------------------ random markets
def mixed_curves(rng: np.random.Generator, n: int, e: np.ndarray) -> MACCurves:
    """Sloped pieces, flats, a vertical jump and negative costs; abatement below emissions."""
    firm = np.repeat(np.arange(n), 4)
    a = np.cumsum(rng.uniform(0, 1, size=(n, 4)), axis=1)
    a[:, 0] = 0.0
    a[:, 2] = a[:, 1]
    a *= (0.9 * e / a[:, 3])[:, None] * rng.uniform(0.1, 1.0, (n, 1))
    c = np.sort(rng.uniform(-20, 300, size=(n, 4)), axis=1)
    c[:, 3] = np.where(rng.random(n) < 0.5, c[:, 2], c[:, 3])
    return MACCurves.from_long(firm, a.ravel(), c.ravel(), n)


def step_options(rng: np.random.Generator, n: int, e: np.ndarray) -> tuple[np.ndarray, ...]:
    """Technology options (potential t, cost yuan/t) whose potential stays below emissions."""
    k = int(rng.integers(1, 4))
    pot = rng.uniform(0, 1000, (n, k)) * (rng.random((n, k)) < 0.9)
    pot *= np.minimum(1.0, 0.9 * e / np.maximum(pot.sum(axis=1), 1e-9))[:, None]
    return pot, rng.uniform(-30, 400, (n, k))


def market(seed: int, n: int = 20, step: bool = True, bound: str | None = None):
    """A random year: curves, emissions, holdings, CCER supply (and its options), limit, bounds."""
    rng = np.random.default_rng(seed)
    e = rng.uniform(2000, 5000, n)
    if step:
        pot, cost = step_options(rng, n, e)
        curves = MACCurves.from_options(pot, cost)
    else:
        pot = cost = None
        curves = mixed_curves(rng, n, e)
    supply = e.sum() - rng.uniform(0.05, 1.1) * curves.max_abatement.sum()
    h = rng.dirichlet(np.full(n, 0.7)) * supply
    ypot, ycost = rng.uniform(0, 300, 3) * rng.uniform(0, 2) * n, rng.uniform(5, 300, 3)
    ccer = MACCurves.from_options(ypot[None], ycost[None]).knots()
    limit = float(rng.choice([0.0, 0.05, 0.1, 0.3]))
    bound = bound or str(rng.choice(["penalty", "ceiling", "low_penalty", "floor"]))
    bounds = {"penalty": Bounds(penalty=600.0),
              "ceiling": Bounds(ceiling=float(rng.uniform(50, 300)), penalty=600.0),
              "low_penalty": Bounds(penalty=float(rng.uniform(50, 300))),
              "floor": Bounds(floor=float(rng.uniform(5, 60)), penalty=600.0)}[bound]
    return curves, e, h, ccer, limit, bounds, (pot, cost, ypot, ycost)


def frictions_of(seed: int, n: int) -> tuple[np.ndarray, float, float]:
    rng = np.random.default_rng(seed + 10_000)
    types = rng.choice(3, n, p=[0.5, 0.25, 0.25])
    return types, float(rng.choice([0.0, 1.0, 10.0, 50.0])), float(rng.uniform(0.0, 0.1))


def friction_lp(pot, cost, e, h, ypot, ycost, limit, bounds, types, tau, auctioned=0.0):
    """The least-cost solution given the frictions, an LP solved by HiGHS.

    Per firm: abatement by option, offsets (<= limit x verified emissions), purchases (type 0
    only), sales (types 0 and 1), shortfall at the penalty; CCER projects; reserve sales at the
    ceiling, allowances withheld at the floor. Each tonne bought or sold costs tau.
    """
    n, k = pot.shape
    m = ypot.size
    sizes = {"x": n * k, "o": n, "b": n, "s": n, "f": n, "y": m, "R": 1, "W": 1}
    at = dict(zip(sizes, np.cumsum([0, *sizes.values()])[:-1]))
    size = sum(sizes.values())
    c, ub = np.zeros(size), np.full(size, np.inf)

    def put(name, cost_, upper):
        c[at[name]:at[name] + sizes[name]] = cost_
        ub[at[name]:at[name] + sizes[name]] = upper

    finite_pen = math.isfinite(bounds.penalty)
    put("x", cost.ravel(), pot.ravel())
    put("o", 0.0, np.inf if limit > 0 else 0.0)
    put("b", tau, np.where(types == FULL, np.inf, 0.0))
    put("s", tau, np.where(types == NO_TRADE, 0.0, np.inf))
    put("f", bounds.penalty if finite_pen else 0.0, np.inf if finite_pen else 0.0)
    put("y", ycost, ypot)
    put("R", bounds.ceiling if math.isfinite(bounds.ceiling) else 0.0,
        np.inf if math.isfinite(bounds.ceiling) else 0.0)
    put("W", -bounds.floor, np.inf if bounds.floor > 0 else 0.0)
    rows, cols, vals = [], [], []

    def add(row, name, value, index=None):
        idx = np.arange(sizes[name]) if index is None else index
        rows.extend(np.broadcast_to(row, idx.shape))
        cols.extend(at[name] + idx)
        vals.extend(np.broadcast_to(value, idx.shape))

    firm_of_x = np.repeat(np.arange(n), k)
    add(firm_of_x, "x", -1.0)  # need: e - x - o - b + s - f <= h
    for name, sign in (("o", -1.0), ("b", -1.0), ("s", 1.0), ("f", -1.0)):
        add(np.arange(n), name, sign)
    add(n + firm_of_x, "x", limit)  # limit: o + L x <= L e
    add(n + np.arange(n), "o", 1.0)
    add(2 * n, "o", 1.0)  # CCER market: offsets <= projects
    add(2 * n, "y", -1.0)
    add(2 * n + 1, "b", 1.0)  # CEA market: bought - sold - reserve + withheld <= auctioned
    add(2 * n + 1, "s", -1.0)
    add(2 * n + 1, "R", -1.0)
    add(2 * n + 1, "W", 1.0)
    a_ub = coo_matrix((vals, (rows, cols)), shape=(2 * n + 2, size)).tocsr()
    b_ub = np.concatenate((h - e, limit * e, [0.0, auctioned]))
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=list(zip(np.zeros(size), ub)), method="highs")
    assert res.status == 0, res.message
    return res.fun


def check_positions(eq, pos, curves, e, h, ccer, limit, types, tau, auctioned=0.0) -> None:
    """Everything is conserved, firm by firm and in each market."""
    scale = 1e-9 * max(e.sum(), 1.0)
    for name in ("abatement", "offsets", "surrendered", "shortfall", "unsold"):
        assert (getattr(pos, name) >= -scale).all(), name
    # each firm's emissions are abated, offset, covered by allowances or short
    assert pos.abatement + pos.offsets + pos.surrendered + pos.shortfall == pytest.approx(
        e, abs=scale)
    assert pos.surrendered + pos.unsold == pytest.approx(h + pos.cea_bought, abs=scale)
    assert (pos.offsets <= limit * (e - pos.abatement) + scale).all()
    assert pos.offsets.sum() <= supply_at(ccer, math.inf) + scale
    # participation: own-surplus firms never buy, no-trade firms never trade
    assert (pos.cea_bought[types == OWN_SURPLUS] <= scale).all()
    assert np.abs(pos.cea_bought[types == NO_TRADE]).max(initial=0.0) <= scale
    # purchases = sales + auctioned (sold) + reserve - withheld
    bought = np.maximum(pos.cea_bought, 0.0).sum()
    sold = np.maximum(-pos.cea_bought, 0.0).sum()
    assert eq.purchases == pytest.approx(bought, abs=scale)
    assert eq.sales == pytest.approx(sold, abs=scale)
    assert bought == pytest.approx(  # cleared exactly (to rounding)
        sold + auctioned - eq.auction_unsold + eq.reserve_sales - eq.withheld, abs=1e-3 * scale)
    assert e.sum() - eq.abatement - eq.offsets == pytest.approx(
        h.sum() + auctioned + eq.reserve_sales + eq.shortfall - eq.withheld - eq.surplus,
        abs=scale)
    # trade costs: net purchases at the market price plus tau on every tonne traded
    assert pos.trade_cost == pytest.approx(
        pos.cea_bought * eq.cea_price + tau * np.abs(pos.cea_bought), abs=1e-6 * scale)
    assert pos.abatement_cost == pytest.approx(curves.cost_of(pos.abatement))


# ------------------------------------------------------------------ the frictionless limit
@pytest.mark.parametrize("step", [True, False])
def test_without_frictions_equals_the_market_clearing(step: bool) -> None:
    """Participation all 0 and tau = 0: model.market.clear + positions, firm by firm."""
    for seed in range(50):
        curves, e, h, ccer, limit, bounds, _ = market(seed, 20, step)
        auctioned = float(np.random.default_rng(seed).choice([0.0, 0.1 * h.sum()]))
        ref = clear(curves.knots(), e.sum(), h.sum() + auctioned, ccer, limit, bounds)
        unsold_auction = min(ref.surplus, auctioned)
        ref = dataclasses.replace(ref, surplus=ref.surplus - unsold_auction)
        want = positions(curves, e, h, ref, bounds.penalty)
        eq, pos = clear_with_frictions(curves, e, h, ccer, limit, bounds, auctioned=auctioned)
        scale = 1e-6 * e.sum()
        assert eq.cea_price == pytest.approx(ref.cea_price, rel=1e-6, abs=1e-6), seed
        if ref.offsets > 0:
            assert eq.ccer_price == pytest.approx(ref.ccer_price, rel=1e-6, abs=1e-6), seed
        assert pos.abatement == pytest.approx(want.abatement, rel=1e-6, abs=1e-6 * e.max())
        assert firm_cost(pos) == pytest.approx(firm_cost(want), rel=1e-6, abs=scale)
        assert eq.offsets == pytest.approx(ref.offsets, abs=scale)
        assert eq.shortfall == pytest.approx(ref.shortfall, abs=scale)
        assert eq.reserve_sales == pytest.approx(ref.reserve_sales, abs=scale)
        assert eq.withheld == pytest.approx(ref.withheld, abs=scale)
        assert eq.auction_unsold == pytest.approx(unsold_auction, abs=scale)
        assert social_cost(eq, pos, ccer, bounds) == pytest.approx(
            social_cost(ref, want, ccer, bounds), rel=1e-6, abs=scale)
        if limit == 0:  # offsets per firm are not unique when p_ccer == p
            for name in ("cea_bought", "shortfall", "unsold", "surrendered"):
                assert getattr(pos, name) == pytest.approx(getattr(want, name), abs=scale)
        check_positions(eq, pos, curves, e, h, ccer, limit, np.zeros(20, int), 0.0, auctioned)


def test_all_no_trade_is_autarky() -> None:
    """Every firm NO_TRADE: model.market.autarky (the CCER market still clears)."""
    for seed in range(20):
        curves, e, h, ccer, limit, bounds, _ = market(seed, 20, seed % 2 == 0, "penalty")
        types = np.full(20, NO_TRADE)
        eq, pos = clear_with_frictions(curves, e, h, ccer, limit, bounds, types, 7.0)
        ccer_price, want = autarky(curves, e, h, ccer, limit, bounds.penalty)
        assert pos.abatement == pytest.approx(want.abatement, rel=1e-8, abs=1e-6)
        assert pos.offsets == pytest.approx(want.offsets, rel=1e-8, abs=1e-6)
        assert pos.shortfall == pytest.approx(want.shortfall, rel=1e-8, abs=1e-6)
        assert eq.purchases == 0 and eq.sales == 0
        if want.offsets.sum() > 0:
            assert eq.ccer_price == pytest.approx(ccer_price, rel=1e-6)


# ------------------------------------------------------------------ an independent solution
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 100_000), n=st.integers(1, 15))
@example(seed=626, n=3)  # an own-surplus firm at its tie on a flat (was shortfall -323.5 t)
def test_frictions_equal_the_constrained_least_cost_lp(seed: int, n: int) -> None:
    """The equilibrium with frictions is the least-cost solution given them (Montgomery with
    participation constraints and tau as a cost per tonne traded on each side)."""
    curves, e, h, ccer, limit, bounds, (pot, cost, ypot, ycost) = market(seed, n)
    types, tau, auction_share = frictions_of(seed, n)
    auctioned = auction_share * h.sum()
    eq, pos = clear_with_frictions(curves, e, h, ccer, limit, bounds, types, tau,
                                   auctioned=auctioned)
    check_positions(eq, pos, curves, e, h, ccer, limit, types, tau, auctioned)
    lp = friction_lp(pot, cost, e, h, ypot, ycost, limit, bounds, types, tau, auctioned)
    assert social_cost(eq, pos, ccer, bounds) == pytest.approx(
        lp, rel=1e-6, abs=1e-6 * max(abs(lp), e.sum()))


def test_a_restricted_firm_at_its_tie_on_a_flat_complies_alone() -> None:
    """A short restricted firm whose own price at the offset limit is the penalty exactly.

    The CCER price lands where ``(1 - L) penalty + L p_ccer`` is the cost of the flat MAC
    segment that holds its own-gap abatement ``e - h / (1 - L)``; to rounding, the firm may read
    as short at the penalty while abating at the flat's right end, past its gap (seed 626 of the
    LP test: a negative shortfall). At the tie it must comply alone: positions conserved, no
    negative shortfall, and the least cost of the LP. CCER flat within a few ulps of the tie.
    """
    rng = np.random.default_rng(1)
    tried = 0
    while tried < 60:
        limit = float(rng.choice([0.05, 0.1, 0.3, 0.5]))
        e = float(rng.uniform(1000, 5000))
        h = e * (1.0 - rng.uniform(0.2, 0.6))
        gap_at_limit = e - h / (1.0 - limit)  # abatement that closes the gap, offsets at the limit
        flat_cost = float(rng.uniform(20, 200))
        penalty = flat_cost + float(rng.uniform(1, 200))
        tie = (flat_cost - (1.0 - limit) * penalty) / limit  # CCER price of the tie, yuan/t
        if gap_at_limit <= 0 or tie <= 0:
            continue
        left = gap_at_limit * rng.uniform(0.1, 0.9)  # the flat spans [left, right], t
        right = gap_at_limit + rng.uniform(0.1, 1.0) * (0.9 * e - gap_at_limit)
        pot = np.array([[left, right - left, 0.95 * e - right]])
        cost = np.array([[-5.0, flat_cost, 2.0 * penalty]])
        curves = MACCurves.from_options(pot, cost)
        # CCERs between what the firm wants alone and at the flat's left end: price at the tie
        ypot = np.array([rng.uniform(e - h - gap_at_limit, limit * (e - left))])
        types = np.array([rng.choice([OWN_SURPLUS, NO_TRADE])])
        bounds = Bounds(penalty=penalty)
        ea, ha = np.array([e]), np.array([h])
        for ulps in range(-3, 4):
            price = tie + ulps * math.ulp(tie)
            ccer = MACCurves.from_options(ypot[None], np.array([[price]])).knots()
            eq, pos = clear_with_frictions(curves, ea, ha, ccer, limit, bounds, types, 10.0)
            check_positions(eq, pos, curves, ea, ha, ccer, limit, types, 10.0)
            assert pos.abatement[0] <= gap_at_limit * (1 + 1e-12)  # never past its own gap
            lp = friction_lp(pot, cost, ea, ha, ypot, np.array([price]), limit, bounds, types,
                             10.0)
            assert social_cost(eq, pos, ccer, bounds) == pytest.approx(lp, rel=1e-9, abs=1e-6)
            tried += 1


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 100_000), n=st.integers(2, 30), step=st.booleans(),
       own=st.floats(0, 0.5), none=st.floats(0, 0.5), tau=st.floats(0, 80))
def test_frictions_never_beat_least_cost(seed, n, step, own, none, tau) -> None:
    """Whatever the frictions, the total cost is at least the frictionless least cost."""
    curves, e, h, ccer, limit, bounds, _ = market(seed, n, step)
    types = participation_types(np.random.default_rng(seed), n, own, none)
    eq, pos = clear_with_frictions(curves, e, h, ccer, limit, bounds, types, tau)
    check_positions(eq, pos, curves, e, h, ccer, limit, types, tau)
    ref = clear(curves.knots(), e.sum(), h.sum(), ccer, limit, bounds)
    least = social_cost(ref, positions(curves, e, h, ref, bounds.penalty), ccer, bounds)
    assert social_cost(eq, pos, ccer, bounds) >= least - 1e-7 * max(abs(least), e.sum())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 100_000), n=st.integers(2, 30), step=st.booleans(),
       restricted=st.floats(0, 0.4))
def test_trade_volume_falls_as_tau_rises(seed, n, step, restricted) -> None:
    curves, e, h, ccer, limit, bounds, _ = market(seed, n, step)
    types = participation_types(np.random.default_rng(seed), n, restricted, 0.0)
    volume, cost = [], []
    for tau in (0.0, 0.5, 2.0, 10.0, 40.0, 200.0):
        eq, pos = clear_with_frictions(curves, e, h, ccer, limit, bounds, types, tau)
        volume.append(eq.purchases)
        cost.append(social_cost(eq, pos, ccer, bounds))
    tol = 1e-9 * e.sum()
    assert all(b <= a + tol for a, b in itertools.pairwise(volume)), volume
    assert all(b >= a - tol for a, b in itertools.pairwise(cost)), cost


# ------------------------------------------------------------------ firms' choices
def test_buyers_sellers_and_the_autarky_band() -> None:
    """Linear MACs: buyers abate to p + tau, sellers to p - tau, firms between trade nothing and
    abate exactly their own gap (their MAC lies in the band); restricted firms comply alone."""
    rng = np.random.default_rng(5)
    n = 400
    curves = MACCurves.linear(rng.uniform(500, 1500, n), rng.uniform(50, 400, n))
    e = rng.uniform(3000, 5000, n)
    h = e - rng.uniform(-0.3, 1.0, n) * curves.max_abatement
    types = participation_types(rng, n, 0.2, 0.2)
    tau = 15.0
    eq, pos = clear_with_frictions(curves, e, h, NO_OFFSETS, 0.0, Bounds(), types, tau)
    p = eq.cea_price
    mc = curves.marginal_cost(pos.abatement)
    inside = (pos.abatement > 1e-9) & (pos.abatement < curves.max_abatement - 1e-9)
    buy = pos.cea_bought > 1e-9
    sell = pos.cea_bought < -1e-9
    assert buy.sum() > 10 and sell.sum() > 10
    assert mc[buy & inside] == pytest.approx(np.full((buy & inside).sum(), p + tau), rel=1e-8)
    assert mc[sell & inside] == pytest.approx(np.full((sell & inside).sum(), p - tau), rel=1e-8)
    alone = ~buy & ~sell & (e - h > 0)
    assert alone.sum() > 10
    assert pos.abatement[alone] == pytest.approx((e - h)[alone], rel=1e-9)
    band = alone & (types == FULL) & inside
    assert band.any() and (mc[band] >= p - tau - 1e-6).all() and (mc[band] <= p + tau + 1e-6).all()
    assert eq.purchases == pytest.approx(eq.sales, rel=1e-12)
    assert eq.transaction_costs == pytest.approx(tau * 2 * eq.purchases)
    assert (pos.trade_cost[buy] > pos.cea_bought[buy] * p).all()
    # long restricted firms keep their surplus (own-surplus ones sell it)
    long = e - h < curves.abatement_at(0.0)
    assert (pos.unsold[long & (types == NO_TRADE)] > 0).all()
    assert (pos.cea_bought[long & (types == OWN_SURPLUS)] < 0).all()


def test_bounds_with_a_transaction_cost() -> None:
    curves = MACCurves.linear(np.array([400.0, 400.0]), np.array([400.0, 400.0]))
    e, tau = np.array([1000.0, 1000.0]), 10.0
    # buyer short by 150, seller long by 50: the ceiling sells the rest (buyers pay it + tau)
    # (MAC = abatement): without bounds 290 - p = 40 + p, p = 125
    h = np.array([700.0, 1050.0])
    eq, pos = clear_with_frictions(curves, e, h, NO_OFFSETS, 0.0, Bounds(), None, tau)
    assert eq.cea_price == pytest.approx(125.0) and eq.purchases == pytest.approx(165.0)
    eq, pos = clear_with_frictions(curves, e, h, NO_OFFSETS, 0.0, Bounds(ceiling=60.0), None, tau)
    assert eq.cea_price == 60.0
    assert pos.abatement == pytest.approx([70.0, 50.0])  # MAC = 70 (buyer), 50 (seller)
    assert eq.reserve_sales == pytest.approx(300.0 - 70.0 - 100.0)
    assert pos.trade_cost == pytest.approx([230.0 * 70.0, -100.0 * 50.0])
    # the penalty binds at penalty - tau: buyers stop buying there (shortfall)
    eq, pos = clear_with_frictions(curves, e, h, NO_OFFSETS, 0.0, Bounds(penalty=80.0), None, tau)
    assert eq.cea_price == pytest.approx(70.0) and eq.shortfall == pytest.approx(300 - 80 - 110)
    assert pos.shortfall == pytest.approx([110.0, 0.0]) and eq.sales == pytest.approx(110.0)
    # a floor above tau: sellers sell to the reserve at floor - tau (withheld)
    h = np.array([1000.0, 1100.0])
    eq, pos = clear_with_frictions(curves, e, h, NO_OFFSETS, 0.0, Bounds(floor=30.0), None, tau)
    assert eq.cea_price == 30.0 and eq.withheld == pytest.approx(140.0)
    assert pos.abatement == pytest.approx([20.0, 20.0])
    # at a zero price nobody sells at -tau: the surplus stays with the firms
    eq, pos = clear_with_frictions(curves, e, h, NO_OFFSETS, 0.0, Bounds(), None, tau,
                                   auctioned=40.0)
    assert eq.cea_price == 0.0 and eq.sales == 0.0 and eq.auction_unsold == 40.0
    assert pos.unsold == pytest.approx([0.0, 100.0]) and eq.surplus == pytest.approx(140.0)
    # no finite bound and a cap that cannot be met: an infinite price, as model.market.clear
    eq, pos = clear_with_frictions(curves, e, np.array([0.0, 0.0]), NO_OFFSETS, 0.0, Bounds(),
                                   None, tau)
    assert eq.cea_price == math.inf and eq.shortfall == pytest.approx(1200.0)


def test_invalid_input() -> None:
    curves = MACCurves.linear(np.array([100.0]), np.array([100.0]))
    args = (curves, np.array([1000.0]), np.array([900.0]), NO_OFFSETS, 0.0, Bounds())
    with pytest.raises(ValueError, match="participation"):
        clear_with_frictions(*args, np.array([3]))
    with pytest.raises(ValueError, match="participation"):
        clear_with_frictions(*args, np.array([0, 0]))
    with pytest.raises(ValueError, match="transaction_cost"):
        clear_with_frictions(*args, None, -1.0)
    with pytest.raises(ValueError, match="shares"):
        participation_types(np.random.default_rng(0), 10, 1.2, 0.0)


def test_participation_types_are_exact_deterministic_and_nested() -> None:
    a = participation_types(np.random.default_rng(3), 1000, 0.3, 0.2)
    assert (a == participation_types(np.random.default_rng(3), 1000, 0.3, 0.2)).all()
    assert np.bincount(a, minlength=3).tolist() == [500, 300, 200]
    small = participation_types(np.random.default_rng(3), 1000, 0.1, 0.1)
    assert ((small != FULL) <= (a != FULL)).all()  # restricted at 20 % stays restricted at 50 %
    assert (participation_types(np.random.default_rng(4), 1000, 0.3, 0.2) != a).any()
    assert participation_types(np.random.default_rng(0), 3, 0.9, 0.9).tolist().count(FULL) == 0


def test_friction_costs_figure_data() -> None:
    curves, e, h, ccer, limit, bounds, _ = market(7, 60, bound="penalty")
    df = friction_costs(curves, e, h, ccer, limit, bounds, np.random.default_rng(1),
                        taus=[0.0, 5.0, 20.0], shares=[0.0, 0.25, 0.5])
    assert isinstance(df, pd.DataFrame) and len(df) == 3 + 2 * 3
    assert set(df["friction"]) == {"transaction_cost", "own_surplus", "no_trade"}
    base = df[(df["transaction_cost"] == 0) & (df["restricted_share"] == 0)]
    assert base["cost_ratio"].to_numpy() == pytest.approx(1.0)
    assert (df["cost_ratio"] >= 1 - 1e-9).all() and (df["excess_cost"] >= -1e-6).all()
    tau = df[df["friction"] == "transaction_cost"]
    assert tau["trade_volume"].is_monotonic_decreasing
    assert tau["total_cost"].is_monotonic_increasing
    again = friction_costs(curves, e, h, ccer, limit, bounds, np.random.default_rng(1),
                           taus=[0.0, 5.0, 20.0], shares=[0.0, 0.25, 0.5])
    pd.testing.assert_frame_equal(df, again)


def test_a_large_population_clears_fast() -> None:
    """Thousands of firms with step MACs and offsets: conserved, and no Python loop per firm."""
    import time

    rng = np.random.default_rng(11)
    n = 5000
    e = rng.lognormal(12, 1, n)
    curves = MACCurves.from_options(e[:, None] * rng.uniform(0, 0.05, (n, 4)),
                                    rng.uniform(-20, 400, (n, 4)))
    h = e * rng.uniform(0.9, 1.03, n)
    ccer = MACCurves.from_options(np.array([[0.01, 0.01, 0.02]]) * e.sum(),
                                  np.array([[20.0, 40.0, 70.0]])).knots()
    types = participation_types(rng, n, 0.2, 0.1)
    start = time.perf_counter()
    eq, pos = clear_with_frictions(curves, e, h, ccer, 0.05, Bounds(penalty=500.0), types, 5.0)
    assert time.perf_counter() - start < 5.0
    check_positions(eq, pos, curves, e, h, ccer, 0.05, types, 5.0)
    assert 0 < eq.cea_price < 500 and eq.purchases > 0
