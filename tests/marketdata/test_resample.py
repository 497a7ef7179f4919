import csv
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from django.conf import settings

from apps.core.krx.calendar import KST
from apps.marketdata.models import Stock
from apps.marketdata.resample import resample_minutes
from apps.marketdata.services import minute_bars_upsert
from apps.marketdata.sources.recorded import read_creon_minutes

RECORDED = Path(settings.HOGA_DATA_DIR or "/nonexistent") / "intraday" / "A005930_1min_2020-03-20.csv"
DAY = date(2020, 3, 20)
OPEN = datetime.combine(DAY, time(9, 0), tzinfo=KST)
CLOSE = datetime.combine(DAY, time(15, 30), tzinfo=KST)
needs_data = pytest.mark.skipif(not RECORDED.exists(), reason="recorded 1-minute file not available")


def _independent_5m(path: Path) -> list[tuple]:
    """Plain-Python aggregation straight from the file: bar-end label 09:01..09:05 -> the 09:00 bucket."""
    buckets: dict[datetime, list] = {}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            label = datetime.fromisoformat(row["time"]).replace(tzinfo=KST)
            if label.time() == time(15, 30):
                key = label
            else:
                minute_index = int((label - OPEN).total_seconds() // 60) - 1
                key = OPEN + timedelta(minutes=(minute_index // 5) * 5)
            o, h, lo, c, v = (int(float(row[k])) for k in ("open", "high", "low", "close", "volume"))
            if key not in buckets:
                buckets[key] = [o, h, lo, c, v]
            else:
                bar = buckets[key]
                bar[1], bar[2], bar[3], bar[4] = max(bar[1], h), min(bar[2], lo), c, bar[4] + v
    return [(k, *v) for k, v in sorted(buckets.items())]


@needs_data
def test_5m_bars_from_recorded_1m_day_match_an_independent_aggregation():
    minutes = read_creon_minutes(RECORDED, "005930")
    rows = [vars(m) for m in minutes]

    bars = resample_minutes(rows, 5, {DAY: OPEN}, {DAY: CLOSE})

    got = [(b["ts"], b["open"], b["high"], b["low"], b["close"], b["volume"]) for b in bars]
    assert len(minutes) == 381
    assert got == _independent_5m(RECORDED)
    assert len(got) == 77  # 76 continuous buckets 09:00..15:15 + the 15:30 closing print
    assert got[-1][0] == CLOSE
    assert sum(b[5] for b in got) == sum(m.volume for m in minutes)


def test_late_open_anchors_buckets_at_the_open_and_days_never_merge():
    day1, day2 = date(2026, 1, 2), date(2026, 1, 5)
    open1 = datetime.combine(day1, time(10, 0), tzinfo=KST)
    open2 = datetime.combine(day2, time(9, 0), tzinfo=KST)
    rows = [
        {"ts": open1 + timedelta(minutes=i), "open": 10 + i, "high": 20 + i, "low": 5, "close": 11 + i, "volume": 1}
        for i in range(4)
    ] + [{"ts": open2, "open": 100, "high": 100, "low": 100, "close": 100, "volume": 7}]
    closes = {
        day1: datetime.combine(day1, time(15, 30), tzinfo=KST),
        day2: datetime.combine(day2, time(15, 30), tzinfo=KST),
    }

    bars = resample_minutes(rows, 3, {day1: open1, day2: open2}, closes)

    assert [(b["ts"], b["open"], b["high"], b["close"], b["volume"]) for b in bars] == [
        (open1, 10, 22, 13, 3),
        (open1 + timedelta(minutes=3), 13, 23, 14, 1),
        (open2, 100, 100, 100, 7),
    ]


@needs_data
@pytest.mark.django_db
def test_bars_api_serves_resampled_minutes_and_validates_input(api_client):
    Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    minute_bars_upsert(source="kis", bars=read_creon_minutes(RECORDED, "005930"))

    ok = api_client.get(
        "/api/marketdata/bars", {"code": "005930", "interval": "60m", "from": "2020-03-20", "to": "2020-03-20"}
    )
    bad = api_client.get(
        "/api/marketdata/bars", {"code": "999999", "interval": "7m", "from": "2020-03-21", "to": "2020-03-20"}
    )

    assert ok.status_code == 200
    bars = ok.json()
    assert [b["time"][11:16] for b in bars] == ["09:00", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00", "15:30"]
    assert (bars[0]["open"], max(b["high"] for b in bars), min(b["low"] for b in bars), bars[-1]["close"]) == (
        44150,
        45500,
        43550,
        45400,
    )
    assert bad.status_code == 400
    assert set(bad.json()["error"]["fields"]) == {"code", "interval"}
