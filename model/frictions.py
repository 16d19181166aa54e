"""Market clearing with frictions: restricted participation and a transaction cost (issue #5).

Plain functions on numpy arrays, no Mesa, no loop over firms. Each firm has a *participation type*:
``FULL`` (0) buys and sells allowances (CEA); ``OWN_SURPLUS`` (1) sells its surplus but never buys
(when short it complies alone: abatement, offsets within its limit, the penalty for the rest);
``NO_TRADE`` (2) never trades (it complies alone and keeps any surplus unsold). A transaction cost
``tau`` (yuan/t) is paid by buyer and seller alike: at the market price ``p`` a buyer pays
``p + tau``, a seller receives ``p - tau``.

Each firm values an allowance at its own price ``lambda_i``: ``min(p + tau, penalty)`` as a buyer
(the penalty for restricted types), ``max(p - tau, 0)`` as a seller (0 for ``NO_TRADE``: a firm may
always keep an allowance unsold); a firm whose *autarky price* (its marginal cost of meeting exactly
its own holdings) lies between the two stays out of the market and abates exactly its own gap. It
abates until its MAC equals ``lambda_i``; it uses CCERs up to its limit ``L`` (share of verified
emissions) whenever ``p_ccer < lambda_i`` and then abates to ``(1 - L) lambda_i + L p_ccer``, the
rule of :mod:`model.market`.

Clearing: for a CEA price the CCER market is cleared by a bracketed root search on its monotone
excess demand; the CEA market by the same search on its excess demand (monotone: the gradient of a
concave dual). The search is regula falsi safeguarded by bisection, to 1e-11 relative, helped by
the known prices where supply jumps (flat MAC segments, CCER projects); the states either side of
the root are mixed with the one weight that makes purchases equal sales exactly (which shares flat
segments at the price, as ``theta`` does in :mod:`model.market`). Bounds as in
:class:`model.market.Bounds`: excess supply at the floor is withheld, at a zero price it stays
unsold (auctioned allowances first); excess demand at the ceiling is met by reserve sales, and at
``penalty - tau`` buyers stop buying (shortfall, shared in proportion to purchases). Without
frictions the result is :func:`model.market.clear` + :func:`model.market.positions`; with them it
is the least-cost solution *given* the frictions (an LP with participation constraints and ``tau``
as a cost), never cheaper than the frictionless least cost (:func:`social_cost`).

Simplifications, stated: ``tau`` applies to allowance trades only (reserve sales, auctioned
allowances and sales withheld at the floor included), not to CCERs; the government trades at ``p``
without a cost; a firm whose price equals ``p_ccer`` is indifferent about offsets, so with a slack
limit the split of offsets among firms follows the clearing (``positions`` shares them in
proportion to verified emissions; totals, prices and abatement are the same); no banking demand
(``model.market.clear(banking=...)``); types are fixed within a year (:func:`participation_types`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from model.mac import Knots, MACCurves
from model.market import Bounds, Equilibrium, Positions, supply_at

FULL, OWN_SURPLUS, NO_TRADE = 0, 1, 2
_RTOL = 1e-11  # relative precision of both price searches
_MAX_ITER = 400
_NO_BOUNDS = Bounds()
_FIELDS = ("p", "po", "a", "o", "b", "s", "short", "unsold")


@dataclass(frozen=True)
class FrictionEquilibrium(Equilibrium):
    """A cleared year with frictions: :class:`model.market.Equilibrium` plus trade (t, yuan/t).

    ``cea_price`` is the market price ``p`` (buyers pay ``p + tau``, sellers get ``p - tau``);
    ``abatement_price`` is the (blended) price of a trader at ``p``; ``theta_*`` are 1 (flats are
    shared in the positions); ``shortfall`` includes restricted firms'; ``surplus`` is every
    allowance left unsold (firms' ``unsold`` + ``auction_unsold``): ``emissions - abatement -
    offsets == holdings + auctioned + reserve_sales + shortfall - withheld - surplus``.
    """

    transaction_cost: float = 0.0  # tau, yuan/t paid by each side of a trade
    purchases: float = 0.0  # allowances bought by firms (from firms, the auction, the reserve), t
    sales: float = 0.0  # allowances sold by firms (to firms or withheld at the floor), t
    auctioned: float = 0.0  # allowances offered by the government at the market price, t
    auction_unsold: float = 0.0  # of which unsold (excess supply at a zero price), t

    @property
    def transaction_costs(self) -> float:
        """Transaction costs paid in total (both sides), yuan."""
        return self.transaction_cost * (self.purchases + self.sales)


@dataclass(frozen=True)
class _State:
    """Every firm's response at a CEA price ``p`` and a CCER price ``po`` (t; yuan/t)."""

    p: float
    po: float
    a: np.ndarray  # abatement
    o: np.ndarray  # offsets surrendered
    b: np.ndarray  # allowances bought
    s: np.ndarray  # allowances sold
    short: np.ndarray  # not surrendered (penalty)
    unsold: np.ndarray  # kept unsold

    def mix(self, other: _State, w: float) -> _State:
        """``w * self + (1 - w) * other``, field by field; a firm that buys in one state and sells
        in the other trades the net amount (purchases minus sales is unchanged)."""
        got = {k: w * getattr(self, k) + (1.0 - w) * getattr(other, k) for k in _FIELDS}
        net = got["b"] - got["s"]
        return _State(**{**got, "b": np.maximum(net, 0.0), "s": np.maximum(-net, 0.0)})


class _Breaks:
    """Known prices where a search function may jump: ``(value - offset) / scale`` for sorted
    ``value`` arrays (flat MAC costs, CCER flats, special prices) under increasing affine maps."""

    def __init__(self, maps: list[tuple[np.ndarray, float, float]],
                 first: Sequence[float] = ()) -> None:
        self.maps = [(v, s, o) for v, s, o in maps if v.size and s > 0 and math.isfinite(o)]
        self.first = [float(x) for x in first if math.isfinite(x)]  # likely roots: tried first

    def pick(self, lo: float, hi: float, near: float | None) -> float | None:
        """A break strictly inside ``(lo, hi)``: a ``first`` one, else the one nearest ``near``,
        or (``near`` None) the middle one of the map with the most breaks inside; else None."""
        got = [x for x in self.first if lo < x < hi][:1]
        most = 0
        for v, s, o in self.maps if not got else ():
            i0 = int(np.searchsorted(v, o + s * lo, "right"))
            i1 = int(np.searchsorted(v, o + s * hi, "left"))
            if near is None and i1 - i0 > most:
                most, got = i1 - i0, [(v[(i0 + i1) // 2] - o) / s]
            elif near is not None and i1 > i0:
                k = int(np.searchsorted(v, o + s * near))
                got += [(v[j] - o) / s for j in (k - 1, k) if i0 <= j < i1]
        got = [float(x) for x in got if lo < x < hi]
        return min(got, key=lambda x: abs(x - near)) if got and near is not None else (
            got[0] if got else None)


def _root(f: Callable[[float], tuple[float, _State, float]], lo: tuple, hi: tuple,
          breaks: _Breaks,
          hint: Callable[[_State, _State], _Breaks] | None = None
          ) -> tuple[_State, _State, float]:
    """The crossing of a non-increasing, right-continuous ``f`` between ``lo`` and ``hi``.

    Regula falsi (Illinois) safeguarded by bisection; while known break points lie inside the
    bracket, the trial point is the break nearest the secant estimate (or the middle break when
    bisecting), and a bracket that ends on a break is probed just below it, so that a root on a
    jump is found in a few steps.

    Args:
        f: ``x -> (value, state, exact value)``; ``value`` is 0 within rounding.
        lo: ``(x, *f(x))`` with ``value > 0``.
        hi: ``(x, *f(x))`` with ``value <= 0``.
        breaks: Where ``f`` may jump.
        hint: A function of the two bracketing states that estimates further breaks (used in
            secant steps only: bisection steps stay at the midpoint).

    Returns:
        ``(state_lo, state_hi, w)``: states at the ends of a bracket narrower than ``_RTOL``
        (relative) around ``inf{x: f(x) <= 0}`` and the weight with ``w * f(lo) + (1 - w) *
        f(hi) == 0`` (exact values; clipped to [0, 1]).
    """
    (xl, fl, sl, tl), (xh, fh, sh, th) = lo, hi
    atol = _RTOL * 1e-3 * max(xh - xl, 1.0)
    wl, wh = fl, fh  # Illinois-scaled values for the secant
    prev = None  # the lo point before xl: (x, f)
    last, ref, slow = 0, xh - xl, 0  # side moved last; width at the last halving; steps since
    probe_hi, hi_probed, lo_break, lo_probed = True, False, True, False  # jumps at xh, xl?
    for _ in range(_MAX_ITER):
        width = xh - xl
        tol = max(_RTOL * max(abs(xl), abs(xh)), atol)
        # narrow enough, and at most one known jump (at xh): the states either side may be mixed
        x = breaks.pick(xl, xh, None) if width <= tol else None
        if width <= tol and x is None:
            break
        flat_lo = prev is not None and prev[1] == fl  # f constant left of xl: a jump ahead?
        kind = "step"
        if x is not None:
            kind = "break"
        elif slow >= 3:  # the bracket has not halved in three steps: bisect (on the breaks first)
            x = breaks.pick(xl, xh, None)
            x = xl + 0.5 * width if x is None else x
            kind = "break" if x != xl + 0.5 * width else "mid"
        elif (probe_hi or flat_lo) and not hi_probed:  # is the root on a jump exactly at xh?
            x, kind, hi_probed = xh - 0.5 * tol, "probe", True
        elif wh == 0 and lo_break and not lo_probed:  # f is 0 on (root, xh]: a jump at xl?
            x, kind, lo_probed = xl + 0.5 * tol, "probe", True
        else:
            guess = xl + 0.5 * width
            if wh < 0:
                guess = xl + width * (wl / (wl - wh))
            elif prev is not None and prev[1] > fl:  # f == 0 at xh: extrapolate from the left
                kink = xl + fl * (xl - prev[0]) / (prev[1] - fl)
                if kink < xh - tol:
                    guess, kind = kink, "kink"
                elif not hi_probed:  # the kink is at xh
                    guess, kind, hi_probed = xh - 0.5 * tol, "probe", True
            x = breaks.pick(xl, xh, guess)
            if x is not None:
                kind = "break"
            elif hint is not None:  # estimated breaks: not probed
                x = hint(sl, sh).pick(xl, xh, guess)
            if x is None:
                x = min(max(guess, xl + 0.25 * tol), xh - 0.25 * tol)
        fx, sx, tx = f(x)
        if fx > 0:
            prev = (xl, fl) if kind != "probe" else prev
            xl, fl, sl, wl, tl = x, fx, sx, fx, tx
            lo_break, lo_probed = kind == "break", lo_probed and kind != "break"
            wh = wh * 0.5 if last > 0 else wh
            last = 1
        else:
            xh, fh, sh, wh, th = x, fx, sx, fx, tx
            wl = wl * 0.5 if last < 0 else wl
            last, hi_probed = -1, kind == "probe"
            probe_hi = kind in ("break", "kink")
        if xh - xl <= 0.5 * ref:
            ref, slow = xh - xl, 0
        else:
            slow += 1
    return sl, sh, min(max(th / (th - tl), 0.0), 1.0) if tl > th else 0.0


class _Market:
    """The firms' responses to prices; everything that does not depend on prices is set once."""

    def __init__(self, curves: MACCurves, emissions: np.ndarray, holdings: np.ndarray,
                 offsets: Knots, limit: float, bounds: Bounds, participation: np.ndarray,
                 tau: float, auctioned: float) -> None:
        e = np.asarray(emissions, dtype=np.float64)
        h = np.asarray(holdings, dtype=np.float64)
        self.curves, self.e, self.h, self.ccer = curves, e, h, offsets
        self.L, self.tau, self.auctioned, self.bounds = float(limit), float(tau), auctioned, bounds
        self.has_offsets = limit > 0 and offsets.x.size > 0 and offsets.total > 0
        self.qtol = 1e-13 * max(np.abs(e).sum(), np.abs(h).sum() + auctioned, 1.0)  # rounding, t
        self.trader = participation == FULL
        self.seller = participation != NO_TRADE
        costs = [abs(curves.cost).max() if curves.cost.size else 0.0,
                 abs(offsets.x).max() if offsets.x.size else 0.0, bounds.floor]
        # an infinite penalty acts as a price above every cost (penalty_cost is then 0)
        self.big = (bounds.penalty if math.isfinite(bounds.penalty)
                    else 2.0 * (max(costs) + tau + 1.0) / max(1.0 - self.L, 1e-9))
        k = curves.knots()
        self.flats = np.unique(k.x[k.jump > 0])  # where abatement jumps (flat MAC segments)
        self.ccer_flats = np.unique(offsets.x[offsets.jump > 0])
        a0 = curves.abatement_at(0.0)
        amax = curves.max_abatement
        self.long0 = e - h <= a0  # long even with the no-regret options only

        def mac(a: np.ndarray) -> np.ndarray:
            return np.where(a <= amax, curves.marginal_cost(np.minimum(a, amax)), np.inf)

        self.a_full = np.maximum(e - h, a0)  # the own gap by abatement alone
        self.m_full = mac(self.a_full)
        if self.has_offsets and self.L < 1.0:
            raw = e - h / (1.0 - self.L)  # abatement with offsets at the limit
            self.a_lim = np.maximum(raw, a0)
            self.lim_active = raw >= a0
            self.m_lim = np.where(self.lim_active, mac(self.a_lim), -np.inf)
        else:  # the limit exceeds every firm's need
            self.a_lim, self.lim_active = a0, np.zeros(e.size, bool)
            self.m_lim = np.full(e.size, -np.inf)

    def own_price(self, po: float) -> tuple[np.ndarray, ...]:
        """Each firm's autarky price (yuan/t) and its regime: no offsets, at the limit, partial."""
        if not self.has_offsets:
            none = np.ones(self.e.size, bool)
            return np.where(self.long0, 0.0, self.m_full), none, ~none, ~none
        none = po >= self.m_full
        full = self.lim_active & (po < self.m_lim) & ~none  # po == m_lim: partial (from above)
        part = ~none & ~full
        with np.errstate(invalid="ignore", divide="ignore"):
            at_limit = (self.m_lim - self.L * po) / max(1.0 - self.L, 1e-300)
        lam = np.where(none, self.m_full, np.where(full, at_limit, po))
        long0 = self.long0
        return np.where(long0, 0.0, lam), none | long0, full & ~long0, part & ~long0

    def respond(self, p: float, po: float) -> _State:
        """Every firm's abatement, offsets and trades at CEA price ``p`` and CCER price ``po``."""
        e, h, L, tau = self.e, self.h, self.L, self.tau
        buy_ok = self.trader & (p + tau <= self.bounds.penalty)
        sell_ok = self.seller & (p - tau >= 0.0)
        buy_at = np.where(buy_ok, p + tau, self.big)
        sell_at = np.where(sell_ok, p - tau, 0.0)
        lam_a, none, _, part = self.own_price(po)
        # Ties take the limit from above in p_ccer: a firm whose own price is the CCER price
        # (partial offsets) buys at lam_a == buy_at and stays alone at lam_a == sell_at < buy_at.
        buyer = (lam_a > buy_at) | ((lam_a == buy_at) & part)
        seller = ((lam_a < sell_at) | (lam_a == sell_at) & ~part) & ~buyer
        alone = ~buyer & ~seller
        lam = np.where(buyer, buy_at, sell_at)
        at_lim = (po < lam) if self.has_offsets else np.zeros(e.size, bool)
        a = self.curves.abatement_at(np.where(at_lim, (1.0 - L) * lam + L * po, lam))
        o = np.where(at_lim, L * (e - a), 0.0)
        # A tie read through rounding (own price == trading price) with a flat MAC at the blended
        # price can take a buyer past its own gap (a seller short of it): it complies alone.
        g = e - a - o - h
        alone |= (buyer & (g < 0)) | (seller & (g > 0))
        buyer, seller = buyer & ~alone, seller & ~alone
        if alone.any():  # exactly the own gap: by abatement, offsets at the limit, or partial
            a_alone = np.where(none, self.a_full, self.a_lim)
            if (alone & part).any():
                a_po = np.clip(self.curves.abatement_at(po), self.a_lim, self.a_full)
                a_alone = np.where(part, a_po, a_alone)
            a = np.where(alone, a_alone, a)
            o = np.where(alone, np.where(none, 0.0, e - h - a), o)
        g = e - a - o - h  # > 0 short, < 0 long, 0 alone
        zero = np.zeros(e.size)
        return _State(p, po, a, o,
                      b=np.where(buyer & buy_ok, g, zero), s=np.where(seller & sell_ok, -g, zero),
                      short=np.where(buyer & ~buy_ok, g, zero),
                      unsold=np.where(seller & ~sell_ok, -g, zero))

    def cleared(self, p: float) -> _State:
        """The responses at CEA price ``p`` with the CCER market cleared."""
        if not self.has_offsets:
            return self.respond(p, 0.0)

        def excess(po: float) -> tuple[float, _State, float]:
            st = self.respond(p, po)
            return self.rounded(float(st.o.sum()) - supply_at(self.ccer, po), st)

        at_0 = excess(0.0)
        if at_0[0] <= 0:
            return at_0[1]
        hi = max(float(self.ccer.x.max()), 0.0)
        at_hi = excess(hi)
        if at_hi[0] > 0:  # scarce CCERs: the price rises above the dearest project up to the demand
            hi = max(p + self.tau, self.big) * (1 + 1e-9) + 1e-9
            at_hi = excess(hi)
        L, fl, tau = self.L, self.flats, self.tau
        breaks = _Breaks([(fl, L, (1 - L) * (p + tau)), (fl, L, (1 - L) * self.big),
                          (fl, L, (1 - L) * max(p - tau, 0.0)), (fl, L, 0.0), (fl, 1.0, 0.0)],
                         first=[p + tau, p - tau, self.big, *self.ccer_flats])
        s_lo, s_hi, w = _root(excess, (0.0, *at_0), (hi, *at_hi), breaks)
        return s_lo.mix(s_hi, w)

    def breaks(self) -> _Breaks:
        """Where the CEA excess demand may jump (yuan/t): flats reached by buyers or sellers
        without offsets, and CCER flats (with a slack limit ``p_ccer`` is ``p`` or ``p -+ tau``)."""
        fl, tau, cf = self.flats, self.tau, self.ccer_flats
        maps = [] if self.has_offsets else [(fl, 1.0, tau), (fl, 1.0, -tau)]
        return _Breaks(maps, first=[tau, self.bounds.penalty - tau, *cf, *(cf - tau), *(cf + tau)])

    def hint(self, lo: _State, hi: _State) -> _Breaks:
        """Estimated jumps of the CEA excess demand between two states: flats reached by firms at
        the offset limit, at ``(1 - L) (p -+ tau) + L p_ccer``, ``p_ccer`` linear in ``p``."""
        L, fl, tau = self.L, self.flats, self.tau
        maps = [(fl, 1.0, tau), (fl, 1.0, -tau)]  # firms without offsets
        if self.has_offsets and hi.p > lo.p:
            k = (hi.po - lo.po) / (hi.p - lo.p)
            for scale, base in ((1.0 - L + L * k, L * (lo.po - k * lo.p)), (1.0 - L, L * hi.po)):
                maps += [(fl, scale, base + (1 - L) * tau), (fl, scale, base - (1 - L) * tau)]
        return _Breaks(maps)

    def excess(self, p: float) -> tuple[float, _State, float]:
        """CEA excess demand (t) at market price ``p``, the cleared responses, the exact excess."""
        st = self.cleared(p)
        return self.rounded(float(st.b.sum() - st.s.sum()) - self.auctioned, st)

    def rounded(self, z: float, st: _State) -> tuple[float, _State, float]:
        """An excess (t) with rounding noise set to 0 (a market that clears over a range of prices
        reads 0 there, and the lowest such price is found), the state, and the exact excess."""
        return (0.0 if abs(z) <= self.qtol else z), st, z


def clear_with_frictions(
    curves: MACCurves,
    emissions: np.ndarray,
    holdings: np.ndarray,
    offsets: Knots,
    limit: float,
    bounds: Bounds = _NO_BOUNDS,
    participation: np.ndarray | None = None,
    transaction_cost: float = 0.0,
    *,
    auctioned: float = 0.0,
    penalty: float | None = None,
) -> tuple[FrictionEquilibrium, Positions]:
    """Clear the CEA and CCER markets among firms with participation types and a transaction cost.

    Args:
        curves: The firms' MAC curves.
        emissions: Unabated emissions per firm, t.
        holdings: Allowances each firm holds for this year's compliance (allocation + bank), t.
        offsets: CCER supply (cumulative quantity against cost) as knots.
        limit: Offset limit, share of each firm's verified emissions, in [0, 1].
        bounds: Floor, ceiling and penalty (yuan/t), as in :func:`model.market.clear`.
        participation: Per-firm type, ``FULL`` (0), ``OWN_SURPLUS`` (1) or ``NO_TRADE`` (2);
            None means every firm trades fully.
        transaction_cost: ``tau``, yuan per tonne traded, paid by buyer and seller alike (>= 0).
        auctioned: Allowances the government sells at the market price (buyers pay ``tau`` on
            them too), t.
        penalty: Charged per tonne short in ``penalty_cost``, yuan/t; default ``bounds.penalty``
            (which is also the price at which firms stop buying).

    Returns:
        ``(equilibrium, positions)``. ``positions.trade_cost`` is ``cea_bought * cea_price +
        tau * |cea_bought|`` (net purchases at the market price plus the transaction costs);
        ``offset_cost`` is at the CCER price, ``penalty_cost`` at the penalty (0 if infinite).
        Without a finite ceiling or penalty and with a cap that cannot be met, prices are inf (as
        in :func:`model.market.clear`) and the gap is reported as shortfall.

    Raises:
        ValueError: A participation type outside {0, 1, 2}, a wrong shape, or a negative or
            non-finite transaction cost.
    """
    n = curves.n_firms
    types = (np.zeros(n, np.int64) if participation is None
             else np.asarray(participation, dtype=np.int64))
    if types.shape != (n,) or ((types < FULL) | (types > NO_TRADE)).any():
        raise ValueError("participation must hold one type in {0, 1, 2} per firm")
    tau = float(transaction_cost)
    if not (math.isfinite(tau) and tau >= 0.0):
        raise ValueError("transaction_cost must be a finite number >= 0")
    m = _Market(curves, emissions, holdings, offsets, limit, bounds, types, tau, float(auctioned))
    lo = max(bounds.floor, 0.0)
    hi = max(min(bounds.ceiling, bounds.penalty - tau), lo)
    upd: dict[str, float] = {}
    at_lo = (lo, *m.excess(lo))
    z_lo, st, short_lo = at_lo[1], at_lo[2], max(-at_lo[3], 0.0)  # excess supply, exact
    if z_lo <= 0:  # excess supply at the lowest price: withheld at a floor, else unsold
        if lo > 0:
            upd["withheld"] = short_lo
        else:
            upd["auction_unsold"] = min(short_lo, m.auctioned)
            st = _ration(st, "s", "unsold", short_lo - upd["auction_unsold"])
    else:
        top = hi if math.isfinite(hi) else m.big * (1 + 1e-9) + tau + 1.0
        at_hi = (top, *m.excess(top))
        if at_hi[1] > 0:  # excess demand at the top: reserve sales at the ceiling, else shortfall
            st = at_hi[2]
            if math.isfinite(hi) and bounds.ceiling <= bounds.penalty - tau:
                upd["reserve_sales"] = at_hi[3]
            else:
                st = _ration(st, "b", "short", at_hi[3])
            if not math.isfinite(hi):  # no bound above and the cap cannot be met
                st = replace(st, p=math.inf)
        else:
            s_lo, s_hi, w = _root(m.excess, at_lo, at_hi, m.breaks(), m.hint)
            st = s_lo.mix(s_hi, w)
    return _result(m, st, upd, bounds.penalty if penalty is None else penalty)


def _ration(st: _State, source: str, sink: str, amount: float) -> _State:
    """Move ``amount`` (t) from field ``source`` to ``sink``, in proportion to ``source``."""
    if amount <= 0:
        return st
    src = getattr(st, source)
    share = src * (min(amount / src.sum(), 1.0) if src.sum() > 0 else 0.0)
    return replace(st, **{source: src - share, sink: getattr(st, sink) + share})


def _result(m: _Market, st: _State, upd: dict[str, float],
            penalty: float) -> tuple[FrictionEquilibrium, Positions]:
    """The equilibrium and the positions from the final responses."""
    p, po, L, tau = st.p, st.po, m.L, m.tau
    offsets_used = float(st.o.sum())
    if not m.has_offsets:  # idle CCER price: the cheapest project's cost, capped at the CEA price
        cheapest = float(m.ccer.x.min()) if m.ccer.x.size else p
        po = min(max(cheapest, 0.0), p) if offsets_used <= 0 else po
    binds = m.has_offsets and offsets_used > 0 and po < p - 1e-9 * max(abs(p), 1.0)
    bought = st.b - st.s
    auction_unsold = upd.pop("auction_unsold", 0.0)
    eq = FrictionEquilibrium(
        cea_price=p, ccer_price=po, abatement_price=(1.0 - L) * p + L * po if binds else p,
        theta_firms=1.0, theta_ccer=1.0, abatement=float(st.a.sum()), offsets=offsets_used,
        limit_binds=bool(binds), shortfall=float(st.short.sum()),
        surplus=float(st.unsold.sum()) + auction_unsold, transaction_cost=tau,
        purchases=float(st.b.sum()), sales=float(st.s.sum()), auctioned=m.auctioned,
        auction_unsold=auction_unsold, **upd,
    )
    penalty = penalty if math.isfinite(penalty) else 0.0
    with np.errstate(invalid="ignore"):  # prices are inf when the cap cannot be met
        at_price = np.where(bought != 0, bought * p, 0.0)
        offset_cost = np.where(st.o != 0, st.o * po, 0.0)
    pos = Positions(
        abatement=st.a, offsets=st.o, surrendered=m.e - st.a - st.o - st.short,
        cea_bought=bought, shortfall=st.short, unsold=st.unsold,
        abatement_cost=m.curves.cost_of(st.a), offset_cost=offset_cost,
        trade_cost=at_price + tau * (st.b + st.s), penalty_cost=st.short * penalty,
    )
    return eq, pos


def participation_types(rng: np.random.Generator, n: int, own_surplus_share: float,
                        no_trade_share: float) -> np.ndarray:
    """Draw each firm's participation type.

    Exactly ``round(no_trade_share * n)`` firms get ``NO_TRADE`` and ``round(own_surplus_share *
    n)`` get ``OWN_SURPLUS`` (capped at ``n`` together), chosen by one random permutation from
    ``rng``; the rest are ``FULL``. With the same seed the restricted sets are nested in the
    shares (a firm restricted at a share stays restricted at a larger one).

    Args:
        rng: The only source of randomness (one ``permutation`` call).
        n: Number of firms.
        own_surplus_share: Share of firms that sell only their own surplus, in [0, 1].
        no_trade_share: Share of firms that never trade, in [0, 1].

    Returns:
        int64 array of shape ``(n,)`` with values in {0, 1, 2}.

    Raises:
        ValueError: A share outside [0, 1].
    """
    for share in (own_surplus_share, no_trade_share):
        if not 0.0 <= share <= 1.0:
            raise ValueError("shares must lie in [0, 1]")
    n_none = min(round(no_trade_share * n), n)
    n_own = min(round(own_surplus_share * n), n - n_none)
    kinds = np.full(n, FULL, dtype=np.int64)
    kinds[:n_none] = NO_TRADE
    kinds[n_none:n_none + n_own] = OWN_SURPLUS
    out = np.empty(n, dtype=np.int64)
    out[rng.permutation(n)] = kinds
    return out


def ccer_resource_cost(offsets: Knots, price: float, quantity: float) -> float:
    """What ``quantity`` t of CCERs cost their projects (area under the supply curve), yuan.

    ``price * quantity`` minus the projects' surplus ``integral of Q(x) dx`` up to ``price``.
    """
    if quantity <= 0 or not offsets.x.size:
        return 0.0
    if not math.isfinite(price):
        price = float(offsets.x.max())
    d = price - offsets.x
    below = d > 0
    area = float((offsets.jump[below] * d[below]).sum()
                 + (offsets.slope[below] * d[below] ** 2).sum() / 2.0)
    return price * quantity - area


def social_cost(eq: Equilibrium, pos: Positions, offsets: Knots, bounds: Bounds) -> float:
    """The total cost that the least-cost benchmark minimises, yuan.

    Abatement costs + the CCERs' resource cost + transaction costs + penalties + reserve
    purchases at the ceiling - allowances withheld at the floor: the objective of the least-cost
    LP, which the frictionless market minimises and frictions can only raise. Transfers (trades
    between firms, CCER rents, auction revenue) are left out. Without a ceiling, a floor and
    ``tau`` this is the model's resource cost. An infinite penalty counts as 0.
    """
    penalty = bounds.penalty if math.isfinite(bounds.penalty) else 0.0
    cost = float(pos.abatement_cost.sum()) + ccer_resource_cost(offsets, eq.ccer_price,
                                                                eq.offsets)
    cost += penalty * eq.shortfall + getattr(eq, "transaction_costs", 0.0)
    if eq.reserve_sales > 0:
        cost += bounds.ceiling * eq.reserve_sales
    return cost - bounds.floor * eq.withheld


def firm_cost(pos: Positions) -> float:
    """Firms' total compliance cost: abatement + offsets + trades (with tau) + penalties, yuan."""
    return float((pos.abatement_cost + pos.offset_cost + pos.trade_cost
                  + pos.penalty_cost).sum())


def friction_costs(
    curves: MACCurves,
    emissions: np.ndarray,
    holdings: np.ndarray,
    offsets: Knots,
    limit: float,
    bounds: Bounds,
    rng: np.random.Generator,
    taus: Sequence[float],
    shares: Sequence[float],
    *,
    auctioned: float = 0.0,
) -> pd.DataFrame:
    """How frictions move one year's outcome away from the least-cost benchmark (figure data).

    Three sweeps, each against the frictionless market: the transaction cost over ``taus``
    (every firm trades); the share of ``OWN_SURPLUS`` firms over ``shares`` (no transaction
    cost); the share of ``NO_TRADE`` firms over ``shares``. Restricted firms are drawn once from
    ``rng`` (nested across shares, see :func:`participation_types`).

    Returns:
        One row per run: ``friction`` ("transaction_cost", "own_surplus" or "no_trade"),
        ``transaction_cost`` (yuan/t), ``restricted_share``, ``cea_price`` and ``ccer_price``
        (yuan/t), ``total_cost`` (yuan, :func:`social_cost`), ``firm_cost`` (yuan, what firms
        pay, :func:`firm_cost`), ``trade_volume`` (t bought), ``abatement``, ``shortfall`` (t),
        ``cost_ratio`` (total_cost / least cost), ``excess_cost`` (total_cost - least cost,
        yuan) and ``price_ratio`` (cea_price / least-cost price; NaN if that is 0).
    """
    n = curves.n_firms
    args = (curves, emissions, holdings, offsets, limit, bounds)
    seed = int(rng.integers(2**63 - 1))

    def run(friction: str, tau: float, share: float) -> dict:
        own = share if friction == "own_surplus" else 0.0
        none = share if friction == "no_trade" else 0.0
        types = participation_types(np.random.default_rng(seed), n, own, none)
        eq, pos = clear_with_frictions(*args, types, tau, auctioned=auctioned)
        return {"friction": friction, "transaction_cost": float(tau),
                "restricted_share": float(share), "cea_price": eq.cea_price,
                "ccer_price": eq.ccer_price, "total_cost": social_cost(eq, pos, offsets, bounds),
                "firm_cost": firm_cost(pos), "trade_volume": eq.purchases,
                "abatement": eq.abatement, "shortfall": eq.shortfall}

    base = run("none", 0.0, 0.0)
    rows = ([run("transaction_cost", t, 0.0) for t in taus]
            + [run(kind, 0.0, s) for kind in ("own_surplus", "no_trade") for s in shares])
    df = pd.DataFrame(rows, columns=list(base))
    df["cost_ratio"] = df["total_cost"] / base["total_cost"] if base["total_cost"] else np.nan
    df["excess_cost"] = df["total_cost"] - base["total_cost"]
    df["price_ratio"] = df["cea_price"] / base["cea_price"] if base["cea_price"] else np.nan
    return df
