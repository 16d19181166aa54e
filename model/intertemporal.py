"""The intertemporal equilibrium with banking: the price path firms with perfect foresight expect.

With banking, allowances are an asset: a firm holds allowances for next year while the price it
expects then, discounted by one year, exceeds today's price. In a market of firms with perfect
foresight, unlimited banking and no other frictions, arbitrage makes the price grow at the
discount rate while the bank is positive (Hotelling's rule); when the bank runs empty the path
restarts at a new level. The result is the intertemporal least-cost solution (Rubin 1996;
Schennach 2000): the tests compare it with a multi-year LP.

The path is found segment by segment: from a year with a known bank, the lowest starting price
whose Hotelling path keeps the bank non-negative (or above the borrowing limit) in every later
year; the year where the bank then touches its limit ends the segment. Plain functions; the
yearly market is evaluated with :mod:`model.market`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from model.mac import Knots
from model.market import at_cea_price


@dataclass(frozen=True)
class YearMarket:
    """One year's market as the intertemporal solver sees it.

    Attributes:
        firms: Abatement supply of the firms in the market (knots), t against yuan/t.
        emissions: Their unabated emissions, t.
        issued: Allowances issued for the year (allocation + auction), t.
        offsets: CCER supply (knots).
        limit: Offset limit (share of verified emissions).
        upper: Highest allowance price (ceiling or penalty), yuan/t.
        lower: Lowest allowance price (floor), yuan/t.
    """

    firms: Knots
    emissions: float
    issued: float
    offsets: Knots
    limit: float
    upper: float = math.inf
    lower: float = 0.0


def use_at_price(m: YearMarket, price: float,
                 theta: float = 1.0) -> tuple[float, float, float]:
    """Allowances the firms surrender at allowance price ``price``: ``(use, abatement, offsets)``.

    Offsets are used up to the limit while cheaper than allowances (the CCER market clears).
    ``theta`` is the share of flat segments exactly at the price that is used.
    """
    a = m.firms.at(price, theta)
    if m.limit <= 0 or m.offsets.x.size == 0:
        return m.emissions - a, a, 0.0
    o = m.offsets.at(price, theta)
    if o <= m.limit * (m.emissions - a):
        return m.emissions - a - o, a, o
    eq = at_cea_price(m.firms, m.emissions, m.offsets, m.limit, price)
    return m.emissions - eq.abatement - eq.offsets, eq.abatement, eq.offsets


@dataclass(frozen=True)
class PricePath:
    """The equilibrium path: prices (yuan/t) and the bank at the end of each year (t)."""

    prices: np.ndarray
    bank: np.ndarray


def hotelling_path(
    years: list[YearMarket],
    discount_rate: float,
    bank0: float = 0.0,
    borrow_limit: np.ndarray | float = 0.0,
    iterations: int = 100,
) -> PricePath:
    """The price path of firms with perfect foresight and unlimited banking.

    Args:
        years: The markets of consecutive years.
        discount_rate: Firms' discount rate r (the path grows at 1 + r while the bank is positive).
        bank0: Allowances banked before the first year, t.
        borrow_limit: How far the bank may fall below zero at the end of each year (t; 0 = no
            borrowing); at the end of the last year it must be repaid.
        iterations: Bisection steps per segment (100 reach the rounding of float64).

    Returns:
        Prices each year and the bank at the end of each year. Prices stay within each year's
        ``[lower, upper]``; at ``upper`` the gap is met by reserve sales or a shortfall, so the
        bank is not drawn below its limit.
    """
    n = len(years)
    g = 1.0 + discount_rate
    limit = np.broadcast_to(np.asarray(borrow_limit, float), (n,)).copy()
    limit[-1] = 0.0  # nothing may remain borrowed at the end of the horizon
    prices = np.zeros(n)
    bank = np.zeros(n)
    s, b = 0, float(bank0)

    def trajectory(p0: float, s: int, b: float) -> tuple[np.ndarray, np.ndarray]:
        p = np.array([min(max(p0 * g ** (t - s), years[t].lower), years[t].upper)
                      for t in range(s, n)])
        flows = np.array([years[t].issued - _use_bounded(years[t], p[t - s])
                          for t in range(s, n)])
        return p, b + np.cumsum(flows)

    while s < n:
        lo = years[s].lower
        p_lo, bank_lo = trajectory(lo, s, b)
        if (bank_lo >= -limit[s:] - 1e-9).all():
            prices[s:], bank[s:] = p_lo, bank_lo
            break
        hi = max(years[s].upper if math.isfinite(years[s].upper) else 0.0, lo, 1.0)
        while not (trajectory(hi, s, b)[1] >= -limit[s:] - 1e-9).all():
            if hi > 1e9:
                break
            hi *= 2.0
        a = lo
        for _ in range(iterations):
            mid = 0.5 * (a + hi)
            if (trajectory(mid, s, b)[1] >= -limit[s:] - 1e-9).all():
                hi = mid
            else:
                a = mid
            if hi - a <= 1e-13 * max(hi, 1.0):
                break
        p, bk = trajectory(hi, s, b)
        tau = int(np.argmin(bk + limit[s:]))  # the year the bank touches its limit
        # Where the price sits on flat segments (a jump of the bank between the infeasible
        # bracket end ``a`` and ``hi``), use the share of them that brings the bank in year tau
        # exactly to its limit (the bank is linear in that share).
        _, bk0 = trajectory(a, s, b)
        span = bk[tau] - bk0[tau]
        if span > 0 and bk0[tau] < -limit[s + tau]:
            theta = (-limit[s + tau] - bk0[tau]) / span
            bk = bk0 + theta * (bk - bk0)
        prices[s:s + tau + 1] = p[:tau + 1]
        bank[s:s + tau + 1] = bk[:tau + 1]
        bank[s + tau] = -limit[s + tau]
        s, b = s + tau + 1, -limit[s + tau]
    return PricePath(prices=prices, bank=bank)


def _use_bounded(m: YearMarket, price: float, theta: float = 1.0) -> float:
    """Allowance use at ``price``; at the upper bound reserve sales or shortfalls cover the rest,
    so no more than the year's issue is drawn."""
    use = use_at_price(m, price, theta)[0]
    if price >= m.upper:
        return min(use, m.issued)
    return use
