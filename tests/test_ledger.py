"""The registry: conservation over years, banking limits and shortfall deduction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.ledger import ConservationError, Ledger, MarketBook, YearRecord


def record(year: int, free, bank_in, deducted, bought, surrendered, *, shortfall=None,
           auctioned: float = 0.0, auction_unsold: float = 0.0, reserve_sales: float = 0.0,
           withheld: float = 0.0) -> YearRecord:
    n = len(free)
    z = np.zeros(n)
    return YearRecord(
        year=year, free=np.asarray(free, float), bank_in=np.asarray(bank_in, float),
        deducted=np.asarray(deducted, float), bought=np.asarray(bought, float),
        surrendered=np.asarray(surrendered, float), ccer=z.copy(),
        shortfall=z.copy() if shortfall is None else np.asarray(shortfall, float),
        banked=z.copy(), expired=z.copy(), auctioned=auctioned, auction_unsold=auction_unsold,
        reserve_sales=reserve_sales, withheld=withheld,
    )


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 8), years=st.integers(2, 6),
       limit_kind=st.sampled_from(["unlimited", "none", "some"]))
def test_allowances_are_conserved_over_years_with_banking(seed, n, years, limit_kind) -> None:
    """Random trades, auctions, reserve sales and withholding that balance: the registry accepts
    every year, and over the run everything issued is surrendered, cancelled or still banked."""
    rng = np.random.default_rng(seed)
    ledger = Ledger(n)
    issued = surrendered_total = cancelled_total = 0.0
    for k in range(years):
        free = rng.uniform(0, 1000, n)
        holdings, bank_in, deducted = ledger.opening(free)
        assert holdings == pytest.approx(free - deducted + bank_in)
        surrendered = holdings * rng.uniform(0, 1, n)
        left = holdings - surrendered
        # firm 0 sells part of what it has left to the others; the market adds auctioned and
        # reserve allowances, takes out withheld and unsold ones (all via firms' purchases)
        sold = left[0] * rng.uniform(0, 1)
        w = rng.dirichlet(np.ones(n))
        auctioned, reserve = rng.uniform(0, 300), rng.uniform(0, 100)
        unsold = auctioned * rng.uniform(0, 0.5)
        withheld = (auctioned + reserve - unsold) * rng.uniform(0, 1)
        bought = -sold * (np.arange(n) == 0) + w * (sold + auctioned + reserve - unsold - withheld)
        end = left + bought
        carry = {"unlimited": np.full(n, np.inf), "none": np.zeros(n),
                 "some": rng.uniform(0, 500, n)}[limit_kind]
        rec = record(2025 + k, free, bank_in, deducted, bought, surrendered, auctioned=auctioned,
                     auction_unsold=unsold, reserve_sales=reserve, withheld=withheld)
        ledger.record(rec, carry, deduct_shortfall=True)
        assert rec.banked == pytest.approx(np.minimum(end, carry), abs=1e-9)
        assert rec.banked + rec.expired == pytest.approx(end, abs=1e-9)
        assert (rec.expired >= 0).all() and (rec.banked >= 0).all()
        assert ledger.bank == pytest.approx(rec.banked)
        issued += rec.allocated + reserve
        surrendered_total += surrendered.sum()
        cancelled_total += rec.cancelled
    assert len(ledger.records) == years
    assert [r.year for r in ledger.records] == list(range(2025, 2025 + years))
    assert issued == pytest.approx(surrendered_total + cancelled_total + ledger.bank.sum())


def test_a_ledger_without_records_books_the_same() -> None:
    """Keeping only the last year's record (sweeps) changes nothing the registry books."""
    rng = np.random.default_rng(5)
    full, lean = Ledger(3), Ledger(3, keep_records=False)
    for year in range(2025, 2029):
        free, carry = rng.uniform(0, 100, 3), rng.uniform(0, 50, 3)
        recs = []
        for ledger in (full, lean):
            holdings, bank_in, deducted = ledger.opening(free)
            rec = record(year, free, bank_in, deducted, np.zeros(3), 0.5 * holdings,
                         shortfall=np.array([0.0, 1.0, 0.0]))
            ledger.record(rec, carry, deduct_shortfall=True)
            recs.append(rec)
        assert np.array_equal(full.bank, lean.bank) and np.array_equal(full.owed, lean.owed)
        assert np.array_equal(recs[0].expired, recs[1].expired)
    assert [r.year for r in full.records] == [2025, 2026, 2027, 2028]
    assert lean.records == [recs[1]]


@pytest.mark.parametrize("flow", ["bought", "reserve"])
def test_a_flow_that_creates_allowances_raises(flow: str) -> None:
    ledger = Ledger(2)
    free = np.array([100.0, 100.0])
    holdings, bank_in, deducted = ledger.opening(free)
    if flow == "bought":  # firm 1 gets 40 but firm 0 only gives 30
        bought, kw = np.array([-30.0, 40.0]), {}
    else:  # the market sold 20 from the reserve, but the firms received 25 net
        bought, kw = np.array([-30.0, 55.0]), {"reserve_sales": 20.0}
    rec = record(2025, free, bank_in, deducted, bought, np.array([50.0, 100.0]), **kw)
    with pytest.raises(ConservationError, match="not conserved"):
        ledger.record(rec, np.full(2, np.inf), deduct_shortfall=True)
    assert ledger.records == []  # nothing booked
    assert ledger.bank.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("flow", ["auctioned", "withheld"])
def test_a_flow_that_loses_allowances_raises(flow: str) -> None:
    ledger = Ledger(2)
    free = np.array([100.0, 100.0])
    holdings, bank_in, deducted = ledger.opening(free)
    surrendered = np.array([50.0, 50.0])
    # 20 auctioned but neither bought nor reported unsold / 20 withheld that no firm gave up
    kw = {"auctioned": 20.0} if flow == "auctioned" else {"withheld": 20.0}
    rec = record(2025, free, bank_in, deducted, np.zeros(2), surrendered, **kw)
    with pytest.raises(ConservationError, match="not conserved"):
        ledger.record(rec, np.full(2, np.inf), deduct_shortfall=True)
    # balanced versions of the same year are accepted
    if flow == "auctioned":
        ok = record(2025, free, bank_in, deducted, np.zeros(2), surrendered, auctioned=20.0,
                    auction_unsold=20.0)
    else:
        ok = record(2025, free, bank_in, deducted, np.array([-20.0, 0.0]), surrendered,
                    withheld=20.0)
    ledger.record(ok, np.full(2, np.inf), deduct_shortfall=True)
    assert ledger.bank.sum() == pytest.approx(100.0 - (20.0 if flow == "withheld" else 0.0))


def test_negative_end_holdings_raise() -> None:
    ledger = Ledger(3)
    free = np.array([100.0, 100.0, 100.0])
    holdings, bank_in, deducted = ledger.opening(free)
    # firm 1 sells 60 and surrenders 100: it would end at -60 (the totals still balance)
    rec = record(2025, free, bank_in, deducted, np.array([60.0, -60.0, 0.0]),
                 np.array([100.0, 100.0, 50.0]))
    with pytest.raises(ConservationError, match="firm 1"):
        ledger.record(rec, np.full(3, np.inf), deduct_shortfall=True)
    # a rounding error far below the tolerance is not an error
    tiny = record(2025, free, bank_in, deducted, np.zeros(3), np.array([100.0 + 1e-12, 100, 0]))
    ledger.record(tiny, np.full(3, np.inf), deduct_shortfall=True)


def test_carry_over_limit_splits_banked_and_expired() -> None:
    ledger = Ledger(4)
    free = np.array([100.0, 300.0, 50.0, 80.0])
    holdings, bank_in, deducted = ledger.opening(free)
    surrendered = np.array([50.0, 100.0, 50.0, 0.0])  # ends: 50, 200, 0, 80
    limit = np.array([100.0, 120.0, 10.0, 0.0])
    rec = record(2025, free, bank_in, deducted, np.zeros(4), surrendered)
    ledger.record(rec, limit, deduct_shortfall=True)
    assert rec.banked.tolist() == [50.0, 120.0, 0.0, 0.0]
    assert rec.expired.tolist() == [0.0, 80.0, 0.0, 80.0]
    assert rec.cancelled == 160.0
    # what was banked is the next year's bank
    holdings, bank_in, _ = ledger.opening(np.full(4, 10.0))
    assert bank_in.tolist() == [50.0, 120.0, 0.0, 0.0]
    assert holdings.tolist() == [60.0, 130.0, 10.0, 10.0]


@pytest.mark.parametrize("deduct", [True, False])
def test_shortfall_is_deducted_from_next_years_allocation(deduct: bool) -> None:
    ledger = Ledger(2)
    free = np.array([100.0, 100.0])
    holdings, bank_in, deducted = ledger.opening(free)
    assert deducted.tolist() == [0.0, 0.0]
    # firm 0 emits 130 and holds 100: 30 short; firm 1 owes 250, more than a year's allocation
    rec = record(2025, free, bank_in, deducted, np.zeros(2), holdings, shortfall=[30.0, 250.0])
    ledger.record(rec, np.zeros(2), deduct_shortfall=deduct)
    holdings, bank_in, deducted = ledger.opening(np.array([100.0, 100.0]))
    if not deduct:
        assert deducted.tolist() == [0.0, 0.0] and holdings.tolist() == [100.0, 100.0]
        return
    assert deducted.tolist() == [30.0, 100.0]
    assert holdings.tolist() == [70.0, 0.0]
    rec = record(2026, [100.0, 100.0], bank_in, deducted, np.zeros(2), holdings)
    ledger.record(rec, np.zeros(2), deduct_shortfall=deduct)
    assert rec.allocated == pytest.approx(70.0)  # allocation net of deductions
    # the rest of firm 1's debt comes out of the following years
    _, _, deducted = ledger.opening(np.array([100.0, 100.0]))
    assert deducted.tolist() == [0.0, 100.0]
    _, _, deducted = ledger.opening(np.array([100.0, 100.0]))
    assert deducted.tolist() == [0.0, 50.0]
    _, _, deducted = ledger.opening(np.array([100.0, 100.0]))
    assert deducted.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("seed", range(4))
def test_opening_and_debts_are_the_array_rule(seed) -> None:
    """The registry's compiled passes give the numpy rule bit for bit over years (signs of zero
    included): deductions of what is owed, holdings, and debts from shortfalls (if deducted)
    and borrowing."""
    rng = np.random.default_rng(seed)
    n = 400
    ledger = Ledger(n)
    bank, owed = np.zeros(n), np.zeros(n)
    for year in range(2025, 2031):
        free = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0, 1e3, n))
        holdings, bank_in, deducted = ledger.opening(free)
        d = np.minimum(owed, free)
        owed = owed - d
        want = (free - d + bank, bank.copy(), d, owed)
        for got, w in zip((holdings, bank_in, deducted, ledger.owed), want):
            assert np.array_equal(got.view(np.int64), w.view(np.int64))
        surrendered = rng.uniform(0, 1.0, n) * holdings
        short = np.where(rng.random(n) < 0.3, rng.uniform(0, 50, n), 0.0)
        borrowed = np.where(rng.random(n) < 0.3, rng.uniform(0, 20, n), -0.0)
        bought = np.where(rng.random(n) < 0.5, 0.0, -0.0)  # (no trades: the flows balance)
        rec = record(year, free, bank_in, deducted, bought, surrendered, shortfall=short)
        rec.borrowed = borrowed
        deduct = bool(year % 2)
        ledger.record(rec, np.full(n, np.inf), deduct_shortfall=deduct)
        if deduct:
            owed = owed + short
        owed = owed + borrowed
        bank = rec.banked
        assert np.array_equal(ledger.owed.view(np.int64), owed.view(np.int64))


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal to the last bit (signs of zero and NaNs included)."""
    return a.shape == b.shape and np.array_equal(np.asarray(a, np.float64).view(np.int64),
                                                 np.asarray(b, np.float64).view(np.int64))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("multiple", [1.5, None])
def test_settle_is_the_book_the_carry_over_rule_and_record(seed, multiple) -> None:
    """The one pass of :meth:`Ledger.settle` gives, bit for bit, the numpy rule of the yearly
    book (the market's arrays spread over all firms, grandfathered firms surrender their
    emissions, borrowing), the carry-over limits and :meth:`Ledger.record`, over years."""
    rng = np.random.default_rng(seed)
    n = 500
    fused, plain = Ledger(n), Ledger(n)
    for year in range(2025, 2029):
        index = np.flatnonzero(rng.random(n) < 0.5)
        m = index.size
        free = rng.uniform(100, 1e3, n)
        holdings, bank_in, deducted = fused.opening(free)
        plain.opening(free)
        surrendered_m = 0.5 * holdings[index]
        # purchases net of sales: what the market adds (auctioned + reserve - unsold - withheld)
        bought_m = np.where(rng.random(m) < 0.2, 0.0, rng.normal(0, 10, m))
        bought_m += (28.0 - bought_m.sum()) / m
        offsets_m, shortfall_m = rng.uniform(0, 10, m), np.where(rng.random(m) < 0.8, 0.0, 5.0)
        banked_m = np.where(rng.random(m) < 0.3, -0.0, rng.normal(0, 20, m))
        capacity = np.where(rng.random(m) < 0.2, np.inf, rng.uniform(0, 1e3, m))
        grand = rng.random(n) < 0.1
        grand[index] = False
        e = rng.uniform(0, 1e2, n)
        base = rng.choice([0.0, 100.0], n)
        rec, limit, borrowed_total = fused.settle(
            year, MarketBook(index, offsets_m, surrendered_m, bought_m, shortfall_m, banked_m,
                             capacity),
            grand, e, (base, multiple), free, deducted, auctioned=30.0, auction_unsold=1.0,
            reserve_sales=2.0, withheld=3.0, deduct_shortfall=True)
        # the numpy rule
        book = [np.zeros(n) for _ in range(5)]
        for row, v in zip(book, (offsets_m, surrendered_m, bought_m, shortfall_m,
                                 np.maximum(-banked_m, 0.0))):
            row[index] = v
        book[1][grand] = e[grand]
        net_sales = -book[2]
        want_limit = base.copy() if multiple is None else base + multiple * np.maximum(
            net_sales, 0.0)
        carry = want_limit.copy()
        carry[index] = np.maximum(want_limit.take(index), np.maximum(capacity, banked_m))
        want = YearRecord(year, free, bank_in, deducted, book[2], book[1], book[0], book[3],
                          np.zeros(0), np.zeros(0), 30.0, 1.0, 2.0, 3.0, borrowed=book[4])
        plain.record(want, carry, deduct_shortfall=True)
        assert same(limit, want_limit)
        assert borrowed_total == np.maximum(-banked_m, 0.0).sum()
        for name in ("ccer", "surrendered", "bought", "shortfall", "borrowed", "banked",
                     "expired", "free", "deducted", "bank_in"):
            assert same(getattr(rec, name), getattr(want, name)), name
        assert same(fused.owed, plain.owed) and same(fused.bank, plain.bank)
        assert rec.expired.sum() > 0 and rec.banked.sum() > 0  # (both limits bind somewhere)


def test_settle_checks_conservation() -> None:
    """A market whose purchases create allowances is refused by the one-pass book too."""
    ledger = Ledger(2)
    free = np.array([100.0, 100.0])
    ledger.opening(free)
    market = MarketBook(np.array([0, 1]), np.zeros(2), np.array([50.0, 50.0]),
                        np.array([-30.0, 40.0]), np.zeros(2), np.zeros(2), np.zeros(2))
    with pytest.raises(ConservationError, match="not conserved"):
        ledger.settle(2025, market, np.zeros(2, bool), np.zeros(2), (np.zeros(2), None), free,
                      np.zeros(2), auctioned=0.0, auction_unsold=0.0, reserve_sales=0.0,
                      withheld=0.0, deduct_shortfall=True)
    assert ledger.records == []
