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

import numpy as np


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
    """The registry over a run: the bank each firm holds and one record per year."""

    n_firms: int
    rtol: float = 1e-9
    bank: np.ndarray = field(init=False)
    owed: np.ndarray = field(init=False)  # shortfall still to deduct from future allocation
    records: list[YearRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bank = np.zeros(self.n_firms)
        self.owed = np.zeros(self.n_firms)

    def opening(self, free: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Holdings at the start of a year: free allocation + bank - deduction of what is owed.

        Returns:
            ``(holdings, bank_in, deducted)`` per firm, t.
        """
        deducted = np.minimum(self.owed, free)
        self.owed = self.owed - deducted
        return free - deducted + self.bank, self.bank.copy(), deducted

    def record(self, rec: YearRecord, carry_limit: np.ndarray, deduct_shortfall: bool) -> None:
        """Book a year: bank what each firm may carry over, expire the rest, check conservation.

        ``rec.banked`` and ``rec.expired`` are filled here from the firms' unsold holdings.

        Raises:
            ConservationError: The year's flows do not balance, or a firm's holdings are negative.
        """
        end = rec.free - rec.deducted  # + bank in + bought - surrendered (+ borrowed), in place
        end += rec.bank_in
        end += rec.bought
        end -= rec.surrendered
        if rec.borrowed is not None:
            end += rec.borrowed
        scale = max(float(np.abs(rec.free).sum() + rec.auctioned + np.abs(rec.bank_in).sum()
                          + np.abs(rec.bought).sum() + np.abs(rec.surrendered).sum()
                          + np.abs(rec.deducted).sum() + rec.reserve_sales + rec.withheld), 1.0)
        tol = self.rtol * scale
        if (end < -tol).any():
            i = int(np.argmin(end))
            raise ConservationError(f"{rec.year}: firm {i} ends the year holding {end[i]:.6g} t")
        np.maximum(end, 0.0, out=end)
        rec.banked = np.minimum(end, carry_limit)
        rec.expired = end - rec.banked
        inflow = rec.allocated + rec.bank_in.sum() + rec.reserve_sales
        outflow = rec.surrendered.sum() + rec.banked.sum() + rec.cancelled
        if abs(inflow - outflow) > tol:
            raise ConservationError(
                f"{rec.year}: allowances not conserved: in {inflow:.9g} t, out {outflow:.9g} t"
            )
        self.bank = rec.banked.copy()
        if deduct_shortfall:
            self.owed = self.owed + rec.shortfall
        if rec.borrowed is not None:
            self.owed = self.owed + rec.borrowed  # repaid from next year's allocation
        self.records.append(rec)
