"""MAC curves against independent definitions: point lists, max-over-points, numerical integrals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from model import clearing_kernels as kernels
from model.mac import CurveError, Knots, MACCurves, sorted_running_sum, stable_argsort
from model.market import supply_at

Curve = list[tuple[float, float]]  # one firm's points (abatement t, cost yuan/t)


# ------------------------------------------------------------------ independent helpers
def points_of(curves: MACCurves, i: int) -> Curve:
    s, e = curves.start[i], curves.start[i + 1]
    return list(zip(curves.abatement[s:e].tolist(), curves.cost[s:e].tolist()))


def segments(pts: Curve):
    return [(a0, a1 - a0, c0, c1 - c0) for (a0, c0), (a1, c1) in itertools.pairwise(pts)]


def ref_abatement(pts: Curve, p: float, theta: float = 1.0) -> float:
    """Abatement at price p as the furthest point of the curve reachable at cost below p
    (``lower``) or at most p (``upper``); theta picks between them on a flat at p."""
    lower = upper = 0.0
    for a, c in pts:
        if c < p:
            lower = max(lower, a)
        if c <= p:
            upper = max(upper, a)
    for a0, da, c0, dc in segments(pts):
        if dc > 0 and c0 < p:
            reach = a0 + da * min((p - c0) / dc, 1.0)
            lower, upper = max(lower, reach), max(upper, reach)
    return lower + theta * (upper - lower)


def mac_value(pts: Curve, x: float) -> float:
    """The curve's marginal cost at abatement x (inside a segment of positive width)."""
    for a0, da, c0, dc in segments(pts):
        if da > 0 and a0 <= x <= a0 + da:
            return c0 + dc * (x - a0) / da
    raise AssertionError(f"{x} is not on the curve")


def integral(pts: Curve, x: float) -> float:
    """Area under the curve from 0 to min(x, max abatement), by scipy quad."""
    top = min(x, pts[-1][0])
    if top <= 0:
        return 0.0
    inner = sorted({a for a, _ in pts if 0 < a < top})
    value, _ = quad(lambda t: mac_value(pts, t), 0.0, top, points=inner or None, limit=200)
    return value


# ------------------------------------------------------------------ random curves
widths = st.one_of(st.just(0.0), st.floats(0.5, 100.0))  # 0 = a vertical jump
rises = st.one_of(st.just(0.0), st.floats(0.5, 80.0))  # 0 = a flat


@st.composite
def curve_st(draw, min_points: int = 2) -> Curve:
    """A valid curve starting at abatement 0 (costs may start negative)."""
    c = draw(st.floats(-60.0, 150.0))
    a = 0.0
    pts = [(a, c)]
    for _ in range(draw(st.integers(min_points - 1, 6))):
        da, dc = draw(widths), draw(rises)
        a, c = a + da, c + dc
        pts.append((a, c))
    return pts


curves_st = st.lists(curve_st(), min_size=1, max_size=6)


def build(curve_list: list[Curve]) -> MACCurves:
    firm = np.concatenate([np.full(len(p), i) for i, p in enumerate(curve_list)])
    a = np.array([x for p in curve_list for x, _ in p])
    c = np.array([y for p in curve_list for _, y in p])
    return MACCurves.from_long(firm, a, c, len(curve_list))


def price_grid(curve_list: list[Curve], robust: bool = False) -> list[float]:
    """Every knot cost, points between and beyond them (covers flats, slopes and jumps).

    ``robust`` leaves out prices within rounding of a different knot (there, scaling the costs
    and the price by the same factor may turn "below" into "at").
    """
    knots = sorted({c for p in curve_list for _, c in p})
    mids = [(x + y) / 2 for x, y in itertools.pairwise(knots)]
    grid = knots + mids + [knots[0] - 1.0, knots[-1] + 1.0, 0.0]
    if robust:
        grid = [p for p in grid
                if all(c == p or abs(c - p) > 1e-9 * max(1.0, abs(p)) for c in knots)]
    return grid


# ------------------------------------------------------------------ from_long
@settings(max_examples=60, deadline=None)
@given(curve_list=st.lists(st.one_of(st.just([]), curve_st(1)), min_size=1, max_size=6),
       seed=st.integers(0, 2**32 - 1))
def test_from_long_sorts_rows_and_keeps_file_order_of_equal_abatement(curve_list, seed) -> None:
    """Shuffled rows give the same curves as sorted rows, as long as points with equal
    abatement keep their relative order (the order that defines a vertical jump)."""
    rows = [(i, a, c) for i, p in enumerate(curve_list) for a, c in p]
    rng = np.random.default_rng(seed)
    shuffled = [rows[j] for j in rng.permutation(len(rows))]
    # restore the file order within each (firm, abatement) group at the group's positions
    groups: dict[tuple[int, float], list[int]] = {}
    for pos, (i, a, _) in enumerate(shuffled):
        groups.setdefault((i, a), []).append(pos)
    for (i, a), where in groups.items():
        for pos, row in zip(where, [r for r in rows if r[0] == i and r[1] == a]):
            shuffled[pos] = row
    f = np.array([r[0] for r in shuffled], dtype=np.int64)
    a = np.array([r[1] for r in shuffled], dtype=float)
    c = np.array([r[2] for r in shuffled], dtype=float)
    curves = MACCurves.from_long(f, a, c, len(curve_list))
    assert curves.n_firms == len(curve_list)
    assert curves.start[0] == 0 and curves.start.dtype == np.int64
    for i, pts in enumerate(curve_list):
        expected = pts if len(pts) >= 2 else pts * 2 if pts else [(0.0, 0.0), (0.0, 0.0)]
        assert points_of(curves, i) == expected


def test_from_long_prepends_origin_and_orders_a_vertical_jump_by_file_order() -> None:
    # firm 0: rows out of order; (5, 10) comes before (5, 30) in the file -> jump 10 -> 30
    firm = np.array([0, 1, 0, 0, 0])
    a = np.array([5.0, 20.0, 10.0, 5.0, 2.0])
    c = np.array([10.0, 40.0, 30.0, 30.0, 10.0])
    curves = MACCurves.from_long(firm, a, c, 3)
    assert points_of(curves, 0) == [(0, 0), (2, 10), (5, 10), (5, 30), (10, 30)]
    assert points_of(curves, 1) == [(0, 0), (20, 40)]  # (0, 0) prepended
    assert points_of(curves, 2) == [(0, 0), (0, 0)]  # no points: zero curve
    assert curves.max_abatement.tolist() == [10, 20, 0]
    # the same two points in the other file order make the cost fall: row 3 is reported
    with pytest.raises(CurveError) as err:
        MACCurves.from_long(firm, a, np.array([30.0, 40.0, 30.0, 10.0, 10.0]), 3)
    assert err.value.point_index == 3


@pytest.mark.parametrize(
    ("firm", "a", "c", "bad"),
    [
        ([1, 0, 0], [0, 10, 0], [0, 50, 60], 1),  # firm 0 falls 60 -> 50 at row 1
        ([0, 0, 0, 1], [0, 4, 8, 3], [1, 5, 4, 2], 2),  # 5 -> 4 at row 2
        ([0, 0, 1, 1], [0, 5, 7, 0], [10, 20, 50, 60], 2),  # firm 1: 60 at 0, 50 at 7
        ([0, 1, 1], [0, 3, 6], [0, -5, 10], 1),  # (0, 0) implied before a negative cost
        ([0, 0, 1], [0, -1, 5], [0, 1, 2], 1),  # negative abatement
        ([0, 0, 1], [0, 1, np.nan], [0, 1, 2], 2),  # not finite
        ([0, 0, 1], [0, 1, 5], [0, np.inf, 2], 1),
        ([0, 0, 1], [0, np.inf, 5], [0, 1, 2], 1),
    ],
)
def test_from_long_reports_the_bad_input_row(firm, a, c, bad) -> None:
    with pytest.raises(CurveError) as err:
        MACCurves.from_long(np.array(firm), np.array(a, float), np.array(c, float), 2)
    assert err.value.point_index == bad
    assert isinstance(err.value, ValueError) and err.value.message


def test_negative_cost_is_allowed_with_a_point_at_zero() -> None:
    curves = MACCurves.from_long(np.array([0, 0]), np.array([0.0, 10.0]),
                                 np.array([-20.0, 20.0]), 1)
    assert points_of(curves, 0) == [(0, -20), (10, 20)]
    # no-regret abatement: everything with a negative cost is done at price 0
    assert curves.abatement_at(0.0)[0] == pytest.approx(5.0)


# ------------------------------------------------------------------ other constructors
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 5), k=st.integers(1, 4))
def test_from_options_is_a_step_curve_of_the_options(seed, n, k) -> None:
    rng = np.random.default_rng(seed)
    potential = rng.uniform(0, 100, (n, k)) * (rng.random((n, k)) < 0.8)  # some zero potentials
    cost = rng.choice([-20.0, 0.0, 35.0, 80.0, 150.0], (n, k))  # ties between options
    curves = MACCurves.from_options(potential, cost)
    assert np.allclose(curves.max_abatement, potential.sum(axis=1))
    assert np.array_equal(curves.cost[curves.start[:-1]], cost.min(axis=1))  # starts cheapest
    for i in range(n):
        pts = points_of(curves, i)
        assert pts[0][0] == 0
        assert all(a1 >= a0 and c1 >= c0 for (a0, c0), (a1, c1) in itertools.pairwise(pts))
        assert all(dc == 0 for _, da, _, dc in segments(pts) if da > 0)  # only flats
    for p in [-30.0, -20.0, 0.0, 10.0, 35.0, 80.0, 100.0, 150.0, 200.0]:
        below = (potential * (cost < p)).sum(axis=1)
        at = (potential * (cost == p)).sum(axis=1)
        for theta in (0.0, 0.3, 1.0):
            assert np.allclose(curves.abatement_at(p, theta), below + theta * at)
    # the MAC inside an option's range is that option's cost
    order = np.argsort(cost, axis=1, kind="stable")
    q = np.cumsum(np.take_along_axis(potential, order, 1), axis=1)
    mid = q - np.take_along_axis(potential, order, 1) / 2
    wide = np.take_along_axis(potential, order, 1) > 0
    for j in range(k):
        mc = curves.marginal_cost(mid[:, j])
        assert np.allclose(mc[wide[:, j]], np.take_along_axis(cost, order, 1)[wide[:, j], j])


def test_linear_curves() -> None:
    m = np.array([100.0, 50.0, 0.0, 40.0])
    c1 = np.array([200.0, 100.0, 30.0, 10.0])
    c0 = np.array([0.0, -50.0, 0.0, 10.0])  # the last is flat
    curves = MACCurves.linear(m, c1, c0)
    assert curves.max_abatement.tolist() == m.tolist()
    assert curves.abatement_at(100.0).tolist() == pytest.approx([50.0, 50.0, 0.0, 40.0])
    assert curves.abatement_at(0.0).tolist() == pytest.approx([0.0, 50 / 3, 0.0, 0.0])
    assert curves.abatement_at(10.0, theta=0.25)[3] == pytest.approx(10.0)
    a = np.array([30.0, 25.0, 0.0, 40.0])
    expected = c0 * a + (c1 - c0) / np.where(m > 0, m, 1) * a**2 / 2
    assert np.allclose(curves.cost_of(a), expected)
    assert np.allclose(curves.marginal_cost(a)[:2], c0[:2] + (c1 - c0)[:2] * a[:2] / m[:2])


# ------------------------------------------------------------------ evaluation
@settings(max_examples=80, deadline=None)
@given(curve_list=curves_st, theta=st.sampled_from([0.0, 0.4, 1.0]))
def test_abatement_at_matches_the_furthest_reachable_point(curve_list, theta) -> None:
    curves = build(curve_list)
    for p in price_grid(curve_list):
        got = curves.abatement_at(p, theta)
        want = [ref_abatement(pts, p, theta) for pts in curve_list]
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9)
    assert curves.abatement_at(math.inf).tolist() == pytest.approx(curves.max_abatement.tolist())
    assert curves.abatement_at(-math.inf).tolist() == [0.0] * len(curve_list)
    # a price per firm: firm i sees prices[i]
    grid = price_grid(curve_list)
    prices = np.array([grid[i % len(grid)] for i in range(len(curve_list))])
    want = [ref_abatement(pts, prices[i], theta) for i, pts in enumerate(curve_list)]
    assert curves.abatement_at(prices, theta) == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_theta_shares_flats_at_the_price_and_negative_costs_abate_at_zero() -> None:
    # firm 0: no-regret flat at -10 (20 t), then flat at 50 (30 t); firm 1 sloped -20 -> 20
    curves = MACCurves.from_long(
        np.array([0, 0, 0, 0, 1, 1]), np.array([0, 20, 20, 50, 0, 40.0]),
        np.array([-10, -10, 50, 50, -20, 20.0]), 2)
    assert curves.abatement_at(0.0).tolist() == pytest.approx([20.0, 20.0])
    assert curves.abatement_at(50.0, theta=0.0)[0] == pytest.approx(20.0)
    assert curves.abatement_at(50.0, theta=0.5)[0] == pytest.approx(35.0)
    assert curves.abatement_at(50.0)[0] == pytest.approx(50.0)
    assert curves.abatement_at(-10.0, theta=0.5).tolist() == pytest.approx([10.0, 10.0])
    assert curves.abatement_at(np.array([-10.0, 0.0]), 0.0).tolist() == pytest.approx([0, 20])
    assert curves.cost_of(np.array([20.0, 20.0])).tolist() == pytest.approx([-200.0, -200.0])


@settings(max_examples=60, deadline=None)
@given(curve_list=curves_st,
       frac=st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 1.2)), min_size=6, max_size=6))
def test_cost_of_is_the_area_under_the_curve(curve_list, frac) -> None:
    curves = build(curve_list)
    a = np.array([f * pts[-1][0] for f, pts in zip(frac, curve_list)])
    got = curves.cost_of(a)
    for i, pts in enumerate(curve_list):
        want = integral(pts, a[i])
        scale = max(1.0, abs(pts[0][1]), abs(pts[-1][1])) * max(1.0, pts[-1][0])
        assert got[i] == pytest.approx(want, rel=1e-7, abs=1e-9 * scale)
    assert np.allclose(curves.cost_of(np.zeros(len(curve_list))), 0.0)


@settings(max_examples=80, deadline=None)
@given(curve_list=curves_st)
def test_marginal_cost_is_the_price_inside_a_slope_and_the_lower_cost_at_a_jump(curve_list):
    curves = build(curve_list)
    first = [pts[0][1] for pts in curve_list]
    assert curves.marginal_cost(np.zeros(len(curve_list))).tolist() == first
    for p in price_grid(curve_list):
        a = curves.abatement_at(p)
        mc = curves.marginal_cost(a)
        for i, pts in enumerate(curve_list):
            inside = any(da > 0 and dc > 0 and c0 < p < c0 + dc
                         for _, da, c0, dc in segments(pts))
            if inside:
                assert mc[i] == pytest.approx(p, rel=1e-9, abs=1e-9)
            if a[i] > 0:  # the last tonne abated never costs more than the price
                assert mc[i] <= p + 1e-9 * max(1.0, abs(p))
    # at every vertical jump the MAC is the cost below the jump (of the last tonne abated)
    for i, pts in enumerate(curve_list):
        for (a0, c0), (a1, c1) in itertools.pairwise(pts):
            if a1 == a0 and c1 > c0 and a0 > 0:
                x = np.zeros(len(curve_list))
                x[i] = a0
                lower = min(c for a, c in pts if a == a0)  # the cost arriving at a0
                assert curves.marginal_cost(x)[i] == pytest.approx(lower)


def test_marginal_cost_at_a_jump_example() -> None:
    curves = MACCurves.from_long(np.zeros(5, int), np.array([0, 5, 5, 8, 10.0]),
                                 np.array([0, 50, 80, 80, 100.0]), 1)
    assert curves.marginal_cost(np.array([5.0]))[0] == 50.0
    assert curves.marginal_cost(np.array([2.5]))[0] == pytest.approx(25.0)
    assert curves.marginal_cost(np.array([6.0]))[0] == 80.0
    assert curves.marginal_cost(np.array([9.0]))[0] == pytest.approx(90.0)
    assert curves.abatement_at(60.0)[0] == 5.0  # between the two costs of the jump


@settings(max_examples=60, deadline=None)
@given(curve_list=curves_st)
def test_knots_add_up_to_the_curves(curve_list) -> None:
    curves = build(curve_list)
    knots = curves.knots()
    assert knots.total == pytest.approx(float(curves.max_abatement.sum()), rel=1e-12, abs=1e-9)
    for p in price_grid(curve_list):
        for theta in (0.0, 1.0):
            assert supply_at(knots, p, theta) == pytest.approx(
                float(curves.abatement_at(p, theta).sum()), rel=1e-9, abs=1e-9)


# ------------------------------------------------------------------ transformations
@settings(max_examples=40, deadline=None)
@given(curve_list=curves_st, seed=st.integers(0, 2**32 - 1))
def test_scaled_cost_scaled_and_select(curve_list, seed) -> None:
    rng = np.random.default_rng(seed)
    curves = build(curve_list)
    n = curves.n_firms
    f = rng.uniform(0.1, 3.0, n)
    a = rng.uniform(0, 1, n) * curves.max_abatement
    grid = price_grid(curve_list, robust=True)

    s = curves.scaled(f)
    assert np.allclose(s.max_abatement, f * curves.max_abatement)
    assert np.array_equal(s.cost, curves.cost)
    for p in grid:
        assert np.allclose(s.abatement_at(p, 0.5), f * curves.abatement_at(p, 0.5))
    assert np.allclose(s.cost_of(f * a), f * curves.cost_of(a))
    assert np.allclose(s.marginal_cost(f * a), curves.marginal_cost(a))

    g = rng.uniform(0.1, 3.0, n)
    cs = curves.cost_scaled(g)
    assert np.array_equal(cs.abatement, curves.abatement)
    for p in grid:  # firm i at price g_i p behaves like the original at p
        assert np.allclose(cs.abatement_at(g * p, 0.5), curves.abatement_at(p, 0.5))
    assert np.allclose(cs.cost_of(a), g * curves.cost_of(a))

    mask = rng.random(n) < 0.5
    idx = rng.permutation(n)[: max(1, n // 2)]
    for which, ids in ((mask, np.nonzero(mask)[0]), (idx, idx)):
        sub = curves.select(which)
        assert sub.n_firms == len(ids)
        for j, i in enumerate(ids):
            assert points_of(sub, j) == points_of(curves, i)
        if len(ids):
            assert np.allclose(sub.abatement_at(grid[0]), curves.abatement_at(grid[0])[ids])
            assert np.allclose(sub.cost_of(a[ids]), curves.cost_of(a)[ids])
    empty = curves.select(np.zeros(n, bool))
    assert empty.n_firms == 0 and empty.knots().total == 0.0


def test_marginal_cost_at_the_end_of_a_step_is_that_steps_cost() -> None:
    """Rounding at a step's end must not report the next, dearer step (the price would be below
    the firm's marginal cost)."""
    pot = np.array([[0.1, 0.2, 0.3]]) * 3.3
    curves = MACCurves.from_options(pot, np.array([[10.0, 20.0, 30.0]]))
    end_of_second = np.array([pot[0, 0] + pot[0, 1]]) * (1 + 1e-15)  # a hair past it
    assert curves.marginal_cost(end_of_second)[0] == 20.0
    assert curves.marginal_cost(np.array([pot[0, :2].sum() * 1.001]))[0] == 30.0


# ------------------------------------------------------------------ fast paths = reference forms
def test_stable_argsort_is_numpys_stable_argsort() -> None:
    """The packed-key sort gives numpy's stable permutation and the sorted prices bit for bit:
    ties, near-ties (within the key's resolution), 0.0 and -0.0, infinities, NaNs."""
    rng = np.random.default_rng(7)
    cases = [np.empty(0), np.array([3.0]), np.array([0.0, -0.0, 0.0, -0.0, -1.0])]
    for _ in range(300):
        n = int(rng.integers(1, 200))
        base = rng.choice([1.0, 123.456, 1e-300, 1e300, 5e-324])
        near = rng.choice([0.0, 1e-16, 1e-13, 1e-11])
        v = rng.integers(-5, 5, n) * base * (1 + rng.integers(0, 3, n) * near)
        for special in (-0.0, math.inf, -math.inf):
            v[rng.random(n) < 0.1] = special
        cases.append(v)
    cases.append(np.where(rng.random(50) < 0.2, np.nan, rng.normal(size=50)))
    cases.append(np.where(rng.random(50) < 0.2, -np.nan, rng.normal(size=50)))
    cases.append(1.0 + 1e-15 * np.arange(5000)[::-1])  # all closer than the key resolves
    cases.append(rng.uniform(-30, 800, 20_000).round(1))  # many ties
    for x in cases:
        order, xs = stable_argsort(x)
        ref = np.argsort(x, kind="stable")
        assert np.array_equal(order, ref)
        assert np.array_equal(xs.view(np.int64), x[ref].view(np.int64))


@pytest.mark.parametrize("sloped", [False, True])
def test_sorted_knots_are_the_stable_sort_with_running_sums(sloped) -> None:
    rng = np.random.default_rng(3)
    n = 3000
    x = rng.uniform(-50, 300, n).round(0)  # many ties
    jump = rng.uniform(0, 10, n)
    slope = rng.normal(size=n) if sloped else np.zeros(n)
    k = Knots(x, jump, slope)
    o = np.argsort(x, kind="stable")
    ref = (x[o], np.cumsum(jump[o]), np.cumsum(slope[o]), np.cumsum((slope * x)[o]), jump[o])
    assert k.sloped == sloped
    for got, want in zip(k._sorted, ref):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("kind", ["steps", "mixed"])
def test_split_at_agrees_with_the_sorted_evaluation(kind) -> None:
    """One pass (``split_at``, ``supply_at``) and the sorted path (``at``) give the same supply:
    at knot prices with theta in (0, 1), between them, at negative prices and at +-inf."""
    rng = np.random.default_rng(11)
    n = 400
    if kind == "steps":
        curves = MACCurves.from_options(rng.uniform(0, 100, (n, 3)),
                                        rng.uniform(-40, 300, (n, 3)).round(0))
    else:
        curves = build([[(0.0, c), (a, c + d)] for a, c, d in zip(
            rng.uniform(1, 100, n), rng.uniform(-40, 300, n).round(0),
            rng.choice([0.0, 25.0], n))])
    knots = curves.knots()
    assert knots.sloped == (kind == "mixed")
    prices = [*rng.choice(knots.x, 30), *rng.uniform(-60, 350, 30), -45.0, -math.inf, math.inf]
    scale = knots.total
    for p in prices:
        q, at = knots.split_at(p)
        for theta in (0.0, 0.37, 1.0):
            assert q + theta * at == pytest.approx(knots.at(p, theta), rel=1e-12, abs=1e-12 * scale)
            assert supply_at(knots, p, theta) == q + theta * at
    assert knots.split_at(math.inf) == (knots.total, 0.0)
    assert knots.split_at(-math.inf) == (0.0, 0.0)
    assert Knots(np.empty(0), np.empty(0), np.empty(0)).split_at(1.0) == (0.0, 0.0)


def test_step_curve_shortcuts_equal_the_general_formulas() -> None:
    """Step curves (flat segments only) skip the slope terms; the results are those of the
    general formulas exactly (firm index, knots, abatement at a price, cost)."""
    rng = np.random.default_rng(5)
    n = 300
    pot = rng.uniform(0, 100, (n, 4)) * (rng.random((n, 4)) < 0.8)
    curves = MACCurves.from_options(pot, rng.uniform(-30, 300, (n, 4)).round(0))
    assert curves._steps
    firm, a0, da, c0, dc = curves._widths
    positive = np.flatnonzero(np.diff(curves.abatement) > 0)
    assert np.array_equal(firm, np.repeat(np.arange(n), np.diff(curves.start))[positive])
    knots = curves.knots()
    assert np.array_equal(knots.x, c0) and np.array_equal(knots.jump, da)
    assert not knots.sloped
    for p in [*rng.choice(c0, 20), 17.5, -math.inf, math.inf, rng.uniform(-30, 300, n)]:
        for theta in (0.0, 0.4, 1.0):
            pp = p[firm] if np.ndim(p) else p
            flat = np.where(c0 < pp, 1.0, np.where(c0 == pp, theta, 0.0))
            want = np.bincount(firm, weights=da * flat, minlength=n)
            assert np.array_equal(curves.abatement_at(p, theta), want)
    a = rng.uniform(0, 1.1, n) * curves.max_abatement
    t = np.clip(a[firm] - a0, 0.0, da)
    want = np.bincount(firm, weights=t * c0 + dc / da * t * t / 2.0, minlength=n)
    assert np.array_equal(curves.cost_of(a), want)


def _marginal_cost_reference(curves: MACCurves, abatement: np.ndarray) -> np.ndarray:
    """The general form: the segments of each firm alone, the maximum by np.maximum.reduceat."""
    keep = np.ones(curves.abatement.size - 1, dtype=bool)
    keep[curves.start[1:-1] - 1] = False
    firm = np.repeat(np.arange(curves.n_firms), np.diff(curves.start))[:-1][keep]
    a0, c0 = curves.abatement[:-1][keep], curves.cost[:-1][keep]
    da, dc = np.diff(curves.abatement)[keep], np.diff(curves.cost)[keep]
    a = abatement[firm]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(da > 0, np.clip((a - a0) / np.where(da > 0, da, 1.0), 0.0, 1.0), 1.0)
    value = np.where(a - a0 > 1e-12 * np.maximum(np.abs(a0), 1.0), c0 + dc * frac, -np.inf)
    seg_start = curves.start[:-1] - np.arange(curves.n_firms)
    return np.maximum(curves.cost[curves.start[:-1]], np.maximum.reduceat(value, seg_start))


@pytest.mark.parametrize("kind", ["steps", "uniform", "general"])
def test_marginal_cost_shortcuts_equal_the_general_form(kind) -> None:
    """Step curves skip the fractions, curves with as many points each take the maximum column
    by column: the same values as the general form, to the last bit."""
    rng = np.random.default_rng(9)
    n = 300
    if kind == "steps":
        pot = rng.uniform(0, 100, (n, 4)) * (rng.random((n, 4)) < 0.8)
        curves = MACCurves.from_options(pot, rng.uniform(-30, 300, (n, 4)).round(0))
    else:
        k = np.full(n, 4) if kind == "uniform" else rng.integers(2, 7, n)
        start = np.concatenate(([0], np.cumsum(k))).astype(np.int64)
        firm = np.repeat(np.arange(n), k)
        inc = rng.uniform(0, 10, firm.size) * (rng.random(firm.size) < 0.7)
        inc[start[:-1]] = 0.0
        rise = rng.uniform(0, 50, firm.size) * (rng.random(firm.size) < 0.5)
        rise[start[:-1]] = rng.uniform(-20, 50, n)
        first = np.repeat(start[:-1], k)
        a, c = np.cumsum(inc), np.cumsum(rise)  # cumulative within each firm:
        curves = MACCurves(start, a - a[first], c - c[first] + rise[first])
    assert (curves._points_per_firm > 0) == (kind != "general")
    assert curves._steps == (kind == "steps")
    top = curves.max_abatement
    for a in (rng.uniform(0, 1.1, n) * top, top, top * (1 + 1e-15), np.zeros(n)):
        assert np.array_equal(curves.marginal_cost(a), _marginal_cost_reference(curves, a))


def test_stable_argsort_of_keys_in_any_layout_is_numpys() -> None:
    """Given the keys laid out as runs in order (or in any order), the sort is the same: numpy's
    stable permutation; ``sorted_running_sum`` adds the jumps in it as ``np.cumsum`` does (ties,
    near-ties, both zeros, infinities, NaNs, empty)."""
    rng = np.random.default_rng(23)
    cases = [np.empty(0), np.array([-0.0]), np.array([0.0, -0.0, 0.0, -0.0, -1.0])]
    for _ in range(200):
        n = int(rng.integers(1, 400))
        v = rng.integers(-9, 9, n) * rng.choice([1.0, 0.3, 1e-300, 1e300])
        v = v * (1 + rng.integers(0, 3, n) * rng.choice([0.0, 1e-16, 1e-13]))
        for special in (-0.0, math.inf, -math.inf):
            v[rng.random(n) < 0.05] = special
        cases.append(v)
    cases.append(np.where(rng.random(60) < 0.2, np.nan, rng.normal(size=60)))
    cases.append(1.0 + 1e-15 * np.arange(3000)[::-1])  # all closer than the key resolves
    for x in cases:
        n = x.size
        ref = np.argsort(x, kind="stable")
        b = kernels.key_bits(n)
        group = rng.integers(0, 4, n)  # runs: the keys of each group in order
        runs = np.concatenate([np.sort(kernels.sort_keys(x, b)[group == g]) for g in range(4)])
        jump = rng.uniform(0, 9, n)
        jump[rng.random(n) < 0.1] = -0.0
        for key in (None, runs, rng.permutation(kernels.sort_keys(x, b))):
            order, xs = stable_argsort(x, None if key is None else key.copy())
            assert np.array_equal(order, ref)
            assert xs.tobytes() == x[ref].tobytes()
            out = np.full(n, np.nan)
            order, xs = sorted_running_sum(x, jump, out, None if key is None else key.copy())
            assert np.array_equal(order, ref) and xs.tobytes() == x[ref].tobytes()
            assert out.tobytes() == np.cumsum(jump[ref]).tobytes()
            into = np.full(n, np.nan)  # (the sorted prices written where asked)
            order, xs = sorted_running_sum(x, jump, out, None if key is None else key.copy(),
                                           into)
            assert xs is into and np.array_equal(order, ref)
            assert into.tobytes() == x[ref].tobytes()


def test_step_knots_have_read_only_zero_slopes() -> None:
    """``Knots.steps``: the jumps at the prices given, zero slopes (read-only, of any size) and
    ``sloped`` False, as the general constructor would find; evaluations agree with it."""
    rng = np.random.default_rng(43)
    for n in (0, 1, 5, 3000, 20):
        x, jump = rng.uniform(-5, 50, n), rng.uniform(0, 9, n)
        k, plain = Knots.steps(x, jump), Knots(x, jump, np.zeros(n))
        assert k.x is x and k.jump is jump
        assert k.slope.tobytes() == plain.slope.tobytes() and not k.slope.flags.writeable
        assert k.sloped is False and plain.sloped is False
        for p in (-10.0, 7.5, 60.0):
            assert k.at(p) == plain.at(p) and k.split_at(p) == plain.split_at(p)
