"""/metrics: who may read it, what an order, a fill, the feed and a broker call leave in it, and the Grafana
dashboard in docs/grafana/ showing only metrics that /metrics serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.trading.orders.conftest import open_market

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "hoga.json"
#: Defined by the real-time fan-out (apps/live/realtime/metrics.py); recorded by the web workers' consumer.
REALTIME_MODULE = "apps.live.realtime.metrics"


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = "scrape-secret-0123456789"
    return settings.METRICS_TOKEN


def _scrape(client, token=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get("/metrics", **headers)


def test_metrics_need_the_bearer_token_or_a_staff_session(client, metrics_token, django_user_model):
    assert _scrape(client).status_code == 401
    assert _scrape(client, "wrong-token").status_code == 401
    assert _scrape(client, metrics_token).status_code == 200
    trader = django_user_model.objects.create_user(username="trader2", password="pw-123456789")
    client.force_login(trader)
    assert _scrape(client).status_code == 401
    staff = django_user_model.objects.create_user(username="ops", password="pw-123456789", is_staff=True)
    client.force_login(staff)
    answer = _scrape(client)
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/plain")
    assert client.post("/metrics").status_code == 405


def test_without_a_token_configured_no_bearer_is_accepted(client, settings):
    settings.METRICS_TOKEN = ""
    assert _scrape(client, "").status_code == 401
    assert _scrape(client, "anything").status_code == 401


def _activity(user, monkeypatch, clean_redis, settings):
    """An order through the API, its fill by the real engine, a feed tick and book, a broker call's hook."""
    import datetime as dt

    from apps.core.metrics import observe_broker_call
    from apps.live.realtime import keys
    from apps.marketdata.models import DailyBar, Stock
    from apps.trading.orders.engine import FillEngine
    from tests.trading.orders.conftest import TRADING_DATE

    monkeypatch.setattr("apps.trading.orders.placement.market_now", lambda calendar: open_market())
    settings.PAPER_FILL_BLOCK_MS = 10
    settings.PAPER_FILL_EXPIRY_CHECK = 3600
    stock = Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    DailyBar.objects.create(
        stock=stock, date=TRADING_DATE - dt.timedelta(days=1), open=70_000, high=70_000, low=70_000, close=70_000,
        volume=1000, source="kis",
    )  # fmt: skip
    from apps.trading.accounts.services import paper_account_create

    paper_account_create(user=user, initial_cash=10_000_000)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    body = {"code": "005930", "side": "BUY", "order_type": "LIMIT", "quantity": 3, "limit_price": 70_000}
    assert api.post("/api/paper-trading/orders", body, format="json").status_code == 201

    engine = FillEngine(consumer="metrics-test")
    engine.reader.ensure_group()
    at = dt.datetime.combine(TRADING_DATE, dt.time(10, 0, 5), tzinfo=dt.timezone(dt.timedelta(hours=9)))
    clean_redis.xadd(
        keys.FILL_TICKS_STREAM,
        {"code": "005930", "price": 70_000, "volume": 5, "cum_volume": 0, "at": at.isoformat(), "ask": 70_000,
         "bid": 70_000},
    )  # fmt: skip
    assert engine.step() == 1

    from apps.core.metrics import FEED_BOOKS, FEED_TICKS

    FEED_TICKS.labels("kis").inc()  # what FeedHolder._on_event records per event (its wiring: test_feed_holder)
    FEED_BOOKS.labels("kis").inc()
    observe_broker_call("kis", "FHKST01010100", 0.004, "ok")  # the clients' hook (its wiring: tests/marketdata)


def _families(text: str) -> set[str]:
    return {re.sub(r"_total$", "", name) for name in re.findall(r"^# TYPE (\S+) ", text, re.M)}


def _samples(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_every_dashboard_panel_shows_a_metric_that_metrics_serves(
    client, user, metrics_token, monkeypatch, clean_redis, settings
):
    _activity(user, monkeypatch, clean_redis, settings)
    realtime_present = _realtime_loaded()  # as in a web process, whose fan-out hub loads it: before the scrape
    text = _scrape(client, metrics_token).content.decode()
    families, samples = _families(text), _samples(text)

    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"], "the dashboard has no panels"
    checked = 0
    for panel in dashboard["panels"]:
        names = {n for t in panel["targets"] for n in re.findall(r"\b(hoga_[a-z0-9_]+)", t["expr"])}
        assert names, f"panel {panel['title']!r} shows no hoga metric"
        for name in names:
            family = re.sub(r"_(bucket|count|sum|total)$", "", name)
            if family.startswith("hoga_realtime_") and not realtime_present:
                continue  # defined by the real-time fan-out module, absent from this build
            assert family in families, f"panel {panel['title']!r}: {family} is not in /metrics"
            if not family.startswith(("hoga_realtime_", "hoga_broker_shared_")):  # those are read at scrape time
                assert (
                    name in samples
                    or f"{family}_count" in samples
                    or f"{family}_total" in samples
                    or (family in samples)
                ), f"panel {panel['title']!r}: {name} has no sample after the activity"
            checked += 1
    assert checked >= 20


def _realtime_loaded() -> bool:
    import importlib.util

    if importlib.util.find_spec(REALTIME_MODULE) is None:
        return False
    importlib.import_module(REALTIME_MODULE)
    return True


def test_an_order_request_is_timed_by_its_route(api_client):
    from prometheus_client import REGISTRY

    labels = {"route": "api/paper-trading/orders/<int:order_id>", "method": "GET", "status": "404"}
    before = REGISTRY.get_sample_value("hoga_http_request_seconds_count", labels) or 0
    assert api_client.get("/api/paper-trading/orders/987654").status_code == 404
    assert REGISTRY.get_sample_value("hoga_http_request_seconds_count", labels) == before + 1
