"""The no-trading counterfactual: each firm against its own MAC, and the gain from trade."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.mac import Knots, MACCurves
from model.market import Bounds, Positions, autarky, clear, positions

NO_OFFSETS = Knots(np.empty(0), np.empty(0), np.empty(0))


def random_curves(rng: np.random.Generator, n: int) -> MACCurves:
    """Mixed curves: sloped pieces, flats, a vertical jump, no-regret (negative) costs."""
    firm = np.repeat(np.arange(n), 4)
    a = np.cumsum(rng.uniform(0, 100, size=(n, 4)), axis=1)
    a[:, 0] = 0.0
    a[:, 2] = a[:, 1]
    c = np.sort(rng.uniform(-20, 300, size=(n, 4)), axis=1)
    c[:, 3] = np.where(rng.random(n) < 0.5, c[:, 2], c[:, 3])
    return MACCurves.from_long(firm, a.ravel(), c.ravel(), n)


def flat_supply(quantity: float, cost: float) -> Knots:
    """CCER supply: ``quantity`` t at a constant ``cost`` yuan/t."""
    return MACCurves.from_long(np.zeros(2, np.int64), np.array([0.0, quantity]),
                               np.array([cost, cost]), 1).knots()


def firm_cost(pos: Positions) -> np.ndarray:
    return pos.abatement_cost + pos.offset_cost + pos.trade_cost + pos.penalty_cost


def check_balance(pos: Positions, e: np.ndarray, h: np.ndarray) -> None:
    """Every tonne emitted is abated, offset, covered by an allowance or short."""
    assert (pos.abatement >= -1e-9).all() and (pos.offsets >= -1e-9).all()
    assert (pos.shortfall >= -1e-9).all() and (pos.unsold >= -1e-9).all()
    assert pos.cea_bought.tolist() == [0.0] * e.size
    assert (pos.surrendered <= h * (1 + 1e-9) + 1e-9).all()
    assert pos.abatement + pos.offsets + pos.surrendered + pos.shortfall == pytest.approx(e)
    assert pos.surrendered + pos.unsold == pytest.approx(h)


# ------------------------------------------------------------------ without offsets
@pytest.mark.parametrize("offsets", ["none", "limit_zero"])
def test_each_firm_abates_its_own_gap(offsets: str) -> None:
    rng = np.random.default_rng(11)
    n = 200
    curves = random_curves(rng, n)
    amax = curves.max_abatement
    e = amax * rng.uniform(1.5, 3.0, n) + 1.0
    gap = rng.uniform(-0.3, 1.0, n) * amax  # some firms are long
    h = e - gap
    knots, limit = (NO_OFFSETS, 0.05) if offsets == "none" else (flat_supply(1e9, 1.0), 0.0)
    _, pos = autarky(curves, e, h, knots, limit, math.inf)
    no_regret = curves.abatement_at(0.0)
    want = np.maximum(gap, no_regret)
    assert pos.abatement == pytest.approx(want, rel=1e-9, abs=1e-9)
    assert pos.offsets.tolist() == [0.0] * n and pos.shortfall == pytest.approx(np.zeros(n))
    assert pos.abatement_cost == pytest.approx(curves.cost_of(want))
    check_balance(pos, e, h)
    # the firm's own inverse MAC: facing its MAC at the gap as a price, it would abate the gap
    short = gap > no_regret
    mc = curves.marginal_cost(pos.abatement)
    lo = curves.abatement_at(np.where(short, mc, 0.0), theta=0.0)
    hi = curves.abatement_at(np.where(short, mc, 0.0), theta=1.0)
    assert (lo[short] <= gap[short] * (1 + 1e-9) + 1e-9).all()
    assert (hi[short] >= gap[short] * (1 - 1e-9) - 1e-9).all()
    # long firms keep their spare allowances (they cannot sell them)
    long = ~short
    assert pos.unsold[long] == pytest.approx(h[long] - (e[long] - no_regret[long]))
    assert pos.unsold[short] == pytest.approx(np.zeros(short.sum()))


def test_shortfall_when_the_penalty_is_below_the_needed_mac() -> None:
    # linear MACs 0 -> 200 yuan/t over 100 t; penalty 100 yuan/t (reached at 50 t)
    m = np.full(5, 100.0)
    curves = MACCurves.linear(m, np.full(5, 200.0))
    gap = np.array([20.0, 50.0, 70.0, 100.0, 150.0])  # the last cannot be abated at all
    e = np.full(5, 500.0)
    _, pos = autarky(curves, e, e - gap, NO_OFFSETS, 0.05, 100.0)
    own = curves.abatement_at(100.0)  # each firm's inverse MAC at the penalty: 50 t
    assert pos.abatement == pytest.approx(np.minimum(gap, own))
    assert pos.shortfall == pytest.approx(np.maximum(gap - own, 0.0))
    assert pos.penalty_cost == pytest.approx(100.0 * pos.shortfall)
    assert (curves.marginal_cost(pos.abatement) <= 100.0 + 1e-9).all()
    check_balance(pos, e, e - gap)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), penalty=st.floats(5.0, 400.0))
def test_each_firm_minimises_its_own_cost_without_offsets(seed, penalty) -> None:
    """Against a dense search over each firm's abatement: cost(a) + penalty x (gap - a)+."""
    rng = np.random.default_rng(seed)
    n = 20
    curves = random_curves(rng, n)
    amax = curves.max_abatement
    e = amax * 2.0 + 10.0
    gap = rng.uniform(-0.2, 1.3, n) * amax
    _, pos = autarky(curves, e, e - gap, NO_OFFSETS, 0.05, penalty)
    check_balance(pos, e, e - gap)
    grid = np.linspace(0.0, 1.0, 801)[:, None] * amax[None, :]
    cost = np.stack([curves.cost_of(row) for row in grid])
    best = (cost + penalty * np.maximum(gap - grid, 0.0)).min(axis=0)
    got = firm_cost(pos)
    assert (got <= best + 1e-6 * np.maximum(1.0, np.abs(best))).all()
    assert pos.shortfall == pytest.approx(np.maximum(gap - pos.abatement, 0.0), abs=1e-9)


# ------------------------------------------------------------------ with offsets
def test_offsets_up_to_the_limit_when_cheaper() -> None:
    n, limit = 6, 0.1
    curves = MACCurves.linear(np.full(n, 100.0), np.full(n, 1000.0))  # MAC = 10 yuan/t per t
    e = np.full(n, 400.0)
    gap = np.array([10.0, 20.0, 30.0, 40.0, 60.0, 80.0])
    h = e - gap
    p, pos = autarky(curves, e, h, flat_supply(1e9, 50.0), limit, math.inf)
    assert p == pytest.approx(50.0)
    a_lim = e - h / (1 - limit)  # abatement when the rest up to the limit is offset
    # offsets replace abatement whose MAC is above 50: the first 5 t are abated (MAC 50 at 5 t)
    want_a = np.clip(5.0, a_lim, gap)
    assert pos.abatement == pytest.approx(want_a)
    assert pos.offsets == pytest.approx(gap - want_a)
    assert (pos.offsets <= limit * (e - pos.abatement) + 1e-9).all()
    at_limit = a_lim >= 5.0
    assert pos.offsets[at_limit] == pytest.approx(limit * (e - pos.abatement)[at_limit])
    assert pos.offset_cost == pytest.approx(50.0 * pos.offsets)
    assert pos.shortfall == pytest.approx(np.zeros(n))
    check_balance(pos, e, h)
    # dearer than every firm's MAC: no offsets at all
    _, dear = autarky(curves, e, h, flat_supply(1e9, 5000.0), limit, math.inf)
    assert dear.offsets == pytest.approx(np.zeros(n))
    assert dear.abatement == pytest.approx(gap)


def test_offsets_and_penalty_together() -> None:
    """Firm 0 abates until its MAC equals the CCER price and offsets the rest; firm 1 cannot
    meet its gap: it abates all it can (MAC <= the blended penalty), offsets up to its limit and
    pays the penalty on the rest."""
    curves = MACCurves.linear(np.array([10.0, 10.0]), np.array([100.0, 100.0]))  # MAC = 10 a
    e = np.array([1000.0, 1000.0])
    h = e - np.array([50.0, 200.0])
    p, pos = autarky(curves, e, h, flat_supply(1e6, 20.0), 0.05, 300.0)
    assert p == pytest.approx(20.0)
    assert pos.abatement == pytest.approx([2.0, 10.0])
    assert pos.offsets == pytest.approx([48.0, 0.05 * 990.0])
    assert pos.shortfall == pytest.approx([0.0, 200.0 - 10.0 - 49.5])
    assert pos.penalty_cost == pytest.approx(300.0 * pos.shortfall)
    check_balance(pos, e, h)


def test_scarce_offsets_are_priced_not_replaced_by_penalties() -> None:
    """When every CCER is used the CCER price rises until demand meets supply; a firm never
    pays a penalty it could avoid by abating at a lower MAC."""
    n = 4
    curves = MACCurves.linear(np.full(n, 100.0), np.full(n, 100.0))  # MAC(a) = a yuan/t
    e = np.full(n, 200.0)
    h = e - 20.0
    p, pos = autarky(curves, e, h, flat_supply(30.0, 10.0), 0.5, 300.0)
    assert pos.offsets.sum() == pytest.approx(30.0, rel=1e-6)
    assert pos.shortfall == pytest.approx(np.zeros(n), abs=1e-6)
    # each firm abates until its MAC equals the CCER price: 20 - 7.5 = 12.5 t at 12.5 yuan/t
    assert pos.abatement == pytest.approx(np.full(n, 12.5), rel=1e-6)
    assert p == pytest.approx(12.5, rel=1e-6)
    check_balance(pos, e, h)
    # firms that cannot abate bid the price up to the penalty; the CCERs are shared out
    nothing = MACCurves.linear(np.zeros(n), np.zeros(n))
    p, pos = autarky(nothing, e, h, flat_supply(30.0, 10.0), 0.5, 300.0)
    assert p == pytest.approx(300.0) and p <= 300.0
    assert pos.offsets.sum() == pytest.approx(30.0)
    assert pos.shortfall.sum() == pytest.approx(4 * 20.0 - 30.0)
    assert firm_cost(pos).sum() == pytest.approx(300.0 * 4 * 20.0)
    check_balance(pos, e, h)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), limit=st.sampled_from([0.02, 0.1, 0.3]),
       ccer_scale=st.floats(0.05, 2.0), penalty=st.floats(20.0, 600.0))
def test_each_firm_minimises_its_own_cost_at_the_ccer_price(seed, limit, ccer_scale,
                                                            penalty) -> None:
    """Given the CCER price found, no firm could do better by abating a different amount (and
    then using the cheaper of offsets, up to its limit, and the penalty for the rest); never
    more CCERs are used than supplied."""
    rng = np.random.default_rng(seed)
    n = 15
    curves = random_curves(rng, n)
    amax = curves.max_abatement
    e = amax * 2.0 + 10.0
    gap = rng.uniform(-0.2, 1.3, n) * amax
    ccer = MACCurves.from_options(rng.uniform(0, 30, (1, 3)) * n * ccer_scale,
                                  rng.uniform(0, 150, (1, 3)))
    p, pos = autarky(curves, e, e - gap, ccer.knots(), limit, penalty)
    check_balance(pos, e, e - gap)
    supplied = ccer.max_abatement[0]
    assert pos.offsets.sum() <= supplied * (1 + 1e-9)
    assert p <= penalty  # nobody pays more for a CCER than for the penalty
    assert (pos.offsets <= limit * (e - pos.abatement) * (1 + 1e-9) + 1e-9).all()
    grid = np.linspace(0.0, 1.0, 801)[:, None] * amax[None, :]
    cost = np.stack([curves.cost_of(row) for row in grid])
    rest = np.maximum(gap - grid, 0.0)
    o = np.minimum(limit * (e - grid), rest) if p < penalty else 0.0 * rest
    best = (cost + p * o + penalty * (rest - o)).min(axis=0)
    got = firm_cost(pos)
    assert (got <= best + 1e-6 * np.maximum(1.0, np.abs(best))).all()


# ------------------------------------------------------------------ gain from trade
def population(seed: int, n: int, tight: float):
    rng = np.random.default_rng(seed)
    curves = random_curves(rng, n)
    amax = curves.max_abatement
    e = amax * rng.uniform(1.2, 3.0, n) + 1.0
    h = e - rng.uniform(-0.5, 1.0, n) * amax * tight
    return rng, curves, e, h


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), tight=st.floats(0.0, 1.0),
       penalty=st.one_of(st.just(math.inf), st.floats(20.0, 600.0)))
def test_trading_never_costs_firms_more_without_offsets(seed, n, tight, penalty) -> None:
    """Montgomery: the firms' total cost (abatement + purchases + penalties) with trading is at
    most their cost alone; the trades themselves are transfers that add up to zero."""
    _, curves, e, h = population(seed, n, tight)
    eq = clear(curves.knots(), float(e.sum()), float(h.sum()), NO_OFFSETS, 0.0,
               Bounds(penalty=penalty))
    traded = positions(curves, e, h, eq, penalty)
    _, alone = autarky(curves, e, h, NO_OFFSETS, 0.0, penalty)
    scale = e.sum() * max(1.0, eq.cea_price)
    assert traded.trade_cost.sum() == pytest.approx(0.0, abs=1e-6 * scale)
    t, a = firm_cost(traded).sum(), firm_cost(alone).sum()
    assert t <= a + 1e-7 * max(1.0, abs(a), e.sum())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30), tight=st.floats(0.0, 1.0),
       limit=st.sampled_from([0.02, 0.05, 0.2]), ccer_scale=st.floats(0.0, 2.0),
       penalty=st.floats(20.0, 600.0))
def test_trading_never_costs_more_resources_with_offsets(seed, n, tight, limit, ccer_scale,
                                                          penalty) -> None:
    """With offsets the gain from trade holds for resource costs: abatement + the CCERs'
    production cost (the area under the CCER supply curve) + penalties. (Firms' payments for
    CCERs also contain the producers' rent, which trading can raise: see
    test_trading_can_raise_what_firms_pay_for_offsets.)"""
    rng, curves, e, h = population(seed, n, tight)
    ccer = MACCurves.from_options(rng.uniform(0, 50, (1, 3)) * n * ccer_scale,
                                  rng.uniform(0, 200, (1, 3)))
    eq = clear(curves.knots(), float(e.sum()), float(h.sum()), ccer.knots(), limit,
               Bounds(penalty=penalty))
    traded = positions(curves, e, h, eq, penalty)
    _, alone = autarky(curves, e, h, ccer.knots(), limit, penalty)
    check_balance(alone, e, h)
    assert alone.offsets.sum() <= ccer.max_abatement[0] * (1 + 1e-9) + 1e-9
    assert (alone.offsets <= limit * (e - alone.abatement) * (1 + 1e-9) + 1e-9).all()

    def resources(pos: Positions) -> float:
        used = np.array([pos.offsets.sum()])
        return float(pos.abatement_cost.sum() + ccer.cost_of(used)[0] + pos.penalty_cost.sum())

    t, a = resources(traded), resources(alone)
    assert t <= a + 1e-7 * max(1.0, abs(a), e.sum())


def test_trading_can_raise_what_firms_pay_for_offsets() -> None:
    """Firm 0 is long and cannot abate, firm 1 is short with cheap abatement; 10 t of CCERs cost
    nothing to produce. Alone, firm 1 uses them at a price of 0. With trading the CEA price (1
    yuan/t) also prices the CCERs, so firms pay the producers a rent: their outlay rises although
    fewer resources are used."""
    curves = MACCurves.linear(np.array([0.0, 100.0]), np.array([0.0, 10.0]))  # MAC = a / 10
    e, h = np.array([100.0, 100.0]), np.array([100.0, 80.0])
    ccer = MACCurves.from_long(np.zeros(4, np.int64), np.array([0, 10, 10, 20.0]),
                               np.array([0, 0, 50, 50.0]), 1)
    eq = clear(curves.knots(), 200.0, 180.0, ccer.knots(), 0.1, Bounds(penalty=1000.0))
    assert eq.ccer_price == pytest.approx(1.0) and eq.offsets == pytest.approx(10.0)
    traded = positions(curves, e, h, eq, 1000.0)
    p, alone = autarky(curves, e, h, ccer.knots(), 0.1, 1000.0)
    assert p == pytest.approx(0.0, abs=1e-9)
    assert firm_cost(traded).sum() > firm_cost(alone).sum()
    assert traded.abatement_cost.sum() < alone.abatement_cost.sum()
