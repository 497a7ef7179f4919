"""Kiwoom parsing from the reference's example messages (kiwoom-api.md §A2–§A7)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from apps.brokers.base import (
    KST,
    BrokerProtocolError,
    BrokerRateLimited,
    BrokerTokenRejected,
    ConditionAlert,
    ConditionHit,
    ConditionInfo,
    OrderBook,
    PriceSign,
    Tick,
    TradeSide,
    UnknownSymbol,
)
from apps.brokers.kiwoom import parsing
from apps.brokers.kiwoom.client import classify
from apps.brokers.kiwoom.ws import condition_request, reg_message, remove_message

RECEIVED = dt.datetime(2025, 9, 10, 9, 30, 13, tzinfo=KST)


def test_signed_prices_and_padded_numbers():
    assert parsing.parse_signed_price("+61300") == (61300, 1)
    assert parsing.parse_signed_price("-78800") == (78800, -1)
    assert parsing.parse_signed_price("61300") == (61300, 0)
    assert parsing.parse_price("-0") == 0
    assert parsing.parse_int("+600") == 600 and parsing.parse_int("-600") == -600
    assert parsing.parse_rate("+0.16") == Decimal("0.16")
    assert parsing.parse_account_number("000000000017534") == 17534
    assert parsing.parse_account_number("-00000000000084") == -84
    assert parsing.parse_int("000000260000") == 260000
    assert parsing.parse_account_number("000000002.98") == Decimal("2.98")
    with pytest.raises(BrokerProtocolError):
        parsing.parse_int("12a")


def test_code_forms():
    assert parsing.strip_code("A005930") == "005930"
    assert parsing.strip_code("005930_AL") == "005930"
    assert parsing.strip_code("000660_NX") == "000660"
    assert parsing.strip_code(" 079650 ") == "079650"
    with pytest.raises(BrokerProtocolError):
        parsing.strip_code("SAMSUNG")
    with pytest.raises(UnknownSymbol):
        parsing.normalize_code("12345")


def test_error_codes_in_rest_and_ws_messages():
    assert parsing.error_code("인증에 실패했습니다[8005:Token이 유효하지 않습니다]") == "8005"
    assert (
        parsing.error_code("허용된 요청 개수를 초과하였습니다[1700:허용된 요청 개수를 초과하였습니다. API ID=kt00001]")
        == "1700"
    )
    assert parsing.error_code("LOGIN failed CODE=8005 invalid token") == "8005"
    assert parsing.error_code("정상적으로 처리되었습니다") == ""


def test_classify_rate_limit_on_200_and_429_and_token_codes():
    body = {"return_code": 5, "return_msg": "허용된 요청 개수를 초과하였습니다[1700:허용된 요청 개수를 초과하였습니다]"}
    assert isinstance(classify(200, body), BrokerRateLimited)
    assert isinstance(classify(429, body), BrokerRateLimited)
    expired = classify(200, {"return_code": 3, "return_msg": "인증에 실패했습니다[8005:Token이 유효하지 않습니다]"})
    assert isinstance(expired, BrokerTokenRejected) and expired.code == "8005"
    assert isinstance(classify(200, {"return_code": 2, "return_msg": "[1902:종목 정보가 없습니다]"}), UnknownSymbol)
    batch = classify(200, {"return_code": 5, "return_msg": "허용된 요청 개수를 초과하였습니다[1634:...]"})
    assert not isinstance(batch, BrokerRateLimited) and batch is not None and batch.code == "1634"
    assert classify(200, {"return_code": 0, "return_msg": "정상적으로 처리되었습니다"}) is None


def test_token_response():
    now = dt.datetime(2025, 3, 11, 8, 41, 5, tzinfo=KST)
    token = parsing.parse_token(
        {"expires_dt": "20250312084105", "token_type": "Bearer", "token": "Qm3xT", "return_code": 0}, now=now
    )
    assert token.token == "Qm3xT" and token.expires_at == dt.datetime(2025, 3, 12, 8, 41, 5, tzinfo=KST)
    assert "Qm3xT" not in repr(token)
    with pytest.raises(BrokerProtocolError):
        parsing.parse_token({"expires_dt": "20250312084105", "token_type": "mac", "token": "x"}, now=now)


def test_daily_rows_example():
    body = {
        "stk_cd": "005930",
        "stk_dt_pole_chart_qry": [
            {"cur_prc": "71200", "trde_qty": "10234567", "trde_prica": "728911", "dt": "20250910",
             "open_pric": "70600", "high_pric": "71500", "low_pric": "70400", "pred_pre": "+700",
             "pred_pre_sig": "2", "trde_tern_rt": "+0.17"},
        ],
        "return_code": 0,
    }  # fmt: skip
    [bar] = parsing.parse_daily_rows("005930", parsing.rows_of(body, "stk_dt_pole_chart_qry"))
    assert (bar.date, bar.open, bar.high, bar.low, bar.close) == (dt.date(2025, 9, 10), 70600, 71500, 70400, 71200)
    assert bar.volume == 10234567 and bar.trade_value == 728911 * 1_000_000
    assert bar.change == 700 and bar.sign is PriceSign.UP


def test_minute_rows_are_signed():
    rows = [{"cur_prc": "-78800", "trde_qty": "1200", "cntr_tm": "20250910093000", "open_pric": "-78900",
             "high_pric": "+79100", "low_pric": "-78700", "acc_trde_qty": "50000", "pred_pre": "-200",
             "pred_pre_sig": "5"}]  # fmt: skip
    [bar] = parsing.parse_minute_rows("005930", rows)
    assert bar.at == dt.datetime(2025, 9, 10, 9, 30, tzinfo=KST)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (78900, 79100, 78700, 78800, 1200)


def test_real_0b_example_is_a_tick():
    values = {"20": "093012", "10": "-71500", "11": "-300", "12": "-0.42", "27": "-71600", "28": "-71500",
              "15": "+15", "13": "1234567", "16": "-71800", "17": "+72100", "18": "-71400", "25": "5"}  # fmt: skip
    frame = {"trnm": "REAL", "data": [{"type": "0B", "name": "주식체결", "item": "005930", "values": values}]}
    events, errors = parsing.parse_real(frame, received_at=RECEIVED)
    assert errors == []
    [tick] = events
    assert isinstance(tick, Tick)
    assert tick.code == "005930" and tick.at == dt.datetime(2025, 9, 10, 9, 30, 12, tzinfo=KST)
    assert (tick.price, tick.change, tick.sign, tick.change_rate) == (71500, -300, PriceSign.DOWN, Decimal("-0.42"))
    assert (tick.volume, tick.side, tick.cum_volume) == (15, TradeSide.BUY, 1234567)
    assert (tick.open, tick.high, tick.low, tick.ask1, tick.bid1) == (71800, 72100, 71400, 71600, 71500)


def test_real_0d_is_an_order_book_and_batched_entries_survive_a_bad_one():
    values = {"21": "093012", "121": "5000", "125": "7000", "13": "1234567"}
    for i in range(1, 11):
        values[str(40 + i)] = f"+{71500 + 100 * i}"
        values[str(60 + i)] = str(100 * i)
        values[str(50 + i)] = f"-{71500 - 100 * (i - 1)}" if i < 10 else "-0"
        values[str(70 + i)] = str(10 * i) if i < 10 else "0"
    frame = {"trnm": "REAL", "data": [
        {"type": "0D", "name": "주식호가잔량", "item": "005930_AL", "values": values},
        {"type": "0B", "item": "000660", "values": {"20": "99", "10": "+1"}},
        {"type": "0A", "item": "005930", "values": {}},
    ]}  # fmt: skip
    events, errors = parsing.parse_real(frame, received_at=RECEIVED)
    [book] = events
    assert isinstance(book, OrderBook) and book.code == "005930"
    assert book.asks[0] == (71600, 100) and book.asks[9] == (72500, 1000)
    assert book.bids[0] == (71500, 10) and book.bids[9] == (0, 0)
    assert (book.total_ask_qty, book.total_bid_qty, book.cum_volume) == (5000, 7000, 1234567)
    assert len(errors) == 1 and "0B" in errors[0]


def test_real_02_condition_alert():
    frame = {"trnm": "REAL", "data": [{"type": "02", "name": "조건검색", "item": "079650",
             "values": {"841": "3", "9001": "079650", "843": "D", "20": "100621", "907": "2"}},
             {"type": "02", "name": "조건검색", "item": "005930_AL",
              "values": {"841": "4", "9001": "A005930", "843": "I", "20": "100622"}}]}  # fmt: skip
    events, errors = parsing.parse_real(frame, received_at=RECEIVED)
    assert errors == []
    assert events == [
        ConditionAlert(seq="3", code="079650", kind="OUT", at=dt.datetime(2025, 9, 10, 10, 6, 21, tzinfo=KST),
                       received_at=RECEIVED),
        ConditionAlert(seq="4", code="005930", kind="IN", at=dt.datetime(2025, 9, 10, 10, 6, 22, tzinfo=KST),
                       received_at=RECEIVED),
    ]  # fmt: skip
    _, bad = parsing.parse_real(
        {
            "trnm": "REAL",
            "data": [{"type": "02", "values": {"841": "3", "9001": "079650", "843": "X", "20": "100621"}}],
        },
        received_at=RECEIVED,
    )
    assert len(bad) == 1


def test_condition_list_and_search_results():
    assert parsing.parse_condition_list(
        {"trnm": "CNSRLST", "return_code": 0, "data": [["0", "조건1"], ["1", "조건2"]]}
    ) == [ConditionInfo("0", "조건1"), ConditionInfo("1", "조건2")]
    assert parsing.parse_condition_list({"data": [{"seq": " 2 ", "name": "돌파"}]}) == [ConditionInfo("2", "돌파")]
    answer = {"trnm": "CNSRREQ", "seq": "2  ", "cont_yn": "N", "next_key": "", "return_code": 0,
              "data": [{"9001": "A000660", "302": "SK하이닉스", "10": "000201500", "25": "2", "11": "+00002500",
                        "12": "+00000126", "13": "003512044", "16": "000199000", "17": "000202000",
                        "18": "000198500"}]}  # fmt: skip
    assert parsing.parse_condition_hits(answer) == [
        ConditionHit(code="000660", name="SK하이닉스", price=201500, change_rate=Decimal("1.26"), volume=3512044)
    ]
    assert parsing.parse_condition_codes({"data": [{"jmcode": "A005930"}, {"jmcode": "A000660"}]}) == [
        "005930",
        "000660",
    ]


def test_request_messages_follow_the_reference():
    assert json.loads(reg_message(["005930", "000660_AL"], ["0B", "0D"])) == {
        "trnm": "REG", "grp_no": "1", "refresh": "1", "data": [{"item": ["005930", "000660_AL"], "type": ["0B", "0D"]}]
    }  # fmt: skip
    assert json.loads(remove_message(["000660_AL"], ["0D"])) == {
        "trnm": "REMOVE", "grp_no": "1", "data": [{"item": ["000660_AL"], "type": ["0D"]}]
    }  # fmt: skip
    assert json.loads(condition_request("4", search_type="0")) == {
        "trnm": "CNSRREQ", "seq": "4", "search_type": "0", "stex_tp": "K", "cont_yn": "N", "next_key": ""
    }  # fmt: skip
    assert json.loads(condition_request("4", search_type="1")) == {
        "trnm": "CNSRREQ", "seq": "4", "search_type": "1", "stex_tp": "K"
    }  # fmt: skip


def test_real_times_are_dated_by_the_market_clock_when_it_is_known():
    """A replayed session's trading date differs from the wall date; FID 20/21 carry only HHMMSS."""
    replay = dt.date(2026, 2, 20)
    frame = {"trnm": "REAL", "data": [
        {"type": "0B", "item": "005930", "values": {"20": "093012", "10": "+71500", "15": "+1", "13": "1"}},
        {"type": "0D", "item": "005930", "values": {"21": "093013"}},
        {"type": "02", "item": "005930", "values": {"841": "1", "9001": "005930", "843": "I", "20": "093014"}},
    ]}  # fmt: skip
    events, errors = parsing.parse_real(frame, received_at=RECEIVED, trade_date=replay)
    assert errors == []
    assert [e.at for e in events] == [dt.datetime(2026, 2, 20, 9, 30, second, tzinfo=KST) for second in (12, 13, 14)]
    assert all(e.received_at == RECEIVED for e in events)
