"""Pure parsing, tr_id and classification rules, checked against kis-api.md examples."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from apps.brokers.base import (
    KST,
    BrokerAuthError,
    BrokerBusinessError,
    BrokerProtocolError,
    BrokerRateLimited,
    BrokerTokenRateLimited,
    BrokerTokenRejected,
    BrokerTransientError,
    PriceSign,
    UnknownSymbol,
)
from apps.brokers.kis import parsing
from apps.brokers.kis.client import classify
from apps.brokers.kis.config import ImproperlyConfiguredBroker, KisConfig, tr_id_for
from apps.brokers.rest import backoff_delay

NOW = dt.datetime(2025, 1, 2, 10, 0, tzinfo=KST)


@pytest.mark.parametrize(
    ("real", "paper"),
    [
        ("TTTC8434R", "VTTC8434R"),
        ("CTSC9215R", "VTSC9215R"),
        ("TTTC0012U", "VTTC0012U"),
        ("JTTT1002U", "VTTT1002U"),
        ("FHKST01010100", "FHKST01010100"),
        ("FHPTJ04160001", "FHPTJ04160001"),
        ("CTCA0903R", "VTCA0903R"),
    ],
)
def test_paper_tr_id_rule(real, paper):
    assert tr_id_for("paper", real) == paper
    assert tr_id_for("real", real) == real


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("005930", "005930"),
        ("A005930", "005930"),
        (" a005930 ", "005930"),
        ("Q500001", "Q500001"),
        ("0088M0", "0088M0"),
    ],
)
def test_normalize_code(raw, code):
    assert parsing.normalize_code(raw) == code


@pytest.mark.parametrize("raw", ["", "5930", "ABCDEF", "00593O0", "B005930", "005930;"])
def test_normalize_code_rejects(raw):
    with pytest.raises(UnknownSymbol):
        parsing.normalize_code(raw)


def test_parse_int_and_decimal():
    assert parsing.parse_int("71500") == 71500
    assert parsing.parse_int("-500") == -500
    assert parsing.parse_int("+500") == 500
    assert parsing.parse_int("71500.00") == 71500
    assert parsing.parse_int("") == 0
    assert parsing.parse_int("246512345000") == 246512345000
    with pytest.raises(BrokerProtocolError):
        parsing.parse_int("71.5")
    with pytest.raises(BrokerProtocolError):
        parsing.parse_int("", default=None)
    assert parsing.parse_decimal("0.70") == Decimal("0.70")
    assert parsing.parse_decimal("") == 0
    with pytest.raises(BrokerProtocolError):
        parsing.parse_decimal("abc")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0000071500", 71500), (" 71500 ", 71500), ("71,500", 71500), ("0", 0), ("\u0661\u0662", 12)],
)
def test_parse_int_plain_digits_and_the_rest_agree(raw, expected):
    """Plain ASCII digits take a shortcut; padded, grouped or other-script digits the checked path, as before."""
    assert parsing.parse_int(raw) == expected


@pytest.mark.parametrize("raw", ["\u00b2", "1_000", "0x10", "12 3", "\uff11\uff12a"])
def test_parse_int_refuses_what_int_alone_would_take_or_misread(raw):
    with pytest.raises(BrokerProtocolError):
        parsing.parse_int(raw)


def test_parse_date_plain_and_refused():
    assert parsing.parse_date("20260220") == dt.date(2026, 2, 20)
    assert parsing.parse_date(" 20260220 ") == dt.date(2026, 2, 20)
    for bad in (
        "20260230",
        "20261301",
        "2026-02-20",
        "",
        "\u0662\u0660\u0662\u0666\u0660\u0662\u0662\u0660x",
    ):
        with pytest.raises(BrokerProtocolError):
            parsing.parse_date(bad)


@pytest.mark.parametrize(
    ("sign", "raw", "expected"),
    [
        ("1", "2900", 2900),
        ("2", "500", 500),
        ("3", "0", 0),
        ("4", "2900", -2900),
        ("5", "500", -500),
        ("5", "-500", -500),
    ],
)
def test_sign_codes(sign, raw, expected):
    parsed = parsing.parse_sign(sign)
    assert parsed == PriceSign(int(sign))
    assert parsing.signed(parsing.parse_int(raw), parsed) == expected


def test_unknown_sign_code():
    with pytest.raises(BrokerProtocolError):
        parsing.parse_sign("7")
    assert parsing.parse_sign("") is None


def _price_output(**overrides):
    out = {
        "stck_prpr": "71500",
        "prdy_vrss": "500",
        "prdy_vrss_sign": "5",
        "prdy_ctrt": "0.70",
        "acml_vol": "3456789",
        "acml_tr_pbmn": "246512345000",
        "stck_oprc": "71000",
        "stck_hgpr": "71800",
        "stck_lwpr": "70900",
        "stck_mxpr": "92300",
        "stck_llam": "49700",
        "stck_sdpr": "72000",
        "stck_shrn_iscd": "005930",
    }
    out.update(overrides)
    return out


def test_parse_quote():
    quote = parsing.parse_quote("005930", _price_output(), fetched_at=NOW)
    assert quote.price == 71500
    assert quote.change == -500
    assert quote.sign is PriceSign.DOWN
    assert quote.change_rate == Decimal("-0.70")
    assert (quote.volume, quote.trade_value) == (3456789, 246512345000)
    assert (quote.upper_limit, quote.lower_limit, quote.base_price) == (92300, 49700, 72000)
    assert quote.fetched_at.tzinfo is not None and quote.fetched_at.utcoffset() == dt.timedelta(hours=9)


def test_zeroed_quote_is_unknown_symbol():
    with pytest.raises(UnknownSymbol):
        parsing.parse_quote("999999", _price_output(stck_prpr="0"), fetched_at=NOW)
    with pytest.raises(UnknownSymbol):
        parsing.parse_quote("999999", {}, fetched_at=NOW)


def test_chart_rows_skip_empty_and_keep_order():
    rows = [
        {
            "stck_bsop_date": "20250103",
            "stck_clpr": "71500",
            "stck_oprc": "71000",
            "stck_hgpr": "71800",
            "stck_lwpr": "70900",
            "acml_vol": "100",
            "acml_tr_pbmn": "7150000",
            "prdy_vrss_sign": "2",
            "prdy_vrss": "500",
        },
        {},
        {"stck_bsop_date": ""},
        {
            "stck_bsop_date": "20250102",
            "stck_clpr": "71000",
            "stck_oprc": "71000",
            "stck_hgpr": "71000",
            "stck_lwpr": "71000",
            "acml_vol": "0",
            "acml_tr_pbmn": "0",
            "prdy_vrss_sign": "3",
            "prdy_vrss": "0",
        },
    ]
    bars = parsing.parse_chart_daily_rows("005930", rows)
    assert [b.date for b in bars] == [dt.date(2025, 1, 3), dt.date(2025, 1, 2)]
    assert bars[0].close == 71500 and bars[0].change == 500 and bars[0].trade_value == 7150000
    daily = parsing.parse_daily_price_rows("005930", rows)
    assert daily[0].trade_value is None


def test_minute_rows():
    rows = [
        {
            "stck_bsop_date": "20250102",
            "stck_cntg_hour": "093100",
            "stck_prpr": "71500",
            "stck_oprc": "71400",
            "stck_hgpr": "71600",
            "stck_lwpr": "71300",
            "cntg_vol": "1200",
            "acml_tr_pbmn": "85000000",
        },
        {},
    ]
    (bar,) = parsing.parse_minute_rows("005930", rows)
    assert bar.at == dt.datetime(2025, 1, 2, 9, 31, tzinfo=KST)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (71400, 71600, 71300, 71500, 1200)


def test_token_uses_token_expired_field_not_expires_in():
    token, expires = parsing.parse_token(
        {
            "access_token": "eyJ0eXAi...",
            "token_type": "Bearer",
            "expires_in": 86400,
            "access_token_token_expired": "2025-01-03 09:12:44",
        },
        now=NOW,
    )
    assert token == "eyJ0eXAi..."
    assert expires == dt.datetime(2025, 1, 3, 9, 12, 44, tzinfo=KST)
    _, fallback = parsing.parse_token({"access_token": "x", "expires_in": 60}, now=NOW)
    assert fallback == NOW + dt.timedelta(seconds=60)
    with pytest.raises(BrokerProtocolError):
        parsing.parse_token({"token_type": "Bearer"}, now=NOW)


def test_tr_cont():
    assert parsing.is_more("M") and parsing.is_more("F")
    assert not parsing.is_more("D") and not parsing.is_more("E") and not parsing.is_more("")


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (500, {"rt_cd": "1", "msg_cd": "EGW00201", "msg1": "초당 거래건수를 초과하였습니다."}, BrokerRateLimited),
        (500, {"rt_cd": "1", "msg_cd": "EGW00123", "msg1": "기간이 만료된 token 입니다."}, BrokerTokenRejected),
        (500, {"rt_cd": "1", "msg_cd": "EGW00121", "msg1": "유효하지 않은 token 입니다."}, BrokerTokenRejected),
        (
            403,
            {"error_code": "EGW00133", "error_description": "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)"},
            BrokerTokenRateLimited,
        ),
        (500, {"rt_cd": "1", "msg_cd": "EGW00103", "msg1": "유효하지 않은 AppKey입니다."}, BrokerAuthError),
        (502, None, BrokerTransientError),
        (404, None, BrokerBusinessError),
        (
            200,
            {"rt_cd": "1", "msg_cd": "OPSQ2002", "msg1": "ERROR INVALID INPUT [FID_INPUT_DATE_1]  "},
            BrokerBusinessError,
        ),
        (200, None, BrokerProtocolError),
    ],
)
def test_classify(status, body, kind):
    error = classify(status, body)
    assert type(error) is kind
    if body and body.get("msg_cd"):
        assert error.msg_cd == body["msg_cd"]
        assert error.msg1 == body["msg1"].strip()


def test_classify_success_and_transient_flags():
    assert classify(200, {"rt_cd": "0", "msg_cd": "20310000", "msg1": "모의투자 조회가 완료되었습니다.   "}) is None
    assert classify(200, {"access_token": "x"}) is None
    assert isinstance(classify(500, {"rt_cd": "1", "msg_cd": "EGW00201"}), BrokerTransientError)
    assert not isinstance(classify(200, {"rt_cd": "1", "msg_cd": "X"}), BrokerTransientError)


def test_backoff_is_exponential_with_bounded_jitter():
    for attempt, ceiling in [(1, 0.25), (2, 0.5), (3, 1.0), (10, 8.0)]:
        low = backoff_delay(attempt, base=0.25, cap=8.0, rng=lambda: 0.0)
        high = backoff_delay(attempt, base=0.25, cap=8.0, rng=lambda: 0.999999)
        assert low == pytest.approx(ceiling / 2)
        assert ceiling / 2 <= high < ceiling


def test_config_validation_and_secrets_not_in_repr():
    cfg = KisConfig(env="paper", rest_url="http://x", ws_url="ws://x", app_key="K" * 36, app_secret="S" * 180)
    assert "KKKK" not in repr(cfg) and "SSSS" not in repr(cfg)
    assert len(cfg.key_id) == 12 and cfg.scope == f"paper:{cfg.key_hash}"
    with pytest.raises(ImproperlyConfiguredBroker):
        KisConfig(env="live", rest_url="", ws_url="", app_key="k", app_secret="s")
    with pytest.raises(ImproperlyConfiguredBroker):
        cfg.with_overrides(max_retries=4)


def test_config_from_settings(settings):
    settings.MARKET_BROKER = "sandbox"
    settings.KIS_ENV = "paper"
    settings.KIS_APP_KEY = ""
    cfg = KisConfig.from_settings()
    assert cfg.rest_url == f"http://{settings.SANDBOX_HOST}:{settings.SANDBOX_PAPER_REST_PORT}"
    assert cfg.rate_limit == settings.KIS_PAPER_RATE_LIMIT
    from apps.core.demo_credentials import DEMO_PAPER_APP_KEY

    assert cfg.app_key == DEMO_PAPER_APP_KEY
    settings.MARKET_BROKER = "kis"
    settings.KIS_ENV = "real"
    with pytest.raises(ImproperlyConfiguredBroker):
        KisConfig.from_settings()
    settings.KIS_APP_KEY, settings.KIS_APP_SECRET = "k" * 36, "s" * 180
    cfg = KisConfig.from_settings()
    assert cfg.rest_url == "https://openapi.koreainvestment.com:9443"
    assert cfg.ws_url == "ws://ops.koreainvestment.com:21000"
    assert cfg.rate_limit == settings.KIS_REAL_RATE_LIMIT


def test_market_days_parse_yes_no_flags_strictly():
    from apps.brokers.base import BrokerProtocolError
    from apps.brokers.kis.parsing import parse_market_days

    row = {"bass_dt": "20260603", "wday_dvsn_cd": "04", "bzdy_yn": "N", "tr_day_yn": "N", "opnd_yn": "N",
           "sttl_day_yn": "N"}  # fmt: skip
    (day,) = parse_market_days([row, {}, {"bass_dt": " "}])
    assert (day.date.isoformat(), day.weekday_code, day.is_open, day.business_day) == ("2026-06-03", "04", False, False)
    for bad in ("", "X", "yes", None):
        with pytest.raises(BrokerProtocolError, match="opnd_yn"):
            parse_market_days([{**row, "opnd_yn": bad}])
    with pytest.raises(BrokerProtocolError, match="bass_dt"):
        parse_market_days([{**row, "bass_dt": "2026-06-03"}])
