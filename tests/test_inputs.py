"""The exogenous inputs shared between the runs of a process: only by runs of the same
population and rules, read-only, and with the results of runs that compute their own."""

from __future__ import annotations

import numpy as np

from model import inputs
from model.model import CarbonMarket
from model.scenario import load_scenario
from tests.conftest import BASELINE


def run(scenario, change=None) -> CarbonMarket:
    m = CarbonMarket(scenario, agents=False, record_firms=False)
    if change is not None:  # an unannounced policy change after the first year
        m.step()
        m.config = m.config.replace(**change)
    m.run()
    return m


def test_runs_with_the_same_rules_share_their_inputs_and_results() -> None:
    sc = load_scenario(BASELINE).replace(end_year=2030)
    inputs._INPUTS.clear()
    first = run(sc)
    # other MAC costs and offset limit: the same exogenous inputs, other results
    other = sc.replace(mac={"cost_scale": {"power": 2.0}}, offsets={"limit": 0.02})
    shared = run(other)
    assert all(shared._exo[y] is first._exo[y] for y in range(2021, 2031))
    assert shared.config is not first.config and shared.history != first.history
    inputs._INPUTS.clear()
    alone = run(other)  # computes its own
    assert alone._exo[2030] is not first._exo[2030]
    assert alone.history == shared.history
    for y in (2021, 2030):
        assert not alone._exo[y].free.flags.writeable
        assert np.array_equal(alone._exo[y].free, shared._exo[y].free)


def test_other_rules_or_a_changed_run_do_not_share() -> None:
    sc = load_scenario(BASELINE).replace(end_year=2028)
    inputs._INPUTS.clear()
    first = run(sc)
    faster = run(sc.replace(growth={"output": {"power": 0.03}}))
    stricter = run(sc.replace(allocation={"benchmark_decline": 0.04}))
    for m in (faster, stricter):
        assert m._exo[2028] is not first._exo[2028]
        assert not np.array_equal(m._exo[2028].free, first._exo[2028].free)
    # a run whose rules change keeps its mixed inputs to itself
    changed = run(sc, change={"allocation": {"benchmark_decline": 0.04}})
    assert changed._inputs_key is None
    again = run(sc.replace(allocation={"benchmark_decline": 0.04}))
    assert again._exo[2022] is stricter._exo[2022]
    assert again.history == stricter.history
