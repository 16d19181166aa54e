"""Tests of model/investment.py: lock-in, learning, later options, adoption, demography."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest

from model import demography as dem
from model import investment as inv
from model.clearing_kernels import segments
from model.mac import MACCurves
from model.population import (
    THRESHOLD,
    Firms,
    TechOptions,
    demography_table,
    firm_type_table,
    synthetic_firms,
    technology_table,
)
from model.tables import load_firms

CONF = ["high", "medium", "low", "assumption"]


def make_options(cost, potential, *, kind, lifetime=None, learning_rate=None,
                 cost_decline=None, first_year=None, initial=None, base_year=2025):
    """TechOptions from per-firm costs/potentials (n_firms, n_options) and per-option vectors."""
    cost = np.asarray(cost, dtype=float)
    k = cost.shape[1]
    kind = np.asarray(kind, dtype=object)

    def vec(v, default):
        return np.full(k, default) if v is None else np.asarray(v)

    return TechOptions(
        name=np.array([f"o{j}" for j in range(k)], dtype=object),
        sector=np.full(k, "power", dtype=object), kind=kind,
        lifetime=np.where(kind == "capital", vec(lifetime, 10), 0).astype(np.int64),
        learning_rate=vec(learning_rate, 0.0).astype(float),
        cost_decline=vec(cost_decline, 0.0).astype(float),
        first_year=vec(first_year, 2000).astype(np.int64),
        initial_deployment=vec(initial, 1000.0).astype(float),
        cost=cost, potential=np.asarray(potential, dtype=float), base_year=base_year)


@pytest.fixture(scope="module")
def pop():
    return synthetic_firms(np.random.default_rng(11), base_year=2024)


@pytest.fixture(scope="module")
def planned(pop):
    return dem.plan_demography(np.random.default_rng(5), pop, 2050)


# ---------------------------------------------------------------------------------- data
def test_technology_dynamics_columns_are_complete_and_sourced():
    t = technology_table()
    assert set(t["kind"]) <= {"operational", "capital"} and (t["kind"] == "capital").any()
    cap = t["kind"] == "capital"
    assert (t.loc[cap, "lifetime"] >= 1).all() and (t.loc[cap, "lifetime"] % 1 == 0).all()
    assert t.loc[~cap, "lifetime"].isna().all()
    for c in ("learning_rate", "cost_decline"):
        assert ((t[c] >= 0) & (t[c] < 1)).all()
    assert (t["initial_deployment"] > 0).all()
    assert t["dynamics_confidence"].isin(CONF).all()
    assumed = t[t["dynamics_confidence"] == "assumption"]
    assert assumed["dynamics_source"].str.contains("assumption").all()
    by = t.set_index(["sector", "option"])
    assert by.loc[("steel", "h2_dri"), "first_year"] >= 2030
    assert by.loc[("aluminium", "inert_anode"), "first_year"] >= 2028
    assert by.loc[("steel", "h2_dri"), "kind"] == "capital"
    # CCS: capture 219 -> 165 yuan/t by the 2030s (reference §5), ≈ 10-13 years from time alone
    ccs = t[t["option"].str.startswith("ccs") | t["option"].str.startswith("ccus")]
    assert ((1 - ccs["cost_decline"]) ** 10 >= 165 / 219 * 0.95).all()
    assert ((1 - ccs["cost_decline"]) ** 13 <= 165 / 219 * 1.1).all()
    assert (ccs["kind"] == "capital").all()


def test_demography_table_covers_every_firm_type():
    d = demography_table()
    types = firm_type_table()
    assert set(zip(d.sector, d.firm_type)) == set(zip(types.sector, types.firm_type))
    assert ((d.retire_share >= 0) & (d.retire_share <= 1)).all()
    assert (d.retire_from <= d.retire_until).all() and (d.entry_from <= d.entry_until).all()
    assert ((d.growth_sigma >= 0) & (d.entry_rate >= 0)).all()
    assert ((d.entrant_size > 0) & (d.entrant_intensity > 0)).all()
    small = d.set_index("firm_type").loc["coal_le300"]
    assert small.retire_share > 0.5 and small.retire_from >= 2025 and small.retire_until <= 2045


# ---------------------------------------------------------------------------------- population
def test_options_reproduce_the_mac_of_all_options(pop):
    o = pop.options
    tech = technology_table()
    n_rows, k = len(tech), int(tech.groupby("sector").size().max())
    assert o.cost.shape == o.potential.shape == o.option.shape == (pop.n, k)
    assert o.n_options == n_rows and o.lifetime.shape == o.first_year.shape == (n_rows,)
    assert o.base_year == pop.base_year
    # compact layout: each firm's slots hold its sector's options in table order, then padding
    real = o.option >= 0
    assert (real[:, :-1] >= real[:, 1:]).all()
    per_sector = tech.groupby("sector").size()
    np.testing.assert_array_equal(real.sum(axis=1), per_sector.reindex(pop.sector).to_numpy())
    firm_sector = np.broadcast_to(pop.sector[:, None], real.shape)
    assert (o.sector[o.option[real]] == firm_sector[real]).all()
    assert (np.diff(o.option, axis=1)[real[:, 1:]] > 0).all()  # in table order
    assert (o.potential[~real] == 0).all() and (o.potential[real] > 0).all()
    # the same draws with one column per option (other sectors' options: potential 0)
    dense = o.dense(o.potential)
    other = pop.sector[:, None] != o.sector[None, :]
    assert dense.shape == (pop.n, n_rows)
    assert (dense[other] == 0).all() and (dense[~other] > 0).all()
    np.testing.assert_array_equal(o.per_slot(o.lifetime, 0)[real], o.lifetime[o.option[real]])
    assert (o.per_slot(o.lifetime, 0)[~real] == 0).all()
    rebuilt = MACCurves.from_options(o.tonnes(pop.emissions), o.cost)
    for name in ("start", "abatement", "cost"):  # the same draws: the same curves
        np.testing.assert_array_equal(getattr(rebuilt, name), getattr(pop.mac, name))
    np.testing.assert_allclose(rebuilt.max_abatement, pop.mac.max_abatement, rtol=1e-12)
    for price in (0.0, 30.0, 120.0, 400.0, 1e4):
        np.testing.assert_allclose(rebuilt.abatement_at(price), pop.mac.abatement_at(price),
                                   rtol=1e-12, atol=1e-6)
    a = pop.mac.max_abatement * 0.5
    np.testing.assert_allclose(rebuilt.cost_of(a), pop.mac.cost_of(a), rtol=1e-9)
    sub = o.take(pop.sector == "steel")
    assert sub.n_firms == (pop.sector == "steel").sum() and (sub.option[:, 3] >= 0).all()


def test_population_backward_compatible(pop, tmp_path):
    again = synthetic_firms(np.random.default_rng(11), base_year=2024)
    np.testing.assert_array_equal(again.options.cost, pop.options.cost)
    assert pop.active_from is None and pop.active_until is None
    plain = Firms(firm_id=pop.firm_id, sector=pop.sector, firm_type=pop.firm_type,
                  emissions=pop.emissions, output=pop.output, allocation=None, mac=pop.mac,
                  base_year=2024)
    assert plain.options is None and dem.is_active(plain, 2040).all()
    table = tmp_path / "firms.csv"
    table.write_text("firm_id,sector,emissions\na,power,786100\nb,steel,300000\n")
    drawn = load_firms(table, None, np.random.default_rng(0), 2025)
    assert drawn.options is not None and drawn.options.cost.shape[0] == 2
    mac = tmp_path / "mac.csv"
    mac.write_text("firm_id,abatement,mac\na,1000,20\n")
    assert load_firms(table, mac, np.random.default_rng(0), 2025).options is None


# ---------------------------------------------------------------------------------- costs
def test_costs_fall_by_the_learning_rate_per_doubling():
    lr = np.array([0.0, 0.1, 0.2])
    o = make_options(np.full((2, 3), 300.0), np.full((2, 3), 0.1), kind=["capital"] * 3,
                     learning_rate=lr, initial=[1000.0, 500.0, 2000.0])
    c0 = o.initial_deployment
    base = inv.option_costs(o, 2025, c0)
    np.testing.assert_allclose(base, o.cost)
    for doublings in (1, 2, 3.5):
        c = inv.option_costs(o, 2025, c0 * 2 ** doublings)
        np.testing.assert_allclose(c / base, np.broadcast_to((1 - lr) ** doublings, c.shape))
    # cumulative adoption never below the initial deployment: no cost rise
    np.testing.assert_allclose(inv.option_costs(o, 2025, c0 / 4), base)
    more = inv.option_costs(o, 2025, c0 * 3)
    assert (more <= base).all() and (more[:, 1:] < base[:, 1:]).all()


def test_costs_fall_with_time_by_the_cost_decline():
    d = np.array([0.0, 0.02, 0.05])
    o = make_options([[100.0, 200.0, 400.0]], [[0.1, 0.1, 0.1]], kind=["operational"] * 3,
                     cost_decline=d, base_year=2025)
    cum = o.initial_deployment
    for year in (2026, 2030, 2045):
        ratio = inv.option_costs(o, year, cum) / inv.option_costs(o, year - 1, cum)
        np.testing.assert_allclose(ratio[0], 1 - d)
    np.testing.assert_allclose(inv.option_costs(o, 2045, cum, learning=False), o.cost)
    np.testing.assert_allclose(inv.option_costs(o, 2020, cum), o.cost)  # no rise before


def test_options_unavailable_before_their_first_year(pop):
    o = pop.options
    cum = o.initial_deployment
    h2 = np.flatnonzero(o.name == "h2_dri")[0]
    first = int(o.first_year[h2])
    steel = pop.sector == "steel"
    is_h2 = o.option == h2  # the slots of H2-DRI: one per steel firm
    np.testing.assert_array_equal(is_h2.any(axis=1), steel)
    assert np.isinf(inv.option_costs(o, first - 1, cum)[is_h2]).all()
    assert np.isfinite(inv.option_costs(o, first, cum)[is_h2]).all()
    costs = inv.option_costs(o, first - 1, cum)
    assert np.isfinite(costs[o.per_slot(o.first_year < first, False)]).all()
    assert np.isinf(costs[o.option < 0]).all()  # padding: never available
    # nobody adopts it before, whatever the price; steel firms do at a high enough price
    st = inv.InvestmentState.new(o)
    pt = o.tonnes(pop.emissions)
    new = inv.decide(st, costs, 1e6, 0.05, first - 1, o.lifetime, pt)
    assert not new[is_h2].any() and not new[o.option < 0].any()
    st = inv.InvestmentState.new(o)
    new = inv.decide(st, inv.option_costs(o, first, cum), 1e6, 0.05, first, o.lifetime, pt)
    assert new[is_h2].all() and not new[o.option < 0].any()
    assert (st.adopted_from[:, h2] == np.where(steel, first, 0)).all()  # the per-option view


# ---------------------------------------------------------------------------------- curves
def test_operational_curves_hold_available_operational_options_only(pop):
    o = pop.options
    e = pop.emissions * 1.1
    cum = o.initial_deployment
    curves = inv.operational_curves(o, e, 2026, cum)
    pt = o.tonnes(e)
    oper = o.per_slot(~o.capital & (o.first_year <= 2026), False)
    np.testing.assert_allclose(curves.max_abatement, np.where(oper, pt, 0.0).sum(axis=1),
                               rtol=1e-12)
    costs = inv.option_costs(o, 2026, cum)
    # at any price a firm abates exactly its operational options cheaper than the price
    for price in (50.0, 200.0, 2000.0):
        want = np.where(oper & (costs < price), pt, 0.0).sum(axis=1)
        np.testing.assert_allclose(curves.abatement_at(price, theta=0.0), want, rtol=1e-12)
    # with the capital options not adopted: every available option (the static curve)
    st = inv.InvestmentState.new(o)
    full = inv.operational_curves(o, e, 2040, cum, state=st, include_capital=True)
    avail = o.per_slot(o.first_year <= 2040, False)
    np.testing.assert_allclose(full.max_abatement, np.where(avail, pt, 0.0).sum(axis=1),
                               rtol=1e-12)
    inv.decide(st, inv.option_costs(o, 2040, cum), 1e6, 0.05, 2040, o.lifetime, pt)
    after = inv.operational_curves(o, e, 2040, cum, state=st, include_capital=True)
    np.testing.assert_allclose(after.max_abatement,
                               np.where(o.per_slot(~o.capital, False), pt, 0.0).sum(axis=1),
                               rtol=1e-12)
    with pytest.raises(ValueError):
        inv.operational_curves(o, e, 2040, cum, include_capital=True)


def _reference_curves(cost, pot, use):
    """The yearly curves as built before the compact layout: each firm's usable options
    compacted into the first columns in column order, padded at the firm's cheapest cost."""
    n = use.shape[0]
    count = use.sum(axis=1)
    k = max(1, int(count.max(initial=0)))
    rows, cols = np.nonzero(use)
    slot = np.arange(rows.size) - np.repeat(np.cumsum(count) - count, count)
    c, p = np.full((n, k), np.inf), np.zeros((n, k))
    c[rows, slot], p[rows, slot] = cost[rows, cols], pot[rows, cols]
    cheapest = c.min(axis=1)
    c = np.where(np.isfinite(c), c, np.where(np.isfinite(cheapest), cheapest, 0.0)[:, None])
    return MACCurves.from_options(p, c)


@pytest.mark.parametrize("seed", range(6))
def test_operational_curves_are_the_step_curves_of_the_usable_options(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 60)), int(rng.integers(1, 6))
    kind = rng.choice(["operational", "capital"], k)
    cost = rng.choice([-20.0, 0.0, 35.0, 80.0, 150.0, 400.0], (n, k))  # many ties
    pot = rng.choice([0.0, 0.05, 0.1, 0.2], (n, k))
    o = make_options(cost, pot, kind=kind, first_year=rng.choice([2000, 2030, 2050], k))
    e = rng.uniform(3e4, 1e6, n)
    st = inv.InvestmentState.new(o)
    for capital in (False, True):
        got = inv.operational_curves(o, e, 2035, o.initial_deployment, state=st,
                                     include_capital=capital)
        c = inv.option_costs(o, 2035, o.initial_deployment)
        use = ((~o.capital | capital)[None, :] & (o.tonnes(e) > 0) & np.isfinite(c))
        want = _reference_curves(c, o.tonnes(e), use)
        for name in ("start", "abatement", "cost"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))


@pytest.mark.parametrize("seed", range(4))
def test_option_knots_are_the_aggregate_of_the_step_curves(seed):
    """The projection's supply (no per-firm curves) equals the sum of the firms' curves at
    every price, also exactly at option costs (flat segments) and with any share of them."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 80)), int(rng.integers(1, 6))
    kind = rng.choice(["operational", "capital"], k)
    o = make_options(rng.choice([-20.0, 0.0, 35.0, 80.0, 400.0], (n, k)),
                     rng.choice([0.0, 0.05, 0.2], (n, k)), kind=kind,
                     first_year=rng.choice([2000, 2030], k),
                     learning_rate=rng.uniform(0, 0.2, k), cost_decline=rng.uniform(0, 0.03, k))
    e = rng.uniform(3e4, 1e6, n)
    st = inv.InvestmentState.new(o)
    for capital in (False, True):
        knots = inv.option_knots(o, e, 2035, o.initial_deployment, include_capital=capital)
        curves = inv.operational_curves(o, e, 2035, o.initial_deployment, state=st,
                                        include_capital=capital)
        prices = np.concatenate((np.unique(knots.x), [-1e9, 0.0, 60.0, 1e9]))
        for p in prices:
            for theta in (0.0, 0.4, 1.0):
                assert knots.at(float(p), theta) == pytest.approx(
                    curves.abatement_at(float(p), theta).sum(), rel=1e-12, abs=1e-6)
        rows = np.flatnonzero(rng.random(n) < 0.5)  # some firms: as if taken first
        sub = inv.option_knots(o, e, 2035, o.initial_deployment, include_capital=capital,
                               rows=rows)
        want = inv.option_knots(o.take(rows), e[rows], 2035, o.initial_deployment,
                                include_capital=capital)
        for name in ("x", "jump", "slope"):
            np.testing.assert_array_equal(getattr(sub, name), getattr(want, name))


def test_results_do_not_depend_on_the_layout(pop):
    """The compact slots and one column per option give the same costs, curves and adoptions."""
    o = pop.options
    dense = dataclasses.replace(o, cost=o.dense(o.cost, 1.0), potential=o.dense(o.potential),
                                option=None)
    assert dense.option.shape == (pop.n, o.n_options)
    rng = np.random.default_rng(4)
    e = pop.emissions * rng.uniform(0.8, 1.2, pop.n)
    prices = np.cumsum(rng.uniform(-5, 30, (pop.n, 30)), axis=1) + 50
    until = np.where(rng.random(pop.n) < 0.3, rng.integers(2030, 2060, pop.n), dem.NEVER)
    eligible = rng.random(pop.n) < 0.8
    sc, sd = inv.InvestmentState.new(o), inv.InvestmentState.new(dense)
    for year in (2030, 2035, 2052):
        cc = inv.option_costs(o, year, sc.cumulative)
        cd = inv.option_costs(dense, year, sd.cumulative)
        has = o.option >= 0
        np.testing.assert_array_equal(o.dense(cc, np.inf)[dense.potential > 0],
                                      cd[dense.potential > 0])
        for capital in (False, True):
            a = inv.operational_curves(o, e, year, sc.cumulative, state=sc,
                                       include_capital=capital)
            b = inv.operational_curves(dense, e, year, sd.cumulative, state=sd,
                                       include_capital=capital)
            for name in ("start", "abatement", "cost"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        pc, pd_ = o.tonnes(e), dense.tonnes(e)
        nc = inv.decide(sc, cc, prices, 0.05, year, o.lifetime, pc, eligible=eligible,
                        active_until=until)
        nd = inv.decide(sd, cd, prices, 0.05, year, dense.lifetime, pd_, eligible=eligible,
                        active_until=until)
        assert nc.any() and not nc[~has].any()
        np.testing.assert_array_equal(o.dense(nc, False), nd)
        np.testing.assert_array_equal(sc.cumulative, sd.cumulative)
        for name in ("adopted_from", "adopted_until", "annual_cost"):
            np.testing.assert_array_equal(getattr(sc, name), getattr(sd, name))
        np.testing.assert_allclose(inv.locked_abatement(sc, pc, year),
                                   inv.locked_abatement(sd, pd_, year), rtol=1e-14)
        np.testing.assert_allclose(inv.capital_cost(sc, year), inv.capital_cost(sd, year),
                                   rtol=1e-14)


def test_a_firm_without_usable_options_gets_the_zero_curve():
    o = make_options([[50.0, 80.0]], [[0.2, 0.1]], kind=["capital", "operational"],
                     first_year=[2000, 2040])
    c = inv.operational_curves(o, np.array([1e5]), 2030, o.initial_deployment)
    assert c.max_abatement[0] == 0 and c.abatement_at(1e4)[0] == 0


# ---------------------------------------------------------------------------------- lock-in
def test_lock_in_abates_every_year_of_the_lifetime_even_at_a_zero_price():
    life = 6
    o = make_options([[100.0, 40.0], [100.0, 40.0]], [[0.3, 0.1], [0.3, 0.1]],
                     kind=["capital", "operational"], lifetime=[life, 0])
    st = inv.InvestmentState.new(o)
    e = np.array([1e6, 2e6])
    y0 = 2030
    pt = o.tonnes(e)
    new = inv.decide(st, inv.option_costs(o, y0, st.cumulative), np.array([150.0, 50.0]), 0.05,
                     y0, o.lifetime, pt)
    assert new[:, 0].tolist() == [True, False] and not new[:, 1].any()
    cost0 = 100.0 * 0.3 * 1e6
    for year in range(y0, y0 + life):
        e_y = e * (1 + 0.1 * (year - y0))  # emissions change: the adopted share keeps abating
        pt_y = o.tonnes(e_y)
        again = inv.decide(st, inv.option_costs(o, year, st.cumulative), 0.0, 0.05, year,
                           o.lifetime, pt_y)
        assert not again.any()
        np.testing.assert_allclose(inv.locked_abatement(st, pt_y, year), [0.3 * e_y[0], 0.0])
        np.testing.assert_allclose(inv.capital_cost(st, year), [cost0, 0.0])
    end = y0 + life
    np.testing.assert_array_equal(inv.locked_abatement(st, o.tonnes(e), end), [0.0, 0.0])
    np.testing.assert_array_equal(inv.capital_cost(st, end), [0.0, 0.0])
    assert inv.locked_abatement(st, pt, y0 - 1).sum() == 0
    # after its lifetime the option can be replaced, again locked for a lifetime
    renew = inv.decide(st, inv.option_costs(o, end, st.cumulative), 150.0, 0.05, end,
                       o.lifetime, pt)
    assert renew[:, 0].all()
    np.testing.assert_allclose(inv.locked_abatement(st, pt, end + life - 1), 0.3 * e)
    assert inv.locked_abatement(st, pt, end + life).sum() == 0


def test_adoption_adds_to_cumulative_adoption_and_lowers_later_costs():
    o = make_options([[300.0], [300.0]], [[0.2], [0.2]], kind=["capital"], learning_rate=[0.1],
                     initial=[2e5])
    st = inv.InvestmentState.new(o)
    pt = o.tonnes(np.array([5e5, 5e5]))
    before = inv.option_costs(o, 2030, st.cumulative)
    inv.decide(st, before, np.array([400.0, 0.0]), 0.0, 2030, o.lifetime, pt)
    assert st.cumulative[0] == pytest.approx(2e5 + 1e5)
    after = inv.option_costs(o, 2031, st.cumulative)
    np.testing.assert_allclose(after / before, 1.5 ** np.log2(0.9))


# ---------------------------------------------------------------------------------- adoption rule
def _npv_average(path, r, life):
    p = list(path) + [path[-1]] * max(0, life - len(path))
    w = [(1 + r) ** -k for k in range(life)]
    return sum(pk * wk for pk, wk in zip(p[:life], w)) / sum(w)


@pytest.mark.parametrize("horizon", [1, 4, 30])
def test_adopts_iff_levelised_cost_below_discounted_average_price(horizon):
    rng = np.random.default_rng(horizon)
    n, k = 60, 4
    life = np.array([5, 12, 0, 25])
    o = make_options(rng.uniform(50, 400, (n, k)), rng.uniform(0.01, 0.2, (n, k)),
                     kind=["capital", "capital", "operational", "capital"], lifetime=life)
    r = rng.uniform(0.0, 0.15, n)
    prices = np.cumsum(rng.uniform(-20, 40, (n, horizon)), axis=1) + 150
    st = inv.InvestmentState.new(o)
    costs = inv.option_costs(o, 2030, st.cumulative)
    new = inv.decide(st, costs, prices, r, 2030, o.lifetime, o.tonnes(np.full(n, 1e5)))
    for i in range(n):
        for j in range(k):
            want = life[j] > 0 and costs[i, j] < _npv_average(prices[i], r[i], life[j])
            assert new[i, j] == want
    assert new.any() and not new.all()
    np.testing.assert_allclose(inv.pv_average(prices, r, life)[:, 1],
                               [_npv_average(prices[i], r[i], 12) for i in range(n)])


def test_adoption_is_monotone_in_the_expected_price():
    rng = np.random.default_rng(3)
    n, k = 200, 3
    o = make_options(rng.uniform(0, 500, (n, k)), rng.uniform(0.01, 0.2, (n, k)),
                     kind=["capital"] * k, lifetime=[8, 15, 20])
    pt = o.tonnes(rng.uniform(3e4, 1e6, n))
    path = rng.uniform(0, 300, (n, 10))
    adopted = []
    for scale in (0.0, 0.5, 1.0, 1.5, 3.0):
        st = inv.InvestmentState.new(o)
        adopted.append(inv.decide(st, o.cost, path * scale, 0.05, 2030, o.lifetime, pt))
    for low, high in itertools.pairwise(adopted):
        assert (high | ~low).all()  # low implies high
    assert not adopted[0].any() and adopted[-1].sum() > adopted[1].sum()


def test_eligibility_and_closing_firms():
    o = make_options([[100.0]] * 3, [[0.2]] * 3, kind=["capital"], lifetime=[20])
    pt = o.tonnes(np.full(3, 1e5))
    st = inv.InvestmentState.new(o)
    # price 150 pays over 20 years, not when the firm closes after 5 (prices 0 afterwards)
    new = inv.decide(st, o.cost, 150.0, 0.05, 2030, o.lifetime, pt,
                     eligible=np.array([True, True, False]),
                     active_until=np.array([2060, 2034, 2060]))
    assert new[:, 0].tolist() == [True, False, False]
    assert inv.pv_average(150.0, 0.05, np.array([20]), n_firms=2).shape == (2, 1)


def _closed_path(prices, year, until):
    """Price paths with zeros after each firm's last year (what active_until means)."""
    years = year + np.arange(prices.shape[1])
    return np.where(years[None, :] <= until[:, None], prices, 0.0)


@pytest.mark.parametrize("rate", [0.05, "per firm"])
def test_shared_price_paths_give_the_same_adoptions(rate):
    rng = np.random.default_rng(8)
    n, k = 300, 4
    o = make_options(rng.uniform(20, 400, (n, k)), rng.uniform(0.01, 0.2, (n, k)),
                     kind=["capital", "operational", "capital", "capital"],
                     lifetime=[15, 0, 25, 20])
    r = rng.uniform(0.0, 0.12, n) if rate == "per firm" else rate
    paths = np.vstack((np.full(30, 120.0), np.full(30, 60.0),
                       np.cumsum(rng.uniform(0, 20, 30)) + 50))
    path = rng.integers(0, 3, n)
    until = np.where(rng.random(n) < 0.4, rng.integers(2025, 2060, n), dem.NEVER)
    eligible = rng.random(n) < 0.9
    pt = o.tonnes(rng.uniform(3e4, 1e6, n))
    shared, own = inv.InvestmentState.new(o), inv.InvestmentState.new(o)
    a = inv.decide(shared, o.cost, paths, r, 2030, o.lifetime, pt, eligible=eligible,
                   active_until=until, path=path)
    b = inv.decide(own, o.cost, paths[path], r, 2030, o.lifetime, pt, eligible=eligible,
                   active_until=until)
    assert a.any() and not a.all()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(shared.cumulative, own.cumulative)
    # the rule itself: cost below the average of the path with zeros after the last year
    avg = inv.pv_average(_closed_path(paths[path], 2030, until), r, o.lifetime)
    want = ((o.lifetime > 0)[None, :] & (o.cost < avg) & eligible[:, None])
    np.testing.assert_array_equal(a, want)


def test_pv_average_per_slot_lifetimes():
    rng = np.random.default_rng(2)
    prices = rng.uniform(0, 300, (50, 12))
    life = np.array([0, 3, 12, 20, 1])
    per_option = inv.pv_average(prices, 0.07, life)
    slots = rng.integers(0, life.size, (50, 3))
    np.testing.assert_array_equal(inv.pv_average(prices, 0.07, life[slots]),
                                  np.take_along_axis(per_option, slots, axis=1))
    assert np.isneginf(per_option[:, 0]).all()
    np.testing.assert_allclose(per_option[:, 4], prices[:, 0])
    np.testing.assert_allclose(per_option[:, 2], [_npv_average(p, 0.07, 12) for p in prices])


# ---------------------------------------------------------------------------------- fast paths
# The yearly functions work on flat lists of slots and keep what depends on the (read-only)
# population alone; these tests hold them to the straightforward computations.
def _random_options(rng, n, k, n_options=7, *, frozen=False, base_year=2025):
    """Options with random layouts (each firm a sorted subset of the options, then padding -1),
    costs with ties, zero potentials in padding and some real slots, later first years."""
    option = np.full((n, k), -1, dtype=np.int64)
    for i in range(n):
        m = int(rng.integers(0, min(k, n_options) + 1))
        option[i, :m] = np.sort(rng.choice(n_options, m, replace=False))
    kind = rng.choice(["operational", "capital"], n_options).astype(object)
    cost = rng.choice([-20.0, 0.0, 35.0, 80.0, 150.0, 400.0], (n, k))
    pot = np.where(option >= 0, rng.choice([0.0, 0.05, 0.1, 0.2], (n, k)), 0.0)
    o = TechOptions(
        name=np.array([f"o{j}" for j in range(n_options)], dtype=object),
        sector=np.full(n_options, "power", dtype=object), kind=kind,
        lifetime=np.where(kind == "capital", rng.choice([1, 5, 12, 25], n_options), 0),
        learning_rate=rng.choice([0.0, 0.1, 0.2], n_options),
        cost_decline=rng.choice([0.0, 0.01, 0.03], n_options),
        first_year=rng.choice([2000, 2030, 2040], n_options),
        initial_deployment=rng.choice([0.0, 500.0, 2000.0], n_options),
        cost=cost, potential=pot, base_year=base_year, option=option)
    return _frozen_copy(o) if frozen else o


def _frozen_copy(o):
    """``o`` with read-only copies of its arrays, as the model's shared population."""
    values = {}
    for f in dataclasses.fields(o):
        v = getattr(o, f.name)
        if isinstance(v, np.ndarray):
            v = v.copy()
            v.flags.writeable = False
        values[f.name] = v
    return TechOptions(**values)


def _reference_costs(o, year, cum, learning=True):
    """option_costs as first written: per-slot gathers and np.where."""
    factor = np.ones(o.n_options)
    if learning:
        c0 = o.initial_deployment
        ratio = np.where(c0 > 0, np.maximum(cum, c0) / np.where(c0 > 0, c0, 1.0), 1.0)
        factor = ratio ** np.log2(1.0 - o.learning_rate)
        factor *= (1.0 - o.cost_decline) ** max(0, year - o.base_year)
    available = o.per_slot(year >= o.first_year, False)
    return np.where(available, o.cost * o.per_slot(factor, 1.0), np.inf)


@pytest.mark.parametrize("seed", range(6))
def test_slot_helpers_match_fancy_indexing(seed):
    rng = np.random.default_rng(seed)
    o = _random_options(rng, int(rng.integers(1, 40)), int(rng.integers(1, 6)))
    for frozen in (False, True):
        option = _frozen_copy(o).option if frozen else o.option.copy()
        for values, fill in ((rng.normal(size=7), 1.0), (rng.random(7) < 0.5, False),
                             (rng.integers(0, 30, 7), 0)):
            want = np.append(values, fill)[option]
            for _ in range(2):  # again: the kept layout
                got = inv._per_slot(option, values, fill)
                assert got.dtype == want.dtype and np.array_equal(got, want)
    option = o.option.copy()  # a writable layout is never kept: a change is seen
    inv._per_slot(option, np.arange(7.0), -1.0)
    option[:, 0] = -1
    np.testing.assert_array_equal(inv._per_slot(option, np.arange(7.0), -1.0),
                                  np.append(np.arange(7.0), -1.0)[option])


@pytest.mark.parametrize("seed", range(6))
def test_costs_curves_and_knots_match_the_reference(seed):
    """Bitwise the same with the kept (read-only population) and the computed per-slot values,
    and as the first written costs; the projection's shortcut (nothing adopted) included."""
    rng = np.random.default_rng(seed)
    o = _random_options(rng, int(rng.integers(1, 50)), int(rng.integers(1, 6)))
    fo = _frozen_copy(o)
    e = rng.uniform(3e4, 1e6, o.n_firms)
    for year in (2020, 2030, 2031, 2045):
        for cum in (fo.initial_deployment, o.initial_deployment * rng.uniform(0.5, 8, 7)):
            for learning in (True, False):
                want = _reference_costs(o, year, np.asarray(cum), learning)
                for opts in (o, fo, fo):
                    c = inv.option_costs(opts, year, cum, learning=learning)
                    np.testing.assert_array_equal(c, want)
        st = inv.InvestmentState.new(o)
        for capital in (False, True):
            curves = [inv.operational_curves(opts, e, year, fo.initial_deployment, state=st,
                                             include_capital=capital) for opts in (o, fo)]
            knots = [inv.option_knots(opts, e, year, opts.initial_deployment,
                                      include_capital=capital) for opts in (o, fo)]
            for name in ("start", "abatement", "cost"):
                np.testing.assert_array_equal(getattr(curves[0], name), getattr(curves[1], name))
            cost, pot = _reference_costs(o, year, o.initial_deployment), o.tonnes(e)
            use = (pot > 0) & np.isfinite(cost)
            if not capital:
                use &= ~o.per_slot(o.capital, False)
            for k in knots:
                np.testing.assert_array_equal(k.x, cost[use])
                np.testing.assert_array_equal(k.jump, pot[use])
                assert not k.slope.any() and k.slope.size == k.x.size


def test_step_curves_with_padding_and_ties():
    """Three options for one firm (padding for the others), equal costs in slot order."""
    cost = np.array([[50.0, 30.0, 50.0, 9.0], [70.0, 0.0, 0.0, 0.0], [0.0] * 4,
                     [5.0, 5.0, 1.0, 1.0], [7.0, 2.0, 0.0, 0.0]])
    pot = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 0, 0, 0], [0.0] * 4, [6.0, 7.0, 8.0, 9.0],
                    [2.0, 3.0, 0.0, 0.0]])
    use = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]],
                   dtype=bool)
    o = make_options(cost, np.where(use, pot, 0.0), kind=["operational"] * 4)  # unused: 0 t
    got = inv.operational_curves(o, np.ones(5), 2030, o.initial_deployment)
    want = _reference_curves(cost, pot, use)
    for name in ("start", "abatement", "cost"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    assert got.start[1] == 6  # k = 3: zero-width steps pad the firms with fewer options
    np.testing.assert_array_equal(got.cost[24:], [2.0, 2.0, 2.0, 2.0, 7.0, 7.0])


def _reference_decide(st, costs, prices, rate, year, lifetime, pot, eligible=None,
                      until=None, path=None):
    """decide slot by slot: a candidate adopts iff its cost is below the discounted average
    of its firm's path (the sums of the same terms in the same order as the vectorised one)."""
    n, k = costs.shape
    life = np.append(lifetime, 0)[st.option]
    active = (st.slot_from <= year) & (year < st.slot_until)
    new = np.zeros((n, k), dtype=bool)
    p = np.asarray(prices, dtype=float)
    r = np.broadcast_to(np.asarray(rate, dtype=float), (n,))
    for i in range(n):
        for j in range(k):
            if not (life[i, j] > 0 and pot[i, j] > 0 and np.isfinite(costs[i, j])
                    and not active[i, j] and (eligible is None or eligible[i])):
                continue
            length = int(life[i, j])
            if until is None and path is None and p.ndim < 2:
                avg = p if p.ndim == 0 else p.reshape(-1)[i]  # a flat path: the price
            else:
                row = (p[path[i]] if path is not None else p[i] if p.ndim == 2
                       else p[i:i + 1] if p.ndim == 1 else p.reshape(1))
                row = np.concatenate((row, np.repeat(row[-1:], max(0, length - row.size))))
                w = (1.0 + r[i]) ** -np.arange(length, dtype=float)
                top = length if until is None else min(length, max(until[i] - year + 1, 0))
                num = np.cumsum(row[:length] * w)[top - 1] if top > 0 else 0.0
                avg = num / np.cumsum(w)[length - 1]
            new[i, j] = costs[i, j] < avg
    i, j = np.nonzero(new)
    st.slot_from[i, j] = year
    st.slot_until[i, j] = year + life[i, j]
    st.slot_cost[i, j] = costs[i, j] * pot[i, j]
    st.cumulative += np.bincount(st.option[i, j], weights=pot[i, j], minlength=st.cumulative.size)
    return new


@pytest.mark.parametrize("case", ["flat", "flat closing", "paths", "paths per-firm rate",
                                  "per firm", "scalar ties"])
def test_decide_matches_the_slot_by_slot_reference(case):
    rng = np.random.default_rng(len(case))
    n, k = 80, 5
    o = _random_options(rng, n, k, frozen=True)
    pot = o.tonnes(rng.uniform(3e4, 1e6, n))
    rate = rng.uniform(0.0, 0.12, n) if "rate" in case or case == "per firm" else 0.06
    eligible = rng.random(n) < 0.8
    until = np.where(rng.random(n) < 0.3, rng.integers(2028, 2070, n), dem.NEVER)
    kw = {"eligible": eligible}
    if case == "flat":
        prices = rng.uniform(0, 300, n)
    elif case == "flat closing":
        prices, kw["active_until"] = rng.uniform(0, 300, n), until
    elif case.startswith("paths"):
        prices = np.vstack((np.full(8, 120.0), np.cumsum(rng.uniform(0, 20, (2, 8)), axis=1)))
        kw["path"], kw["active_until"] = rng.integers(0, 3, n), until
    elif case == "per firm":
        prices, kw["active_until"] = rng.uniform(0, 300, (n, 30)), until
    else:  # costs equal to the flat price: no adoption (strictly below)
        prices = 150.0
    fast, slow = inv.InvestmentState.new(o), inv.InvestmentState.new(o)
    for year in (2030, 2031, 2045, 2046, 2071):
        costs = inv.option_costs(o, year, fast.cumulative)
        if case == "scalar ties":
            costs = np.where(rng.random((n, k)) < 0.5, 150.0, costs)
        a = inv.decide(fast, costs, prices, rate, year, o.lifetime, pot, **kw)
        b = _reference_decide(slow, costs, prices, rate, year, o.lifetime, pot,
                              kw.get("eligible"), kw.get("active_until"), kw.get("path"))
        np.testing.assert_array_equal(a, b)
        for name in ("slot_from", "slot_until", "slot_cost", "cumulative"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
        assert (fast.active(year) >= a).all()
    assert fast.adopted_from.any()


def test_active_mask_and_sums_in_use_follow_adoptions():
    rng = np.random.default_rng(1)
    o = _random_options(rng, 60, 4, frozen=True)
    pot = o.tonnes(rng.uniform(3e4, 1e6, 60))
    st = inv.InvestmentState.new(o)
    for year in (2030, 2031, 2036, 2033, 2060):  # also a year before the latest adoption
        before = st.active(year)
        new = inv.decide(st, inv.option_costs(o, year, st.cumulative), 1e4, 0.05, year,
                         o.lifetime, pot)
        np.testing.assert_array_equal(st.active(year), before | new)
        for y in (year - 3, year, year + 1, year + 12, year + 40):
            want = (st.slot_from <= y) & (y < st.slot_until)
            np.testing.assert_array_equal(st.active(y), want)
            for x in (pot, st.slot_cost):  # the sums over the slots in use, in slot order
                w = np.where(want, x, 0.0)
                ref = w[:, 0].copy()
                for j in range(1, w.shape[1]):
                    ref += w[:, j]
                np.testing.assert_array_equal(inv._sum_in_use(st, x, y), ref)
            np.testing.assert_array_equal(inv.locked_abatement(st, pot, y),
                                          inv._sum_in_use(st, pot, y))
    st.slot_until = np.zeros_like(st.slot_until)  # nothing in use any more
    assert not st.active(2060).any() and not inv.capital_cost(st, 2060).any()


# ---------------------------------------------------------------------------------- demography
def test_demography_is_deterministic_per_seed(pop):
    a, pa = dem.plan_demography(np.random.default_rng(9), pop, 2050)
    b, pb = dem.plan_demography(np.random.default_rng(9), pop, 2050)
    c, pc = dem.plan_demography(np.random.default_rng(10), pop, 2050)
    for name in ("firm_id", "sector", "firm_type", "emissions", "output", "active_from",
                 "active_until"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    for name in ("start", "abatement", "cost"):
        assert np.array_equal(getattr(a.mac, name), getattr(b.mac, name))
    assert np.array_equal(pa.deviation, pb.deviation)
    assert np.array_equal(dem.demography(pa, 2040)[0], dem.demography(pb, 2040)[0])
    mult, active = dem.demography(pa, 2040)  # asked again (each year is computed once)
    assert np.array_equal(mult, dem.demography(pb, 2040)[0]) and active.sum() > 0
    assert not mult.flags.writeable and not active.flags.writeable
    assert not np.array_equal(pa.deviation[:pop.n], pc.deviation[:pop.n])
    assert not np.array_equal(a.active_until[:pop.n], c.active_until[:pop.n])


def test_retirements_and_entrants_change_the_active_set(pop, planned):
    firms, plan = planned
    n0 = pop.n
    assert firms.n > n0 and firms.mac.n_firms == firms.n == firms.options.cost.shape[0]
    assert len(set(firms.firm_id)) == firms.n
    np.testing.assert_array_equal(firms.emissions[:n0], pop.emissions)
    counts = {y: dem.demography(plan, y)[1] for y in (2024, 2030, 2040, 2050)}
    assert counts[2024].sum() == n0  # base year: the incumbents, no entrant yet
    small = firms.firm_type == "coal_le300"
    share = demography_table().set_index("firm_type").loc["coal_le300", "retire_share"]
    left = counts[2050][small].sum() / small.sum()
    assert abs(left - (1 - share)) < 0.06
    assert counts[2024][small].sum() > counts[2030][small].sum() > counts[2040][small].sum()
    entrant = np.arange(firms.n) >= n0
    assert (firms.active_from[entrant] > pop.base_year).all()
    assert (firms.active_from[entrant] <= 2050).all()
    for year in (2026, 2033):
        act = counts.get(year, dem.demography(plan, year)[1])
        np.testing.assert_array_equal(act[entrant], firms.active_from[entrant] <= year)
    gas = firms.firm_type == "gas"
    assert counts[2040][gas].sum() > counts[2024][gas].sum()
    np.testing.assert_array_equal(dem.is_active(firms, 2040), counts[2040])
    # coverage counts follow: firms above the threshold change over time
    covered = [(firms.emissions * dem.demography(plan, y)[0] >= THRESHOLD).sum()
               for y in (2024, 2035, 2050)]
    assert len(set(covered)) == 3


def test_output_multipliers_keep_group_totals_and_vanish_when_inactive(pop, planned):
    firms, plan = planned
    n0 = pop.n
    key = pd.Series(firms.sector.astype(str)) + "|" + pd.Series(firms.firm_type.astype(str))
    for year in (2024, 2031, 2050):
        mult, active = dem.demography(plan, year)
        assert (mult[~active] == 0).all() and (mult[active] > 0).all()
        # incumbents: the emission-weighted mean of growth / norm is 1 per group (retired incl.)
        growth = (1 + plan.deviation[:n0]) ** (year - pop.base_year)
        w = pd.Series(pop.emissions * growth).groupby(key[:n0].to_numpy()).sum()
        norm = w / pd.Series(pop.emissions).groupby(key[:n0].to_numpy()).sum()
        np.testing.assert_allclose(mult[:n0][active[:n0]],
                                   (growth / norm.loc[key[:n0]].to_numpy())[active[:n0]])
        # groups without retirements keep their base-year total (the sector path)
        kept = pd.Series(pop.emissions * mult[:n0]).groupby(key[:n0].to_numpy()).sum()
        none_retired = pd.Series(~active[:n0]).groupby(key[:n0].to_numpy()).sum() == 0
        base = pd.Series(pop.emissions).groupby(key[:n0].to_numpy()).sum()
        np.testing.assert_allclose(kept[none_retired], base[none_retired], rtol=1e-9)
    mult, active = dem.demography(plan, 2050)
    assert mult[active].std() > 0.05  # firms grow at different rates


def test_a_table_without_rates_changes_nothing(pop):
    zero = demography_table().assign(growth_sigma=0.0, retire_share=0.0, entry_rate=0.0)
    firms, plan = dem.plan_demography(np.random.default_rng(1), pop, 2060, table=zero)
    assert firms.n == pop.n
    for year in (2024, 2040, 2060):
        mult, active = dem.demography(plan, year)
        assert active.all() and np.allclose(mult, 1.0)


@pytest.mark.parametrize("seed", range(4))
def test_market_year_is_curves_then_decide_then_sums_in_use(seed):
    """The market's one pass over its slots gives what the separate functions give for those
    firms: the curves of their own options (before this year's adoptions), the adoptions of
    decide with them eligible, the locked abatement and charges of the options then in use."""
    rng = np.random.default_rng(seed)
    n, k = 70, 5
    o = _random_options(rng, n, k, frozen=bool(seed % 2))
    e = rng.uniform(3e4, 1e6, n)
    rows = np.flatnonzero(rng.random(n) < 0.6)
    eligible = np.zeros(n, dtype=bool)
    eligible[rows] = True
    until = np.where(rng.random(n) < 0.3, rng.integers(2028, 2070, n), dem.NEVER)
    longest = int(o.lifetime.max())
    fast, slow = inv.InvestmentState.new(o), inv.InvestmentState.new(o)
    for year in (2029, 2030, 2035, 2041, 2060):
        want = inv.operational_curves(o.take(rows), e[rows], year, slow.cumulative)
        prices = rng.uniform(0, 500, (2, longest))
        path = rng.integers(0, 2, n).astype(np.int8)
        got = inv.market_year(o, e, rows, year, fast, prices, 0.05, path=path,
                              active_until=until)
        for name in ("start", "abatement", "cost"):
            np.testing.assert_array_equal(getattr(got.curves, name), getattr(want, name))
        # the segments read off the options are those of the points, to the last bit
        c = got.curves
        for a, b in zip(c._segments, segments(c.start, c.abatement, c.cost)):
            assert np.asarray(a).dtype == np.asarray(b).dtype
            assert np.array_equal(np.asarray(a).view(np.uint8), np.asarray(b).view(np.uint8))
        inv.decide(slow, inv.option_costs(o, year, slow.cumulative), prices, 0.05, year,
                   o.lifetime, o.tonnes(e), eligible=eligible, active_until=until,
                   path=path.astype(np.intp))
        for name in ("slot_from", "slot_until", "slot_cost", "cumulative"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
        np.testing.assert_array_equal(got.locked,
                                      inv.locked_abatement(slow, o.tonnes(e), year)[rows])
        np.testing.assert_array_equal(got.capital_cost, inv.capital_cost(slow, year)[rows])
    assert fast.slot_from.any()
    no_state = inv.year_options(o, e, rows, 2030, fast.cumulative)  # curves only
    assert no_state.flat.size == 0
    np.testing.assert_array_equal(no_state.curves.cost, inv.operational_curves(
        o.take(rows), e[rows], 2030, fast.cumulative).cost)


def test_discounted_running_sums_are_numpys_cumsum():
    """The compiled running sums of discounted prices repeat np.cumsum bit for bit (signs of
    zero included), also for paths longer than the weights."""
    from model.investment_kernels import discounted_running

    rng = np.random.default_rng(3)
    for longest, extra in ((1, 0), (7, 0), (30, 5)):
        p = rng.uniform(-100, 500, (4, longest + extra))
        p[0, 0], p[1, :2] = -0.0, 0.0
        w = (1.0 + 0.05) ** -np.arange(longest, dtype=np.float64)
        want = np.zeros((4, longest + 1))
        np.cumsum(p[:, :longest] * w, axis=1, out=want[:, 1:])
        got = discounted_running(p, w)
        assert np.array_equal(got.view(np.int64), want.view(np.int64))


@pytest.mark.parametrize("seed", range(3))
def test_cost_places_are_the_stable_sorts_they_replace(seed) -> None:
    """``cost_places``: the slots of the firms given (padding left out) sorted by cost (ties in
    slot order), then laid out by their options' cost decline (stable), as numpy's stable
    argsorts place them; -1 for every other slot."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 200)), int(rng.integers(1, 6))
    cost = rng.integers(-30, 60, (n, k)).astype(float)
    cost[rng.random((n, k)) < 0.05] = -0.0
    o = make_options(cost, rng.choice([0.0, 0.05, 0.2], (n, k)), kind="operational",
                     cost_decline=rng.choice([0.0, 0.02, 0.01, 0.03], k))
    option = o.option.reshape(-1)
    if k > 1:  # (padding: slots without an option)
        option = np.where(rng.random(option.size) < 0.1, -1, option).astype(o.option.dtype)
        o = dataclasses.replace(o, option=option.reshape(n, k))
    firms = rng.random(n) < 0.7
    slots = np.flatnonzero((option >= 0) & np.repeat(firms, k))
    by_cost = slots[np.argsort(cost.reshape(-1)[slots], kind="stable")]
    decline = np.unique(o.cost_decline, return_inverse=True)[1]
    want = np.full(option.size, -1, dtype=np.int32)
    want[by_cost[np.argsort(decline[option[by_cost]], kind="stable")]] = np.arange(slots.size)
    got = inv.cost_places(o, firms)
    assert got.dtype == np.int32 and np.array_equal(got, want)
