"""Policy rules: coverage, grandfathering, benchmarks, allocation, penalty and carry-over."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from model.mac import MACCurves
from model.policy import (
    COAL_TYPES,
    CapState,
    allocate,
    benchmarks,
    carry_over_limit,
    covered,
    grandfathered,
    penalty_level,
)
from model.population import Firms
from model.scenario import Scenario

# Published power benchmarks, t CO2/MWh (reference §2: ICAP, S&P Global, MEE planning script).
PUBLISHED = {
    "coal_gt300": {2019: 0.877, 2020: 0.877, 2021: 0.8218, 2022: 0.8177, 2023: 0.7861,
                   2024: 0.7822},
    "coal_le300": {2019: 0.979, 2020: 0.979, 2021: 0.8773, 2022: 0.8729, 2023: 0.7984,
                   2024: 0.7944},
    "gas": {2019: 0.392, 2020: 0.392, 2021: 0.3920, 2022: 0.3901, 2023: 0.3305, 2024: 0.3288},
}
LAST_PUBLISHED = 2024


def make_firms(rows: list[tuple[str, str, float, float]],
               allocation: list[float] | None = None) -> Firms:
    """Firms from (sector, firm_type, emissions t, output) rows, with zero MAC curves."""
    n = len(rows)
    return Firms(
        firm_id=np.array([f"f{i}" for i in range(n)], dtype=object),
        sector=np.array([r[0] for r in rows], dtype=object),
        firm_type=np.array([r[1] for r in rows], dtype=object),
        emissions=np.array([r[2] for r in rows], dtype=float),
        output=np.array([r[3] for r in rows], dtype=float),
        allocation=None if allocation is None else np.array(allocation, dtype=float),
        mac=MACCurves.linear(np.zeros(n), np.zeros(n)),
        base_year=2023,
    )


def scenario(**sections: Any) -> Scenario:
    return Scenario.from_dict({"name": "t", "seed": 0, "start_year": 2025, "end_year": 2035,
                               **sections})


def bench_alloc(firms: Firms, year: int, decline: float = 0.01) -> np.ndarray:
    return benchmarks(firms, year, decline) * firms.output


# ------------------------------------------------------------------ coverage
def test_coverage_by_entry_year_and_threshold() -> None:
    firms = make_firms([
        ("power", "coal_gt300", 30_000, 1), ("power", "coal_gt300", 20_000, 1),
        ("power", "gas", 26_000, 1), ("steel", "bf_bof", 1e6, 1),
        ("chemicals", "chemicals", 1e6, 1),
    ])
    sc = scenario()
    e = firms.emissions
    assert covered(firms, e, sc, 2020).tolist() == [False] * 5
    assert covered(firms, e, sc, 2021).tolist() == [True, False, True, False, False]
    assert covered(firms, e, sc, 2024).tolist() == [True, False, True, True, False]
    assert covered(firms, e, sc, 2030).tolist() == [True, False, True, True, False]
    # this year's emissions decide, not the base year's
    assert covered(firms, e * 2, sc, 2024).tolist() == [True, True, True, True, False]
    # a given sectors table replaces the default one; threshold 0 covers every entered firm
    sc2 = scenario(coverage={"sectors": {"chemicals": 2026, "power": 2030}, "threshold": 0.0})
    assert covered(firms, e, sc2, 2025).tolist() == [False] * 5
    assert covered(firms, e, sc2, 2026).tolist() == [False, False, False, False, True]
    assert covered(firms, e, sc2, 2030).tolist() == [True, True, True, False, True]


def test_grandfathered_flags() -> None:
    firms = make_firms([("power", "coal_gt300", 1e5, 1e5), ("steel", "bf_bof", 1e6, 6e5),
                        ("cement", "clinker", 1e6, 1e6), ("aluminium", "electrolysis", 1e6, 6e5)])
    sc = scenario()
    assert grandfathered(firms, sc, 2024).tolist() == [False, True, True, True]
    assert grandfathered(firms, sc, 2025).tolist() == [False] * 4
    sc2 = scenario(allocation={"grandfather_until": {"power": 2022, "steel": 2026}})
    assert grandfathered(firms, sc2, 2022).tolist() == [True, True, False, False]
    assert grandfathered(firms, sc2, 2023).tolist() == [False, True, False, False]
    assert grandfathered(firms, sc2, 2027).tolist() == [False] * 4
    # a user-given allocation is never replaced by verified emissions
    given = make_firms([("steel", "bf_bof", 1e6, 6e5)], allocation=[5e5])
    assert grandfathered(given, sc, 2024).tolist() == [False]


# ------------------------------------------------------------------ benchmarks
def test_published_power_benchmarks() -> None:
    types = list(PUBLISHED)
    firms = make_firms([("power", t, 1e5, 1e5) for t in types])
    for year in range(2019, LAST_PUBLISHED + 1):
        got = benchmarks(firms, year, 0.03)  # the decline does not touch published years
        assert got.tolist() == pytest.approx([PUBLISHED[t][year] for t in types], abs=1e-9)
    # before the first table year: the first value
    assert benchmarks(firms, 2015, 0.03).tolist() == pytest.approx(
        [PUBLISHED[t][2019] for t in types])


@pytest.mark.parametrize("decline", [0.0, 0.01, 0.04, -0.02])
def test_benchmarks_fall_by_the_decline_rate_after_the_last_year(decline: float) -> None:
    firms = make_firms([("power", t, 1e5, 1e5) for t in PUBLISHED]
                       + [("steel", "bf_bof", 1e6, 6e5), ("cement", "clinker", 1e6, 1e6)])
    last = np.array([PUBLISHED[t][LAST_PUBLISHED] for t in PUBLISHED])
    for year in range(LAST_PUBLISHED + 1, LAST_PUBLISHED + 8):
        got = benchmarks(firms, year, decline)
        assert got[:3] == pytest.approx(last * (1 - decline) ** (year - LAST_PUBLISHED))
        # year on year, every benchmark at or after its last table year falls by the rate
        nxt = benchmarks(firms, year + 1, decline)
        assert nxt[:3] == pytest.approx(got[:3] * (1 - decline))
    # steel and cement: an assumed base value in 2025, then the same decline; constant before
    base = benchmarks(firms, 2025, decline)[3:]
    assert (base > 0).all()
    assert benchmarks(firms, 2021, decline)[3:] == pytest.approx(base)
    assert benchmarks(firms, 2029, decline)[3:] == pytest.approx(base * (1 - decline) ** 4)


def test_unknown_firm_type_uses_its_sector_mean() -> None:
    types = ["coal_gt300", "coal_le300", "coal_unconv", "gas"]
    firms = make_firms([("power", t, 1e5, 1e5) for t in types] + [("power", "biomass", 1e5, 1e5)])
    for year in (2021, 2023, 2027):
        got = benchmarks(firms, year, 0.02)
        assert got[4] == pytest.approx(got[:4].mean())


@pytest.mark.parametrize("year", [2025, 2026, 2030])
def test_stricter_decline_gives_less_allocation(year: int) -> None:
    firms = make_firms([("power", "coal_gt300", 8e5, 1e6), ("power", "gas", 2e5, 1e6),
                        ("steel", "bf_bof", 1e6, 6e5), ("cement", "clinker", 5e5, 6e5)])
    everyone = np.ones(firms.n, bool)

    def alloc(decline: float) -> np.ndarray:
        sc = scenario(allocation={"benchmark_decline": decline, "gas_never_short": False})
        free, auctioned = allocate(firms, sc, year, firms.output, firms.emissions, everyone,
                                   CapState({}))
        assert auctioned == 0.0
        return free

    mild, strict = alloc(0.01), alloc(0.05)
    assert (strict < mild).all() or year == 2025  # steel/cement base year 2025: no decline yet
    assert (strict <= mild).all() and (strict[:2] < mild[:2]).all()
    assert strict.sum() < mild.sum()


# ------------------------------------------------------------------ allocation
def test_allocation_is_benchmark_times_output_and_zero_outside_the_market() -> None:
    firms = make_firms([("power", "coal_gt300", 5e5, 1e6), ("power", "coal_le300", 5e5, 8e5),
                        ("steel", "bf_bof", 1e6, 6e5)])
    in_market = np.array([True, False, True])
    free, auctioned = allocate(firms, scenario(), 2026, firms.output, firms.emissions, in_market,
                               CapState({}))
    want = np.where(in_market, bench_alloc(firms, 2026), 0.0)
    assert free == pytest.approx(want)
    assert auctioned == 0.0


def test_absolute_cap_falls_linearly_and_is_shared_by_benchmark_allocation() -> None:
    rng = np.random.default_rng(3)
    firms = make_firms(
        [("steel", "bf_bof", 1e6, o) for o in rng.uniform(2e5, 9e5, 4)]
        + [("cement", "clinker", 1e6, o) for o in rng.uniform(2e5, 9e5, 3)]
        + [("power", "coal_gt300", 1e6, o) for o in rng.uniform(2e5, 9e5, 3)])
    lrf, start = 0.15, 2027
    sc = scenario(allocation={"absolute_cap_from": start,
                              "absolute_cap_sectors": ["steel", "cement"],
                              "linear_reduction_factor": lrf})
    everyone = np.ones(firms.n, bool)
    state = CapState({})
    first: dict[str, float] = {}
    for year in range(2025, 2036):
        output = firms.output * 1.04 ** (year - 2025)  # growing output must not lift the cap
        free, _ = allocate(firms, sc, year, output, firms.emissions, everyone, state)
        bench = benchmarks(firms, year, sc.allocation.benchmark_decline) * output
        power = firms.sector == "power"
        assert free[power] == pytest.approx(bench[power])  # not capped
        for sector in ("steel", "cement"):
            m = firms.sector == sector
            if year < start:
                assert free[m] == pytest.approx(bench[m])
                assert sector not in state.first
                continue
            if year == start:
                first[sector] = bench[m].sum()
            cap = first[sector] * max(0.0, 1 - lrf * (year - start))
            assert free[m].sum() == pytest.approx(cap, abs=1e-6)
            if cap > 0:  # shared in proportion to benchmark allocation
                ratio = free[m] / bench[m]
                assert ratio == pytest.approx(np.full(m.sum(), ratio[0]))
        if year >= start:  # the first cap is fixed once, in the first cap year
            assert state.first == pytest.approx(first)


def test_absolute_cap_for_all_sectors() -> None:
    firms = make_firms([("power", "coal_gt300", 1e6, 1e6), ("steel", "bf_bof", 1e6, 6e5)])
    sc = scenario(allocation={"absolute_cap_from": 2027, "absolute_cap_sectors": "all",
                              "linear_reduction_factor": 0.02})
    state = CapState({})
    everyone = np.ones(2, bool)
    free0, _ = allocate(firms, sc, 2027, firms.output, firms.emissions, everyone, state)
    free3, _ = allocate(firms, sc, 2030, firms.output * 2, firms.emissions, everyone, state)
    assert free3 == pytest.approx(free0 * (1 - 0.02 * 3))


def test_gas_never_short() -> None:
    firms = make_firms([("power", "gas", 9e5, 1e6), ("power", "gas", 1e5, 1e6),
                        ("power", "coal_gt300", 9e5, 1e6)])
    everyone = np.ones(3, bool)
    bench = bench_alloc(firms, 2024)
    assert bench[0] < firms.emissions[0] and bench[1] > firms.emissions[1]
    on, _ = allocate(firms, scenario(), 2024, firms.output, firms.emissions, everyone,
                     CapState({}))
    off, _ = allocate(firms, scenario(allocation={"gas_never_short": False}), 2024,
                      firms.output, firms.emissions, everyone, CapState({}))
    assert off == pytest.approx(bench)
    assert on == pytest.approx([firms.emissions[0], bench[1], bench[2]])  # coal is not topped up
    gas = firms.firm_type == "gas"
    assert (on[gas] >= firms.emissions[gas]).all()


@pytest.mark.parametrize("cap", [0.0, 0.2, 0.5])
def test_coal_shortfall_cap(cap: float) -> None:
    rows = [(t, e) for t in COAL_TYPES for e in (5e5, 8e5, 1.2e6)] + [("gas", 9e5)]
    firms = make_firms([("power", t, e, 1e6) for t, e in rows] + [("steel", "bf_bof", 3e6, 6e5)])
    everyone = np.ones(firms.n, bool)
    sc = scenario(allocation={"coal_shortfall_cap": cap, "gas_never_short": False})
    free, _ = allocate(firms, sc, 2024, firms.output, firms.emissions, everyone, CapState({}))
    bench = bench_alloc(firms, 2024)
    coal = np.isin(firms.firm_type, COAL_TYPES)
    # a coal unit's obligation (its emissions) is at most allocation x (1 + cap) ...
    assert (firms.emissions[coal] <= free[coal] * (1 + cap) * (1 + 1e-12)).all()
    # ... it gets no more than that needs, and units within the cap keep their benchmark value
    assert free[coal] == pytest.approx(np.maximum(bench[coal], firms.emissions[coal] / (1 + cap)))
    assert (free[coal] > bench[coal]).any() and (free[coal] == bench[coal]).any()
    assert free[~coal] == pytest.approx(bench[~coal])  # gas and steel unaffected


@pytest.mark.parametrize(("share", "growth", "year", "expected"), [
    (0.0, 0.0, 2027, 0.0), (0.3, 0.0, 2027, 0.3), (0.1, 0.2, 2025, 0.1), (0.1, 0.2, 2027, 0.5),
    (0.1, 0.2, 2031, 1.0), (0.5, -0.2, 2029, 0.0),
])
def test_auction_share_splits_the_allocation(share, growth, year, expected) -> None:
    firms = make_firms([("power", "gas", 9e5, 1e6), ("power", "coal_le300", 9e5, 1e6),
                        ("steel", "bf_bof", 1e6, 6e5)])
    everyone = np.ones(3, bool)
    alloc = {"coal_shortfall_cap": 0.1}
    total, none = allocate(firms, scenario(allocation=alloc), year, firms.output,
                           firms.emissions, everyone, CapState({}))
    assert none == 0.0
    sc = scenario(allocation=alloc | {"auction_share": share, "auction_share_growth": growth})
    free, auctioned = allocate(firms, sc, year, firms.output, firms.emissions, everyone,
                               CapState({}))
    assert free.sum() + auctioned == pytest.approx(total.sum())
    assert auctioned == pytest.approx(expected * total.sum())
    assert free == pytest.approx(total * (1 - expected))


def test_user_given_allocation_is_used_as_is() -> None:
    firms = make_firms([("power", "gas", 9e5, 1e6), ("power", "coal_gt300", 9e5, 1e6),
                        ("steel", "bf_bof", 1e6, 6e5)], allocation=[1e5, 2e5, 3e5])
    in_market = np.array([True, True, False])
    for sc in (scenario(), scenario(allocation={
            "absolute_cap_from": 2025, "absolute_cap_sectors": "all", "benchmark_decline": 0.2,
            "coal_shortfall_cap": 0.0, "auction_share": 0.4})):
        for year in (2025, 2028):
            free, auctioned = allocate(firms, sc, year, firms.output * 3, firms.emissions,
                                       in_market, CapState({}))
            assert free.tolist() == [1e5, 2e5, 0.0]
            assert auctioned == 0.0


# ------------------------------------------------------------------ penalty and carry-over
def test_penalty_level() -> None:
    flat = scenario(compliance={"penalty": 120.0})
    for prev in (None, 10.0, 500.0):
        assert penalty_level(flat, prev) == 120.0
    multiple = scenario()  # 5 x max(previous average price, 50 yuan/t)
    assert penalty_level(multiple, None) == pytest.approx(250.0)
    assert penalty_level(multiple, 30.0) == pytest.approx(250.0)
    assert penalty_level(multiple, 80.0) == pytest.approx(400.0)
    custom = scenario(compliance={"penalty_multiple": 10.0, "reference_price": 60.0})
    assert penalty_level(custom, None) == pytest.approx(600.0)
    assert penalty_level(custom, 100.0) == pytest.approx(1000.0)
    assert penalty_level(custom, 0.0) == pytest.approx(600.0)


def test_carry_over_limit() -> None:
    firms = make_firms([("power", "coal_gt300", 1e6, 1e6), ("power", "gas", 1e6, 1e6),
                        ("steel", "bf_bof", 1e6, 6e5), ("cement", "clinker", 1e6, 1e6)])
    net_sales = np.array([5_000.0, -3_000.0, 20_000.0, 0.0])
    china = carry_over_limit(firms, scenario(), net_sales)
    assert china.tolist() == pytest.approx([10_000 + 7_500, 10_000, 100_000 + 30_000, 100_000])
    custom = scenario(banking={"base": 1.0, "base_new_sectors": 2.0, "sales_multiple": 0.5})
    assert carry_over_limit(firms, custom, net_sales).tolist() == pytest.approx(
        [2_501, 1, 10_002, 2])
    unlimited = carry_over_limit(firms, scenario(banking={"carry_over": "unlimited"}), net_sales)
    assert all(math.isinf(x) and x > 0 for x in unlimited)
    none = carry_over_limit(firms, scenario(banking={"carry_over": "none"}), net_sales)
    assert none.tolist() == [0.0] * 4
    for rule in ("china", "unlimited", "none"):
        off = scenario(banking={"enabled": False, "carry_over": rule})
        assert carry_over_limit(firms, off, net_sales).tolist() == [0.0] * 4


def test_values_are_kept_only_for_read_only_arrays() -> None:
    """Derived values are cached by array identity only when the arrays cannot change."""
    from model.policy import _recall, _remember
    writable = np.arange(3.0)
    _remember("test", (writable,), 1.0)
    assert _recall("test", (writable,)) is None
    frozen = np.arange(3.0)
    frozen.flags.writeable = False
    _remember("test", (frozen,), 2.0)
    assert _recall("test", (frozen,)) == 2.0
    assert _recall("test", (np.arange(3.0),)) is None  # equal values, another array
