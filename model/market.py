"""Market clearing: the joint equilibrium of the allowance (CEA) and offset (CCER) markets.

Plain functions on numpy arrays, no Mesa. The economics (Montgomery 1972): with trading, every firm
abates until its marginal abatement cost equals the price it faces, so the market outcome is the
least-cost way of meeting the cap. With an offset limit ``L`` (a share of each firm's verified
emissions) a firm that uses offsets up to the limit pays, per tonne emitted,
``(1 - L) * p_cea + L * p_ccer`` and abates to that *blended* price. If the limit binds the offset
price is below the allowance price (the gap is the scarcity rent of the limit); if not, both prices
are equal.

Bounds: a price floor (allowances withheld, e.g. by a reserve), a ceiling (unlimited reserve sales
at the ceiling) and a penalty (firms that would have to pay more stop buying: the gap is reported
as ``shortfall``). The clearing always returns finite prices and quantities.

The aggregate supply of abatement is a piecewise-linear function of price
(:class:`model.mac.Knots`). It is inverted exactly: knots are bucketed (a linear-time pass) until
few remain, then sorted, so one clearing of a million firms costs a few passes over their
segments. Where the price falls on flat segments (a technology option at a constant cost), the
share ``theta`` of those flats that is used is set so that the market clears exactly. Firms'
demand to bank allowances (:mod:`model.banking`) enters as one more supply, released as the price
rises.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

# (banking_knots and firm_banking are re-exported: the banking demand is part of the market)
from model import clearing_kernels as kernels
from model import year_kernels
from model.banking import BankingKnots, banking_knots, firm_banking  # noqa: F401
from model.mac import Knots, MACCurves


def solve_quantity(knots: list[Knots], target: float) -> tuple[float, float]:
    """The lowest price at which supply reaches ``target``, and the share of flats used there.

    Supply is the sum of the knot sets, ``Q(p)`` (right-continuous: flats at ``p`` are included).

    Args:
        knots: Knot sets whose supplies add up.
        target: Quantity to supply, t.

    Returns:
        ``(price, theta)``: ``price`` is ``-inf`` when ``target <= 0`` (no supply is needed) and
        ``+inf`` when ``target`` exceeds the total supply; otherwise ``Q(price-) <= target <=
        Q(price)`` and ``theta`` in [0, 1] is the share of the flats exactly at ``price`` needed so
        that supply equals ``target`` (1 when there is no flat at the price).

    The knots are bucketed (linear-time passes) while more than 2048 remain, then the rest are
    sorted; both in one compiled kernel (:func:`model.clearing_kernels.solve_quantity`).
    """
    knots = [k for k in knots if k.x.size]
    if target <= 0.0 or not knots:
        return (-math.inf, 1.0) if target <= 0.0 else (math.inf, 1.0)
    total = sum(k.total for k in knots)
    if target > total and target > total + 1e-12 * max(sum(k.scale for k in knots), 1.0):
        return math.inf, 1.0
    # The sets side by side; ``cuts`` delimits them. Sums over a bucket are taken set by set and
    # then added (as if each set were bucketed alone), which keeps the result independent of how
    # the sets are laid out. Step curves (jumps only) skip the slope sums: they are zero.
    sloped = any(k.sloped for k in knots)
    x, jump = _joined([k.x for k in knots]), _joined([k.jump for k in knots])
    slope = _joined([k.slope for k in knots]) if sloped else jump  # (not read if not sloped)
    cuts = np.fromiter(itertools.accumulate((k.x.size for k in knots), initial=0), np.int64)
    p, theta = kernels.solve_quantity(x, jump, slope, cuts, sloped, float(target))
    return float(p), float(theta)


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """The arrays one after the other (the array itself if there is one)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def supply_at(knots: Knots, price: float, theta: float = 1.0) -> float:
    """``Q(price)`` with the share ``theta`` of flats exactly at ``price``, t.

    One pass over the knots, no sort (:meth:`Knots.split_at`; for many evaluations of one curve,
    :meth:`Knots.at`).
    """
    q, at = knots.split_at(price)
    return q + theta * at


def supply_cost(knots: Knots, price: float, theta: float = 1.0) -> float:
    """The resource cost of supplying ``supply_at(knots, price, theta)``: the area under the
    supply curve's inverse (e.g. what the CCER projects used cost to run), yuan."""
    if not knots.x.size or not math.isfinite(price):
        return 0.0
    below = knots.x < price
    d = price - knots.x[below]
    surplus = float((knots.jump[below] * d).sum() + (knots.slope[below] * d * d).sum() / 2.0)
    return price * supply_at(knots, price, theta) - surplus


@dataclass(frozen=True)
class Bounds:
    """Price bounds on the allowance market, yuan/t.

    Attributes:
        floor: Allowances are withheld (bought back, cancelled) rather than trade below it.
        ceiling: Unlimited reserve allowances are sold at it.
        penalty: Firms pay the penalty rather than buy above it; the gap is the shortfall.
    """

    floor: float = 0.0
    ceiling: float = math.inf
    penalty: float = math.inf

    @property
    def upper(self) -> float:
        """The highest price the market can reach."""
        return min(self.ceiling, self.penalty)


@dataclass(frozen=True)
class Equilibrium:
    """The cleared market of one compliance year (totals; per-firm results in :func:`positions`).

    Prices in yuan/t, quantities in t.
    """

    cea_price: float
    ccer_price: float
    abatement_price: float  # the price firms abate at (blended when the offset limit binds)
    theta_firms: float  # share of firms' flats at abatement_price that is used
    theta_ccer: float  # share of CCER flats at ccer_price that is used
    abatement: float
    offsets: float
    limit_binds: bool
    reserve_sales: float = 0.0
    shortfall: float = 0.0
    withheld: float = 0.0
    surplus: float = 0.0  # allowances left unsold at a zero price (no floor)
    banked: float = 0.0  # allowances firms hold for later years (negative: borrowed)
    theta_bank: float = 1.0  # share of the banking thresholds at cea_price that release


def clear(
    firms: Knots,
    emissions: float,
    supply: float,
    offsets: Knots,
    limit: float,
    bounds: Bounds = Bounds(),
    banking: BankingKnots | None = None,
) -> Equilibrium:
    """Clear the CEA and CCER markets jointly.

    Args:
        firms: Aggregate abatement supply of the covered firms (``MACCurves.knots()``).
        emissions: Their unabated emissions, t.
        supply: Allowances available for this year's compliance (allocation + bank), t.
        offsets: CCER supply (cumulative quantity against cost) as knots.
        limit: Offset limit, share of each firm's verified emissions, in [0, 1].
        bounds: Floor, ceiling and penalty.
        banking: Firms' demand to hold allowances for later (see :func:`banking_knots`): firm
            ``i`` banks its capacity while the price is below its threshold (its expected next
            price, discounted) and borrows its borrowing capacity above it. ``None``: no banking
            demand (allowances left unsold at a zero price are still reported as ``surplus``).

    Returns:
        The equilibrium. ``emissions - abatement - offsets + banked == supply + reserve_sales +
        shortfall - withheld - surplus`` holds to rounding.
    """
    if banking is not None and banking.x.size == 0:
        banking = None
    bank_max = banking.capacity if banking is not None else 0.0
    lo, hi = max(bounds.floor, 0.0), bounds.upper
    no_offsets = limit <= 0.0 or offsets.x.size == 0 or offsets.total <= 0.0
    sets = [firms] if no_offsets else [firms, offsets]
    if banking is not None:
        sets.append(banking)
    # (a) the offset limit is slack: one price for abatement and offsets.
    p, theta = solve_quantity(sets, emissions - supply + bank_max)
    pc = min(max(p, lo), hi)
    th = theta if pc == p else 1.0
    a = supply_at(firms, pc, th)
    o = 0.0 if no_offsets else supply_at(offsets, pc, th)
    verified = emissions - a
    if no_offsets or o <= limit * verified * (1 + 1e-12) + 1e-9:
        banked = bank_max - supply_at(banking, pc, th) if banking is not None else 0.0
        eq = Equilibrium(pc, pc, pc, th, th, a, o, limit_binds=False, banked=banked,
                         theta_bank=th)
        if no_offsets:
            eq = _with_idle_ccer_price(eq, offsets)
        return _settle(eq, emissions, supply, bounds)
    # (b) the limit binds: firms abate at the blended price, offsets cheaper than allowances.
    if banking is not None:
        return _settle(_clear_binding_with_banking(firms, emissions, supply, offsets, limit,
                                                   lo, hi, banking), emissions, supply, bounds)
    if limit < 1.0:
        pi, th_f = solve_quantity([firms], emissions - supply / (1.0 - limit))
        a = supply_at(firms, pi, th_f) if math.isfinite(pi) else (firms.total if pi > 0 else 0.0)
        o_need = limit * (emissions - a)
        po, th_o = solve_quantity([offsets], o_need)
        po = max(po, 0.0) if math.isfinite(po) else po
        if math.isfinite(pi) and math.isfinite(po):
            pc = (pi - limit * po) / (1.0 - limit)
            if lo <= pc <= hi and po <= pc:
                o = supply_at(offsets, po, th_o)
                return _settle(
                    Equilibrium(pc, po, pi, th_f, th_o, a, o, limit_binds=True),
                    emissions, supply, bounds,
                )
        pc = _bound_that_binds(firms, emissions, supply, offsets, limit, lo, hi)
    else:
        pc = lo
    if not math.isfinite(pc):  # no bound above and the cap cannot be met
        a = firms.total
        return Equilibrium(math.inf, math.inf, math.inf, 1.0, 1.0, a,
                           min(offsets.total, limit * (emissions - a)), limit_binds=False)
    return _settle(at_cea_price(firms, emissions, offsets, limit, pc), emissions, supply, bounds)


def clear_at_price(firms: Knots, emissions: float, supply: float, offsets: Knots, limit: float,
                   price: float, banking: BankingKnots | None = None,
                   bounds: Bounds = Bounds()) -> Equilibrium | None:
    """The equilibrium at a given allowance price, if the market clears there (else None).

    Where aggregate supply is vertical (a jump between two technology options), a range of prices
    clears the market; :func:`clear` returns the lowest. Firms with perfect foresight pick the
    price of the intertemporal path within that range. Only for a slack offset limit and a price
    within ``bounds``.
    """
    # Each set evaluated once, as (supply below the price, flats at it): None if it is not used.
    firms_at = firms.split_at(price)
    offsets_at = offsets.split_at(price) if limit > 0 and offsets.x.size else None
    bank_at = banking.split_at(price) if banking is not None and banking.x.size else None
    used = [s for s in (firms_at if firms.x.size else None, offsets_at, bank_at) if s is not None]
    bank_max = banking.capacity if bank_at is not None else 0.0
    target = emissions - supply + bank_max
    low = sum(q for q, _ in used)  # none of the flats at the price
    high = sum(q + at for q, at in used)  # all of them
    tol = 1e-9 * max(abs(emissions), 1.0)
    if not (low - tol <= target <= high + tol):
        return None
    theta = 1.0 if high <= low else min(1.0, max(0.0, (target - low) / (high - low)))
    a = firms_at[0] + theta * firms_at[1]
    o = offsets_at[0] + theta * offsets_at[1] if offsets_at is not None else 0.0
    if o > limit * (emissions - a) * (1 + 1e-12) + 1e-9:
        return None
    if not bounds.floor <= price <= bounds.upper:
        return None
    banked = bank_max - (bank_at[0] + theta * bank_at[1] if bank_max else 0.0)
    return _settle(Equilibrium(price, price, price, theta, theta, a, o, limit_binds=False,
                               banked=banked, theta_bank=theta), emissions, supply, bounds)


def _clear_binding_with_banking(firms: Knots, emissions: float, supply: float, offsets: Knots,
                                limit: float, lo: float, hi: float,
                                banking: BankingKnots) -> Equilibrium:
    """Binding offset limit and banking demand: bisection on the allowance price.

    Net demand ``need(p) + banked(p) - supply`` falls with the price; the crossing is found to
    1e-12 (relative) and, where it sits on a banking threshold, the share of that threshold that
    releases is set so that the market clears exactly.
    """
    bank_max = banking.capacity

    def excess(pc: float, th: float = 1.0) -> tuple[float, Equilibrium]:
        eq = at_cea_price(firms, emissions, offsets, limit, pc)
        banked = bank_max - supply_at(banking, pc, th)
        return emissions - eq.abatement - eq.offsets + banked - supply, eq

    top = hi if math.isfinite(hi) else max(float(firms.x.max(initial=0.0)),
                                           float(banking.x.max(initial=0.0))) * 2 + 1.0
    if excess(lo)[0] <= 0:
        pc = lo
    elif excess(top)[0] > 0:
        pc = top
    else:
        a, b = lo, top
        for _ in range(200):
            m = 0.5 * (a + b)
            if excess(m)[0] > 0:
                a = m
            else:
                b = m
            if b - a <= 1e-12 * max(1.0, b):
                break
        inside = banking.x[(banking.x >= a) & (banking.x <= b)]
        pc = float(inside[0]) if inside.size else b
    gap, eq = excess(pc, 0.0)  # release none of the thresholds at pc
    th_b = 1.0
    at = banking.jump[banking.x == pc].sum()
    if at > 0:
        th_b = min(1.0, max(0.0, gap / at))
    banked = bank_max - supply_at(banking, pc, th_b)
    return Equilibrium(**{**eq.__dict__, "banked": banked, "theta_bank": th_b})


def at_cea_price(firms: Knots, emissions: float, offsets: Knots, limit: float,
                  pc: float) -> Equilibrium:
    """Abatement and the offset market when the allowance price is fixed at ``pc``.

    Used when the limit binds (firms abate at the blended price) and by the intertemporal
    solver; if the limit does not bind at ``pc`` the result has ``ccer_price == pc``.
    """
    blended = firms.affine(scale=limit, offset=(1.0 - limit) * pc, quantity_scale=limit)
    po, th = solve_quantity([offsets, blended], limit * emissions)
    po = min(max(po, 0.0), pc)
    pi = (1.0 - limit) * pc + limit * po
    a = supply_at(firms, pi, th)
    o = min(supply_at(offsets, po, th), limit * (emissions - a))
    return Equilibrium(pc, po, pi, th, th, a, o, limit_binds=po < pc)


def _bound_that_binds(firms: Knots, emissions: float, supply: float, offsets: Knots,
                      limit: float, lo: float, hi: float) -> float:
    """Which price bound holds the allowance market when the limit binds and no interior price
    clears it: the floor if allowances are left over there, else the upper bound."""
    at_lo = at_cea_price(firms, emissions, offsets, limit, lo)
    if emissions - at_lo.abatement - at_lo.offsets <= supply:
        return lo
    return hi


def _with_idle_ccer_price(eq: Equilibrium, offsets: Knots) -> Equilibrium:
    """Without offset demand the CCER price is the cheapest project's cost, capped at the CEA
    price."""
    if eq.offsets > 0:
        return eq
    cheapest = float(offsets.x.min()) if offsets.x.size else eq.cea_price
    p = min(max(cheapest, 0.0), eq.cea_price)
    return Equilibrium(**{**eq.__dict__, "ccer_price": p})


def _settle(eq: Equilibrium, emissions: float, supply: float, bounds: Bounds) -> Equilibrium:
    """Attribute the gap between allowance demand and supply to the bound that closes it."""
    need = emissions - eq.abatement - eq.offsets  # allowances surrendered if all comply
    gap = need + eq.banked - supply
    tol = 1e-9 * max(abs(emissions), abs(supply), 1.0)
    upd: dict = {}
    if gap > tol:
        if math.isfinite(bounds.ceiling) and eq.cea_price >= bounds.ceiling:
            upd["reserve_sales"] = gap
        else:
            upd["shortfall"] = gap
    elif gap < -tol:
        if eq.cea_price > 0.0 and eq.cea_price <= bounds.floor:
            upd["withheld"] = -gap
        else:
            upd["surplus"] = -gap
    if not upd:
        return eq
    return Equilibrium(**{**eq.__dict__, **upd})


@dataclass(frozen=True)
class Positions:
    """Per-firm outcome of a cleared year (arrays over firms; t and yuan)."""

    abatement: np.ndarray
    offsets: np.ndarray  # CCER surrendered
    surrendered: np.ndarray  # CEA surrendered
    cea_bought: np.ndarray  # negative when sold
    shortfall: np.ndarray
    unsold: np.ndarray  # allowances kept at the end of the year (bankable)
    abatement_cost: np.ndarray
    offset_cost: np.ndarray
    trade_cost: np.ndarray  # cea_bought * cea_price
    penalty_cost: np.ndarray


def positions(
    curves: MACCurves,
    emissions: np.ndarray,
    holdings: np.ndarray,
    eq: Equilibrium,
    penalty: float,
    banked: np.ndarray | None = None,
) -> Positions:
    """Each firm's abatement, offsets, trades and costs at the equilibrium.

    Offsets are shared in proportion to verified emissions (each within its limit); a shortfall is
    shared in proportion to net purchases, unsold allowances in proportion to net sales.

    Args:
        curves: The firms' MAC curves.
        emissions: Unabated emissions, t.
        holdings: Allowances each firm holds for this year's compliance (allocation + bank), t.
        eq: The equilibrium from :func:`clear`.
        penalty: Penalty per tonne not surrendered, yuan/t.
        banked: Allowances each firm holds for later (negative: borrowed), t
            (:func:`firm_banking`).
    """
    a = curves.abatement_at(eq.abatement_price, eq.theta_firms)
    # (one compiled pass over the firms: offsets in proportion to verified emissions, a
    # shortfall in proportion to net purchases, unsold allowances to net sales, the costs)
    o, surrendered, bought, short, unsold, offset_cost, trade_cost, penalty_cost = (
        year_kernels.positions(
            a, np.asarray(emissions, dtype=np.float64), np.asarray(holdings, dtype=np.float64),
            np.zeros(0) if banked is None else np.asarray(banked, dtype=np.float64),
            float(eq.offsets), float(eq.shortfall), float(eq.surplus), float(eq.ccer_price),
            float(eq.cea_price), float(penalty) if math.isfinite(penalty) else 0.0))
    return Positions(abatement=a, offsets=o, surrendered=surrendered, cea_bought=bought,
                     shortfall=short, unsold=unsold, abatement_cost=curves.cost_of(a),
                     offset_cost=offset_cost, trade_cost=trade_cost, penalty_cost=penalty_cost)


def autarky(
    curves: MACCurves,
    emissions: np.ndarray,
    holdings: np.ndarray,
    offsets: Knots,
    limit: float,
    penalty: float,
    iterations: int = 60,
) -> tuple[float, Positions]:
    """The counterfactual without allowance trading: each firm meets its own holdings alone.

    A firm abates, uses CCERs (bought on the still-open CCER market, up to its limit) while they
    are cheaper than its own marginal abatement, and pays the penalty for what is left when that
    is cheaper still. Surplus allowances cannot be sold. The CCER price clears the offset market
    among the firms (bisection on a monotone excess demand).

    Returns:
        ``(ccer_price, positions)``; ``positions.cea_bought`` is zero.
    """
    e, h = emissions, holdings
    a0 = curves.abatement_at(0.0, 1.0)  # no-regret abatement
    amax = curves.max_abatement
    big = penalty if math.isfinite(penalty) else 1e12
    has_offsets = limit > 0 and offsets.x.size > 0 and offsets.total > 0

    def respond(po: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a_full = np.maximum(e - h, a0)  # all by abatement
        a_lim = np.maximum(e - h / (1.0 - limit), a0) if limit < 1 else a0  # offsets at the limit
        m_full = np.where(a_full <= amax, curves.marginal_cost(np.minimum(a_full, amax)), np.inf)
        m_lim = np.where(a_lim <= amax, curves.marginal_cost(np.minimum(a_lim, amax)), np.inf)
        use = has_offsets and po < big
        a = np.empty_like(e)
        o = np.zeros_like(e)
        # no offsets (too dear, or abatement is cheaper at the margin)
        no = (po >= m_full) if use else np.ones(e.size, bool)
        ok = no & (m_full <= big)
        a[ok] = a_full[ok]
        pen = no & ~ok
        a[pen] = np.minimum(curves.abatement_at(big)[pen], a_full[pen])
        if use:
            full = ~no & (po <= m_lim)
            lam = (m_lim - limit * po) / (1.0 - limit) if limit < 1 else np.zeros_like(e)
            fine = full & (lam <= big)
            a[fine] = a_lim[fine]
            capped = full & ~fine
            pi = (1.0 - limit) * big + limit * po
            a[capped] = np.minimum(curves.abatement_at(pi)[capped], a_lim[capped])
            part = ~no & ~full
            a[part] = np.clip(curves.abatement_at(po)[part], a_lim[part], a_full[part])
            o = np.where(full, limit * (e - a), np.where(part, e - h - a, 0.0))
            # never more than the limit, nor more than the firm needs (the limit may exceed its gap)
            o = np.clip(o, 0.0, np.minimum(limit * (e - a), np.maximum(e - h - a, 0.0)))
        surplus = e - h <= a0
        a[surplus] = a0[surplus]
        o[surplus] = 0.0
        short = np.maximum(e - a - o - h, 0.0)
        return a, o, short

    po = math.inf
    if has_offsets:
        lo, hi = 0.0, min(big, float(offsets.x.max()))
        if respond(hi)[1].sum() > supply_at(offsets, hi):
            # Every CCER is used even at the dearest project's cost: the price rises above it (a
            # scarcity rent) until demand falls to the supply. Demand stops at the penalty; without
            # one, above the dearest abatement only firms that cannot comply remain (rationed).
            lo, hi = hi, big if math.isfinite(penalty) else max(hi, float(curves.cost.max()))
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            if respond(mid)[1].sum() > supply_at(offsets, mid):
                lo = mid
            else:
                hi = mid
        po = hi if hi < big else lo  # at the penalty itself no firm buys: stay just below it
    a, o, short = respond(po)
    if has_offsets and o.sum() > supply_at(offsets, po):  # rationed at the top of the curve
        o *= supply_at(offsets, po) / o.sum()
        short = np.maximum(e - a - o - h, 0.0)
    surrendered = np.minimum(e - a - o, h)
    p_ccer = po if math.isfinite(po) else 0.0
    return p_ccer, Positions(
        abatement=a,
        offsets=o,
        surrendered=np.maximum(e - a - o - short, 0.0),
        cea_bought=np.zeros_like(e),
        shortfall=short,
        unsold=np.maximum(h - surrendered, 0.0),
        abatement_cost=curves.cost_of(a),
        offset_cost=o * p_ccer,
        trade_cost=np.zeros_like(e),
        penalty_cost=short * (penalty if math.isfinite(penalty) else 0.0),
    )
