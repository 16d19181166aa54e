"""Marginal abatement cost (MAC) curves of many firms at once.

A firm's MAC curve is a non-decreasing piecewise-linear function of its abatement (t CO2 -> yuan/t),
given by points ``(abatement, cost)``. Abatement cannot exceed the last point. Costs may be negative
(no-regret options). Two special cases matter in practice:

* linear curves: two points ``(0, c0)`` and ``(a_max, c1)``;
* step curves from technology options: a *flat* segment at each option's constant cost over its
  potential, and *vertical* jumps (two points with the same abatement) between options.

All firms' curves live in one structure of arrays (CSR layout) so that evaluating every firm at a
price is a handful of vectorised numpy calls, never a Python loop per firm. The curves are also the
supply side of the market: at price ``p`` a firm abates everything whose marginal cost is at most
``p``. Where ``p`` equals the cost of a flat segment the abatement on that segment is not determined
by the price alone; the market decides which share ``theta`` of such flats is used (see
:mod:`model.market`), which is why the evaluating functions take ``theta``.

The same structure describes the CCER supply curve (cumulative quantity in t, cost in yuan/t).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from model import clearing_kernels as _kernels


class CurveError(ValueError):
    """A curve's points are invalid; ``point_index`` indexes the caller's input arrays."""

    def __init__(self, point_index: int, message: str) -> None:
        self.point_index = int(point_index)
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Knots:
    """A non-decreasing piecewise-linear supply function ``Q(p)`` written as knots in price.

    ``Q(p) = sum(jump[x <= p]) + sum(slope[x <= p] * (p - x[x <= p]))``: each flat segment is a
    jump of its width at its cost, each sloped segment a slope ``+da/dc`` from its lower cost and
    ``-da/dc`` from its upper cost. The knots need not be sorted.

    Attributes:
        x: Knot prices, yuan/t.
        jump: Quantity added at the knot, t.
        slope: Change of dQ/dp at the knot, t per yuan/t.
    """

    x: np.ndarray
    jump: np.ndarray
    slope: np.ndarray

    def affine(self, scale: float, offset: float, quantity_scale: float) -> Knots:
        """The knots of ``quantity_scale * Q(offset + scale * q)`` as a function of ``q``.

        Used when a market's price is an affine function of another price (the blended price of a
        firm that uses offsets up to its limit is ``(1 - L) * p_cea + L * p_ccer``).
        """
        return Knots(
            x=(self.x - offset) / scale,
            jump=self.jump * quantity_scale,
            slope=self.slope * (quantity_scale * scale),
        )

    @classmethod
    def steps(cls, x: np.ndarray, jump: np.ndarray) -> Knots:
        """A step supply: a jump of ``jump`` (t) at each price ``x`` (yuan/t) and no slopes
        (read-only zeros, shared; :attr:`sloped` is known without reading them)."""
        knots = cls(x=x, jump=jump, slope=_zeros(x.size))
        knots.__dict__["sloped"] = False
        return knots

    @cached_property
    def sloped(self) -> bool:
        """Whether any knot changes the slope (False for step curves: jumps only)."""
        return bool(self.slope.any())

    @cached_property
    def _sorted(self) -> tuple[np.ndarray, ...]:
        """Knots sorted by price with running sums (for many evaluations of one curve).

        ``(x, cumsum(jump), cumsum(slope), cumsum(slope * x), jump)``, all in price order (ties in
        input order). For step curves the two slope sums are zeros.
        """
        order, x = stable_argsort(self.x)
        jump = self.jump[order]
        if self.sloped:
            cs, cx = np.cumsum(self.slope[order]), np.cumsum((self.slope * self.x)[order])
        else:  # the sums of zeros, without the gathers
            cs, cx = np.zeros(x.size), np.zeros(x.size)
        return x, np.cumsum(jump), cs, cx, jump

    def at(self, price: float, theta: float = 1.0) -> float:
        """``Q(price)`` with the share ``theta`` of jumps exactly at ``price``, in O(log n).

        Sorts the knots once (cached); use it where one curve is evaluated many times (for a few
        evaluations :meth:`split_at` needs no sort).
        """
        if not self.x.size or price == -np.inf:
            return 0.0
        if price == np.inf:
            return self.total
        x, cj, cs, cx, jump = self._sorted
        k = int(np.searchsorted(x, price, side="right"))
        if k == 0:
            return 0.0
        q = float(cj[k - 1] + cs[k - 1] * price - cx[k - 1])
        if theta < 1.0:
            j = int(np.searchsorted(x, price, side="left"))
            q -= (1.0 - theta) * float(jump[j:k].sum())
        return q

    def split_at(self, price: float) -> tuple[float, float]:
        """``(Q(price-), jumps at price)``, t: the supply strictly below ``price`` and the flats
        exactly at it, in one pass over the knots (no sort: for a few evaluations of a curve).

        ``Q(price)`` with the share ``theta`` of those flats is ``q + theta * at``: both ends of
        the range of supply at one price, and any share between, cost a single pass.
        """
        if not self.x.size or price == -np.inf:
            return 0.0, 0.0
        if price == np.inf:
            return self.total, 0.0
        # (a compiled pass; the sums are numpy's: the slope terms are skipped for step curves)
        return _kernels.split_at(self.x, self.jump, self.slope, self.sloped, float(price))

    @cached_property
    def total(self) -> float:
        """The supply when every segment is used, t."""
        if not self.x.size:
            return 0.0
        if not self.sloped:  # (the slope terms are zeros)
            return float(self.jump.sum())
        return float(self.jump.sum() + (self.slope * -self.x).sum())

    @cached_property
    def scale(self) -> float:
        """The sum of the magnitudes of all terms of ``total``, t: the size against which
        rounding in sums of this supply is judged."""
        if not self.sloped:
            return float(np.abs(self.jump).sum())
        return float(np.abs(self.jump).sum() + np.abs(self.slope * self.x).sum())


_ZEROS = np.zeros(0)  # (read-only: the slopes of step curves are views of it)
_ZEROS.flags.writeable = False


def _zeros(n: int) -> np.ndarray:
    """``n`` read-only zeros: a view of :data:`_ZEROS`, which grows when needed (a yearly step
    curve of ~10,000 knots would otherwise clear a new array of zeros)."""
    global _ZEROS
    zeros = _ZEROS
    if zeros.size < n:
        zeros = np.zeros(max(n, 2 * zeros.size))
        zeros.flags.writeable = False
        _ZEROS = zeros
    return zeros[:n]


_NO_PRICES = np.empty(0)  # (abatement_at: one price for all firms)
_NO_PRICES.flags.writeable = False


def _per_firm(values: np.ndarray, n_firms: int) -> np.ndarray:
    """``values`` as float64, one per firm (IndexError if fewer: the kernels do not check)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size < n_firms:
        raise IndexError(f"expected one value per firm ({n_firms}), got shape {values.shape}")
    return values


def stable_argsort(x: np.ndarray, key: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``order = np.argsort(x, kind="stable")`` and ``x[order]``, in about half the time.

    numpy sorts plain int64 much faster than it sorts indices (its stable argsort of float64 is
    a timsort; ``np.sort`` is vectorised). So each price becomes an int64 key that orders like
    the float (its bits, the magnitude bits flipped for negative numbers, after ``-0.0 -> 0.0``)
    whose lowest ``b`` bits are replaced by the knot's index (``n <= 2**b``), and the keys are
    sorted: that orders by (price rounded down to the key's high bits, index). It is the stable
    order except among prices that differ but share the high bits (relative gap below about
    ``2**(b - 52)``): those rare groups are sorted again by (price, index). The permutation is
    exactly the stable one, so running sums over it are the same to the last bit.

    Args:
        x: Prices (1-D). With NaNs, more than ``2**24`` of them, or many prices closer than the
            key resolves, numpy's stable argsort is used.
        key: The keys of ``clearing_kernels.sort_keys(x, clearing_kernels.key_bits(x.size))`` in
            any order, where the caller has them laid out as a few runs already in order (then
            sorted here in place). numpy's stable sort (a timsort on int64) merges such runs, ~3x
            faster than it sorts keys in index order from scratch. The keys are distinct, so any
            layout sorts to the same keys: the same order.

    Returns:
        ``(order, x[order])``.
    """
    return _stable_order(x, key, None, None)


def sorted_running_sum(x: np.ndarray, jump: np.ndarray, out: np.ndarray,
                       key: np.ndarray | None = None,
                       sorted_x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`stable_argsort` of the prices ``x`` (yuan/t) and the running sums of ``jump`` (t)
    in that order written to ``out``: ``np.cumsum(jump[order])``, bit for bit, mostly in the same
    pass as the order is read off the keys. The supply of a step curve with ``k`` knots at or
    below a price is ``out[k - 1]``. ``sorted_x``: where to write ``x[order]``, if given.

    Returns:
        ``(order, x[order])``.
    """
    return _stable_order(x, key, jump, out, sorted_x)


def _stable_order(x: np.ndarray, key: np.ndarray | None, jump: np.ndarray | None,
                  out: np.ndarray | None,
                  xs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`stable_argsort` with the keys given or not, the running sums if ``jump`` and the
    sorted prices written to ``xs`` if given."""
    n = x.size
    b = max(1, (n - 1).bit_length())
    if b > 24:  # (the high bits would be too coarse to be worth it)
        return _argsort_stable(x, jump, out, xs)
    x = np.asarray(x, dtype=np.float64)
    if key is None:
        key = _kernels.sort_keys(x, b)  # ordered as the prices are, then by index
        key.sort()
    else:  # (runs in order: merged)
        key.sort(kind="stable")
    xs = np.empty(n) if xs is None else xs
    mixed = (_kernels.unpack_keys(key, b, x, _NO_SUMS, _NO_SUMS, xs) if jump is None else
             _kernels.unpack_keys(key, b, x, jump, out, xs))
    order = key  # (overwritten with the order)
    if n and (math.isnan(xs[0]) or math.isnan(xs[-1])):  # (NaNs sort to the ends)
        return _argsort_stable(x, jump, out, xs)
    if mixed:  # neighbours with the same high bits, ordered by index: right only if equal
        high = _kernels.sort_keys(xs, b) >> b  # (the sorted keys' high bits)
        near = high[1:] == high[:-1]
        group = np.zeros(n, dtype=bool)
        group[:-1] = near
        group[1:] |= near
        i = np.flatnonzero(group)
        if i.size > n // 8:
            return _argsort_stable(x, jump, out, xs)
        again = np.lexsort((order[i], xs[i], high[i]))
        order[i], xs[i] = order[i][again], xs[i][again]
        if jump is not None:
            _kernels.running_sum(jump, order, out)
    return order, xs


_NO_SUMS = np.empty(0)  # (unpack_keys: no running sums; nothing is written to it)


def _argsort_stable(x: np.ndarray, jump: np.ndarray | None = None,
                    out: np.ndarray | None = None,
                    xs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """numpy's stable argsort and the sorted prices (the reference for :func:`stable_argsort`;
    written to ``xs`` if given), and the running sums of ``jump`` in that order into ``out`` if
    given."""
    order = np.argsort(x, kind="stable")
    if jump is not None:
        _kernels.running_sum(jump, order, out)
    if xs is None:
        return order, x[order]
    np.take(x, order, out=xs)
    return order, xs


@dataclass(frozen=True)
class MACCurves:
    """Piecewise-linear, non-decreasing MAC curves of many firms (CSR layout).

    Firm ``i``'s points are ``abatement[start[i]:start[i+1]]`` (t, cumulative, non-decreasing, the
    first 0) and ``cost[start[i]:start[i+1]]`` (yuan/t, non-decreasing). Every firm has at least two
    points; a firm without abatement options has the zero curve ``(0, 0), (0, 0)``.

    Attributes:
        start: int64 offsets, shape ``(n_firms + 1,)``.
        abatement: float64 cumulative abatement at each point, t.
        cost: float64 marginal cost at each point, yuan/t.
    """

    start: np.ndarray
    abatement: np.ndarray
    cost: np.ndarray

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_long(
        cls,
        firm_index: np.ndarray,
        abatement: np.ndarray,
        cost: np.ndarray,
        n_firms: int,
    ) -> MACCurves:
        """Build curves from long-format points, one row per point (as in ``mac.csv``).

        Points are stable-sorted by (firm, abatement), so the input order decides the order of
        points with equal abatement (a vertical jump). A firm whose first point is not at abatement
        0 gets ``(0, 0)`` prepended; a firm without points gets the zero curve.

        Args:
            firm_index: Firm of each point, integers in ``[0, n_firms)``.
            abatement: Cumulative abatement of each point, t (>= 0).
            cost: Marginal cost at each point, yuan/t.
            n_firms: Number of firms.

        Raises:
            CurveError: A value is not finite, an abatement is negative, or the cost decreases
                along a firm's curve; ``point_index`` is the offending input row.
        """
        firm_index = np.asarray(firm_index, dtype=np.int64)
        abatement = np.asarray(abatement, dtype=np.float64)
        cost = np.asarray(cost, dtype=np.float64)
        bad = ~np.isfinite(abatement) | ~np.isfinite(cost)
        if bad.any():
            raise CurveError(int(np.argmax(bad)), "abatement and cost must be finite numbers")
        if (abatement < 0).any():
            raise CurveError(int(np.argmax(abatement < 0)), "abatement must be >= 0")
        order = np.lexsort((abatement, firm_index))
        f, a, c = firm_index[order], abatement[order], cost[order]
        same_firm = f[1:] == f[:-1]
        drop = same_firm & (c[1:] < c[:-1])
        if drop.any():
            k = int(np.argmax(drop)) + 1
            raise CurveError(int(order[k]), "MAC decreases: cost must not fall as abatement grows")
        counts = np.bincount(f, minlength=n_firms).astype(np.int64)
        first = np.concatenate(([0], np.cumsum(counts)[:-1]))
        has = counts > 0
        first_a = np.where(has, a[np.minimum(first, max(a.size - 1, 0))] if a.size else 0.0, 0.0)
        first_c = np.where(has, c[np.minimum(first, max(c.size - 1, 0))] if c.size else 0.0, 0.0)
        if (has & (first_a > 0) & (first_c < 0)).any():
            i = int(np.argmax(has & (first_a > 0) & (first_c < 0)))
            raise CurveError(
                int(order[first[i]]),
                "MAC decreases from the implied point (0, 0): give a point at abatement 0 "
                "for a curve that starts at a negative cost",
            )
        # Points to insert before each firm's first point: zero curve, (0, 0), or a copy of a
        # lone point at abatement 0 (so that every firm has at least two points).
        n_zero = np.where(~has, 2, np.where(first_a > 0, 1, 0))
        lone = has & (first_a == 0) & (counts == 1)
        pos = np.repeat(first, n_zero)
        a = np.insert(a, pos, 0.0)
        c = np.insert(c, pos, 0.0)
        counts = counts + n_zero
        if lone.any():
            new_first = np.concatenate(([0], np.cumsum(counts)[:-1]))
            at = new_first[lone]
            a = np.insert(a, at, a[at])
            c = np.insert(c, at, c[at])
            counts = counts + lone
        start = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        return cls(start=start, abatement=a, cost=c)

    @classmethod
    def from_options(cls, potential: np.ndarray, cost: np.ndarray) -> MACCurves:
        """Step curves from technology options.

        Each firm's options are sorted by cost; the curve is flat at each option's cost over its
        potential with vertical jumps between options, starting at ``(0, cheapest cost)``.

        Args:
            potential: Shape ``(n_firms, n_options)``, t of CO2 each option can remove (>= 0).
            cost: Shape ``(n_firms, n_options)``, the option's cost for that firm, yuan/t.
        """
        potential = np.atleast_2d(np.asarray(potential, dtype=np.float64))
        cost = np.atleast_2d(np.asarray(cost, dtype=np.float64))
        if potential.shape != cost.shape:
            raise ValueError("potential and cost must have the same shape")
        if not (np.isfinite(potential).all() and np.isfinite(cost).all()):
            raise ValueError("potential and cost must be finite")
        if (potential < 0).any():
            raise ValueError("potential must be >= 0")
        n, k = potential.shape
        order = np.argsort(cost, axis=1, kind="stable")
        c = np.take_along_axis(cost, order, axis=1)
        q = np.cumsum(np.take_along_axis(potential, order, axis=1), axis=1)
        lo = np.concatenate((np.zeros((n, 1)), q[:, :-1]), axis=1)
        a_pts = np.stack((lo, q), axis=2).reshape(n, 2 * k)
        c_pts = np.stack((c, c), axis=2).reshape(n, 2 * k)
        start = np.arange(n + 1, dtype=np.int64) * (2 * k)
        return cls(start=start, abatement=a_pts.ravel(), cost=c_pts.ravel())

    @classmethod
    def linear(cls, max_abatement: np.ndarray, cost_at_max: np.ndarray,
               cost_at_zero: np.ndarray | float = 0.0) -> MACCurves:
        """Linear curves from ``(0, cost_at_zero)`` to ``(max_abatement, cost_at_max)``."""
        m = np.asarray(max_abatement, dtype=np.float64)
        c1 = np.broadcast_to(np.asarray(cost_at_max, dtype=np.float64), m.shape)
        c0 = np.broadcast_to(np.asarray(cost_at_zero, dtype=np.float64), m.shape)
        a = np.stack((np.zeros_like(m), m), axis=1).ravel()
        c = np.stack((c0, c1), axis=1).ravel()
        return cls(start=np.arange(m.size + 1, dtype=np.int64) * 2, abatement=a, cost=c)

    # ------------------------------------------------------------------ views
    @property
    def n_firms(self) -> int:
        """Number of firms."""
        return int(self.start.size - 1)

    @property
    def max_abatement(self) -> np.ndarray:
        """Each firm's largest possible abatement (its last point), t."""
        return self.abatement[self.start[1:] - 1]

    def scaled(self, factor: np.ndarray | float) -> MACCurves:
        """Same costs with firm ``i``'s abatement multiplied by ``factor[i]`` (>= 0)."""
        f = np.broadcast_to(np.asarray(factor, dtype=np.float64), (self.n_firms,))
        per_point = np.repeat(f, np.diff(self.start))
        return MACCurves(self.start, self.abatement * per_point, self.cost)

    def shifted(self, delta: np.ndarray | float) -> MACCurves:
        """Same abatement with firm ``i``'s costs moved by ``delta[i]`` yuan/t (e.g. learning)."""
        d = np.broadcast_to(np.asarray(delta, dtype=np.float64), (self.n_firms,))
        return MACCurves(self.start, self.abatement, self.cost + np.repeat(d, np.diff(self.start)))

    def cost_scaled(self, factor: np.ndarray | float) -> MACCurves:
        """Same abatement with firm ``i``'s costs multiplied by ``factor[i]`` (>= 0)."""
        f = np.broadcast_to(np.asarray(factor, dtype=np.float64), (self.n_firms,))
        return MACCurves(self.start, self.abatement, self.cost * np.repeat(f, np.diff(self.start)))

    def select(self, which: np.ndarray) -> MACCurves:
        """The curves of a subset of firms (boolean mask or integer index), in that order."""
        idx = np.arange(self.n_firms)[np.asarray(which)]
        counts = np.diff(self.start)[idx]
        start = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        # Gather each selected firm's points without a Python loop.
        pts = np.repeat(self.start[idx] - start[:-1], counts) + np.arange(start[-1])
        return MACCurves(start, self.abatement[pts], self.cost[pts])

    # ------------------------------------------------------------------ segments
    @cached_property
    def _points_per_firm(self) -> int:
        """How many points each firm has if all have as many (curves from options), else 0."""
        counts = np.diff(self.start)
        return int(counts[0]) if counts.size and (counts == counts[0]).all() else 0

    @cached_property
    def _segments(self) -> tuple:
        """:attr:`_widths` and :attr:`_steps` from one compiled pass over the points."""
        return _kernels.segments(self.start, self.abatement, self.cost)

    @cached_property
    def _widths(self) -> tuple[np.ndarray, ...]:
        """The segments with positive width (vertical jumps add no abatement and no cost):
        (firm, a0, da, c0, dc).

        Every firm's first point is at abatement 0, so the step from one firm's last point to the
        next firm's first is never positive and drops out with the vertical jumps.
        """
        return self._segments[:5]

    @cached_property
    def _steps(self) -> bool:
        """Whether every segment of positive width is flat (step curves, e.g. from options):
        evaluating them needs no slopes."""
        return bool(self._segments[5])

    def knots(self) -> Knots:
        """The aggregate supply of abatement as a function of price (sum over all firms)."""
        _, _, da, c0, dc = self._widths
        if self._steps:  # one jump per segment
            return Knots.steps(c0.copy(), da.copy())
        flat = dc == 0
        sloped = dc > 0
        rate = da[sloped] / dc[sloped]
        x = np.concatenate((c0[flat], c0[sloped], c0[sloped] + dc[sloped]))
        jump = np.concatenate((da[flat], np.zeros(2 * rate.size)))
        slope = np.concatenate((np.zeros(int(flat.sum())), rate, -rate))
        return Knots(x=x, jump=jump, slope=slope)

    # ------------------------------------------------------------------ evaluation
    def abatement_at(self, price: float | np.ndarray, theta: float = 1.0) -> np.ndarray:
        """Each firm's abatement when it faces ``price`` (yuan/t; one price or one per firm), in t.

        A firm abates everything whose marginal cost is below the price. On a flat segment whose
        cost equals the price exactly it abates the share ``theta`` of that segment (the market
        sets ``theta`` so that supply meets demand; 1 means all of it).
        """
        firm, _, da, c0, dc = self._widths
        if np.ndim(price) == 0:
            p = float(price)
            if not np.isfinite(p):
                got = da.copy() if p > 0 else np.zeros_like(da)
                return np.bincount(firm, weights=got, minlength=self.n_firms)
            prices = _NO_PRICES
        else:
            p, prices = 0.0, _per_firm(price, self.n_firms)
        # (one compiled pass; the sums per firm in segment order, as np.bincount)
        return _kernels.abatement_at(firm, da, c0, dc, self.n_firms, self._steps, p, prices,
                                     float(theta))

    def cost_of(self, abatement: np.ndarray) -> np.ndarray:
        """Each firm's total abatement cost (area under its MAC curve up to ``abatement``), yuan."""
        firm, a0, da, c0, dc = self._widths
        # (one compiled pass: the part of each segment used, its cost, the sums per firm)
        return _kernels.cost_of(firm, a0, da, c0, dc, self.n_firms, self._steps,
                                _per_firm(abatement, self.n_firms))

    def marginal_cost(self, abatement: np.ndarray) -> np.ndarray:
        """Each firm's MAC at its ``abatement`` (yuan/t): the cost of its last tonne abated.

        At zero abatement this is the cost where the curve starts.
        """
        # Every pair of consecutive points is a segment, but for the pair from one firm's last
        # point to the next firm's first (left out of the maximum below).
        k = self._points_per_firm
        a = np.repeat(np.asarray(abatement, dtype=np.float64), k or np.diff(self.start))[:-1]
        a0, c0 = self.abatement[:-1], self.cost[:-1]
        da, dc = self.abatement[1:] - a0, self.cost[1:] - c0
        if self._steps:  # flats (dc = 0) and vertical jumps (frac = 1): no fractions needed
            top = c0 + dc
        else:
            wide = da > 0
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = (a - a0) / np.where(wide, da, 1.0)
            np.minimum(np.maximum(frac, 0.0, out=frac), 1.0, out=frac)
            top = c0 + dc * np.where(wide, frac, 1.0)  # a vertical jump counts whole
        # A segment counts once the firm is past its start; values rise along a firm's segments,
        # so the firm's maximum over its segments is the cost of its last tonne.
        # (a tolerance of 1e-12 relative keeps rounding at a step's end off the next step)
        value = np.where(a - a0 > 1e-12 * np.maximum(np.abs(a0), 1.0), top, -np.inf)
        if k:  # firm i's segments are value[i * k + j], j < k - 1: the maximum column by column
            last = value[0::k].copy()
            for j in range(1, k - 1):
                np.maximum(last, value[j::k], out=last)
        else:
            value[self.start[1:-1] - 1] = -np.inf
            last = np.maximum.reduceat(value, self.start[:-1])
        return np.maximum(self.cost[self.start[:-1]], last)
