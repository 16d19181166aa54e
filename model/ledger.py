"""The registry: every firm's allowance holdings, surrenders and bank, with conservation checks.

Each compliance year the registry records, per firm (t): the free allocation, the bank carried
in, deductions for last year's shortfall, purchases (negative: sales), CEA and CCER surrendered,
the shortfall, what is banked into the next year and what expires. Market-wide it records the
auctioned volume, reserve sales at the ceiling, allowances withheld at the floor and unsold
auction volume. Every year it checks that allowances are conserved:

    allocated (free + auctioned + borrowed) + bank in + reserve sales
        = surrendered + banked + cancelled (withheld, expired, unsold auction)

and that no firm ends the year holding a negative number of allowances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numba
import numpy as np

from model.clearing_kernels import add_reduce
from model.year_kernels import maximum, minimum


class ConservationError(RuntimeError):
    """Allowances were created or lost: a bug, never a user error."""


@dataclass
class YearRecord:
    """One vintage in the registry (arrays over all firms, t)."""

    year: int
    free: np.ndarray
    bank_in: np.ndarray
    deducted: np.ndarray
    bought: np.ndarray
    surrendered: np.ndarray
    ccer: np.ndarray
    shortfall: np.ndarray
    banked: np.ndarray
    expired: np.ndarray
    auctioned: float
    auction_unsold: float
    reserve_sales: float
    withheld: float
    borrowed: np.ndarray | None = None  # advanced from next year's allocation, t

    @property
    def allocated(self) -> float:
        """Free allocation (net of deductions) plus the auctioned volume and borrowing, t."""
        borrowed = 0.0 if self.borrowed is None else float(self.borrowed.sum())
        return float(self.free.sum() - self.deducted.sum() + self.auctioned + borrowed)

    @property
    def cancelled(self) -> float:
        """Withheld at the floor, expired beyond the carry-over limit, and unsold auction, t."""
        return float(self.withheld + self.expired.sum() + self.auction_unsold)


@dataclass
class Ledger:
    """The registry over a run: the bank each firm holds and one record per year.

    Attributes:
        n_firms: Firms in the registry.
        rtol: Relative tolerance of the conservation checks.
        keep_records: Keep every year's record in :attr:`records` (False: the last year's only;
            sweeps that need only the yearly totals free each year's per-firm arrays at once).
    """

    n_firms: int
    rtol: float = 1e-9
    keep_records: bool = True
    bank: np.ndarray = field(init=False)
    owed: np.ndarray = field(init=False)  # shortfall still to deduct from future allocation
    records: list[YearRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bank = np.zeros(self.n_firms)
        self.bank.flags.writeable = False
        self.owed = np.zeros(self.n_firms)

    def opening(self, free: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Holdings at the start of a year: free allocation + bank - deduction of what is owed.

        Returns:
            ``(holdings, bank_in, deducted)`` per firm, t.
        """
        # (one compiled pass: deducted = min(owed, free), owed - deducted, free - deducted + bank;
        # the bank is read-only: the year's record shares it)
        holdings, deducted, self.owed = _open(np.asarray(free, dtype=np.float64), self.owed,
                                              self.bank)
        return holdings, self.bank, deducted

    def record(self, rec: YearRecord, carry_limit: np.ndarray, deduct_shortfall: bool) -> None:
        """Book a year: bank what each firm may carry over, expire the rest, check conservation.

        ``rec.banked`` and ``rec.expired`` are filled here from the firms' unsold holdings.

        Raises:
            ConservationError: The year's flows do not balance, or a firm's holdings are negative.
        """
        borrowed = rec.borrowed if rec.borrowed is not None else np.zeros(0)
        shortfall = rec.shortfall if deduct_shortfall else np.zeros(0)
        rec.banked, rec.expired, worst, inflow, outflow, scale, owed = _close(
            rec.free, rec.deducted, rec.bank_in, rec.bought, rec.surrendered, borrowed,
            carry_limit, float(rec.auctioned), float(rec.reserve_sales), float(rec.withheld),
            float(rec.auction_unsold), self.owed, shortfall)
        self._keep(rec, worst, inflow, outflow, scale, owed)

    def settle(self, year: int, market: MarketBook, grandfathered: np.ndarray,
               emissions: np.ndarray, carry_rule: tuple[np.ndarray, float | None],
               free: np.ndarray, deducted: np.ndarray, *, auctioned: float,
               auction_unsold: float, reserve_sales: float, withheld: float,
               deduct_shortfall: bool) -> tuple[YearRecord, np.ndarray, float]:
        """Book a year from the market's results, in one pass over the firms: what
        :meth:`record` does, after spreading the market's arrays over every firm of the registry
        and working out the carry-over limits.

        A grandfathered firm surrenders its emissions; a firm of the market borrows what it banks
        below zero. Each firm's carry-over limit is ``base + multiple x max(net sales, 0)``
        (``carry_rule``: :func:`model.policy.carry_over_rule`; the base alone for a multiple of
        None); a firm of the market may hold more into the next year if its banking capacity or
        what it banks is more.

        Args:
            year: The vintage.
            market: The market's firms and their results (arrays over them), t.
            grandfathered: Per firm of the registry: outside the market, surrenders its emissions.
            emissions: Each firm's unabated emissions, t.
            carry_rule: ``(base, multiple)`` of the carry-over limit (base per firm, t).
            free, deducted: Each firm's free allocation and the deduction from it
                (:meth:`opening`), t.
            auctioned, auction_unsold, reserve_sales, withheld: The year's market-wide flows, t.
            deduct_shortfall: Whether a shortfall is owed (deducted from later allocation).

        Returns:
            ``(record, limit, borrowed)``: the year's record (its net sales ``-bought``), each
            firm's carry-over limit (t) and the total borrowed by the market's firms (t).

        Raises:
            ConservationError: As :meth:`record`.
        """
        base, multiple = carry_rule
        (offsets, surrendered, bought, shortfall, borrowed, limit, banked, expired, worst,
         inflow, outflow, scale, owed, borrowed_total) = _settle(
            self.n_firms, market.index, market.offsets, market.surrendered, market.bought,
            market.shortfall, market.banked, market.capacity, grandfathered, emissions, base,
            math.nan if multiple is None else float(multiple), free, deducted, self.bank,
            self.owed, deduct_shortfall, float(auctioned), float(reserve_sales),
            float(withheld), float(auction_unsold))
        rec = YearRecord(
            year=year, free=free, bank_in=self.bank, deducted=deducted, bought=bought,
            surrendered=surrendered, ccer=offsets, shortfall=shortfall, banked=banked,
            expired=expired, auctioned=auctioned, auction_unsold=auction_unsold,
            reserve_sales=reserve_sales, withheld=withheld, borrowed=borrowed)
        self._keep(rec, worst, inflow, outflow, scale, owed)
        return rec, limit, borrowed_total

    def _keep(self, rec: YearRecord, worst: tuple[float, float], inflow: float, outflow: float,
              scale: float, owed: np.ndarray) -> None:
        """Check a booked year's conservation and keep it: its bank and what is owed after it."""
        tol = self.rtol * max(scale, 1.0)
        if worst[1] < -tol:
            raise ConservationError(
                f"{rec.year}: firm {int(worst[0])} ends the year holding {worst[1]:.6g} t")
        if abs(inflow - outflow) > tol:
            raise ConservationError(
                f"{rec.year}: allowances not conserved: in {inflow:.9g} t, out {outflow:.9g} t"
            )
        rec.banked.flags.writeable = False  # (the next year's bank_in: shared, never changed)
        self.bank = rec.banked
        # a shortfall (if deducted) and borrowing are repaid from the next year's allocation
        self.owed = owed
        if not self.keep_records:
            self.records.clear()
        self.records.append(rec)


class MarketBook(NamedTuple):
    """The market's firms and their results at the equilibrium, arrays over them (t):
    :meth:`Ledger.settle` books them into the registry.

    Attributes:
        index: The firms of the market (indices into the registry, increasing).
        offsets, surrendered, bought, shortfall: CCER and CEA surrendered, CEA bought (negative:
            sold) and the shortfall.
        banked: What each holds for later years (negative: borrowed).
        capacity: What each may bank by its banking demand.
    """

    index: np.ndarray
    offsets: np.ndarray
    surrendered: np.ndarray
    bought: np.ndarray
    shortfall: np.ndarray
    banked: np.ndarray
    capacity: np.ndarray


@numba.njit(cache=True, nogil=True)
def _open(free, owed, bank):  # pragma: no cover (compiled)
    """One pass of :meth:`Ledger.opening` over the firms: ``(holdings, deducted, owed)``, t,
    with ``deducted = min(owed, free)`` and what stays owed after it."""
    n = free.size
    holdings, deducted, left = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        d = minimum(owed[i], free[i])
        deducted[i] = d
        left[i] = owed[i] - d
        holdings[i] = free[i] - d + bank[i]
    return holdings, deducted, left


@numba.njit(cache=True, nogil=True)
def _close(free, deducted, bank_in, bought, surrendered, borrowed, carry_limit, auctioned,
           reserve_sales, withheld, auction_unsold, owed,
           shortfall):  # pragma: no cover (compiled)
    """One pass of :meth:`Ledger.record` over the firms: each firm's holdings at the end of the
    year (``free - deducted + bank_in + bought - surrendered + borrowed``), what it banks
    (within ``carry_limit``) and what expires, t; the firm ending lowest ``(index, holdings)``;
    the year's inflow and outflow of allowances and the scale of the flows (t, for the checks);
    what each firm owes after the year (``owed + shortfall + borrowed``, each if not empty)."""
    n = free.size
    banked, expired, owed_after = np.empty(n), np.empty(n), np.empty(n)
    lowest, low = 0, np.inf
    scale = auctioned + reserve_sales + withheld
    inflow = auctioned + reserve_sales
    outflow = withheld + auction_unsold
    with_borrowed, with_shortfall = borrowed.size > 0, shortfall.size > 0
    for i in range(n):
        br = borrowed[i] if with_borrowed else 0.0
        if with_borrowed:
            inflow += br
        end, banked[i], expired[i], owed_after[i], ds, di, do = _close_firm(
            free[i], deducted[i], bank_in[i], bought[i], surrendered[i], br, with_borrowed,
            carry_limit[i], owed[i], shortfall[i] if with_shortfall else 0.0, with_shortfall)
        if end < low:
            lowest, low = i, end
        scale += ds
        inflow += di
        outflow += do
    return banked, expired, (float(lowest), low), inflow, outflow, scale, owed_after


@numba.njit(cache=True, nogil=True)
def _settle(n, index, offsets_m, surrendered_m, bought_m, shortfall_m, banked_m, capacity,
            grandfathered, emissions, base, multiple, free, deducted, bank_in, owed,
            deduct_shortfall, auctioned, reserve_sales, withheld,
            auction_unsold):  # pragma: no cover (compiled)
    """One pass of :meth:`Ledger.settle` over the firms (market firms ``index``, increasing):
    the market's arrays spread over every firm (0 elsewhere; a grandfathered firm surrenders
    its emissions), borrowed ``max(-banked, 0)``, the carry-over limit of the net sales
    ``-bought`` and what each firm may hold, then :func:`_close` of each firm. The total borrowed
    is summed over the market's firms as numpy does."""
    offsets, surrendered, bought = np.empty(n), np.empty(n), np.empty(n)
    shortfall, borrowed, limit = np.empty(n), np.empty(n), np.empty(n)
    banked, expired, owed_after = np.empty(n), np.empty(n), np.empty(n)
    borrowed_m = np.empty(index.size)
    lowest, low = 0, np.inf
    scale = auctioned + reserve_sales + withheld
    inflow = auctioned + reserve_sales
    outflow = withheld + auction_unsold
    no_multiple = multiple != multiple
    r = 0
    for i in range(n):
        in_market = r < index.size and index[r] == i
        if in_market:
            o, s, b, sh = offsets_m[r], surrendered_m[r], bought_m[r], shortfall_m[r]
            br = maximum(-banked_m[r], 0.0)
            borrowed_m[r] = br
        else:
            o = s = b = sh = br = 0.0
        if grandfathered[i]:
            s = emissions[i]
        offsets[i], surrendered[i], bought[i], shortfall[i], borrowed[i] = o, s, b, sh, br
        lim = base[i] if no_multiple else base[i] + multiple * maximum(-b, 0.0)
        limit[i] = lim
        carry = lim
        if in_market:
            carry = maximum(lim, maximum(capacity[r], banked_m[r]))
            r += 1
        inflow += br
        end, banked[i], expired[i], owed_after[i], ds, di, do = _close_firm(
            free[i], deducted[i], bank_in[i], b, s, br, True, carry, owed[i], sh,
            deduct_shortfall)
        if end < low:
            lowest, low = i, end
        scale += ds
        inflow += di
        outflow += do
    return (offsets, surrendered, bought, shortfall, borrowed, limit, banked, expired,
            (float(lowest), low), inflow, outflow, scale, owed_after,
            add_reduce(borrowed_m, index.size))


@numba.njit(cache=True, nogil=True, inline="always")
def _close_firm(free, deducted, bank_in, bought, surrendered, borrowed, with_borrowed, carry,
                owed, shortfall, with_shortfall):  # pragma: no cover (compiled)
    """Close one firm's year (:func:`_close`; its ``borrowed`` already counted in the inflow):
    ``(end, banked, expired, owed)``, its holdings at the end of the year before the floor at 0
    and what it banks, lets expire and owes after the year (t), and its parts of the year's
    scale, inflow and outflow (t)."""
    end = free - deducted
    end += bank_in
    end += bought
    end -= surrendered
    if with_borrowed:
        end += borrowed
    low = end
    end = max(end, 0.0)
    b = min(end, carry)
    expired = end - b
    o = owed
    if with_shortfall:
        o = o + shortfall
    if with_borrowed:
        o = o + borrowed
    return (low, b, expired, o,
            abs(free) + abs(bank_in) + abs(bought) + abs(surrendered) + abs(deducted),
            free - deducted + bank_in, surrendered + b + expired)
