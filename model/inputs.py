"""A year's exogenous inputs, and their sharing between the runs of a process.

The inputs that do not depend on the market (output, unabated emissions, coverage, allocation,
CCER supply) are computed for every year of a run (:meth:`model.model.CarbonMarket._exogenous`).
Runs of a sweep that share the population and the rules of growth, coverage and allocation (they
differ in MAC costs, offset limits, expectations...) have the same inputs: the first computes
them, the others reuse them (read-only).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.demography import Demography
from model.mac import Knots, MACCurves
from model.population import Firms
from model.scenario import Scenario


@dataclass(frozen=True)
class YearInputs:
    """One year's exogenous inputs: output, unabated emissions (t), coverage, allocation (t)."""

    year: int
    output: np.ndarray
    emissions: np.ndarray
    covered: np.ndarray
    grandfathered: np.ndarray
    market: np.ndarray  # covered and not grandfathered: the firms that trade
    market_index: np.ndarray  # their indices (np.flatnonzero(market))
    free: np.ndarray
    auctioned: float
    curves: MACCurves | None  # MAC curves of the market's firms (None: not built yet)
    offsets: Knots
    em_factor: np.ndarray | None = None  # emissions relative to the base year (growth only)


def _population(firms: Firms) -> tuple[np.ndarray | None, ...]:
    """The population arrays the inputs are computed from (kept and compared by identity)."""
    return firms.output, firms.emissions, firms.sector, firms.firm_type, firms.allocation


_INPUTS: dict[tuple, tuple] = {}  # exogenous inputs of every year, by inputs_key
_INPUTS_LOCK = threading.Lock()


def inputs_key(firms: Firms, plan: Demography | None,
               scenario: Scenario) -> tuple | None:
    """What a run's exogenous inputs (:meth:`model.model.CarbonMarket._exogenous`) depend on: the
    population (its read-only arrays and planned demography, by identity: the shared calibrated
    population), the years, the rules of growth, coverage and allocation, and the CCER supply.
    None (not shared) for a population whose arrays may change."""
    arrays = _population(firms)
    if any(a is not None and a.flags.writeable for a in arrays):
        return None
    o = scenario.offsets
    stamp = None if o.supply is None else Path(o.supply).stat().st_mtime_ns
    return (tuple(map(id, arrays)), id(plan), firms.base_year, scenario.start_year,
            scenario.end_year, repr(scenario.growth), repr(scenario.coverage),
            repr(scenario.allocation), str(o.supply), stamp, o.supply_scale, o.old_ccer_until)


def shared_inputs(key: tuple | None, firms: Firms) -> tuple | None:
    """The inputs kept for ``key`` (by :func:`share_inputs`): ``(by year, caps after each
    year, caps after the last)``; None if there are none for these very arrays."""
    if key is None:
        return None
    with _INPUTS_LOCK:
        hit = _INPUTS.get(key)
    arrays = _population(firms)
    if hit is None or not all(a is b for a, b in zip(hit[0], arrays)):
        return None
    return hit[1:]


def share_inputs(key: tuple, firms: Firms, inputs: dict[int, YearInputs],
                  caps: dict[int, dict[str, float]], first: dict[str, float]) -> None:
    """Keep a run's inputs of every year for the next runs with the same ``key`` (the 8
    newest; the kept population arrays are pinned, so their ids are not reused)."""
    arrays = _population(firms)
    with _INPUTS_LOCK:
        if key in _INPUTS:
            return
        while len(_INPUTS) >= 8:
            _INPUTS.pop(next(iter(_INPUTS)))
        _INPUTS[key] = (arrays, dict(inputs), {y: dict(c) for y, c in caps.items()},
                        dict(first))
