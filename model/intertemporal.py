"""The intertemporal equilibrium with banking: the price path firms with perfect foresight expect.

With banking, allowances are an asset: a firm holds allowances for next year while the price it
expects then, discounted by one year, exceeds today's price. In a market of firms with perfect
foresight, unlimited banking and no other frictions, arbitrage makes the price grow at the
discount rate while the bank is positive (Hotelling's rule); when the bank runs empty the path
restarts at a new level. The result is the intertemporal least-cost solution (Rubin 1996;
Schennach 2000): the tests compare it with a multi-year LP.

The path is found segment by segment: from a year with a known bank, the lowest starting price
whose Hotelling path keeps the bank non-negative (or above the borrowing limit) in every later
year; the year where the bank then touches its limit ends the segment. The search tries many
starting prices per pass, every year at once with numpy, bit for bit as :func:`use_at_price`
evaluates one year at one price (see the notes above ``_EVEN``). A few passes reach the
float64 tolerance for which bisection took ~45 steps, each evaluating the years one by one (a
40-year national run: ~4,000 calls of ``use_at_price`` then, 14 to 19 passes now). Plain
functions; the yearly market is evaluated with :mod:`model.market`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from model import clearing_kernels as _kernels
from model.mac import Knots, sorted_running_sum
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
        firm_keys: The sort keys of ``firms``' knots laid out to sort fast, if known (see
            :func:`model.mac.stable_argsort`; sorted in place).
    """

    firms: Knots
    emissions: float
    issued: float
    offsets: Knots
    limit: float
    upper: float = math.inf
    lower: float = 0.0
    firm_keys: np.ndarray | None = None


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
        iterations: Budget of bisection steps per segment. A pass of the search tries many
            starting prices at once and counts as the halvings it guarantees (4 or 6); 100 is
            far more than needed, as the search stops once the bracket is within the rounding
            of float64 (1e-13 relative).

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
    stack = _Years(years, g)
    s, b = 0, float(bank0)
    while s < n:
        floor = -limit[s:] - 1e-9  # the lowest bank each year allows, t
        # First pass: the floor price and doublings from 1 (or the upper bound) to past 1e9 and,
        # after a segment, starting prices around where its path would have gone on (the new
        # path starts there or a little below: had the price risen faster, firms would have
        # banked more), leaving out the doublings above those (the last stays: the search stops
        # there).
        lo = years[s].lower
        ladder = _ladder(lo, max(years[s].upper if math.isfinite(years[s].upper) else 0.0, lo,
                                 1.0))
        inner, near = ladder[1:-1], math.inf
        if s > 0:
            near = prices[s - 1] * g
            hint = near * _HINT
            inner = np.concatenate((inner[inner < hint.min()], hint))
        # Where the first year alone decides (often so right after a segment), the answer is
        # the knot where its bank reaches its floor: try it, and a hair below.
        knot = stack.first_knot(s, b, floor[0], near)
        if knot is not None:
            inner = np.concatenate((inner, [knot - _hair(knot), knot]))
        inner = np.unique(inner[(inner > lo) & (inner < ladder[-1])])
        cand = np.concatenate(([lo], inner, [ladder[-1]]))
        first = stack.evaluate(s, n - s, cand, b, *stack.whole(s))
        j = first.first_feasible(floor)
        if j == 0:  # the floor price keeps the bank within its limit to the end
            floor_path = first.column(0)
            prices[s:], bank[s:] = floor_path.prices, floor_path.bank
            break
        j = min(j, cand.size - 1)  # past 1e9 yuan/t the last doubling stands in for the answer
        low, high = first.column(j - 1), first.column(j)  # infeasible and feasible start
        steps, fresh = 0.0, True  # (fresh: every year evaluated at both ends)
        while (steps < iterations and math.isfinite(low.p0)
               and high.p0 - low.p0 > 1e-13 * max(high.p0, 1.0)):
            fresh = False
            # Years after the last one short of its floor at ``low`` stay within it at every
            # higher price (the bank grows with the price) and decide nothing: leave them out.
            m = int(np.flatnonzero(low.bank < floor)[-1]) + 1
            knot = stack.first_knot(s, b, floor[0], high.p0) if m == 1 else None
            if knot is not None and low.p0 < knot <= high.p0:  # it closes around that knot
                low, high = low.moved(max(knot - _hair(knot), low.p0)), high.moved(knot)
                break
            cand, worth = stack.candidates(s, m, low, high, floor)
            trial = stack.evaluate(s, m, cand, b, low, high)
            j = trial.first_feasible(floor[:m])
            if j > 0:
                low = low.merged(trial, j - 1)
            if j < cand.size:
                high = high.merged(trial, j)
            steps += worth
        if not fresh:
            last = stack.evaluate(s, n - s, np.array([low.p0, high.p0]), b, low, high)
            low, high = last.column(0), last.column(1)
        p, bk, bk0 = high.prices, high.bank, low.bank
        tau = int(np.argmin(bk + limit[s:]))  # the year the bank touches its limit
        # Where the price sits on flat segments (a jump of the bank between the infeasible
        # bracket end and the feasible one), use the share of them that brings the bank in year
        # tau exactly to its limit (the bank is linear in that share).
        span = bk[tau] - bk0[tau]
        if span > 0 and bk0[tau] < -limit[s + tau]:
            theta = (-limit[s + tau] - bk0[tau]) / span
            bk = bk0 + theta * (bk - bk0)
        prices[s:s + tau + 1] = p[:tau + 1]
        bank[s:s + tau + 1] = bk[:tau + 1]
        bank[s + tau] = -limit[s + tau]
        s, b = s + tau + 1, -limit[s + tau]
    return PricePath(prices=prices, bank=bank)


# ---------------------------------------------------------------- evaluation at many prices
#
# The search needs the bank path for many starting prices. One at a time (a Python loop over
# years calling ``use_at_price``) that costs microseconds per year and price; here all years are
# evaluated at an array of starting prices with a few numpy calls, bit for bit as
# ``use_at_price`` would (same running sums, same arithmetic in the same order). Monotonicity
# keeps the passes few and cheap: prices, knot counts (knots at or below the price), abatement,
# offsets and the bank all grow with the starting price, so
#
# * a year whose knot count is the same at both ends of the bracket has it everywhere inside
#   (no search; once the bracket is narrow, nearly every year);
# * years within their floor at the low end stay so inside the bracket, and later years decide
#   nothing: they are evaluated again only once the bracket is closed;
# * the offset limit, price floor and upper bound matter inside the bracket only if they do at
#   one of its ends. Where the offset limit binds, a year's use is a small market solve
#   (:func:`model.market.at_cea_price`): those candidates are left pending, and a binary search
#   over the pass settles only the few it looks at, as many solves as bisection steps;
# * the bank jumps or bends only where a year's price reaches a knot or a bound. Once a few such
#   points lie in the bracket, the search tries each of them +- a hair, which closes the
#   bracket to the float64 tolerance in one pass instead of ~45 bisection steps; when only the
#   first year matters and its curves are steps, the knot is read off its running sums.

_EVEN = {k: np.arange(1, k + 1) / (k + 1) for k in (15, 63)}  # shares of the bracket
_FEW_KNOTS = 32  # "a few": knots inside the bracket, summed over the years that matter
_HINT = 1.0 + np.concatenate((-(2.0 ** -np.arange(1, 13)), [0.0], 2.0 ** -np.arange(6, 13)))


@functools.lru_cache(maxsize=16)
def _ladder(lo: float, start: float) -> np.ndarray:
    """The first starting prices tried, yuan/t: ``lo``, then ``start`` doubled until past 1e9.

    Halvings of ``start`` down to ``max(lo, 1)`` go first: where ``start`` is a high upper
    bound they narrow the first bracket as much as a pass of the search would.
    """
    halves = [start / 2.0]
    while halves[-1] > max(lo, 1.0):
        halves.append(halves[-1] / 2.0)
    ladder = [lo, *halves[-2::-1], start]
    while ladder[-1] <= 1e9:
        ladder.append(2.0 * ladder[-1])
    out = np.array(ladder)
    out.flags.writeable = False
    return out


def _above(p: float, bound: float) -> bool:
    """Whether ``p > bound`` with a margin of 1e-12 relative, which rounding cannot undo."""
    return p > bound + abs(bound) * 1e-12 if math.isfinite(bound) else p > bound


def _hair(p: float) -> float:
    """Half the width of a closed bracket at ``p``: 0.45e-13 relative (the tolerance is 1e-13)."""
    return 0.45e-13 * max(abs(p), 1.0)


_SMALL_CURVE = 16  # knots of a curve sorted by insertion (see _Stack)


class _Stack:
    """One supply curve (:class:`Knots`) per year, stacked for evaluation at many prices at once.

    Year ``t``'s running sums (``Knots._sorted``: jumps, slopes, slope * price) are stored after
    a zero at ``base[t]``, so the supply with ``k`` knots at or below the price is read at
    ``base[t] + k`` (``k = 0``: nothing is supplied, as in :meth:`Knots.at`). Its sorted knot
    prices are stacked the same way (``xs``, after a pad; ``x[t]`` views them), so the knot
    counts of all years are searched in one compiled call.

    Step curves (the national runs: ~40 years of ~10,000 knots) are sorted here with
    :func:`model.mac.sorted_running_sum`, their jumps summed straight into the stack in the same
    pass, without ``Knots._sorted`` (its zero slope sums and the copies into the stack cost
    ~1.5 ms of a ~15 ms national path); :meth:`prime` fills that cache for the rare year
    evaluated alone. ``keys``: per curve, its sort keys laid out to sort fast, if known (see
    :attr:`YearMarket.firm_keys`; they become the order).
    """

    def __init__(self, curves: list[Knots],
                 keys: list[np.ndarray | None] | None = None) -> None:
        self.curves = curves
        self.size = np.array([c.x.size for c in curves], dtype=np.intp)
        self.base = np.concatenate(([0], np.cumsum(self.size + 1)[:-1]))
        # Step curves need only the jumps. A non-decreasing supply is a step function iff its
        # slopes sum to 0 and so does slope * price (minus the width of its sloped parts).
        parts = [c._sorted if c.sloped else None for c in curves]
        self.sloped = any(p is not None and p[2].size and (p[2][-1] != 0 or p[3][-1] != 0)
                          for p in parts)
        n = len(curves)
        self.x, self.order = [None] * n, [None] * n  # each year's knot prices, sorted (yuan/t),
        self.cj = np.empty(int(self.size.sum()) + n)  # and their order
        self.xs = np.empty_like(self.cj)  # the prices stacked as the sums (``x`` views them)
        if self.sloped:
            self.cs, self.cx = np.empty_like(self.cj), np.empty_like(self.cj)
        else:
            self.cs = self.cx = np.zeros(1)
        keys = keys or [None] * n
        # Step curves of a few knots (offsets) are sorted together in one compiled call.
        small = [t for t, (c, p, k) in enumerate(zip(curves, parts, keys))
                 if p is None and k is None and c.x.size <= _SMALL_CURVE]
        if small:
            order = _kernels.sort_small(
                np.concatenate([curves[t].x for t in small], dtype=np.float64),
                np.concatenate([curves[t].jump for t in small], dtype=np.float64),
                self.size[small], self.base[small] + 1, self.xs, self.cj)
            a = 0
            for t in small:
                b, m = self.base[t] + 1, self.size[t]
                self.x[t], self.order[t] = self.xs[b:b + m], order[a:a + m]
                a += m
        for t, (c, p) in enumerate(zip(curves, parts)):
            if self.x[t] is not None:
                continue
            at = slice(self.base[t] + 1, self.base[t] + 1 + c.x.size)
            self.cj[at.start - 1] = 0.0
            if p is None:  # (the sums of Knots._sorted: same order, same bits)
                order, x = sorted_running_sum(c.x, c.jump, self.cj[at], keys[t], self.xs[at])
            else:
                order, x = None, self.xs[at]
                x[:], self.cj[at] = p[0], p[1]
                if self.sloped:
                    self.cs[at.start - 1] = self.cx[at.start - 1] = 0.0
                    self.cs[at], self.cx[at] = p[2], p[3]
            self.x[t], self.order[t] = x, order
        if self.sloped:  # (curves sorted here have no slopes: zero sums)
            for t, order in enumerate(self.order):
                if order is not None:
                    self.cs[self.base[t]:self.base[t] + self.size[t] + 1] = 0.0
                    self.cx[self.base[t]:self.base[t] + self.size[t] + 1] = 0.0
        # Curves of a few knots (offsets) are counted for all years at once, not searched.
        width = int(self.size.max(initial=0))
        self.few = None
        if width <= 4:
            self.few = np.full((len(curves), width), np.nan)  # NaN pads are never <= a price
            for t, x in enumerate(self.x):
                self.few[t, :x.size] = x

    def prime(self, t: int) -> None:
        """Fill year ``t``'s ``Knots._sorted`` from the stack (for :meth:`Knots.at`), if empty."""
        c, order = self.curves[t], self.order[t]
        if order is not None and "_sorted" not in c.__dict__:
            zeros = np.zeros(c.x.size)
            cj = self.cj[self.base[t] + 1:self.base[t] + 1 + c.x.size]
            c.__dict__["_sorted"] = (self.x[t], cj, zeros, zeros.copy(), c.jump[order])

    def at(self, s: int, prices: np.ndarray, lo: np.ndarray,
           hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Supply (t) and knot counts in years ``s, s+1, ...`` at ``prices`` (years x candidates).

        ``lo`` and ``hi`` are each year's knot counts at the bracket ends; the candidates lie
        between them, so a year where the two are equal needs no search (if no year needs one,
        step curves give one column for all candidates).
        """
        active = (lo < hi).nonzero()[0].tolist()
        if active and self.few is not None:
            k = (self.few[s:s + len(lo), :, None] <= prices[:, None, :]).sum(axis=1)
        elif active or self.sloped:
            at = slice(s, s + len(lo))
            k = _kernels.knot_counts(self.xs, self.base[at] + 1, self.size[at], lo, hi, prices)
        else:
            k = lo[:, None]
        j = k + self.base[s:s + len(lo), None]
        q = self.cj[j]
        if self.sloped:  # the operations of Knots.at, in its order
            with np.errstate(invalid="ignore"):  # infinite prices are redone one by one
                q = q + self.cs[j] * prices - self.cx[j]
        return q, k

    def inside(self, s: int, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The knots between counts ``lo`` and ``hi`` in years ``s, ...``: (year offset, price)."""
        rows = np.flatnonzero(lo < hi)
        x = [self.x[s + i][lo[i]:hi[i]] for i in rows]
        return np.repeat(rows, hi[rows] - lo[rows]), np.concatenate(x) if x else np.empty(0)


class _Trial:
    """Bank paths for starting prices ``p0`` from a segment's first year on.

    Attributes:
        p0: Starting price(s), yuan/t (a column each).
        prices: Each year's price, yuan/t (years x candidates, or years for one).
        bank: The bank at the end of each year, t.
        kf: Knot counts of the firms' curves at those prices (one column if the same for all).
        ko: Knot counts of the offset curves (idem).
        binds: Whether the offset limit binds in some year (per candidate).
        pending: Candidates whose bank is provisional until settled (the offset limit binds,
            or a price is infinite: those years are evaluated one by one).
        settle: Settles a pending candidate (in place).
    """

    __slots__ = ("bank", "binds", "kf", "ko", "p0", "pending", "prices", "settle")

    def __init__(self, p0: np.ndarray | float, prices: np.ndarray, bank: np.ndarray,
                 kf: np.ndarray, ko: np.ndarray, binds: np.ndarray | bool,
                 pending: np.ndarray | None = None,
                 settle: Callable[[int], None] | None = None) -> None:
        self.p0, self.prices, self.bank, self.kf, self.ko = p0, prices, bank, kf, ko
        self.binds, self.pending, self.settle = binds, pending, settle

    def first_feasible(self, floor: np.ndarray) -> int:
        """The first candidate whose bank stays within ``floor`` every year (or their count).

        Feasibility grows with the starting price. Where candidates are pending (the offset
        limit binds), a binary search settles only the few it looks at, as many as bisection
        steps would.
        """
        if self.pending is None:
            ok = (self.bank >= floor[:, None]).all(axis=0)
            return int(np.argmax(ok)) if ok.any() else ok.size
        lo, hi = -1, self.bank.shape[1]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if (self.column(mid).bank >= floor).all():
                hi = mid
            else:
                lo = mid
        return hi

    def column(self, j: int) -> _Trial:
        """The trial of the ``j``-th starting price alone (settled first if pending)."""
        if self.pending is not None and self.pending[j]:
            self.settle(j)
            self.pending[j] = False
        binds = self.binds if isinstance(self.binds, bool) else bool(self.binds[j])
        return _Trial(float(self.p0[j]), self.prices[:, j], self.bank[:, j],
                      self.kf[:, min(j, self.kf.shape[1] - 1)],
                      self.ko[:, min(j, self.ko.shape[1] - 1)], binds)

    def merged(self, trial: _Trial, j: int) -> _Trial:
        """This single trial with its first years replaced by column ``j`` of ``trial``.

        The later years keep their values from a starting price further out: they serve only
        as bounds (on knot counts, and the bank of years within their floor at the low end).
        The closing evaluation redoes every year.
        """
        m = trial.bank.shape[0]
        new = trial.column(j)
        return _Trial(new.p0, *(np.concatenate((a, b[m:])) for a, b in
                                ((new.prices, self.prices), (new.bank, self.bank),
                                 (new.kf, self.kf), (new.ko, self.ko))), new.binds)

    def moved(self, p0: float) -> _Trial:
        """This trial with its starting price moved inside the bracket (values become bounds)."""
        return _Trial(p0, self.prices, self.bank, self.kf, self.ko, self.binds)


class _Years:
    """The years' markets as arrays, evaluated at many starting prices at once."""

    def __init__(self, years: list[YearMarket], g: float) -> None:
        self.years = years
        n = len(years)
        self.grow = np.array([g ** t for t in range(n)])  # as the scalar path computes it
        self.lower = np.array([m.lower for m in years], dtype=float)
        self.upper = np.array([m.upper for m in years], dtype=float)
        self.issued = np.array([m.issued for m in years], dtype=float)
        self.emissions = np.array([m.emissions for m in years], dtype=float)
        used = [m.limit > 0 and m.offsets.x.size > 0 for m in years]  # as in use_at_price
        self.share = np.array([m.limit if u else 0.0 for m, u in zip(years, used)])
        self.used = np.array(used)
        self.firms = _Stack([m.firms for m in years], [m.firm_keys for m in years])
        none = Knots(np.empty(0), np.empty(0), np.empty(0))
        self.offsets = _Stack([m.offsets if u else none for m, u in zip(years, used)])
        self.any_offsets = any(used)
        # Starting prices below which some year from s on is at its lower bound, and above which
        # some year is at its upper bound, yuan/t (up to rounding; see _above).
        self.floored = self.grow * np.maximum.accumulate((self.lower / self.grow)[::-1])[::-1]
        self.capped = self.grow * np.minimum.accumulate((self.upper / self.grow)[::-1])[::-1]
        self.sloped = self.firms.sloped or self.offsets.sloped

    def whole(self, s: int) -> tuple[_Trial, _Trial]:
        """Stand-in bracket ends for years ``s, ...`` when nothing is known yet."""
        f, o = self.firms.size[s:], self.offsets.size[s:]
        unknown = np.empty(0)
        return (_Trial(-math.inf, unknown, unknown, np.zeros_like(f), np.zeros_like(o), True),
                _Trial(math.inf, unknown, unknown, f, o, True))

    def evaluate(self, s: int, m: int, p0: np.ndarray, b: float, low: _Trial,
                 high: _Trial) -> _Trial:
        """The bank paths in years ``s .. s+m-1`` (bank ``b`` before) for starting prices ``p0``.

        ``p0`` is sorted and lies between the starting prices of ``low`` and ``high``: their knot
        counts bound those of ``p0``, and the offset limit binds for ``p0`` only if it does at
        ``high`` (see :meth:`whole` when nothing is known). Candidates where it binds are left
        pending (see :class:`_Trial`).
        """
        rows = slice(s, s + m)
        prices = np.multiply.outer(self.grow[:m], p0)
        if not _above(p0[0], self.floored[s]):
            np.maximum(prices, self.lower[rows, None], out=prices)
        capped = not _above(-p0[-1], -self.capped[s])
        if capped:
            np.minimum(prices, self.upper[rows, None], out=prices)
        a, kf = self.firms.at(s, prices, low.kf[:m], high.kf[:m])
        use = self.emissions[rows, None] - a
        finite = math.isfinite(p0[0]) and math.isfinite(p0[-1])
        slow = None if finite else ~np.isfinite(prices)
        ko, binds = self.offsets.size[rows, None], False  # (no offsets: 0 knots)
        if self.any_offsets:
            o, ko = self.offsets.at(s, prices, low.ko[:m], high.ko[:m])
            if high.binds:  # it binds inside the bracket only if it does at the high end
                at = np.broadcast_to(
                    self.used[rows, None] & ~(o <= self.share[rows, None] * use), prices.shape)
                binds = at.any(axis=0)
                slow = at if slow is None else slow | at
            use = use - o
        fast = use
        if capped:  # at the upper bound no more than the issue is drawn
            use = np.where(prices >= self.upper[rows, None],
                           np.minimum(use, self.issued[rows, None]), use)
        bank = (self.issued[rows, None] - use).cumsum(axis=0)
        bank += b
        if bank.shape != prices.shape:  # every year fixed: the same for all candidates
            bank = bank.repeat(p0.size, axis=1)
        if slow is None or not slow.any():
            return _Trial(p0, prices, bank, kf, ko, binds)

        def settle(j: int) -> None:
            """Candidate ``j`` with its binding (or infinite-price) years evaluated one by one."""
            u = np.broadcast_to(fast, prices.shape)[:, j].copy()
            for i in slow[:, j].nonzero()[0].tolist():
                self.firms.prime(s + i)
                self.offsets.prime(s + i)
                u[i] = use_at_price(self.years[s + i], float(prices[i, j]))[0]
            if capped:
                u = np.where(prices[:, j] >= self.upper[rows], np.minimum(u, self.issued[rows]), u)
            bank[:, j] = (self.issued[rows] - u).cumsum()
            bank[:, j] += b

        return _Trial(p0, prices, bank, kf, ko, binds, slow.any(axis=0), settle)

    def first_knot(self, s: int, b: float, floor: float, near: float) -> float | None:
        """The starting price at which year ``s`` alone reaches ``floor``, where that is a knot.

        Year ``s``'s price is the starting price itself. Where the curves are step functions,
        its bank is a function of the knot counts: the firms' count that lifts it to ``floor``
        is found on their running sums (with the offsets as at price ``near``, then as at the
        knot found, until they agree) and checked with the arithmetic of :meth:`evaluate`. The
        year's bank then reaches ``floor`` at that knot's price and falls short below it. None
        where this does not apply (sloped curves, the knot at a bound or where the offset limit
        binds).
        """
        if self.sloped:
            return None
        f, o = self.firms, self.offsets
        x, cj = f.x[s], f.cj[f.base[s]:f.base[s] + f.size[s] + 1]  # abatement with k knots, t
        e, q = self.emissions[s], self.issued[s]
        price = near
        for _ in range(3):
            offsets = o.cj[o.base[s] + o.x[s].searchsorted(price, side="right")]
            k = int(cj.searchsorted(e - offsets - (q + b - floor)))  # about where it is reached
            ks = np.arange(max(k - 2, 0), min(k + 3, cj.size))
            use = e - cj[ks]
            if self.any_offsets:
                use = use - offsets
            ok = (q - use) + b >= floor
            if ok[0] or not ok[-1]:  # not reached, or (rounding) below the counts looked at
                return None
            price = float(x[ks[np.argmax(ok)] - 1])
            if o.cj[o.base[s] + o.x[s].searchsorted(price, side="right")] == offsets:
                break
        else:
            return None
        a = f.cj[f.base[s] + x.searchsorted(price, side="right")]
        if (self.used[s] and not offsets <= self.share[s] * (e - a)
                or not self.lower[s] < price < self.upper[s]):
            return None
        return price

    def candidates(self, s: int, m: int, low: _Trial, high: _Trial,
                   floor: np.ndarray) -> tuple[np.ndarray, float]:
        """Starting prices to try between ``low`` (infeasible) and ``high`` (feasible).

        * while many knots of the years that matter lie inside the bracket, 63 evenly spaced
          candidates;
        * else 15 of those and, +- a hair, the starting prices where a year's price reaches one
          of the knots or a price bound.

        Where the bank is not a step function (sloped curves, offset limit) the linear
        interpolation of each year's bank to its floor is tried too, +- a hair (exact where the
        bank is linear between the ends).

        Returns:
            The candidates, sorted, and the bisection steps the pass is worth.
        """
        a, h = low.p0, high.p0
        lf, hf, lo, ho = low.kf[:m], high.kf[:m], low.ko[:m], high.ko[:m]
        if (hf - lf).sum() + (ho - lo).sum() > _FEW_KNOTS:
            return a + (h - a) * _EVEN[63], 6.0
        grow, pa, ph = self.grow[:m], low.prices[:m], high.prices[:m]
        points = [x / grow[i] for i, x in (self.firms.inside(s, lf, hf),
                                           self.offsets.inside(s, lo, ho))]
        for bound in (self.lower[s:s + m], self.upper[s:s + m]):
            crosses = (pa <= bound) & (bound <= ph) & (pa < ph)
            points.append(bound[crosses] / grow[crosses])
        short = (low.bank[:m] < floor[:m]) & (high.bank[:m] > low.bank[:m])
        if (self.sloped or high.binds) and short.any():
            frac = (floor[:m] - low.bank[:m])[short] / (high.bank[:m] - low.bank[:m])[short]
            points.append(np.array([a + (h - a) * float(frac.max())]))
        near = np.concatenate(points)
        near = np.concatenate((near - _hair(a), near + _hair(a)))
        cand = np.concatenate((a + (h - a) * _EVEN[15], near[(near > a) & (near < h)]))
        cand.sort()
        return cand, 4.0
