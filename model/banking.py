"""Banking demand: allowances firms hold for later years (or borrow from them) in the yearly market.

A firm with an expected price holds allowances while today's price is below that expectation
(discounted by a year) and releases them, borrowing in addition where allowed, once the price rises
past it. For the market (:func:`model.market.clear`) this demand is written as a supply that is
released with the price: knots with a jump at each firm's threshold. Plain functions on numpy
arrays (each one compiled pass, :mod:`model.clearing_kernels`); re-exported by :mod:`model.market`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from model import clearing_kernels as kernels
from model.mac import Knots

if TYPE_CHECKING:
    from model.market import Equilibrium


@dataclass(frozen=True)
class BankingKnots(Knots):
    """Banking demand as released supply (:func:`banking_knots`); ``capacity``: the total, t."""

    capacity: float = 0.0


def banking_knots(threshold: np.ndarray, capacity: np.ndarray, borrowing: np.ndarray) -> Knots:
    """Firms' demand to bank (or borrow) allowances, written as a supply that is released.

    Firm ``i`` holds ``capacity[i]`` t for later while the allowance price is below
    ``threshold[i]`` (its expected next-year price discounted by one year) and borrows
    ``borrowing[i]`` t from next year's allocation above it. As the price rises past the
    threshold the firm releases ``capacity + borrowing``: a jump of that size at the threshold.
    ``capacity`` of the result (the demand at a zero price) is the total capacity.
    """
    x, jump, total = kernels.banking_knots(*_per_firm(threshold, capacity, borrowing))
    return BankingKnots(x=x, jump=jump, slope=np.zeros(x.size), capacity=total)


def firm_banking(threshold: np.ndarray, capacity: np.ndarray, borrowing: np.ndarray,
                 eq: Equilibrium) -> np.ndarray:
    """Each firm's banked allowances at the equilibrium (t; negative: borrowed)."""
    return kernels.firm_banking(*_per_firm(threshold, capacity, borrowing),
                                float(eq.cea_price), float(eq.theta_bank))


def _per_firm(*arrays: np.ndarray) -> list[np.ndarray]:
    """The arrays as float64, one value per firm each (broadcast if they are not already)."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    if arrays[0].ndim != 1 or any(a.shape != arrays[0].shape for a in arrays):
        arrays = [np.ravel(a) for a in np.broadcast_arrays(*arrays)]
    return arrays


def demand(index: np.ndarray, carry_limit: np.ndarray, held: float, free: np.ndarray,
           borrowing_share: float, rule: np.ndarray, rule_threshold: np.ndarray, perfect: int,
           plan: bool, path_bank: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                  bool]:
    """The banking demand of the firms ``index`` this year (arrays over them).

    Args:
        index: The firms in the market (indices into the other per-firm arrays).
        carry_limit: What each firm may carry over (t; :func:`model.policy.carry_over_limit`).
        held: Every allowance in the market this year (allocation, auction, bank), t: no firm
            can bank more.
        free: Each firm's free allocation, t.
        borrowing_share: The share of its allocation a firm may borrow (0: none).
        rule, rule_threshold, perfect: Each firm's expectation rule, each rule's threshold
            (:meth:`model.expectations.Expectations.threshold`, yuan/t) and the perfect-foresight
            rule's code.
        plan: Whether firms with perfect foresight hold the path's bank ``path_bank`` (t), shared
            in proportion to their allocation (within their limits), instead of a threshold.

    Returns:
        ``(threshold, capacity, borrowing, planned, any_foresight)``: for :func:`banking_knots`,
        the planned holdings (t) and whether any firm in the market has perfect foresight.
    """
    return kernels.banking_demand(
        np.asarray(index, np.int64), np.asarray(carry_limit, np.float64), float(held),
        np.asarray(free, np.float64), float(borrowing_share), rule,
        np.asarray(rule_threshold, np.float64), perfect, plan, float(path_bank))
