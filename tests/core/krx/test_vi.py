"""Volatility interruptions: both thresholds exactly at, just inside and just beyond, up and down; the closing
auction's thresholds; where each applies (opening auction, after-hours single price, NXT); the 2-minute call with
its random end; a new VI after one ends; the settings."""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction

import pytest

from apps.core.krx import phases as P
from apps.core.krx.calendar import KST
from apps.core.krx.vi import DOWN, DYNAMIC, STATIC, UP, ViRules, ViState, breaches, trigger_prices

T0 = datetime(2026, 3, 10, 10, 0, tzinfo=KST)


def state(**kw) -> ViState:
    kw.setdefault("code", "005930")
    kw.setdefault("static_reference", 10_000)
    return ViState(**kw)


def walk(vi: ViState, prices, phase=P.CONTINUOUS, start=T0):
    """Prints one second apart; returns the first VI they trigger (None if none)."""
    for i, price in enumerate(prices):
        event = vi.on_print(price, start + timedelta(seconds=i), phase)
        if event is not None:
            return event
    return None


# static VI, reference 10,000 (the previous close): approached in steps below the dynamic threshold
@pytest.mark.parametrize(
    ("last", "price", "fires", "direction"),
    [
        (10_990, 11_000, True, UP),  # exactly +10 %
        (10_990, 10_990, False, None),  # just inside (+9.9 %)
        (10_990, 11_010, True, UP),  # just beyond
        (9_010, 9_000, True, DOWN),  # exactly -10 %
        (9_010, 9_010, False, None),
        (9_010, 8_990, True, DOWN),
    ],
)
def test_static_vi_threshold(last, price, fires, direction):
    vi = state(kospi200=False)
    steps = [10_500, last] if last > 10_000 else [9_500, last]
    assert walk(vi, steps) is None
    event = vi.on_print(price, T0 + timedelta(minutes=1), P.CONTINUOUS)
    if not fires:
        assert event is None and vi.last_price == price
        return
    assert (event.kind, event.direction, event.reference, event.price) == (STATIC, direction, 10_000, price)
    assert vi.last_price == last  # the triggering trade did not happen


@pytest.mark.parametrize(
    ("kospi200", "price", "fires"),
    [
        (True, 10_300, True),  # exactly +3 %
        (True, 10_290, False),
        (True, 10_310, True),
        (True, 9_700, True),  # exactly -3 %
        (True, 9_710, False),
        (True, 9_690, True),
        (False, 10_600, True),  # exactly +6 %
        (False, 10_590, False),
        (False, 10_610, True),
        (False, 9_400, True),  # exactly -6 %
        (False, 9_410, False),
        (False, 9_390, True),
    ],
)
def test_dynamic_vi_threshold_from_the_preceding_trade(kospi200, price, fires):
    vi = state(kospi200=kospi200, static_reference=9_900)  # static reference away from the trade
    assert vi.on_print(10_000, T0, P.CONTINUOUS) is None
    event = vi.on_print(price, T0 + timedelta(seconds=1), P.CONTINUOUS)
    if not fires:
        assert event is None
        return
    assert (event.kind, event.reference, event.direction) == (DYNAMIC, 10_000, UP if price > 10_000 else DOWN)


@pytest.mark.parametrize(
    ("kospi200", "price", "fires"),
    [
        (True, 10_200, True),  # exactly +2 % in the closing auction
        (True, 10_190, False),
        (True, 9_800, True),
        (True, 9_810, False),
        (False, 10_400, True),  # exactly +4 %
        (False, 10_390, False),
        (False, 9_600, True),
        (False, 9_610, False),
    ],
)
def test_closing_auction_dynamic_thresholds(kospi200, price, fires):
    vi = state(kospi200=kospi200)
    assert vi.on_print(10_000, T0, P.CONTINUOUS) is None
    event = vi.on_print(price, T0.replace(hour=15, minute=30), P.CLOSING_AUCTION)
    assert (event is not None) == fires
    if fires:
        assert (event.kind, event.phase) == (DYNAMIC, P.CLOSING_AUCTION)
    else:
        assert vi.static_reference == price  # a single price becomes the static reference


def test_the_same_move_in_continuous_trading_does_not_fire_at_the_closing_threshold():
    vi = state(kospi200=True)
    vi.on_print(10_000, T0, P.CONTINUOUS)
    assert vi.on_print(10_250, T0 + timedelta(seconds=1), P.CONTINUOUS) is None  # 2.5 % < 3 %


def test_vi_lasts_two_minutes_plus_a_random_end_then_fires_again():
    vi = state(kospi200=True, seed=42)
    vi.on_print(10_000, T0, P.CONTINUOUS)
    first = vi.on_print(10_300, T0 + timedelta(seconds=1), P.CONTINUOUS)
    assert first is not None
    started = T0 + timedelta(seconds=1)
    assert started + timedelta(minutes=2) <= first.ends <= started + timedelta(minutes=2, seconds=30)
    assert vi.active(started) is first
    assert vi.active(first.ends - timedelta(microseconds=1)) is first
    assert vi.active(first.ends) is None
    # prints while the VI runs are ignored (no new VI, references unchanged)
    assert vi.on_print(11_000, started + timedelta(seconds=30), P.CONTINUOUS) is None
    assert vi.last_price == 10_000
    # the VI call's single price ends it and becomes both references
    assert vi.on_print(10_300, first.ends, P.VI_AUCTION) is None
    assert (vi.current, vi.static_reference, vi.last_price) == (None, 10_300, 10_300)
    assert vi.on_print(10_600, first.ends + timedelta(seconds=1), P.CONTINUOUS) is None  # +2.9 % from 10,300
    second = vi.on_print(10_950, first.ends + timedelta(seconds=2), P.CONTINUOUS)  # +3.3 % from 10,600
    assert second is not None and second.reference == 10_600 and vi.history == [first, second]
    # the random end is seeded: the same VI on a fresh state ends at the same time
    again = state(kospi200=True, seed=42)
    again.on_print(10_000, T0, P.CONTINUOUS)
    assert again.on_print(10_300, started, P.CONTINUOUS).ends == first.ends


def test_a_vi_that_ends_without_a_call_print_lets_trading_resume():
    vi = state(kospi200=False)
    vi.on_print(10_000, T0, P.CONTINUOUS)
    event = vi.on_print(10_600, T0 + timedelta(seconds=1), P.CONTINUOUS)
    later = event.ends + timedelta(seconds=1)
    assert vi.active(later) is None
    assert vi.on_print(10_100, later, P.CONTINUOUS) is None and vi.last_price == 10_100


def test_opening_auction_static_only_by_default():
    vi = state()
    open_at = T0.replace(hour=9, minute=0)
    event = vi.on_print(11_000, open_at, P.OPENING_AUCTION)
    assert event is not None and event.kind == STATIC and event.phase == P.OPENING_AUCTION
    quiet = state()
    assert quiet.on_print(10_900, open_at, P.OPENING_AUCTION) is None  # +9 %: no dynamic check at the open
    assert (quiet.static_reference, quiet.last_price) == (10_900, 10_900)
    off = state(rules=ViRules(static_in_opening_auction=False))
    assert off.on_print(11_000, open_at, P.OPENING_AUCTION) is None
    dynamic_on = state(rules=ViRules(dynamic_in_opening_auction=True))
    assert dynamic_on.on_print(10_600, open_at, P.OPENING_AUCTION).kind == DYNAMIC


def test_after_hours_single_price_dynamic_only_by_default():
    at = T0.replace(hour=16, minute=10)
    vi = state()
    vi.on_print(10_000, T0, P.CONTINUOUS)
    assert vi.on_print(10_600, at, P.AFTER_HOURS_SINGLE).kind == DYNAMIC
    # continuous trades up to 10,990 leave the static reference at the previous close (10,000); the first
    # after-hours call at 11,000 is +10 % from it but only +0.1 % from the last trade
    walked = state()
    assert walk(walked, [10_500, 10_990]) is None
    assert walked.on_print(11_000, at, P.AFTER_HOURS_SINGLE) is None  # no static VI
    assert walked.static_reference == 11_000  # a call's single price is the new static reference
    static_on = state(rules=ViRules(static_in_after_hours=True))
    assert walk(static_on, [10_500, 10_990]) is None
    assert static_on.on_print(11_000, at, P.AFTER_HOURS_SINGLE).kind == STATIC
    dynamic_off = state(rules=ViRules(dynamic_in_after_hours=False))
    dynamic_off.on_print(10_000, T0, P.CONTINUOUS)
    assert dynamic_off.on_print(10_600, at, P.AFTER_HOURS_SINGLE) is None


def test_no_vi_in_closing_price_sessions():
    vi = state()
    vi.on_print(10_000, T0, P.CONTINUOUS)
    assert vi.on_print(12_000, T0.replace(hour=15, minute=45), P.POST_CLOSE_PRICE) is None
    assert vi.on_print(12_000, T0.replace(hour=8, minute=35), P.PRE_CLOSE_PRICE) is None


def test_nxt_dynamic_only():
    vi = state(venue=P.NXT, kospi200=True)
    assert walk(vi, [10_200, 10_400, 10_600, 10_800, 11_000, 11_200]) is None  # 12 % from the close, 2 % steps
    assert vi.on_print(11_540, T0 + timedelta(minutes=1), P.NXT_AFTER).kind == DYNAMIC  # +3.04 %


def test_breaches_is_exact():
    assert breaches(10_300, 10_000, Fraction(3)) and not breaches(10_299, 10_000, Fraction(3))
    assert breaches(9_700, 10_000, Fraction(3)) and not breaches(9_701, 10_000, Fraction(3))
    assert breaches(11_000, 10_000, Fraction("10.0"))
    assert not breaches(11_000, 0, Fraction(10))
    assert trigger_prices(3_030, Fraction(10)) == (Fraction(3_333), Fraction(2_727))
    with pytest.raises(ValueError):
        state().on_print(0, T0, P.CONTINUOUS)


def test_rules_from_settings(settings):
    settings.VI_STATIC_PCT = 20.0
    settings.VI_DYNAMIC_KOSPI200_PCT = 2.5
    settings.VI_STATIC_IN_AFTER_HOURS = True
    rules = ViRules.from_settings()
    assert (rules.static_pct, rules.dynamic_kospi200_pct, rules.dynamic_other_pct) == (20, Fraction(5, 2), 6)
    assert rules.static_in_after_hours is True
    vi = state(kospi200=True, rules=rules)
    vi.on_print(10_000, T0, P.CONTINUOUS)
    assert vi.on_print(10_240, T0 + timedelta(seconds=1), P.CONTINUOUS) is None
    assert vi.on_print(10_500, T0 + timedelta(seconds=2), P.CONTINUOUS).kind == DYNAMIC
