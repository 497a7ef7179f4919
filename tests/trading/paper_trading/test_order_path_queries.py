"""The order path's database work: a placement through the API with a real token costs a fixed, small number
of queries (the calendar, the token, the stock and the day's reference price are kept per process for a few
seconds; whether the account is broker-linked is read with the account), and the second order of a client costs
no more than its first. Counted, never timed."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.trading.orders.conftest import TRADING_DATE, open_market

pytestmark = pytest.mark.django_db

WARM_PLACEMENT_QUERIES = 2  # the account with its executor hint (a broker link?), the guarded insert


@pytest.fixture(autouse=True)
def _open_market(monkeypatch, clean_redis):
    monkeypatch.setattr("apps.trading.orders.placement.market_now", lambda calendar: open_market())


@pytest.fixture
def token_client(user):
    from apps.marketdata.models import DailyBar, Stock
    from apps.trading.accounts.services import paper_account_create

    stock = Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    DailyBar.objects.create(
        stock=stock, date=TRADING_DATE - dt.timedelta(days=1), open=70_000, high=70_000, low=70_000, close=70_000,
        volume=1000, source="kis",
    )  # fmt: skip
    paper_account_create(user=user, initial_cash=10_000_000)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def _place(client, price=69_900):
    body = {"code": "005930", "side": "BUY", "order_type": "LIMIT", "quantity": 1, "limit_price": price}
    return client.post("/api/paper-trading/orders", body, format="json")


def test_a_warm_placement_costs_a_fixed_handful_of_queries(token_client, django_assert_max_num_queries):
    assert _place(token_client).status_code == 201  # the first one fills the process caches

    with CaptureQueriesContext(connection) as queries:
        assert _place(token_client, 69_800).status_code == 201
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]  # the test's transaction
    assert len(statements) == WARM_PLACEMENT_QUERIES, statements
    assert statements[-1].startswith("WITH guard AS (UPDATE")
    # the same bound with pytest-django's counter (+2: the savepoint pair of the test transaction)
    with django_assert_max_num_queries(WARM_PLACEMENT_QUERIES + 2):
        assert _place(token_client, 69_700).status_code == 201


def test_a_cold_process_reads_the_calendar_and_the_token_once(token_client):
    from apps.core.process_cache import clear_process_caches

    clear_process_caches()
    with CaptureQueriesContext(connection) as cold:
        assert _place(token_client).status_code == 201
    with CaptureQueriesContext(connection) as warm:
        assert _place(token_client, 69_800).status_code == 201
    assert len(cold) - len(warm) >= 4  # token + user, calendar overrides + broker days, the stock


def test_a_revoked_token_is_refused_at_once_in_the_process_that_revoked_it(token_client, user):
    assert _place(token_client).status_code == 201
    Token.objects.filter(user=user).get().delete()

    assert _place(token_client, 69_800).status_code == 401


def test_a_deactivated_user_is_refused_at_once(token_client, user):
    assert _place(token_client).status_code == 201
    user.is_active = False
    user.save()

    assert _place(token_client, 69_800).status_code == 401
