"""The compiled yearly rules against the plain rules of policy and demography, bit for bit
(and the CCER supply kept per scale)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from model import policy_kernels
from model.demography import Demography, demography
from model.mac import Knots
from model.model import CarbonMarket
from model.policy import (
    CapState,
    _offset_knots,
    allocate,
    benchmark_schedule,
    covered,
    decline_powers,
    grandfathered,
    growth_factor,
    offset_supply,
)
from model.policy_kernels import RunRules, firm_year, run_rules, year_rules
from model.population import Firms
from model.scenario import Scenario, load_scenario
from tests.conftest import BASELINE
from tests.test_policy import make_firms


def reference(firms: Firms, sc: Scenario, year: int, plan: Demography | None,
              cap_state: CapState) -> tuple:
    """The year's inputs from the plain rules (what ``CarbonMarket._exogenous`` computed)."""
    out_factor, em_factor = growth_factor(firms, sc, year)
    output = firms.output * out_factor
    e = firms.emissions * em_factor
    active = None
    if plan is not None:
        mult, active = demography(plan, year)
        output, e = output * mult, e * mult
    cov = covered(firms, e, sc, year)
    if active is not None:
        cov &= active
    grand = cov & grandfathered(firms, sc, year)
    mkt = cov & ~grand
    free, auctioned = allocate(firms, sc, year, output, e, mkt, cap_state)
    if grand.any():
        free = free + np.where(grand, e, 0.0)
    return output, e, em_factor, cov, grand, mkt, np.flatnonzero(mkt), free, auctioned


def assert_identical(got: tuple, want: tuple) -> None:
    """Same values to the last bit (NaN payloads and signs of zero included), same types."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if isinstance(w, np.ndarray):
            assert g.dtype == w.dtype and g.shape == w.shape
            assert g.tobytes() == w.tobytes()
        else:
            assert type(g) is type(w)
            assert np.float64(g).tobytes() == np.float64(w).tobytes()


def compare_years(firms: Firms, sc: Scenario, plan: Demography | None = None,
                  years: range | None = None) -> None:
    """Every year in order, with the caps fixed along the way (kept in the same order)."""
    mine, theirs = CapState({}), CapState({})
    for year in years or range(sc.start_year, sc.end_year + 1):
        assert_identical(year_rules(firms, sc, year, plan, mine),
                         reference(firms, sc, year, plan, theirs))
        assert list(mine.first.items()) == list(theirs.first.items())


def scenario(start: int = 2021, end: int = 2060, **sections: Any) -> Scenario:
    return Scenario.from_dict({"name": "t", "seed": 0, "start_year": start, "end_year": end,
                               **sections})


@pytest.fixture(scope="module")
def calibrated() -> tuple[Firms, Demography]:
    """The calibrated population with its planned entrants and retirements."""
    m = CarbonMarket(load_scenario(BASELINE), rng=3, agents=False)
    return m.firms, m.demography


VARIANTS = [
    {},
    {"allocation": {"coal_shortfall_cap": 0.1, "gas_never_short": False,
                    "absolute_cap_from": 2021, "absolute_cap_sectors": ["power"],
                    "linear_reduction_factor": 0.2, "benchmark_decline": -0.03}},
    {"allocation": {"absolute_cap_all_from": 2031, "linear_reduction_factor": 0.037,
                    "auction_share": 0.05, "auction_share_growth": 0.03,
                    "coal_shortfall_cap": 0.0, "benchmark_decline": 0.045},
     "growth": {"output": {"power": 0.029, "steel": -0.027}, "intensity": {"cement": -0.02}}},
    {"coverage": {"sectors": {"power": 2030, "chemicals": 2021, "paper": 2026, "steel": 2022},
                  "threshold": 0.0},
     "allocation": {"grandfather_until": {"power": 2033, "chemicals": 2024},
                    "absolute_cap_from": 2025, "absolute_cap_sectors": ["chemicals", "power"]}},
    {"coverage": {"threshold": 2.5e6}, "allocation": {"gas_never_short": False}},
]


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_calibrated_population_with_demography(calibrated, variant: int) -> None:
    firms, plan = calibrated
    sc = scenario(**VARIANTS[variant])
    compare_years(firms, sc, plan)
    compare_years(firms, sc, plan)  # again: the firm pass kept from the first time
    compare_years(firms, sc, None, range(2021, 2045, 3))  # without demography, years skipped


def test_small_unsorted_populations() -> None:
    rng = np.random.default_rng(5)
    kinds = [("power", "coal_gt300"), ("power", "gas"), ("power", "coal_le300"),
             ("steel", "bf_bof"), ("cement", "clinker"), ("power", "unknown_type"),
             ("chemicals", "chemicals"), ("aluminium", "electrolysis")]
    rows = [(*kinds[k], e, o) for k, e, o in zip(
        rng.integers(0, len(kinds), 60), rng.uniform(1e4, 3e6, 60), rng.uniform(0, 2e6, 60))]
    rows[3] = ("power", "gas", 26_000.0, 0.0)  # exactly the threshold, no output
    rows[4] = ("steel", "bf_bof", np.nan, 1e5)  # never covered
    rows[5] = ("power", "coal_gt300", 1e6, -0.0)
    firms = make_firms(rows)
    for variant in VARIANTS:
        sc = scenario(2019, 2045, **variant)
        compare_years(firms, sc)
        compare_years(firms, sc, None, range(2045, 2019, -7))  # any order without caps
    one = make_firms([("steel", "bf_bof", 1e6, 5e5)])
    compare_years(one, scenario(2021, 2030, **VARIANTS[3]))


def test_user_given_allocation() -> None:
    firms = make_firms([("power", "gas", 9e5, 1e6), ("steel", "bf_bof", 1e6, 6e5),
                        ("power", "coal_gt300", 2e4, 1e6), ("cement", "clinker", 5e5, 5e5)],
                       allocation=[1e5, 2e5, -0.0, 3e5])
    for variant in VARIANTS:
        compare_years(firms, scenario(2020, 2035, **variant))


def test_compiled_maximum_is_numpys() -> None:
    special = np.array([0.0, -0.0, np.nan, 1.0, -1.0, np.inf, -np.inf, 5e-324])
    a, b = np.repeat(special, special.size), np.tile(special, special.size)
    got = np.array([policy_kernels._maximum(x, y) for x, y in zip(a, b)])
    want = a.copy()
    np.maximum(want, b, out=want, where=np.ones(a.size, dtype=bool))
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert got[ok].tobytes() == want[ok].tobytes()


def test_rules_are_kept_per_scenario_object() -> None:
    firms = make_firms([("power", "gas", 9e5, 1e6), ("steel", "bf_bof", 1e6, 6e5)])
    sc = scenario(coverage={"sectors": {"steel": 2030}})
    rules = run_rules(firms, sc)
    assert isinstance(rules, RunRules) and run_rules(firms, sc) is rules
    assert rules.sectors == ("power", "steel")
    assert rules.entry.tolist() == [policy_kernels.NEVER, 2030]
    changed = dataclasses.replace(sc, coverage=dataclasses.replace(
        sc.coverage, sectors={"power": 2025}))
    assert run_rules(firms, changed).entry.tolist() == [2025, policy_kernels.NEVER]
    other = make_firms([("steel", "bf_bof", 1e6, 6e5)])  # another population: its own rules
    assert run_rules(other, sc).sectors == ("steel",)


@pytest.mark.parametrize("scale", [1.0, 0.25, 3.7, 0.0, -0.0])
def test_scaled_offset_supply_is_kept_and_exact(scale: float) -> None:
    base = scenario(2021, 2030)
    sc = dataclasses.replace(base, offsets=dataclasses.replace(base.offsets, supply_scale=scale))
    for year in (2021, 2024, 2030):
        k = offset_supply(sc, year)
        plain = _offset_knots(None, None, year, sc.offsets.old_ccer_until)
        want = Knots(plain.x, plain.jump * scale, plain.slope * scale) if scale != 1.0 else plain
        for a, b in ((k.x, want.x), (k.jump, want.jump), (k.slope, want.slope)):
            assert a.tobytes() == b.tobytes() and not a.flags.writeable
        assert k.sloped == want.sloped  # (known without reading the slopes)
        if scale != 0.0:  # a (year, scale) is read once
            assert offset_supply(sc, year) is k


def test_firm_pass_is_shared_by_runs_that_change_only_other_rules(calibrated) -> None:
    firms, plan = calibrated
    sc = scenario(2021, 2030, growth={"output": {"power": 0.0123}})
    kept = firm_year(firms, sc, 2026, plan)
    assert all(not a.flags.writeable for a in kept[:-1])
    other = scenario(2021, 2030, growth={"output": {"power": 0.0123}}, allocation={
        "benchmark_decline": 0.04, "absolute_cap_all_from": 2022, "coal_shortfall_cap": 0.3})
    assert firm_year(firms, other, 2026, plan) is kept  # another scenario, the same firm rules
    for changed in ({"growth": {"output": {"power": 0.0124}}},
                    {"growth": {"output": {"power": 0.0123}}, "coverage": {"threshold": 1e5}},
                    {"growth": {"output": {"power": 0.0123}},
                     "allocation": {"grandfather_until": {"power": 2026}}}):
        assert firm_year(firms, scenario(2021, 2030, **changed), 2026, plan) is not kept
    assert firm_year(firms, sc, 2026, None) is not kept  # without the demography plan
    small = make_firms([("power", "gas", 9e5, 1e6)])  # writable arrays: never kept
    assert firm_year(small, sc, 2026, None) is not firm_year(small, sc, 2026, None)


@pytest.mark.parametrize("decline", [0.01, 0.0, -0.0, 0.037, np.float64(0.037), -0.5, 1.0])
def test_kept_decline_powers_are_the_scalar_powers(decline) -> None:
    firms = make_firms([("power", "gas", 9e5, 1e6), ("steel", "bf_bof", 1e6, 6e5),
                        ("cement", "clinker", 1e6, 1e6)])
    for year in (2020, 2026, 2041, 2060):
        schedule = benchmark_schedule(firms, year)
        want = [(1.0 - decline) ** (year - last) for last, _ in schedule.groups]
        for _ in range(2):  # computed, then kept
            got = decline_powers(schedule, year, decline)
            assert got.dtype == np.float64
            assert got.tobytes() == np.array(want, dtype=np.float64).tobytes()
