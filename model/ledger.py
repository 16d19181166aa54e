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

from dataclasses import dataclass, field

import numba
import numpy as np

from model.year_kernels import minimum


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
    for i in range(n):
        end = free[i] - deducted[i]
        end += bank_in[i]
        end += bought[i]
        end -= surrendered[i]
        if borrowed.size:
            end += borrowed[i]
            inflow += borrowed[i]
        if end < low:
            lowest, low = i, end
        end = max(end, 0.0)
        banked[i] = min(end, carry_limit[i])
        expired[i] = end - banked[i]
        scale += (abs(free[i]) + abs(bank_in[i]) + abs(bought[i]) + abs(surrendered[i])
                  + abs(deducted[i]))
        inflow += free[i] - deducted[i] + bank_in[i]
        outflow += surrendered[i] + banked[i] + expired[i]
        o = owed[i]
        if shortfall.size:
            o = o + shortfall[i]
        if borrowed.size:
            o = o + borrowed[i]
        owed_after[i] = o
    return banked, expired, (float(lowest), low), inflow, outflow, scale, owed_after
