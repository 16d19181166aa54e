"""cets in the browser: Mesa's SolaraViz page for exploring China's national carbon market.

Start it with ``make viz`` or ``cets viz`` (``solara run model/app.py`` underneath). The sidebar
holds the policy levers (defaults: the calibrated baseline ``experiments/scenarios/baseline.toml``;
slider ranges inside the bounds of :func:`model.scenario.schema`); *Reset* rebuilds the model from
them, *Step* simulates one compliance year, the play button runs the years one after another.

Nothing in the model imports this module: ``model`` stays usable without Solara or matplotlib.
Each browser session builds its own :class:`PolicyExplorer` inside :func:`Page` (a model made at
module level would be shared by every open tab). Charts are ECharts options drawn on one canvas each
(echarts ships with ``solara-assets``, so the page works offline; the firm-level view bins the
~3,700 firms, never thousands of DOM nodes).
"""

from __future__ import annotations

import os
import sys

# Solara reports usage to a telemetry service unless told not to; set before solara is imported
# (and, below, in its settings if `solara run` imported it first).
os.environ["SOLARA_TELEMETRY_MIXPANEL_ENABLE"] = "False"

# `solara run model/app.py` executes this file as a script with model/ first on sys.path, where
# model/model.py would shadow the package `model`: put the project root there instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
if not hasattr(sys.modules.get("model"), "__path__"):
    sys.modules.pop("model", None)  # a half-imported model/model.py, not the package
    sys.path.insert(0, os.path.dirname(_HERE))

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import solara
from mesa.visualization import SolaraViz
from mesa.visualization.utils import update_counter

if "solara.server.settings" in sys.modules:  # the server reads it when it starts, after this
    sys.modules["solara.server.settings"].telemetry.mixpanel_enable = False

from model import policy
from model.model import CarbonMarket
from model.scenario import SECTORS, Scenario, load_scenario, schema

BASELINE = Path(__file__).resolve().parents[1] / "experiments" / "scenarios" / "baseline.toml"
NOT_COVERED = "not covered"
NEVER = "never"
MT = 1e6  # t per Mt
BN = 1e9  # yuan per bn yuan

SECTOR_LABELS = {s: s.replace("_", " ") for s in SECTORS}
SECTOR_COLOURS = dict(zip(SECTORS, (
    "#1f77b4", "#7f7f7f", "#bcbd22", "#17becf", "#9467bd",
    "#8c564b", "#2ca02c", "#ff7f0e", "#e377c2")))
BUYER, SELLER, NEITHER = "#d62728", "#2ca02c", "#7f7f7f"


@functools.cache
def baseline() -> Scenario:
    """The calibrated baseline scenario (the controls' defaults)."""
    return load_scenario(BASELINE)


# ------------------------------------------------------------------------------------ controls
def _bounds(key: str, lo: float, hi: float) -> tuple[float, float]:
    """A slider's range: the useful window [lo, hi] clipped to the schema's bounds for ``key``."""
    rule = schema()[key]
    return (lo if rule.lo is None else max(lo, rule.lo),
            hi if rule.hi is None else min(hi, rule.hi))


def _slider(kind: str, key: str, label: str, value: float, lo: float, hi: float,
            step: float) -> dict[str, Any]:
    lo, hi = _bounds(key, lo, hi)
    return {"type": kind, "label": label, "value": value, "min": lo, "max": hi, "step": step}


def model_params() -> dict[str, dict[str, Any]]:
    """The sidebar controls in Mesa's ``model_params`` format (keys: PolicyExplorer's arguments)."""
    b = baseline()
    years = [str(y) for y in range(b.start_year, b.end_year + 1)]
    params: dict[str, dict[str, Any]] = {}
    for s in SECTORS:
        entry = b.coverage.sectors.get(s)
        values = [NOT_COVERED, *years]
        if entry is not None and str(entry) not in values:
            values.insert(1, str(entry))
        params[s] = {"type": "Select", "label": f"{SECTOR_LABELS[s]}: first covered year",
                     "value": NOT_COVERED if entry is None else str(entry), "values": values}
    a, o, p = b.allocation, b.offsets, b.prices
    cap = a.absolute_cap_from
    # slider labels stay short (the slider shares the sidebar's width with its label); the status
    # line above the charts spells out every setting of the model on screen with its unit
    params |= {
        "benchmark_decline": _slider("SliderFloat", "allocation.benchmark_decline",
                                     "Benchmark fall /yr", a.benchmark_decline, -0.05, 0.10,
                                     0.001),
        "absolute_cap_from": {"type": "Select", "label": "Absolute cap from (year)",
                              "value": NEVER if cap is None else str(cap),
                              "values": [NEVER, *years]},
        **({"absolute_cap_all_from": {
            "type": "Select", "label": "Absolute cap for all sectors from (year)",
            "value": NEVER if getattr(a, "absolute_cap_all_from", None) is None
            else str(a.absolute_cap_all_from), "values": [NEVER, *years]}}
           if "allocation.absolute_cap_all_from" in schema() else {}),
        "linear_reduction_factor": _slider("SliderFloat", "allocation.linear_reduction_factor",
                                           "Cap LRF /yr", a.linear_reduction_factor, 0.0, 0.20,
                                           0.001),
        "offset_limit": _slider("SliderFloat", "offsets.limit", "Offset limit", o.limit, 0.0,
                                0.50, 0.01),
        "ccer_supply_scale": _slider("SliderFloat", "offsets.supply_scale", "CCER supply ×",
                                     o.supply_scale, 0.0, 5.0, 0.1),
        "price_floor": _slider("SliderInt", "prices.floor", "Floor yuan/t", int(p.floor), 0,
                               200, 5),
        "price_ceiling": _slider("SliderInt", "prices.ceiling", "Ceiling (0 = none)",
                                 0 if math.isinf(p.ceiling) else int(p.ceiling), 0, 500, 10),
        "penalty_multiple": _slider("SliderFloat", "compliance.penalty_multiple",
                                    "Penalty × price", b.compliance.penalty_multiple or 5.0, 1.0,
                                    10.0, 0.5),
        "banking": {"type": "Checkbox", "label": "Banking allowed", "value": b.banking.enabled},
        "trading": {"type": "Checkbox", "label": "Trading between firms",
                    "value": b.market.trading},
        # an integer slider: Mesa 3.5.1 passes a text box's value on as a string
        "seed": _slider("SliderInt", "seed", "Seed", b.seed, 0, 999, 1),
    }
    return params


def build_scenario(controls: dict[str, Any]) -> tuple[Scenario, list[str]]:
    """The baseline with the controls applied (validated), and notes on controls set aside.

    ``controls`` has the keys of :func:`model_params`; missing keys keep the baseline's value.
    A price ceiling at or below the floor is ignored (noted) instead of failing the reset.
    """
    b = baseline()
    defaults = {k: v["value"] for k, v in model_params().items()}
    c = defaults | {k: v for k, v in controls.items() if k in defaults}
    notes: list[str] = []
    sectors = {s: int(c[s]) for s in SECTORS if str(c[s]) != NOT_COVERED}
    cap = None if str(c["absolute_cap_from"]) == NEVER else int(c["absolute_cap_from"])
    allocation: dict[str, Any] = {"benchmark_decline": float(c["benchmark_decline"]),
                                  "absolute_cap_from": cap,
                                  "linear_reduction_factor": float(c["linear_reduction_factor"])}
    if "absolute_cap_all_from" in c:  # the schema has it (see model_params)
        v = str(c["absolute_cap_all_from"])
        allocation["absolute_cap_all_from"] = None if v == NEVER else int(v)
    floor = float(c["price_floor"])
    ceiling = float(c["price_ceiling"]) if float(c["price_ceiling"]) > 0 else math.inf
    if ceiling <= floor:
        notes.append(f"price ceiling {ceiling:g} yuan/t ignored: it must be above the floor "
                     f"({floor:g} yuan/t)")
        ceiling = math.inf
    scenario = b.replace(
        name="browser", seed=int(c["seed"]),
        coverage={"sectors": sectors},
        allocation=allocation,
        offsets={"limit": float(c["offset_limit"]),
                 "supply_scale": float(c["ccer_supply_scale"])},
        prices={"floor": floor, "ceiling": ceiling},
        compliance={"penalty_multiple": float(c["penalty_multiple"])},
        banking={"enabled": bool(c["banking"])},
        market={"trading": bool(c["trading"])},
    )
    if not sectors:
        notes.append("no sector is covered: the market is empty")
    return scenario, notes


def describe(scenario: Scenario) -> str:
    """The settings the page controls, in one line with units."""
    cov = scenario.coverage.sectors
    sectors = ", ".join(f"{SECTOR_LABELS[s]} {cov[s]}" for s in SECTORS if s in cov) or "none"
    a, o, p, c = (scenario.allocation, scenario.offsets, scenario.prices, scenario.compliance)
    cap = f"absolute cap from {a.absolute_cap_from or 'never'}"
    if getattr(a, "absolute_cap_all_from", None) is not None:
        cap += f" (all sectors from {a.absolute_cap_all_from})"
    cap += f", LRF {a.linear_reduction_factor:.1%}/yr"
    ceiling = "none" if math.isinf(p.ceiling) else f"{p.ceiling:g} yuan/t"
    penalty = (f"{c.penalty_multiple:g} x previous price" if c.penalty_multiple is not None
               else f"{c.penalty:g} yuan/t")
    return (f"Covered (first year): {sectors} · benchmarks fall {a.benchmark_decline:.1%}/yr · "
            f"{cap} · offset limit {o.limit:.0%} · CCER supply x{o.supply_scale:g} · "
            f"floor {p.floor:g} yuan/t · ceiling {ceiling} · penalty {penalty} · "
            f"banking {'on' if scenario.banking.enabled else 'off'} · "
            f"trading {'on' if scenario.market.trading else 'off'} · seed {scenario.seed}")


MODEL_PARAMS = model_params()
"""The controls (built once; the model instances are built per browser session)."""
_D = {k: v["value"] for k, v in MODEL_PARAMS.items()}


class PolicyExplorer(CarbonMarket):
    """The CarbonMarket the page drives: built from the controls, one step per compliance year.

    Besides ``history`` it keeps per year what the charts need and the model does not record
    (``viz_rows``: abatement by sector, the offset limit and the CCER supply, t).
    """

    def __init__(self, *, power: str = _D["power"], steel: str = _D["steel"],
                 cement: str = _D["cement"], aluminium: str = _D["aluminium"],
                 petrochemicals: str = _D["petrochemicals"], chemicals: str = _D["chemicals"],
                 paper: str = _D["paper"], aviation: str = _D["aviation"],
                 flat_glass: str = _D["flat_glass"],
                 benchmark_decline: float = _D["benchmark_decline"],
                 absolute_cap_from: str = _D["absolute_cap_from"],
                 absolute_cap_all_from: str = _D.get("absolute_cap_all_from", NEVER),
                 linear_reduction_factor: float = _D["linear_reduction_factor"],
                 offset_limit: float = _D["offset_limit"],
                 ccer_supply_scale: float = _D["ccer_supply_scale"],
                 price_floor: int = _D["price_floor"], price_ceiling: int = _D["price_ceiling"],
                 penalty_multiple: float = _D["penalty_multiple"], banking: bool = _D["banking"],
                 trading: bool = _D["trading"], seed: int = _D["seed"]) -> None:
        controls = {k: v for k, v in locals().items() if k in _D}
        scenario, self.notes = build_scenario(controls)
        super().__init__(scenario, agents=True, record_firms=False, counterfactual=True)
        self.controls = controls
        self.viz_rows: list[dict[str, Any]] = []
        codes = {s: i for i, s in enumerate(SECTORS)}
        self._sector_code = np.array([codes[s] for s in self.firms.sector], dtype=np.int64)

    @property
    def n_years(self) -> int:
        """Number of compliance years of the scenario."""
        return self.config.end_year - self.config.start_year + 1

    def step(self) -> None:
        """Simulate one compliance year and record what the charts need."""
        before = len(self.history)
        super().step()
        if len(self.history) == before:
            return
        sc, st, year = self.config, self.state, self.year
        covered = st["covered"] > 0
        market = covered & ~policy.grandfathered(self.firms, sc, year)
        by_sector = np.bincount(self._sector_code, weights=st["abatement"],
                                minlength=len(SECTORS))
        self.viz_rows.append({
            "year": year,
            "abatement": dict(zip(SECTORS, by_sector.tolist())),
            "offset_limit": sc.offsets.limit * float(st["emissions"][market].sum()),
            "ccer_supply": policy.offset_supply(sc, year).total,
        })


# -------------------------------------------------------------------------------------- charts
# Each chart is an ECharts option (plain JSON data, built in well under a millisecond) drawn on one
# <canvas> in the browser by solara.FigureEcharts; echarts@5.4.0 ships with solara-assets.

def _r(x: float, digits: int = 2) -> float | None:
    """A JSON-friendly rounded number (None for NaN or infinity: a gap in the chart)."""
    return round(float(x), digits) if math.isfinite(x) else None


def _series(values: Any, scale: float = 1.0, digits: int = 2) -> list[float | None]:
    return [_r(v / scale, digits) for v in values]


def _column(model: PolicyExplorer, key: str, scale: float = 1.0) -> list[float | None]:
    return _series((row.get(key, math.nan) for row in model.history), scale)


def _chart(model: PolicyExplorer, title: str, yname: str, series: list[dict[str, Any]],
           **extra: Any) -> dict[str, Any]:
    """An ECharts option: compliance years on x (the whole scenario, fixed), one value axis."""
    years = [str(y) for y in range(model.config.start_year, model.config.end_year + 1)]
    empty = "no year simulated yet: press Step" if not model.history else ""
    return {
        "animation": False,
        "title": {"text": title, "subtext": empty, "left": "center",
                  "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 24 if not empty else 44, "type": "scroll"},
        "grid": {"left": 70, "right": 24, "top": 76, "bottom": 44},
        "xAxis": {"type": "category", "data": years, "name": "compliance year",
                  "nameLocation": "middle", "nameGap": 28},
        "yAxis": {"type": "value", "name": yname, "nameLocation": "middle", "nameGap": 52,
                  "min": 0},
        "series": series,
        **extra,
    }


def prices_chart(model: PolicyExplorer) -> dict[str, Any]:
    """CEA and CCER prices with the floor and ceiling, yuan/t."""
    bounds = []
    prices = model.config.prices
    if prices.floor > 0:
        bounds.append({"yAxis": prices.floor, "name": f"floor {prices.floor:g}"})
    if math.isfinite(prices.ceiling):
        bounds.append({"yAxis": prices.ceiling, "name": f"ceiling {prices.ceiling:g}"})
    cea = {"name": "CEA price", "type": "line", "data": _column(model, "cea_price"),
           "symbol": "circle", "color": "#1f77b4"}
    if bounds:
        cea["markLine"] = {"symbol": "none", "data": bounds, "lineStyle": {"color": "#555"},
                           "label": {"formatter": "{b} yuan/t", "position": "insideEndTop"}}
    ccer = {"name": "CCER price", "type": "line", "data": _column(model, "ccer_price"),
            "symbol": "rect", "lineStyle": {"type": "dashed"}, "color": "#ff7f0e"}
    title = "Allowance (CEA) and offset (CCER) prices, yuan/t"
    if not model.config.market.trading:
        title += " (no trading: no CEA market)"
    return _chart(model, title, "yuan/t", [cea, ccer])


def emissions_chart(model: PolicyExplorer) -> dict[str, Any]:
    """Verified emissions against the allocation (the cap), Mt CO2."""
    return _chart(model, "Covered emissions against the allocation (cap), Mt CO2", "Mt CO2", [
        {"name": "emissions before abatement", "type": "line", "color": "#999",
         "data": _column(model, "covered_emissions", MT), "lineStyle": {"type": "dotted"},
         "symbol": "none"},
        {"name": "verified emissions", "type": "line", "color": "#d62728",
         "data": _column(model, "emissions", MT), "symbol": "circle"},
        {"name": "allocation (cap)", "type": "line", "step": "middle", "color": "#1f77b4",
         "data": _column(model, "allocation", MT), "lineStyle": {"width": 3}, "symbol": "none"},
    ], yAxis={"type": "value", "name": "Mt CO2", "nameLocation": "middle", "nameGap": 52,
              "scale": True})


def abatement_chart(model: PolicyExplorer) -> dict[str, Any]:
    """Abatement by sector, stacked, Mt CO2."""
    rows = model.viz_rows
    series = []
    for s in SECTORS:
        values = [r["abatement"][s] for r in rows]
        if any(values):
            series.append({"name": SECTOR_LABELS[s], "type": "line", "stack": "abatement",
                           "areaStyle": {}, "symbol": "none", "color": SECTOR_COLOURS[s],
                           "data": _series(values, MT)})
    return _chart(model, "Abatement by sector (stacked), Mt CO2", "Mt CO2 abated", series)


def offsets_chart(model: PolicyExplorer) -> dict[str, Any]:
    """CCER offsets surrendered against the limit and the supply, Mt CO2e."""
    rows = model.viz_rows
    limit = model.config.offsets.limit
    return _chart(model, "CCER offsets used against the limit, Mt CO2e", "Mt CO2e", [
        {"name": "CCERs surrendered", "type": "bar", "color": "#2ca02c",
         "data": _column(model, "ccer_used", MT)},
        {"name": f"limit ({limit:.0%} of verified emissions)", "type": "line",
         "color": "#000", "data": _series((r["offset_limit"] for r in rows), MT),
         "symbol": "none", "lineStyle": {"width": 2}},
        {"name": "CCER supply", "type": "line", "color": "#ff7f0e", "symbol": "triangle",
         "lineStyle": {"type": "dashed"},
         "data": _series((r["ccer_supply"] for r in rows), MT)},
    ])


def cost_paths(model: PolicyExplorer) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative cost of compliance with and without trading, bn yuan (one entry per year).

    The resource cost (abatement + the CCERs' production cost + penalties; trades are transfers)
    where the model reports it, else the firms' total compliance cost.
    """
    h = model.history
    key = "resource_cost" if h and "resource_cost" in h[0] else "total_cost"
    other = f"{key}_no_trading" if model.config.market.trading else f"{key}_with_trading"
    own = np.array([row[key] for row in h], dtype=float) / BN
    alt = np.array([row.get(other, math.nan) for row in h], dtype=float) / BN
    if model.config.market.trading:
        return np.cumsum(own), np.cumsum(alt)
    return np.cumsum(alt), np.cumsum(own)


def costs_chart(model: PolicyExplorer) -> dict[str, Any]:
    """Cumulative cost of compliance with and without trading, bn yuan."""
    with_trade, alone = cost_paths(model)
    gain = np.maximum(alone - with_trade, 0.0)
    option = _chart(model, "Cumulative compliance cost with and without trading, bn yuan",
                    "bn yuan (cumulative)", [
        {"name": "with trading", "type": "line", "color": "#1f77b4", "stack": "cost",
         "data": _series(with_trade), "symbol": "circle"},
        {"name": "gain from trade", "type": "line", "stack": "cost", "symbol": "none",
         "color": "#2ca02c", "lineStyle": {"opacity": 0}, "areaStyle": {"opacity": 0.25},
         "data": _series(gain)},
        {"name": "without trading (each firm alone)", "type": "line", "color": "#d62728",
         "data": _series(alone), "symbol": "rect", "lineStyle": {"type": "dashed"}},
    ])
    if model.history and "resource_cost" in model.history[0]:
        option["title"]["subtext"] = ("abatement + CCER production cost + penalties "
                                      "(allowance trades are transfers)")
        option["legend"]["top"] = 44
    return option


def _binned(x: np.ndarray, y: np.ndarray, xbins: np.ndarray, ybins: np.ndarray,
            what: str, largest: int) -> list[dict[str, Any]]:
    """Firms counted on a 2-D grid: one scatter point per non-empty cell, area ~ count (the
    ``largest`` count drawn 30 px wide)."""
    counts, _, _ = np.histogram2d(x, y, bins=(xbins, ybins))
    xc, yc = 0.5 * (xbins[1:] + xbins[:-1]), 0.5 * (ybins[1:] + ybins[:-1])
    out = []
    for i, j in zip(*np.nonzero(counts)):
        n = int(counts[i, j])
        out.append({"value": [_r(xc[i], 1), _r(yc[j], 1)],
                    "symbolSize": _r(4 + 26 * math.sqrt(n / max(largest, 1)), 1),
                    "name": f"{n} {what}: abatement {xc[i]:.0f} %, MAC {yc[j]:.0f} yuan/t"})
    return out


def firms_chart(model: PolicyExplorer) -> dict[str, Any]:
    """Each trading firm's MAC at its abatement point against the price, binned on a grid.

    Two panels: coloured by sector, and by position in the allowance market (net buyer,
    net seller, no trade). Marker area grows with the number of firms in a cell.
    """
    year = model.year if model.history else model.config.start_year
    st = model.state
    market = (st["covered"] > 0) & ~policy.grandfathered(model.firms, model.config, year)
    if not model.history:
        market[:] = False
    unabated = st.get("unabated", st["emissions"])[market]
    share = 100.0 * np.divide(st["abatement"][market], unabated,
                              out=np.zeros(unabated.size), where=unabated > 0)
    mac = st["mac"][market]
    trading = model.config.market.trading
    price = model.history[-1]["cea_price"] if model.history else 0.0
    # the MAC axis: up to twice the price or the 98th percentile (a few firms whose cheapest
    # option costs far more would squash the rest; they are drawn at the top edge)
    top = float(np.percentile(mac, 98)) if mac.size else 0.0
    hi = max(top, 2.0 * price if trading else 0.0, 1.0) * 1.05
    lo = min(float(mac.min(initial=0.0)), 0.0)
    above = int((mac > hi).sum())
    mac = np.minimum(mac, hi)
    xbins, ybins = np.linspace(0.0, 100.0, 31), np.linspace(lo, hi, 31)
    largest = int(np.histogram2d(share, mac, bins=(xbins, ybins))[0].max(initial=0))
    sector = model.firms.sector[market]
    series: list[dict[str, Any]] = []
    for s in SECTORS:
        m = sector == s
        if m.any():
            series.append({"name": SECTOR_LABELS[s], "type": "scatter",
                           "color": SECTOR_COLOURS[s],
                           "xAxisIndex": 0, "yAxisIndex": 0, "itemStyle": {"opacity": 0.7},
                           "data": _binned(share[m], mac[m], xbins, ybins, SECTOR_LABELS[s],
                                          largest)})
    bought = st["cea_bought"][market]
    tol = 1e-6 * max(float(np.abs(bought).max(initial=0.0)), 1.0)
    for name, what, m, colour in (("net buyers", "net buyer", bought > tol, BUYER),
                                  ("net sellers", "net seller", bought < -tol, SELLER),
                                  ("no trade", "non-trading", np.abs(bought) <= tol, NEITHER)):
        if m.any():
            series.append({"name": name, "type": "scatter", "color": colour, "xAxisIndex": 1,
                           "yAxisIndex": 1, "itemStyle": {"opacity": 0.7},
                           "data": _binned(share[m], mac[m], xbins, ybins, what, largest)})
    if trading and model.history:
        for k in (0, 1):
            series.append({"name": "CEA price", "type": "line", "xAxisIndex": k, "yAxisIndex": k,
                           "color": "#000", "symbol": "none", "data": [],
                           "markLine": {"symbol": "none", "silent": True,
                                        "data": [{"yAxis": _r(price)}],
                                        "lineStyle": {"color": "#000", "type": "dashed"},
                                        "label": {"formatter": f"CEA price {price:.1f} yuan/t",
                                                  "position": "insideEndTop"}}})
    axis = {"type": "value", "nameLocation": "middle", "nameGap": 26, "min": 0, "max": 100,
            "name": "abatement, % of the firm's emissions"}
    yaxis = {"type": "value", "nameLocation": "middle", "nameGap": 44,
             "name": "MAC at abatement, yuan/t", **({"min": 0} if lo >= 0 else {})}
    n = int(market.sum())
    title = (f"Firms' marginal abatement cost (MAC) against the price, {year}"
             if model.history else "Firms' marginal abatement cost (MAC) against the price")
    sub = (f"{n:,} firms in the market, binned (marker area ~ number of firms)\n"
           "left: by sector · right: net buyers and sellers of allowances"
           if model.history else "no year simulated yet: press Step")
    if above:
        sub += f" · {above} with MAC > {hi:.0f} at the top"
    return {
        "animation": False,
        "title": {"text": title, "subtext": sub, "left": "center", "itemGap": 6,
                  "textStyle": {"fontSize": 14}, "subtextStyle": {"lineHeight": 15}},
        "tooltip": {"trigger": "item", "formatter": "{b}"},
        "legend": {"top": 58, "type": "scroll"},
        "grid": [{"left": 60, "right": "52%", "top": 100, "bottom": 44},
                 {"left": "55%", "right": 16, "top": 100, "bottom": 44}],
        "xAxis": [{**axis, "gridIndex": 0}, {**axis, "gridIndex": 1}],
        "yAxis": [{**yaxis, "gridIndex": 0}, {**yaxis, "gridIndex": 1, "name": ""}],
        "series": series,
    }


CHARTS = (prices_chart, emissions_chart, abatement_chart, offsets_chart, costs_chart,
          firms_chart)
"""The charts of the page, in order (each: model -> ECharts option)."""

CHART_STYLE = {"style": "height: 370px; width: 100%;"}


@solara.component
def Chart(model: PolicyExplorer, make: Any) -> Any:
    """One chart (``make``: model -> ECharts option), redrawn after every step."""
    update_counter.get()  # Mesa bumps it after each step: re-render
    option = solara.use_memo(lambda: make(model), dependencies=[model, len(model.history), make])
    return solara.FigureEcharts(option=option, attributes=CHART_STYLE, responsive=True)


# The charts handed to SolaraViz are components (a plain function would be wrapped by Mesa in a
# new component class whenever the chart grid re-renders, tearing every chart down and up again).
@solara.component
def PricesView(model: PolicyExplorer) -> Any:
    """CEA and CCER prices."""
    return Chart(model, prices_chart)


@solara.component
def EmissionsView(model: PolicyExplorer) -> Any:
    """Emissions against the allocation."""
    return Chart(model, emissions_chart)


@solara.component
def AbatementView(model: PolicyExplorer) -> Any:
    """Abatement by sector."""
    return Chart(model, abatement_chart)


@solara.component
def OffsetsView(model: PolicyExplorer) -> Any:
    """Offsets against the limit."""
    return Chart(model, offsets_chart)


@solara.component
def CostsView(model: PolicyExplorer) -> Any:
    """Cumulative cost with and without trading."""
    return Chart(model, costs_chart)


@solara.component
def FirmsView(model: PolicyExplorer) -> Any:
    """The firm-level view."""
    return Chart(model, firms_chart)


COMPONENTS = [(view, 0) for view in (PricesView, EmissionsView, AbatementView, OffsetsView,
                                     CostsView, FirmsView)]


@solara.component
def Status(model: solara.Reactive[PolicyExplorer]) -> None:
    """One line above the charts: the year, the step counter and the headline numbers."""
    update_counter.get()  # re-rendered at every step
    m = model.value
    if m.history:
        h = m.history[-1]
        text = (f"Year {h['year']} · step {len(m.history)} of {m.n_years} · "
                f"CEA {h['cea_price']:.1f} yuan/t · CCER {h['ccer_price']:.1f} yuan/t · "
                f"{h['covered_firms']:,} covered firms · emissions {h['emissions'] / MT:,.0f} "
                f"Mt CO2 · allocation {h['allocation'] / MT:,.0f} Mt CO2")
    else:
        text = (f"Step 0 of {m.n_years}: {m.config.start_year}-{m.config.end_year}, "
                f"{m.firms.n:,} firms; press Step (one compliance year) or ▶")
    with solara.Column(gap="2px", style={"padding": "4px 12px"}):
        solara.Text(text, classes=["cets-status"], style={"font-size": "15px"})
        solara.Text(f"Model on screen: {describe(m.config)}. Change the controls in the sidebar "
                    "and press Reset to rebuild the model.", classes=["cets-settings"],
                    style={"font-size": "12px", "color": "#555"})
        for note in m.notes:
            solara.Warning(note, dense=True)


@solara.component
def Page() -> None:
    """The page: one PolicyExplorer per browser session, Mesa's controls, the charts."""
    first = solara.use_memo(PolicyExplorer, dependencies=[])  # per session, never module-level
    model = solara.use_reactive(first)
    Status(model)
    SolaraViz(model, components=COMPONENTS, model_params=MODEL_PARAMS,
              name="cets: China's national carbon market", play_interval=200)
