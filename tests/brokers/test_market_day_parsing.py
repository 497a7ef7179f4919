"""The KIS parser on the market day's frames: phase, venue, halt, VI reference, expected prices and market status,
read from frames the sandbox builds (its code tables and the parser's must agree), plus hostile records."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.brokers.base import KST, BrokerProtocolError, ExpectedTrade, MarketStatus, OrderBook, Tick
from apps.brokers.kis import realtime
from apps.core.krx import phases as P
from apps.sandbox import dayframes
from apps.sandbox.day import MKOP_CLS_BY_PHASE, NEW_MKOP_BY_PHASE, VI_CLS_CODES
from apps.sandbox.layouts import build_frame
from apps.sandbox.venues import VenueModel
from tests.sandbox.test_market_day import hms, make_day

AT = dt.datetime(2026, 2, 20, 10, 0, tzinfo=KST)


def test_code_tables_agree_with_the_sandbox() -> None:
    assert {code: phase for phase, code in NEW_MKOP_BY_PHASE.items()} == realtime.PHASE_BY_NEW_MKOP
    for phase, code in MKOP_CLS_BY_PHASE.items():
        if phase != P.PRE_CLOSE_PRICE:  # shares the opening auction's code (08:30-08:40 runs both)
            assert realtime.PHASE_BY_MKOP_CLS[code] == phase
    for kind, code in VI_CLS_CODES.items():
        assert realtime.VI_BY_CODE[code] == kind
    assert realtime.LAYOUTS["H0STOUP0"] == realtime.H0STCNT0_FIELDS


def test_unknown_phase_codes_fall_back_on_the_first_character() -> None:
    assert realtime.phase_of("29") == P.CONTINUOUS
    assert realtime.phase_of("19") == P.OPENING_AUCTION
    assert realtime.phase_of("39") == P.POST_CLOSE_PRICE
    assert realtime.phase_of("49") == P.AFTER_HOURS_SINGLE
    assert realtime.phase_of("19", P.NXT) == P.NXT_PRE and realtime.phase_of("39", P.NXT) == P.NXT_AFTER
    assert realtime.phase_of("") == P.CONTINUOUS


def test_vi_and_after_hours_frames_parse_to_ticks_with_phase_and_venue() -> None:
    day = make_day()
    day.force_vi(hms("10:00:00"), "dynamic")
    (ep,) = day.episodes()
    trades, books = dayframes.krx_records(day, ep.start_ms - 5_000, ep.end_ms + 5_000, trades=True, books=True)
    ticks = realtime.parse_frame(build_frame("H0STCNT0", trades), received_at=AT)
    assert all(isinstance(t, Tick) and t.venue == P.KRX and not t.halted for t in ticks)
    vi = [t for t in ticks if t.phase == P.VI_AUCTION]
    assert len(vi) == 1 and (vi[0].price, vi[0].volume, vi[0].vi_reference) == (ep.price, ep.volume, ep.price)
    assert {t.phase for t in ticks} == {P.CONTINUOUS, P.VI_AUCTION}
    parsed_books = realtime.parse_frame(build_frame("H0STASP0", books), received_at=AT)
    building = [b for b in parsed_books if isinstance(b, OrderBook) and b.expected_price]
    assert building and {b.phase for b in building} == {P.VI_AUCTION} and all(b.expected_qty > 0 for b in building)
    assert any(isinstance(b, OrderBook) and b.expected_price == 0 and b.phase == "" for b in parsed_books)
    status = realtime.parse_frame(
        build_frame("H0STMKO0", dayframes.mko0_records(day, ep.start_ms - 1, ep.end_ms)), received_at=AT
    )
    assert [(s.phase, s.vi) for s in status if isinstance(s, MarketStatus)] == [
        (P.VI_AUCTION, "dynamic"),
        (P.CONTINUOUS, ""),
    ]
    oup, oaa = dayframes.off_hours_records(day, hms("15:30:00"), hms("18:00:00"), trades=True, books=True)
    off = realtime.parse_frame(build_frame("H0STOUP0", oup), received_at=AT)
    assert {t.phase for t in off if isinstance(t, Tick)} == {P.POST_CLOSE_PRICE, P.AFTER_HOURS_SINGLE}
    call = next(t for t in off if isinstance(t, Tick) and t.phase == P.AFTER_HOURS_SINGLE)
    assert call.at.second == 0 and call.at.minute % 10 == 0 and call.venue == P.KRX
    oaa_books = realtime.parse_frame(build_frame("H0STOAA0", oaa), received_at=AT)
    assert {b.phase for b in oaa_books if isinstance(b, OrderBook)} == {P.AFTER_HOURS_SINGLE}
    anc = realtime.parse_frame(
        build_frame("H0STANC0", dayframes.anc0_records(day, hms("08:50:00"), hms("08:51:00"))), received_at=AT
    )
    assert anc and all(isinstance(e, ExpectedTrade) and e.phase == P.OPENING_AUCTION and e.price > 0 for e in anc)
    nxt = realtime.parse_frame(
        build_frame("H0NXCNT0", dayframes.nxt_records(day, VenueModel(), hms("15:39:59"), hms("16:00:00"))),
        received_at=AT,
    )
    assert nxt and all(isinstance(t, Tick) and t.venue == P.NXT and t.phase == P.NXT_AFTER for t in nxt)


def test_halted_flag_and_hostile_status_records() -> None:
    day = make_day()
    trades, _ = dayframes.krx_records(day, hms("09:59:00"), hms("10:00:00"), trades=True, books=False)
    record = list(trades[0])
    record[realtime.H0STCNT0_FIELDS.index("TRHT_YN")] = "Y"
    (tick,) = realtime.parse_frame(build_frame("H0STCNT0", [record]), received_at=AT)
    assert isinstance(tick, Tick) and tick.halted
    record[realtime.H0STCNT0_FIELDS.index("VI_STND_PRC")] = "abc"
    with pytest.raises(BrokerProtocolError):
        realtime.parse_frame(build_frame("H0STCNT0", [record]), received_at=AT)
    # A status record with codes Hoga does not know: phase "", VI of unknown kind read as dynamic, never an error.
    odd = ["005930", "Y", "", "999", "999", "", "", "55", "Z", "N", ""]
    (status,) = realtime.parse_frame("0|H0STMKO0|001|" + "^".join(odd), received_at=AT)
    assert isinstance(status, MarketStatus) and status.halted and status.phase == P.VI_AUCTION
    with pytest.raises(BrokerProtocolError):
        realtime.parse_frame("0|H0STMKO0|001|" + "^".join(odd[:10]), received_at=AT)
    with pytest.raises(BrokerProtocolError):
        realtime.parse_frame("0|H0STMKO0|002|" + "^".join(odd), received_at=AT)
