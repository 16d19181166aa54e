"""CarbonMarket: the Mesa model of China's national ETS. One step is one compliance year.

A step (vintage ``year``):

1. output and unabated emissions evolve (sector growth and intensity rates);
2. coverage is set (sector entry years, inclusion threshold) and allowances allocated
   (:mod:`model.policy`);
3. the registry opens each firm's holdings (allocation + bank - deductions, :mod:`model.ledger`);
4. firms decide and the CEA and CCER markets clear (:mod:`model.market`), or, without trading,
   each firm complies alone;
5. firms surrender; the registry banks, expires and checks conservation;
6. the DataCollector collects the year's totals.

Data flows one way: scenario -> firms -> market -> ledger -> results.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable

import mesa
import numpy as np

from model import demography, investment, policy
from model.agents import Firm
from model.banking import demand as banking_demand
from model.clearing_kernels import take_sums
from model.expectations import PERFECT, Expectations
from model.frictions import clear_with_frictions, participation_types
from model.inputs import YearInputs, inputs_key, share_inputs, shared_inputs
from model.intertemporal import YearMarket, hotelling_path
from model.ledger import Ledger, MarketBook
from model.mac import Knots, MACCurves
from model.market import (
    Bounds,
    Positions,
    autarky,
    banking_knots,
    clear,
    clear_at_price,
    firm_banking,
    positions,
    solve_quantity,
    supply_cost,
)
from model.policy_kernels import year_rules
from model.population import Firms, synthetic_firms
from model.scenario import Scenario
from model.tables import load_firms

YEAR_COLUMNS = (
    "year", "cea_price", "ccer_price", "emissions", "abatement", "allocation", "ccer_used",
    "abatement_cost", "offset_cost", "shortfall", "reserve_sales", "banked", "covered_firms",
    "covered_emissions", "free_allocation", "auctioned", "withheld", "expired", "bank_in",
    "trade_volume", "penalty", "penalty_cost", "limit_binds", "total_cost", "borrowed",
    "resource_cost",
)
"""Columns of every ``history`` row (runs without trading, with the counterfactual or with
frictions add a few)."""


class CarbonMarket(mesa.Model):
    """China's national carbon market as a Mesa model.

    Attributes:
        config: The scenario.
        firms: The firm population (arrays).
        year: The vintage of the last step (``start_year - 1`` before the first).
        state: This year's per-firm arrays (covered, output, emissions, abatement, allocation,
            cea_bought, ccer_used, banked, mac, costs), read by the :class:`Firm` agents.
        ledger: The registry.
        history: One dict of totals per simulated year (the rows of ``years.csv``).
    """

    def __init__(self, scenario: Scenario, *, firms: Firms | None = None,
                 rng: int | None = None, agents: bool = True, record_firms: bool = True,
                 counterfactual: bool = False) -> None:
        """Build the model.

        Args:
            scenario: The validated scenario.
            firms: A prepared population (default: the scenario's tables or the calibrated one).
            rng: Seed (default: ``scenario.seed``). All random draws come from ``self.rng``.
            agents: Create one :class:`Firm` agent per firm (the browser and the DataCollector
                use them; batch runs of very large tables may skip them).
            record_firms: Keep each year's per-firm rows for ``firms.csv`` and the registry's
                record of every year (sweeps that need only the yearly totals skip them: the
                registry keeps the last year's).
            counterfactual: Also compute, every year, the total cost without trading
                (``total_cost_no_trading`` in ``history``) when the scenario trades; a scenario
                without trading always reports the cost with trading.
        """
        seed = scenario.seed if rng is None else rng
        super().__init__(rng=seed)
        # Separate streams spawned from the model's generator: the population's, the
        # demography's, and self.rng itself for the firms' behaviour (expectation rules,
        # participation). A population thus depends on the seed alone and is built once per
        # seed and reused by the runs of a sweep.
        population_rng, demography_rng = self.rng.spawn(2)
        self._exo: dict[int, YearInputs] = {}  # exogenous inputs by year (see _exogenous)
        self._caps: dict[int, dict[str, float]] = {}  # cap_state.first after each year's
        self.cap_state = policy.CapState(first={})
        self.config = scenario
        self.record_firms = record_firms
        self.counterfactual = counterfactual
        # Dynamics of the firms (issue: firms over time): capital options with lock-in and
        # learning, and plant entry and retirement. They need the calibrated technology options.
        with_demography = scenario.investment.enabled and scenario.investment.demography
        self.demography = None
        if firms is None and scenario.firms.table is None:
            key = (int(seed), scenario.end_year, with_demography) if isinstance(
                seed, (int, np.integer)) else None
            firms, self.demography = _synthetic_population(
                key, population_rng, demography_rng, scenario.end_year, with_demography)
        else:
            if firms is None:
                firms = load_firms(scenario.firms.table, scenario.firms.mac, population_rng,
                                   scenario.start_year)
            if with_demography and firms.options is not None:
                firms, self.demography = demography.plan_demography(demography_rng, firms,
                                                                    scenario.end_year)
        self.dynamic = scenario.investment.enabled and firms.options is not None
        # The exogenous inputs of every year, from another run of the same population and the
        # same rules if one was made in this process (a sweep's runs that differ only in MAC
        # costs, offset limits, expectations... share them: read-only).
        self._inputs_key = inputs_key(firms, self.demography, scenario)
        shared = shared_inputs(self._inputs_key, firms)
        if shared is not None:
            self._exo, self._caps = dict(shared[0]), {y: dict(c) for y, c in shared[1].items()}
            self.cap_state.first = dict(shared[2])
        self.firms = firms = _apply_mac_scales(firms, scenario)
        self.investment = investment.InvestmentState.new(firms.options) if self.dynamic else None
        self.year = scenario.start_year - 1
        self.ledger = Ledger(firms.n, keep_records=record_firms)
        self.previous_price: float | None = None
        self.history: list[dict] = []
        self.firm_rows: list[dict[str, np.ndarray]] = []
        self._last_bought = np.zeros(firms.n)  # last year's CEA bought (net sales: its negative)
        self._carry_kept: tuple | None = None  # (scenario, bought, limit): _carry_over_limit
        ex = scenario.expectations
        self.expectations = Expectations.draw(
            self.rng, firms.n, (ex.myopic, ex.adaptive, ex.perfect), ex.adaptive_weight,
            ex.discount_rate, scenario.compliance.reference_price)
        if self.expectations.needs_path:
            self.expectations.path, self.expectations.path_bank = self._project()
        self._state: dict[str, np.ndarray] | None = {k: np.zeros(firms.n) for k in (
            "covered", "output", "emissions", "abatement", "allocation", "cea_bought",
            "ccer_used", "banked", "mac", "total_cost")}
        self._state_of: Callable[[], dict[str, np.ndarray]] | None = None
        fr = scenario.frictions
        self.participation = None  # participation types, drawn only when frictions are set
        if fr.transaction_cost > 0 or fr.own_surplus_share > 0 or fr.no_trade_share > 0:
            self.participation = participation_types(self.rng, self.firms.n,
                                                     fr.own_surplus_share, fr.no_trade_share)
        if agents:
            for i in range(self.firms.n):
                Firm(self, i)
        self.datacollector = mesa.DataCollector(
            model_reporters={k: (lambda m, k=k: m.history[-1][k] if m.history else 0.0)
                             for k in ("cea_price", "ccer_price", "emissions", "abatement",
                                       "allocation", "ccer_used", "shortfall", "total_cost")}
        )

    @property
    def config(self) -> Scenario:
        """The scenario. Replacing it between steps changes the rules from the next year on (an
        unannounced policy change: the perfect-foresight path keeps the old rules)."""
        return self._config

    @config.setter
    def config(self, scenario: Scenario) -> None:
        self._config = scenario
        self._inputs_key = None  # (a run whose rules change does not share its inputs)
        year = getattr(self, "year", scenario.start_year - 1)
        for y in [y for y in self._exo if y > year]:  # forget the inputs of the years to come
            del self._exo[y]
            self._caps.pop(y, None)
        self.cap_state.first = dict(self._caps.get(year, {}))

    @property
    def state(self) -> dict[str, np.ndarray]:
        """This year's per-firm arrays (see the class docstring), built when first read: batch
        runs that keep only the yearly totals never build them."""
        if self._state is None and self._state_of is not None:
            self._state, self._state_of = self._state_of(), None
        return self._state

    @property
    def done(self) -> bool:
        """Whether the last year of the scenario has been simulated."""
        return self.year >= self.config.end_year

    def step(self) -> None:
        """Simulate one compliance year."""
        if self.done:
            self.running = False
            return
        self.year += 1
        self._simulate_year(self.year)
        self.datacollector.collect(self)
        self.running = not self.done

    def run(self) -> None:
        """Simulate every remaining year of the scenario."""
        while not self.done:
            self.step()

    # ------------------------------------------------------------------ one year
    def _exogenous(self, year: int) -> YearInputs:
        """``year``'s inputs that do not depend on the market (no curves yet): output,
        unabated emissions, coverage, allocation and CCER supply.

        Computed once per year and kept (the perfect-foresight projection and the simulation
        share them), always in year order from the first year, because an absolute cap is fixed
        from the allocation of its first year (:attr:`cap_state`).
        """
        hit = self._exo.get(year)
        if hit is not None:
            return hit
        sc, f = self.config, self.firms
        for y in range(max(self._exo, default=sc.start_year - 1) + 1, year + 1):
            # the rules of policy and demography in two compiled passes (policy_kernels)
            r = year_rules(f, sc, y, self.demography, self.cap_state)
            for a in (r.output, r.emissions, r.covered, r.grandfathered, r.market, r.free):
                a.setflags(write=False)  # shared by the projection and the run
            self._caps[y] = dict(self.cap_state.first)
            self._exo[y] = YearInputs(y, r.output, r.emissions, r.covered, r.grandfathered,
                                      r.market, r.market_index, r.free, r.auctioned, None,
                                      policy.offset_supply(sc, y), em_factor=r.emissions_factor)
        if self._inputs_key is not None and sc.end_year in self._exo:  # (every year: shared)
            share_inputs(self._inputs_key, self.firms, self._exo, self._caps,
                         self.cap_state.first)
        return self._exo[year]

    def _inputs(self, year: int) -> YearInputs:
        """Everything about ``year`` that does not depend on the market's history.

        With investment, the yearly MAC curves hold the operational options (capital options
        come in through :meth:`_invest`, which the simulation uses instead: it also adopts). The
        market's rows are taken with ``market_index`` (``take`` is much faster than boolean
        indexing and gives the same values).
        """
        sc, f = self.config, self.firms
        x = self._exogenous(year)
        idx = x.market_index
        if not self.dynamic:
            return dataclasses.replace(x, curves=f.mac.select(idx).scaled(x.em_factor.take(idx)))
        opts = investment.year_options(f.options, x.emissions, idx, year,
                                       self.investment.cumulative, learning=sc.investment.learning)
        return dataclasses.replace(x, curves=opts.curves)

    def _projected_supply(self, x: YearInputs,
                          place: np.ndarray | None) -> tuple[Knots, np.ndarray | None]:
        """The market's abatement supply in the perfect-foresight projection: with investment,
        every option (capital ones as one-year options at their levelised cost) from nothing
        adopted, and the sort keys of its knots laid out by the slots' ``place`` to sort fast
        (:func:`investment.cost_places`)."""
        f, idx = self.firms, x.market_index
        if not self.dynamic:
            return f.mac.select(idx).scaled(x.em_factor.take(idx)).knots(), None
        return investment.option_knots_keyed(
            f.options, x.emissions, x.year, f.options.initial_deployment, place,
            include_capital=True, learning=self.config.investment.learning, rows=idx)

    def _invest(self, year: int) -> tuple[YearInputs, MACCurves, np.ndarray, np.ndarray]:
        """``year``'s market with investment, in one pass over its firms' option slots
        (:func:`investment.market_year`): the curves of the operational options, the capital
        options adopted where they pay at the firms' expected prices, and those in use.

        Returns the year's inputs (without curves), the market's MAC curves, the abatement
        locked in by capital options (t) and their yearly capital charges (yuan), per firm of
        the market.
        """
        sc, f, ex = self.config, self.firms, self.expectations
        x = self._exogenous(year)
        horizon = f.options.longest_lifetime
        # The distinct expected price paths, one per rule, and each firm's (its rule): flat at
        # the rule's expected price (myopic, adaptive), the perfect-foresight path. Firms that
        # share a path share its discounted sums.
        paths = np.repeat(ex.rule_prices(year)[:, None], horizon, axis=1)
        if ex.path:  # (the path of the firms with perfect foresight, set if any has it)
            future = [ex.path.get(year + k) for k in range(horizon)]
            last = next(p for p in reversed([ex.path.get(year, 0.0), *future]) if p is not None)
            paths[PERFECT] = [last if p is None else p for p in future]
        m = investment.market_year(f.options, x.emissions, x.market_index, year, self.investment,
                                   paths, sc.expectations.discount_rate, path=ex.rule,
                                   active_until=f.active_until, learning=sc.investment.learning)
        return x, m.curves, m.locked, m.capital_cost

    def _carry_over_limit(self) -> np.ndarray:
        """:func:`policy.carry_over_limit` of every firm for last year's net sales (t;
        read-only). The registry works it out when the year closes and it is kept: the next
        year's banking demand needs it again (unless the scenario changed in between)."""
        bought, kept = self._last_bought, self._carry_kept
        if kept is not None and kept[0] is self.config and kept[1] is bought:
            return kept[2]
        limit = policy.carry_over_limit(self.firms, self.config, -bought)
        limit.flags.writeable = False
        self._carry_kept = (self.config, bought, limit)
        return limit

    def _project(self) -> tuple[dict[int, float], dict[int, float]]:
        """The perfect-foresight path over the scenario's years (unlimited banking): prices and
        the market's bank at the end of each year."""
        sc = self.config
        markets, years = [], range(sc.start_year, sc.end_year + 1)
        flat = sc.compliance.penalty if sc.compliance.penalty is not None else math.inf
        inputs = [self._exogenous(year) for year in years]
        place = None
        if self.dynamic:  # (the slots of firms in the market in some year)
            in_market = np.zeros(self.firms.n, dtype=bool)
            for x in inputs:
                in_market[x.market_index] = True
            place = investment.cost_places(self.firms.options, in_market)
        for x in inputs:
            supply, keys = self._projected_supply(x, place)
            emissions, free = take_sums(x.emissions, x.free, x.market_index)  # (numpy's sums)
            markets.append(YearMarket(
                supply, emissions, free + x.auctioned, x.offsets, sc.offsets.limit,
                upper=min(sc.prices.ceiling, flat), lower=sc.prices.floor, firm_keys=keys))
        borrow = [sc.banking.borrowing * m.issued for m in markets[1:]] + [0.0]
        path = hotelling_path(markets, sc.expectations.discount_rate, borrow_limit=borrow)
        return (dict(zip(years, map(float, path.prices))),
                dict(zip(years, map(float, path.bank))))

    def _simulate_year(self, year: int) -> None:
        """Simulate ``year`` (see the module docstring). The market's rows of per-firm arrays
        are taken with ``x.market_index`` (faster than boolean indexing, the same values)."""
        sc, f, ex = self.config, self.firms, self.expectations
        # With investment: the capital options in use, abatement locked in (t) and their yearly
        # capital charges (yuan; the same with or without trading), per firm of the market.
        if self.dynamic:
            x, curves, locked_m, capex_m = self._invest(year)
        else:
            x = self._inputs(year)
            curves, locked_m, capex_m = x.curves, None, None
        e, cov, grand, free, auctioned = (x.emissions, x.covered, x.grandfathered, x.free,
                                          x.auctioned)
        idx = x.market_index
        holdings, bank_in, deducted = self.ledger.opening(free)
        ccer, limit = x.offsets, sc.offsets.limit
        capex_total = float(capex_m.sum()) if self.dynamic else 0.0
        penalty = policy.penalty_level(sc, self.previous_price)
        price_cap = penalty
        if sc.compliance.penalty is None:
            # k x the average price refers to the price itself: when the cap cannot be met, the
            # price stops at the dearest option in use (firms short then pay the fine).
            price_cap = min(penalty, max(float(np.max(curves.cost, initial=0.0)),
                                         float(np.max(ccer.x, initial=0.0))))
        bounds = Bounds(floor=sc.prices.floor, ceiling=sc.prices.ceiling, penalty=price_cap)
        e_m, h_m = e.take(idx), holdings.take(idx)
        if locked_m is not None:
            e_m -= locked_m
        # Banking demand: each firm holds allowances while its discounted expected price is
        # above today's, within its carry-over limit, and may borrow above it.
        # Firms with perfect foresight hold the path's bank, in proportion to their allocation.
        threshold, capacity, borrow, planned, any_foresight = banking_demand(
            idx, self._carry_over_limit(),
            float(free.sum() + auctioned + holdings.sum()), free,
            sc.banking.borrowing if sc.banking.enabled else 0.0, ex.rule,
            ex.rule_thresholds(year), PERFECT, sc.market.trading,
            ex.path_bank.get(year, 0.0))
        banking = banking_knots(threshold, capacity, borrow) if sc.market.trading else None
        frictions = sc.market.trading and self.participation is not None
        if not frictions:  # the frictionless market (also the benchmark of a no-trading run)
            knots, to_sell = curves.knots(), float(h_m.sum() + auctioned - planned.sum())
            unabated = float(e_m.sum())
            eq = clear(knots, unabated, to_sell, ccer, limit, bounds, banking=banking)
            if any_foresight and year in ex.path:  # the path's price, if it clears
                at_path = clear_at_price(knots, unabated, to_sell, ccer, limit, ex.path[year],
                                         banking, bounds)
                if at_path is not None:
                    eq = at_path
            auction_unsold = min(eq.surplus, auctioned)
            eq = dataclasses.replace(eq, surplus=eq.surplus - auction_unsold)
        extra: dict[str, float] = {}
        banked_m = np.zeros(idx.size)
        if frictions:
            # Frictions: restricted participants and a transaction cost (no banking demand:
            # firms bank only what they leave unsold).
            eq, pos = clear_with_frictions(curves, e_m, h_m, ccer, limit, bounds,
                                           self.participation.take(idx),
                                           sc.frictions.transaction_cost,
                                           auctioned=auctioned, penalty=penalty)
            auction_unsold = eq.auction_unsold
            eq = dataclasses.replace(eq, surplus=eq.surplus - auction_unsold)
            cea_price, ccer_price = eq.cea_price, eq.ccer_price
            reserve, withheld = eq.reserve_sales, eq.withheld
            extra["transaction_costs"] = eq.transaction_costs
        elif sc.market.trading:
            if banking is not None:
                banked_m = firm_banking(threshold, capacity, borrow, eq) + planned
            pos = positions(curves, e_m, h_m, eq, penalty, banked=banked_m)
            cea_price, ccer_price = eq.cea_price, eq.ccer_price
            reserve, withheld = eq.reserve_sales, eq.withheld
            if self.counterfactual:
                p_alone, alone = autarky(curves, e_m, h_m, ccer, limit, penalty)
                extra["total_cost_no_trading"] = _total_cost(alone)
                extra["resource_cost_no_trading"] = (_resource_cost(alone, ccer, p_alone)
                                                     + capex_total)
        else:
            with_trade = positions(curves, e_m, h_m, eq, penalty)
            ccer_price, pos = autarky(curves, e_m, h_m, ccer, limit, penalty)
            cea_price, reserve, withheld, auction_unsold = 0.0, 0.0, 0.0, auctioned
            extra["total_cost_with_trading"] = _total_cost(with_trade)
            extra["resource_cost_with_trading"] = (_resource_cost(with_trade, ccer, eq.ccer_price)
                                                   + capex_total)
        # The registry books every firm; the totals come from the market's arrays.
        n = f.n
        abatement_m, abatement_cost_m = pos.abatement, pos.abatement_cost
        if self.dynamic:  # operational + locked-in capital options, and their capital charges
            abatement_m = abatement_m + locked_m
            abatement_cost_m = abatement_cost_m + capex_m
        # (one compiled pass: the market's arrays spread over every firm of the registry, the
        # carry-over limits of the year's net sales, kept: next year's banking demand reads
        # them; what each firm banks, within its limit or more if it banks or borrows more in
        # the market, and what expires)
        rec, limit, borrowed_total = self.ledger.settle(
            year, MarketBook(idx, pos.offsets, pos.surrendered, pos.cea_bought, pos.shortfall,
                             banked_m, capacity),
            grand, e, policy.carry_over_rule(f, sc), free, deducted, auctioned=auctioned,
            auction_unsold=auction_unsold, reserve_sales=reserve, withheld=withheld,
            deduct_shortfall=sc.compliance.deduct_shortfall)
        limit.flags.writeable = False
        self._carry_kept = (sc, rec.bought, limit)
        self._last_bought = rec.bought
        cost_m = abatement_cost_m + pos.offset_cost + pos.trade_cost + pos.penalty_cost

        def firm_state() -> dict[str, np.ndarray]:
            def spread(v: np.ndarray) -> np.ndarray:  # market firms' values, 0 elsewhere
                out = np.zeros(n)
                out[idx] = v
                return out

            abatement = spread(abatement_m)
            return {
                "covered": cov.astype(float), "output": x.output,
                "emissions": np.where(cov, e - abatement, 0.0), "abatement": abatement,
                "allocation": free - deducted, "cea_bought": rec.bought, "ccer_used": rec.ccer,
                "banked": rec.banked, "mac": spread(curves.marginal_cost(pos.abatement)),
                "total_cost": spread(cost_m), "unabated": np.where(cov, e, 0.0),
                "surrendered": rec.surrendered, "shortfall": rec.shortfall,
                "abatement_cost": spread(abatement_cost_m),
                "offset_cost": spread(pos.offset_cost), "trade_cost": spread(pos.trade_cost),
                "penalty_cost": spread(pos.penalty_cost),
            }
        self._state, self._state_of = None, firm_state
        resource = _resource_cost(pos, ccer, ccer_price) + capex_total
        covered_emissions, abated = float(e[cov].sum()), float(abatement_m.sum())
        row = {
            "year": year, "cea_price": cea_price, "ccer_price": ccer_price,
            "emissions": covered_emissions - abated, "abatement": abated,
            "allocation": rec.allocated, "ccer_used": float(pos.offsets.sum()),
            "abatement_cost": float(abatement_cost_m.sum()),
            "offset_cost": float(pos.offset_cost.sum()),
            "shortfall": float(pos.shortfall.sum()), "reserve_sales": reserve,
            "banked": float(rec.banked.sum()), "covered_firms": int(np.count_nonzero(cov)),
            "covered_emissions": covered_emissions, "free_allocation": float(free.sum()),
            "auctioned": auctioned, "withheld": withheld,
            "expired": float(rec.expired.sum() + auction_unsold + withheld),
            "bank_in": float(bank_in.sum()), "borrowed": float(borrowed_total),
            "trade_volume": float(np.maximum(pos.cea_bought, 0.0).sum()),
            "penalty": penalty if math.isfinite(penalty) else 0.0,
            "penalty_cost": float(pos.penalty_cost.sum()),
            "limit_binds": bool(eq.limit_binds and sc.market.trading),
            "total_cost": float(cost_m.sum()), "resource_cost": resource,
        }
        if "transaction_costs" in extra:
            row["transaction_costs"] = extra["transaction_costs"]
        if "total_cost_with_trading" in extra:
            row["total_cost_with_trading"] = extra["total_cost_with_trading"]
            row["resource_cost_with_trading"] = extra["resource_cost_with_trading"]
            row["gain_from_trade"] = resource - extra["resource_cost_with_trading"]
        if "total_cost_no_trading" in extra:
            row["total_cost_no_trading"] = extra["total_cost_no_trading"]
            row["resource_cost_no_trading"] = extra["resource_cost_no_trading"]
            row["gain_from_trade"] = extra["resource_cost_no_trading"] - resource
        self.history.append(row)
        if sc.market.trading:
            self.previous_price = cea_price
            self.expectations.observe(cea_price)
        if self.record_firms:
            self.firm_rows.append({k: self.state[k][cov] for k in self.state} | {
                "index": np.nonzero(cov)[0]})


_POPULATIONS: dict[tuple, tuple[Firms, demography.Demography | None]] = {}
_POPULATIONS_LOCK = threading.Lock()  # the browser page builds models in several threads


def _synthetic_population(key: tuple | None, population_rng: np.random.Generator,
                          demography_rng: np.random.Generator, end_year: int,
                          with_demography: bool
                          ) -> tuple[Firms, demography.Demography | None]:
    """The calibrated population with its planned entrants and retirements, built once per
    ``key`` (seed, last year, demography) and kept: the runs of a sweep share it. Its arrays are
    read-only (runs derive their own)."""
    hit = _POPULATIONS.get(key) if key is not None else None
    if hit is not None:
        return hit
    firms, plan = synthetic_firms(population_rng), None
    if with_demography and firms.options is not None:
        firms, plan = demography.plan_demography(demography_rng, firms, end_year)
    for a in _arrays(firms):
        a.flags.writeable = False
    if key is not None:
        with _POPULATIONS_LOCK:
            if len(_POPULATIONS) >= 8:  # keep the 8 newest
                _POPULATIONS.pop(next(iter(_POPULATIONS)))
            _POPULATIONS[key] = (firms, plan)
    return firms, plan


def _arrays(obj: object) -> list[np.ndarray]:
    """The numpy arrays of a dataclass and of the dataclasses in it."""
    out = []
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray):
            out.append(v)
        elif dataclasses.is_dataclass(v):
            out += _arrays(v)
    return out


def _apply_mac_scales(firms: Firms, scenario: Scenario) -> Firms:
    """Scale each sector's abatement costs and potentials by the scenario's ``[mac]`` factors."""
    cost, potential = scenario.mac.cost_scale, scenario.mac.potential_scale
    if not cost and not potential:
        return firms
    sectors, inverse, _, _ = policy.sector_groups(firms)
    c = np.array([cost.get(str(s), 1.0) for s in sectors])[inverse]
    p = np.array([potential.get(str(s), 1.0) for s in sectors])[inverse]
    options = None if firms.options is None else firms.options.scaled(c, p)
    return dataclasses.replace(firms, mac=firms.mac.cost_scaled(c).scaled(p), options=options)


def _resource_cost(pos: Positions, ccer: Knots, ccer_price: float) -> float:
    """The cost of compliance to the economy, yuan: abatement + the CCERs' own production cost
    (not what firms pay for them) + penalties for non-compliance. Allowance trades and the
    rent of CCER producers are transfers and cancel out; the gain from trade compares this."""
    used = float(pos.offsets.sum())
    ccer_cost = 0.0
    if used > 0:
        p, theta = solve_quantity([ccer], used)
        ccer_cost = supply_cost(ccer, p, theta) if math.isfinite(p) else used * ccer_price
    return float(pos.abatement_cost.sum() + pos.penalty_cost.sum()) + ccer_cost


def _total_cost(pos: Positions) -> float:
    """Firms' total compliance cost: abatement + offsets + net purchases + penalties, yuan."""
    return float((pos.abatement_cost + pos.offset_cost + pos.trade_cost
                  + pos.penalty_cost).sum())
