"""Chart studies against the maintained ``ta`` library (requirements/dev.txt) on a walk over the KRX tick grid: the same
numbers, bar for bar, including where each study has no value yet."""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest
import ta

from apps.marketdata import studies


def closes_and_volumes(n: int = 300, seed: int = 7) -> tuple[list[float], list[float]]:
    """A random walk on the KRX tick grid (100-won ticks), flat stretches included (RSI's no-loss case)."""
    rng = random.Random(seed)
    price, closes, volumes = 70_000, [], []
    for i in range(n):
        if not 40 <= i < 60:  # 20 unchanged closes: the averages of losses reach 0 there
            price = max(100, price + 100 * rng.choice([-3, -2, -1, 0, 1, 2, 3]))
        closes.append(float(price))
        volumes.append(float(rng.randint(1_000, 2_000_000)))
    return closes, volumes


def same(ours: list, theirs: pd.Series, name: str) -> None:
    assert len(ours) == len(theirs), name
    for i, (a, b) in enumerate(zip(ours, theirs.tolist(), strict=True)):
        if b is None or (isinstance(b, float) and math.isnan(b)):
            assert a is None, f"{name}[{i}]: {a} where ta has none"
        else:
            # within a thousandth of a won (pandas' rolling std carries ~1e-4 of float noise on flat stretches)
            assert a is not None and a == pytest.approx(b, rel=1e-9, abs=1e-3), f"{name}[{i}]: {a} != {b}"


def test_moving_averages_bollinger_and_volume_average_match_ta():
    closes, volumes = closes_and_volumes()
    close = pd.Series(closes)
    out = studies.compute([{"close": c, "volume": v} for c, v in zip(closes, volumes, strict=True)],
                          [*(f"ma{n}" for n in studies.MOVING_AVERAGES), "bb", "vma20"])  # fmt: skip

    for n in studies.MOVING_AVERAGES:
        same(out[f"ma{n}"], ta.trend.SMAIndicator(close, window=n).sma_indicator(), f"ma{n}")
    bands = ta.volatility.BollingerBands(close, window=20, window_dev=2)
    same(out["bb"]["middle"], bands.bollinger_mavg(), "bb middle")
    same(out["bb"]["upper"], bands.bollinger_hband(), "bb upper")
    same(out["bb"]["lower"], bands.bollinger_lband(), "bb lower")
    same(out["vma20"], ta.trend.SMAIndicator(pd.Series(volumes), window=20).sma_indicator(), "vma20")


def test_rsi_and_macd_match_ta():
    closes, _ = closes_and_volumes(seed=11)
    close = pd.Series(closes)
    out = studies.compute([{"close": c, "volume": 0} for c in closes], ["rsi", "macd"])

    same(out["rsi"], ta.momentum.RSIIndicator(close, window=14).rsi(), "rsi")
    indicator = ta.trend.MACD(close, window_slow=26, window_fast=12, window_sign=9)
    same(out["macd"]["macd"], indicator.macd(), "macd")
    same(out["macd"]["signal"], indicator.macd_signal(), "signal")
    same(out["macd"]["hist"], indicator.macd_diff(), "hist")
    assert out["rsi"][13] is not None and out["rsi"][12] is None
    assert out["macd"]["signal"][33] is not None and out["macd"]["signal"][32] is None


def test_a_flat_market_has_rsi_100_and_zero_width_bands():
    flat = [{"close": 50_000, "volume": 10}] * 30
    out = studies.compute(flat, ["rsi", "bb"])
    assert out["rsi"][-1] == 100.0
    assert out["bb"]["upper"][-1] == out["bb"]["lower"][-1] == 50_000


def test_too_few_bars_give_no_values_and_unknown_studies_are_refused():
    out = studies.compute([{"close": 1, "volume": 1}] * 3, ["ma5", "rsi", "macd"])
    assert out["ma5"] == [None] * 3 and out["rsi"] == [None] * 3 and out["macd"]["hist"] == [None] * 3
    assert studies.compute([], ["ma120", "bb"]) == {"ma120": [], "bb": {"upper": [], "middle": [], "lower": []}}
    with pytest.raises(ValueError, match="unknown study"):
        studies.compute([], ["ma7"])


# --- the API: computed from the bars the bars API serves; remembered per user -------------------------------


@pytest.fixture
def daily(db):
    import datetime as dt

    from apps.marketdata.models import DailyBar, Stock

    stock = Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    closes, volumes = closes_and_volumes(150, seed=3)
    day = dt.date(2025, 6, 2)
    for close, volume in zip(closes, volumes, strict=True):
        DailyBar.objects.create(stock=stock, date=day, open=int(close), high=int(close) + 100, low=int(close) - 100,
                                close=int(close), volume=int(volume), source="kis")  # fmt: skip
        day += dt.timedelta(days=1)
    return stock


def test_studies_are_computed_from_the_bars_the_api_serves(api_client, daily):
    query = {"code": "005930", "interval": "1d", "from": "2025-06-10", "to": "2025-10-01"}
    bars = api_client.get("/api/marketdata/bars", query).json()

    response = api_client.get("/api/marketdata/studies", {**query, "studies": "ma5,ma120,bb,rsi,macd,vma20"})

    assert response.status_code == 200
    body = response.json()
    assert body["time"] == [b["time"] for b in bars]
    close = pd.Series([float(b["close"]) for b in bars])
    expected = ta.trend.SMAIndicator(close, window=5).sma_indicator().round(4)
    assert body["studies"]["ma5"][4:] == expected.tolist()[4:] and body["studies"]["ma5"][:4] == [None] * 4
    assert body["studies"]["ma120"] == [None] * len(bars)  # fewer than 120 bars in the window
    assert set(body["studies"]["bb"]) == {"upper", "middle", "lower"}
    assert set(body["studies"]["macd"]) == {"macd", "signal", "hist"}
    rsi = ta.momentum.RSIIndicator(close, window=14).rsi()
    assert body["studies"]["rsi"][-1] == pytest.approx(rsi.iloc[-1], abs=1e-4)


@pytest.mark.parametrize(
    "params",
    [
        {"studies": ""},
        {"studies": "ma7"},
        {"studies": "ma5,,rsi,sma"},
        {"studies": "ma5," * 100},
        {"studies": "ma5", "code": "999999"},
        {"studies": "ma5", "interval": "2h"},
        {"studies": "ma5", "from": "2025-13-01"},
    ],
)
def test_bad_study_requests_are_coded_400s(api_client, daily, params):
    query = {"code": "005930", "interval": "1d", "from": "2025-06-10", "to": "2025-10-01", **params}

    response = api_client.get("/api/marketdata/studies", query)

    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid_studies", "invalid_bar_request")


def test_chart_studies_are_remembered_per_user(api_client, django_user_model):
    from rest_framework.test import APIClient

    assert api_client.get("/api/marketdata/chart-studies").json() == {"studies": ["ma5", "ma20", "ma60", "ma120"]}
    saved = api_client.put("/api/marketdata/chart-studies", {"studies": ["rsi", "ma20", "rsi", "bb"]}, format="json")
    assert saved.json() == {"studies": ["ma20", "bb", "rsi"]}  # the catalogue's order, once each
    assert api_client.get("/api/marketdata/chart-studies").json() == {"studies": ["ma20", "bb", "rsi"]}

    other = APIClient()
    other.force_authenticate(django_user_model.objects.create_user(username="o", password="o-pass-12345"))
    assert other.get("/api/marketdata/chart-studies").json()["studies"] == ["ma5", "ma20", "ma60", "ma120"]
    assert api_client.put("/api/marketdata/chart-studies", {"studies": []}, format="json").json() == {"studies": []}

    for body in [{"studies": ["ma7"]}, {"studies": "rsi"}, {"studies": ["x" * 50]}, {}, {"studies": [None]},
                 {"studies": ["ma5"] * 50}]:  # fmt: skip
        response = api_client.put("/api/marketdata/chart-studies", body, format="json")
        assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_studies"), body
    assert api_client.get("/api/marketdata/chart-studies").json() == {"studies": []}
