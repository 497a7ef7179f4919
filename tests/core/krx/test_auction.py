"""Uncrossing call-auction books built by hand: KRX's own worked examples (global.krx.co.kr GLB0606030102T1),
the tie-break order, partial fills at the clearing price, market orders, no cross, an empty side; the expected
price and the seeded random end."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from apps.core.krx import auction as A
from apps.core.krx.auction import BUY, SELL, AuctionOrder, CallBook, uncross
from apps.core.krx.calendar import KST

ON = date(2026, 3, 10)


def book(orders, reference, lower=7_000, upper=13_000):
    return CallBook(orders=tuple(orders), reference=reference, lower=lower, upper=upper, on=ON)


def o(key, side, price, qty, t=0):
    return AuctionOrder(key=key, side=side, price=price, quantity=qty, priority=t)


def fills_by_key(result):
    return {fill.key: fill.quantity for fill in result.fills}


def test_krx_example_max_volume_with_a_partial_fill_by_time_priority():
    """KRX's first example: 600 shares at 7,830; at 7,830 the sells ① fill, ② partly, ③ not at all."""
    orders = [
        o("s7860", SELL, 7_860, 450),
        o("s7850", SELL, 7_850, 750),
        o("s7840", SELL, 7_840, 300),
        o("s7830-1", SELL, 7_830, 150, t=1),
        o("s7830-2", SELL, 7_830, 200, t=2),
        o("s7830-3", SELL, 7_830, 50, t=3),
        o("s7820", SELL, 7_820, 200),
        o("s7810", SELL, 7_810, 150),
        o("b7850", BUY, 7_850, 100),
        o("b7840", BUY, 7_840, 150),
        o("b7830-1", BUY, 7_830, 200, t=1),
        o("b7830-2", BUY, 7_830, 150, t=2),
        o("b7820", BUY, 7_820, 400),
        o("b7810", BUY, 7_810, 500),
        o("b7800", BUY, 7_800, 650),
    ]
    result = uncross(book(orders, reference=7_830))
    assert (result.price, result.volume) == (7_830, 600)
    assert fills_by_key(result) == {
        "b7850": 100,
        "b7840": 150,
        "b7830-1": 200,
        "b7830-2": 150,
        "s7810": 150,
        "s7820": 200,
        "s7830-1": 150,
        "s7830-2": 100,
    }
    assert all(fill.price == 7_830 for fill in result.fills)
    assert sum(f.quantity for f in result.fills if f.side == BUY) == sum(
        f.quantity for f in result.fills if f.side == SELL
    )
    assert (result.buy_quantity, result.sell_quantity, result.surplus) == (600, 750, -150)
    # the same result whatever the reference: 7,830 is the only maximum-volume price
    assert uncross(book(orders, reference=9_000)).price == 7_830


def krx_second_example(reference):
    return book(
        [
            o("b7850", BUY, 7_850, 200),
            o("b7840", BUY, 7_840, 100),
            o("s7810", SELL, 7_810, 100),
            o("s7800", SELL, 7_800, 200),
        ],
        reference=reference,
    )


def test_krx_example_tie_resolved_by_the_reference_price():
    """Four maximum-volume prices 7,810-7,840: the reference itself when it is one of them, else the nearest."""
    assert (A.expected(krx_second_example(7_820)).price, A.expected(krx_second_example(7_820)).volume) == (7_820, 300)
    assert A.expected(krx_second_example(7_850)).price == 7_840
    assert A.expected(krx_second_example(7_700)).price == 7_810
    assert A.expected(krx_second_example(7_830)).price == 7_830
    result = uncross(krx_second_example(7_820))
    assert fills_by_key(result) == {"b7850": 200, "b7840": 100, "s7810": 100, "s7800": 200}


def test_matching_condition_moves_the_price_to_the_surplus_side():
    """Buy 1,000 at 10,100 against sell 500 at 10,000: every price 10,000-10,100 executes 500, but below 10,100
    the better-priced buys would not fill in full: the price is 10,100 even with the reference at 10,000."""
    orders = [o("b", BUY, 10_100, 1_000), o("s", SELL, 10_000, 500)]
    result = uncross(book(orders, reference=10_000))
    assert (result.price, result.volume, result.surplus) == (10_100, 500, 500)
    assert fills_by_key(result) == {"b": 500, "s": 500}
    # without the matching condition, KRX's reference rule alone would pick the reference
    assert A.expected(book(orders, reference=10_000), tie_break=("reference",)).price == 10_000


def test_the_tie_break_order_is_explicit():
    """Valid maximum-volume prices 10,000 (no imbalance) and 10,010 (50 more offered); reference 10,020."""
    orders = [o("b", BUY, 10_020, 100), o("s1", SELL, 10_000, 100), o("s2", SELL, 10_010, 50)]
    b = book(orders, reference=10_020)
    assert A.expected(b).price == 10_010  # matching, then nearest the reference
    assert A.expected(b, tie_break=("matching", "imbalance", "reference")).price == 10_000
    assert A.expected(b, tie_break=("imbalance",)).price == 10_000
    assert A.expected(b, tie_break=()).price == 10_020  # the final rule alone: the highest max-volume price
    with pytest.raises(ValueError):
        A.expected(b, tie_break=("nearest",))


def test_surplus_step_without_the_matching_condition():
    orders = [o("b", BUY, 10_020, 200), o("s", SELL, 10_000, 100)]
    assert A.expected(book(orders, reference=10_000), tie_break=("surplus",)).price == 10_020
    sells = [o("b", BUY, 10_020, 100), o("s", SELL, 10_000, 200)]
    assert A.expected(book(sells, reference=10_020), tie_break=("surplus",)).price == 10_000
    assert A.expected(book(sells, reference=10_020)).price == 10_000  # the default (matching first) agrees


def test_partial_fill_at_the_clearing_price_by_time_priority_and_price_priority():
    orders = [
        o("b-late", BUY, 10_000, 300, t=5),
        o("b-early", BUY, 10_000, 300, t=1),
        o("b-better", BUY, 10_050, 100, t=9),
        o("s1", SELL, 9_950, 250, t=2),
        o("s2", SELL, 10_000, 250, t=3),
    ]
    result = uncross(book(orders, reference=10_000))
    assert (result.price, result.volume) == (10_000, 500)
    # price priority first (10,050 although it came last), then time: b-early in full, b-late partly
    assert fills_by_key(result) == {"b-better": 100, "b-early": 300, "b-late": 100, "s1": 250, "s2": 250}


def test_market_orders_fill_first_and_a_market_only_book_clears_at_the_reference():
    orders = [
        o("bm", BUY, None, 100, t=9),
        o("bl", BUY, 10_000, 100, t=1),
        o("sl", SELL, 10_000, 150, t=1),
    ]
    result = uncross(book(orders, reference=10_000))
    assert (result.price, result.volume) == (10_000, 150)
    assert fills_by_key(result) == {"bm": 100, "bl": 50, "sl": 150}
    market_only = uncross(book([o("bm", BUY, None, 100), o("sm", SELL, None, 70)], reference=9_990, upper=12_980))
    # 70 cross at every price; the surplus of market buys takes the price to the upper limit (matching condition)
    assert (market_only.price, market_only.volume) == (12_980, 70)
    balanced = uncross(book([o("bm", BUY, None, 70), o("sm", SELL, None, 70)], reference=9_990))
    assert (balanced.price, balanced.volume) == (9_990, 70)
    assert fills_by_key(balanced) == {"bm": 70, "sm": 70}


def test_no_cross_and_one_side_empty():
    no_cross = book([o("b", BUY, 9_900, 100), o("s", SELL, 10_000, 100)], reference=9_950)
    assert uncross(no_cross) == A.Uncross(price=None, volume=0)
    assert A.expected(no_cross) == A.Expected(price=None, volume=0)
    only_buys = book([o("b", BUY, 9_900, 100), o("bm", BUY, None, 10)], reference=9_950)
    assert uncross(only_buys) == A.Uncross(price=None, volume=0)
    assert uncross(book([], reference=9_950)) == A.Uncross(price=None, volume=0)


def test_the_price_stays_in_the_band_and_on_the_grid():
    # reference above the band: the nearest valid price inside it
    orders = [o("b", BUY, 12_000, 100), o("s", SELL, 11_000, 100)]
    assert A.expected(book(orders, reference=20_000, upper=12_000)).price == 12_000
    # the grid: prices 19,990 (tick 10) to 20,050 (tick 50); the reference 20,000 is on both sides' grid
    grid = book([o("b", BUY, 20_050, 10), o("s", SELL, 19_990, 10)], reference=20_020, upper=26_000)
    price = A.expected(grid).price
    assert price in (20_000, 20_050)  # 20,020 is not a price on the 50-won grid above 20,000
    assert price == 20_000  # nearest to 20,020 on the grid


def test_fills_conserve_quantity_on_a_larger_book():
    orders = [o(f"b{i}", BUY, 10_000 + 10 * (i % 7), 10 + i, t=i) for i in range(40)]
    orders += [o(f"s{i}", SELL, 9_980 + 10 * (i % 9), 15 + i, t=i) for i in range(40)]
    orders += [o("bm", BUY, None, 33, t=99), o("sm", SELL, None, 44, t=99)]
    result = uncross(book(orders, reference=10_020))
    by_side = {BUY: 0, SELL: 0}
    for fill in result.fills:
        by_side[fill.side] += fill.quantity
        assert fill.price == result.price
    assert by_side == {BUY: result.volume, SELL: result.volume}
    assert result.volume == min(result.buy_quantity, result.sell_quantity)
    keyed = {order.key: order for order in orders}
    for fill in result.fills:
        order = keyed[fill.key]
        assert fill.quantity <= order.quantity
        if order.price is not None:
            assert order.price >= result.price if order.side == BUY else order.price <= result.price
    # at most one partially filled order per side
    for side in (BUY, SELL):
        partial = [f for f in result.fills if f.side == side and f.quantity < keyed[f.key].quantity]
        assert len(partial) <= 1


def test_bad_orders_and_books_are_refused():
    with pytest.raises(ValueError):
        AuctionOrder(key=1, side="hold", price=100, quantity=1)
    with pytest.raises(ValueError):
        AuctionOrder(key=1, side=BUY, price=100, quantity=0)
    with pytest.raises(ValueError):
        AuctionOrder(key=1, side=BUY, price=-5, quantity=1)
    with pytest.raises(ValueError):
        CallBook(orders=(), reference=100, lower=200, upper=100, on=ON)


def test_random_end_is_seeded_uniform_within_thirty_seconds():
    scheduled = datetime(2026, 3, 10, 9, 0, tzinfo=KST)
    ends = [A.random_end(scheduled, seed=7, key=("005930", i)) for i in range(200)]
    assert ends == [A.random_end(scheduled, seed=7, key=("005930", i)) for i in range(200)]
    assert all(scheduled <= end <= scheduled + timedelta(seconds=30) for end in ends)
    assert len(set(ends)) > 150
    extensions = sorted((end - scheduled).total_seconds() for end in ends)
    assert extensions[20] < 10 and extensions[-20] > 20  # spread over the whole range, not bunched
    assert A.random_end(scheduled, seed=8, key=("005930", 0)) != ends[0]
    assert A.random_end(scheduled, seed=7, key="x", max_seconds=0) == scheduled


def test_tie_break_setting(settings):
    settings.KRX_AUCTION_TIE_BREAK = "imbalance, reference"
    assert A.tie_break_setting() == ("imbalance", "reference")
    settings.KRX_AUCTION_TIE_BREAK = ""
    assert A.tie_break_setting() == A.DEFAULT_TIE_BREAK
