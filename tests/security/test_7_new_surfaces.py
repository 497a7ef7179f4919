"""The rules of findings 1-3 on the surfaces added since: strategies and backtests, watchlists, notification
channels, portfolio exports, broker-linked orders, protective orders and stock search. Attacks: another user's
ids answer exactly what a missing id answers (API and pages) and change nothing; malformed and oversized input
is a coded 400; floods that cost a worker, a message to a third party, a live slot or the search index are
capped."""

from __future__ import annotations

import asyncio
import time

import pytest

from .conftest import api_for, make_stock

MISSING = 10**12  # a well-formed id no row has
PER_CONNECTION = 20


@pytest.fixture
def victims(db, victim, open_clock):
    """One row of every owned kind, all the victim's."""
    from apps.brokerage.models import BrokerOrder
    from apps.brokerage.services import broker_link_save
    from apps.notifications.services import channel_create
    from apps.strategies.services import backtest_create, strategy_create
    from apps.trading.accounts.services import paper_account_create, paper_account_ensure
    from apps.trading.orders.placement import order_place
    from apps.watchlists.services import watchlist_create

    make_stock("005930", rank=1)
    account = paper_account_ensure(user=victim)
    order = order_place(account=account, user=victim, code="005930", side="BUY", order_type="LIMIT", quantity=1,
                        limit_price=69_000)  # fmt: skip
    strategy = strategy_create(user=victim, data={"kind": "ma_cross", "codes": ["005930"], "capital": 1_000_000,
                                                  "account_id": account.pk})  # fmt: skip
    backtest = backtest_create(user=victim, data={"strategy_id": strategy.pk, "start": "2026-03-03",
                                                  "end": "2026-03-03"}, enqueue=False)  # fmt: skip
    linked = paper_account_create(user=victim, name="linked", initial_cash=1_000_000)
    link = broker_link_save(account=linked, env="paper", cano="12340001", product_code="01", hts_id="victim1",
                            app_key="PSvictimappkey0000", app_secret="victim-secret", daily_value_limit=0)  # fmt: skip
    broker_order = BrokerOrder.objects.create(
        link=link, client_order_id="v1", code="005930", side="BUY", order_type="LIMIT", quantity=1, limit_price=1,
        env="paper", value_reserved=1, status="ACKNOWLEDGED", broker_order_no="77",
    )  # fmt: skip
    return {
        "account": account.pk,
        "order": order.pk,
        "strategy": strategy.pk,
        "backtest": backtest.pk,
        "watchlist": watchlist_create(user=victim, name="mine").pk,
        "channel": channel_create(user=victim, kind="browser", destination={}).pk,
        "broker_order": broker_order.pk,
    }


API_ROUTES = [
    ("get", "/api/strategies/{strategy}", None),
    ("patch", "/api/strategies/{strategy}", {"name": "taken"}),
    ("post", "/api/strategies/{strategy}/start", None),
    ("post", "/api/strategies/{strategy}/stop", None),
    ("get", "/api/strategies/{strategy}/signals", None),
    ("get", "/api/strategies/backtests/{backtest}", None),
    ("get", "/api/strategies/backtests/compare?ids={backtest}", None),
    ("get", "/api/watchlists/{watchlist}/", None),
    ("patch", "/api/watchlists/{watchlist}/", {"name": "taken"}),
    ("delete", "/api/watchlists/{watchlist}/", None),
    ("post", "/api/watchlists/{watchlist}/items/", {"code": "005930"}),
    ("delete", "/api/watchlists/{watchlist}/items/005930/", None),
    ("post", "/api/watchlists/{watchlist}/items/order", {"codes": []}),
    ("get", "/api/notifications/channels/{channel}", None),
    ("patch", "/api/notifications/channels/{channel}", {"enabled": False}),
    ("delete", "/api/notifications/channels/{channel}", None),
    ("post", "/api/notifications/channels/{channel}/send-code", None),
    ("post", "/api/notifications/channels/{channel}/verify", {"code": "123456"}),
    ("get", "/api/portfolio/accounts/{account}/analytics", None),
    ("post", "/api/portfolio/accounts/{account}/snapshots/rebuild", {}),
    ("get", "/api/portfolio/accounts/{account}/executions.csv", None),
    ("get", "/api/portfolio/accounts/{account}/realized-pnl.csv?year=2026", None),
    ("get", "/api/paper-trading/orders/{order}", None),
    ("delete", "/api/paper-trading/orders/{order}", None),
    ("get", "/api/paper-trading/orders?account={account}", None),
    ("get", "/api/paper-trading/orders/broker/{broker_order}", None),
    ("delete", "/api/paper-trading/orders/broker/{broker_order}", None),
    ("get", "/api/brokerage/orders/{broker_order}", None),
]


@pytest.mark.django_db
def test_another_users_ids_answer_what_a_missing_id_answers_on_every_new_api(attacker, victims):
    from apps.brokerage.models import BrokerOrder
    from apps.notifications.models import Channel
    from apps.strategies.models import Strategy
    from apps.trading.orders.models import Order
    from apps.watchlists.models import Watchlist

    client = api_for(attacker)
    missing = dict.fromkeys(victims, MISSING)
    for method, template, body in API_ROUTES:
        theirs = getattr(client, method)(template.format(**victims), body, format="json")
        absent = getattr(client, method)(template.format(**missing), body, format="json")
        assert theirs.status_code == absent.status_code == 404, (method, template, theirs.status_code)
        assert theirs.json()["error"]["code"] == absent.json()["error"]["code"], (method, template)

    assert Strategy.objects.get(pk=victims["strategy"]).name != "taken"
    assert Watchlist.objects.get(pk=victims["watchlist"]).name == "mine"
    assert Channel.objects.get(pk=victims["channel"]).enabled
    assert Order.objects.get(pk=victims["order"]).status == "PENDING"
    assert BrokerOrder.objects.get(pk=victims["broker_order"]).cancel_requested_at is None


PAGE_ROUTES = [
    ("get", "/strategies/{strategy}/"),
    ("get", "/strategies/{strategy}/trail"),
    ("post", "/strategies/{strategy}/start"),
    ("post", "/strategies/{strategy}/stop"),
    ("get", "/strategies/backtests/{backtest}/"),
    ("post", "/orders/{order}/cancel/"),
]


@pytest.mark.django_db
def test_another_users_ids_on_the_new_pages_are_404s(client, attacker, victims):
    from apps.strategies.models import Strategy, StrategyStatus

    client.force_login(attacker)
    missing = dict.fromkeys(victims, MISSING)
    for method, template in PAGE_ROUTES:
        theirs = getattr(client, method)(template.format(**victims))
        absent = getattr(client, method)(template.format(**missing))
        assert theirs.status_code == absent.status_code, template
        assert theirs.status_code in (302, 404), template  # a form's redirect carries the same notice
        assert theirs.get("Location") == absent.get("Location"), template
    for action in ("send-code", "verify", "settings", "delete"):
        response = client.post(f"/notifications/channels/{victims['channel']}/{action}", {"code": "123456"})
        assert response.status_code < 500
    assert Strategy.objects.get(pk=victims["strategy"]).status == StrategyStatus.DRAFT
    from apps.notifications.models import Channel

    assert Channel.objects.filter(pk=victims["channel"]).exists()


DEEP = "[" * 5000 + "]" * 5000
NUL = "a\x00b"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/strategies/", DEEP),
        ("post", "/api/strategies/", {"kind": NUL, "capital": 1}),
        ("post", "/api/strategies/", {"kind": "ma_cross", "capital": 10**30, "codes": ["005930"]}),
        ("post", "/api/strategies/", {"kind": "ma_cross", "capital": 1, "codes": ["005930"] * 10_000}),
        ("post", "/api/strategies/", {"kind": "ma_cross", "capital": 1, "params": {"fast": 10**30}}),
        ("post", "/api/strategies/", {"kind": "x" * 100_000, "capital": 1}),
        ("post", "/api/strategies/backtests", DEEP),
        (
            "post",
            "/api/strategies/backtests",
            {"kind": "ma_cross", "codes": ["005930"], "start": "2026-02-30", "end": "2026-03-03"},
        ),
        (
            "post",
            "/api/strategies/backtests",
            {"kind": "ma_cross", "codes": ["005930"], "start": "0001-01-01", "end": "9999-12-31"},
        ),
        ("post", "/api/strategies/backtests", {"strategy_id": 2**70, "start": "2026-03-03", "end": "2026-03-03"}),
        ("post", "/api/watchlists/", {"name": NUL}),
        ("post", "/api/watchlists/", {"name": "x" * 100_000}),
        ("post", "/api/watchlists/order", {"ids": [2**70, -1, "x"]}),
        ("post", "/api/notifications/channels", DEEP),
        ("post", "/api/notifications/channels", {"kind": "email", "destination": {"address": "a\x00@b.kr"}}),
        ("post", "/api/notifications/channels", {"kind": "slack", "destination": {"webhook_url": "x" * 100_000}}),
        ("post", "/api/notifications/channels", {"kind": "browser", "destination": {}, "events": ["x"] * 10_000}),
        (
            "post",
            "/api/brokerage/orders",
            {"code": NUL, "side": "BUY", "order_type": "LIMIT", "quantity": 1, "client_order_id": "a"},
        ),
        (
            "post",
            "/api/brokerage/orders",
            {"code": "005930", "side": "BUY", "order_type": "LIMIT", "quantity": 10**19, "client_order_id": "a"},
        ),
        (
            "post",
            "/api/paper-trading/orders",
            {"code": "005930", "side": "SELL", "quantity": 1, "trigger_type": "STOP", "trigger_price": 2**70},
        ),
        (
            "post",
            "/api/paper-trading/orders",
            {
                "code": "005930",
                "side": "BUY",
                "order_type": "LIMIT",
                "quantity": 1,
                "limit_price": 69_000,
                "take_profit_price": 2**70,
                "stop_loss_price": 65_000,
            },
        ),
        (
            "post",
            "/api/paper-trading/orders",
            {"code": "005930", "side": "BUY", "quantity": 1, "trigger_type": "TRAILING_STOP", "trail_percent": "-1e9"},
        ),
        (
            "post",
            "/api/paper-trading/orders",
            {"code": "005930", "side": "BUY", "quantity": 1, "trigger_type": "STOP", "trigger_price": NUL},
        ),
    ],
)
def test_malformed_and_oversized_input_to_the_new_apis_is_a_coded_400(attacker, victims, method, path, body):
    client = api_for(attacker)
    if isinstance(body, str):
        response = getattr(client, method)(path, body, content_type="application/json")
    else:
        response = getattr(client, method)(path, body, format="json")

    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert response.json()["error"]["code"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/api/marketdata/stocks/search?q=%00",
        "/api/marketdata/stocks/search?q=" + "a" * 5000,
        "/api/marketdata/stocks/search?q=sam&limit=99999999999999999999",
        "/api/portfolio/accounts/{account}/analytics?start=2026-13-45",
        "/api/portfolio/accounts/{account}/realized-pnl.csv?year=99999",
        "/api/portfolio/accounts/{account}/executions.csv?start=%00",
        "/api/strategies/backtests/compare?ids=" + ",".join(["x"] * 5000),
    ],
)
def test_malformed_queries_to_the_new_apis_are_coded_4xx(victim, victims, url):
    response = api_for(victim).get(url.format(**victims))

    assert response.status_code in (400, 404), (url[:80], response.status_code)
    assert response.json()["error"]["code"]


# --- floods -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_queueing_backtests_is_capped_per_user(attacker, victims, settings, django_capture_on_commit_callbacks):
    from apps.strategies.models import Backtest

    settings.STRATEGY_BACKTESTS_ACTIVE_MAX = 3
    client = api_for(attacker)
    body = {"kind": "ma_cross", "codes": ["005930"], "start": "2023-03-03", "end": "2026-03-03", "capital": 10**7}

    with django_capture_on_commit_callbacks(execute=False):  # left queued: no worker picks them up here
        answers = [client.post("/api/strategies/backtests", body, format="json") for _ in range(6)]
        statuses = [a.status_code for a in answers]
        page = client.post("/strategies/backtests/create", body)

    assert statuses == [201, 201, 201, 429, 429, 429], answers[0].content
    assert client.post("/api/strategies/backtests", body, format="json").json()["error"]["code"] == (
        "too_many_backtests"
    )
    assert page.status_code == 302  # the page form says so and queues nothing
    assert Backtest.objects.filter(user=attacker).count() == 3
    Backtest.objects.filter(user=attacker).update(status="done")
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post("/api/strategies/backtests", body, format="json").status_code == 201


@pytest.mark.django_db
def test_verification_codes_are_capped_per_user_across_channels(attacker, settings, monkeypatch):
    """Deleting and re-adding a channel to an outside address gives no fresh allowance of messages."""
    from apps.notifications import services
    from apps.notifications.models import Channel

    sent: list[str] = []
    monkeypatch.setattr(services, "_send", lambda channel, **kw: sent.append(channel.label))
    settings.NOTIFICATIONS_VERIFY_RATE_PER_HOUR = 3
    client = api_for(attacker)
    answers = []
    for _ in range(6):
        created = client.post(
            "/api/notifications/channels",
            {"kind": "email", "destination": {"address": "someone@example.com"}},
            format="json",
        )
        assert created.status_code == 201, created.content  # fmt: skip
        channel_id = created.json()["id"]
        answers.append(client.post(f"/api/notifications/channels/{channel_id}/send-code").status_code)
        client.delete(f"/api/notifications/channels/{channel_id}")

    assert answers == [200, 200, 200, 429, 429, 429]
    assert len(sent) == 3
    assert not Channel.objects.filter(owner=attacker).exists()


@pytest.mark.django_db
def test_stock_search_is_throttled_per_user(attacker, victim, settings):
    make_stock("005930", rank=1)
    settings.API_SEARCH_RATE = "5/min"
    flood, other = api_for(attacker), api_for(victim)

    statuses = [flood.get("/api/marketdata/stocks/search", {"q": "stock"}).status_code for _ in range(8)]

    assert statuses == [200] * 5 + [429] * 3
    assert flood.get("/api/marketdata/stocks/search", {"q": "stock"}).json()["error"]["code"] == "throttled"
    assert other.get("/api/marketdata/stocks/search", {"q": "stock"}).status_code == 200


@pytest.mark.django_db
def test_one_users_running_strategies_leave_another_users_order_a_live_slot(attacker, victim, open_clock, clean_redis):
    """Strategies watch up to STRATEGY_MAX_CODES stocks each, and a user may run many: their stocks count in the
    owner's fair share of live slots, as open orders do, not ahead of everyone."""
    from apps.live.feed.demand import plan
    from apps.strategies.services import strategy_create, strategy_start
    from apps.trading.accounts.services import paper_account_ensure
    from apps.trading.orders.demand import order_demand_sync
    from apps.trading.orders.placement import order_place

    codes = [make_stock(f"{i:06d}").code for i in range(40)]
    wanted = make_stock("000099").code
    account = paper_account_ensure(user=attacker)
    for chunk in (codes[:20], codes[20:]):
        strategy = strategy_create(user=attacker, data={"kind": "ma_cross", "codes": chunk, "capital": 1_000_000,
                                                        "account_id": account.pk})  # fmt: skip
        strategy_start(strategy=strategy)
    order_place(account=paper_account_ensure(user=victim), user=victim, code=wanted, side="BUY",
                order_type="LIMIT", quantity=1, limit_price=69_000)  # fmt: skip
    order_demand_sync()

    demand = asyncio.run(_read())
    live = plan(demand, now=time.time(), grace=30, per_connection=PER_CONNECTION)

    assert wanted in live
    assert set(demand.order_users[str(attacker.pk)]) == set(codes)  # the strategies' stocks are the attacker's


async def _read():
    import redis.asyncio as aioredis
    from django.conf import settings

    from apps.live.feed.demand import read_demand

    client = aioredis.Redis.from_url(settings.REDIS_URL)
    try:
        return await read_demand(client, now=time.time(), watchlist=[], grace=30)
    finally:
        await client.aclose()


# --- admin ----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_cannot_move_a_strategy_to_another_account_nor_delete_broker_orders(admin_client, attacker, victims):
    from apps.brokerage.models import BrokerOrder
    from apps.strategies.models import Strategy, StrategyStatus
    from apps.trading.accounts.services import paper_account_ensure

    theirs = paper_account_ensure(user=attacker)
    strategy_id, order_id = victims["strategy"], victims["broker_order"]

    admin_client.post(
        f"/admin/strategies/strategy/{strategy_id}/change/",
        {"user": attacker.pk, "account": theirs.pk, "status": StrategyStatus.RUNNING, "name": "moved",
         "kind": "ma_cross", "capital": 1, "params": "{}", "codes": '["005930"]'},
    )  # fmt: skip
    changelist = admin_client.get("/admin/strategies/strategy/").content.decode()
    deleted = admin_client.post(f"/admin/strategies/strategy/{strategy_id}/delete/", {"post": "yes"})
    order_deleted = admin_client.post(f"/admin/brokerage/brokerorder/{order_id}/delete/", {"post": "yes"})
    bulk = admin_client.post("/admin/brokerage/brokerorder/",
                             {"action": "delete_selected", "_selected_action": [order_id], "post": "yes"})  # fmt: skip

    strategy = Strategy.objects.get(pk=strategy_id)
    assert (strategy.user_id, strategy.account_id, strategy.status) != (attacker.pk, theirs.pk, "running")
    assert strategy.account.user_id == strategy.user_id
    assert strategy.status == StrategyStatus.DRAFT
    assert 'value="delete_selected"' not in changelist
    assert (deleted.status_code, order_deleted.status_code) == (403, 403) and bulk.status_code in (200, 302)
    assert BrokerOrder.objects.filter(pk=order_id).exists()
    assert admin_client.get("/admin/strategies/strategy/add/").status_code == 403


@pytest.mark.django_db
def test_strategies_are_capped_per_user(attacker, victim, victims, settings):
    from apps.trading.accounts.services import paper_account_ensure

    settings.STRATEGY_MAX_PER_USER = 2
    client = api_for(attacker)
    body = {"kind": "ma_cross", "codes": ["005930"], "capital": 1_000_000,
            "account_id": paper_account_ensure(user=attacker).pk}  # fmt: skip

    answers = [client.post("/api/strategies/", body, format="json") for _ in range(3)]

    assert [a.status_code for a in answers] == [201, 201, 400]
    assert answers[2].json()["error"]["code"] == "too_many_strategies"
    mine = {**body, "account_id": victims["account"]}
    assert api_for(victim).post("/api/strategies/", mine, format="json").status_code == 201  # a cap of one's own


@pytest.mark.django_db
def test_the_search_page_shares_the_search_apis_count(attacker, victim, settings):
    """The no-JavaScript search page (``/stocks/?q=``) counts against the same ``API_SEARCH_RATE`` as the API: a
    flood through the page, the API or both is refused past the rate, with a message and no search, per user."""
    from django.test import Client

    make_stock("005930", rank=1)
    settings.API_SEARCH_RATE = "4/min"
    page, other = Client(), Client()
    page.force_login(attacker)
    other.force_login(victim)

    answers = [page.get("/stocks/", {"q": "005930"}).headers["Location"] for _ in range(3)]
    answers.append(str(api_for(attacker).get("/api/marketdata/stocks/search", {"q": "stock"}).status_code))
    refused = page.get("/stocks/", {"q": "005930"}, follow=True)

    assert answers == ["/stocks/005930/"] * 3 + ["200"]
    assert refused.redirect_chain[-1][0] == "/" and "[throttled]" in refused.content.decode()
    assert api_for(attacker).get("/api/marketdata/stocks/search", {"q": "stock"}).status_code == 429
    assert other.get("/stocks/", {"q": "005930"}).headers["Location"] == "/stocks/005930/"
