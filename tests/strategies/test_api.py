"""The strategies API and pages: ownership (another user's ids and malformed ids are 404s), coded 400s for bad
input, backtests queued as a Celery task with their progress and results stored and comparable, the admin
kill switch."""

from __future__ import annotations

import pytest

from apps.strategies.models import Backtest, BacktestStatus, Strategy, StrategyStatus

from .conftest import CLOSES, DAY, at, minute_prints

pytestmark = pytest.mark.django_db


def _create(api_client, account, **extra):
    body = {"kind": "ma_cross", "params": {"fast": 2, "slow": 4, "quantity": 10}, "codes": ["005930"],
            "account_id": account.pk, "capital": 5_000_000, **extra}  # fmt: skip
    return api_client.post("/api/strategies/", body, format="json")


def test_create_start_list_and_signals(api_client, account, stock):
    response = _create(api_client, account)
    assert response.status_code == 201, response.content
    strategy_id = response.json()["id"]
    assert response.json()["status"] == "draft"
    assert api_client.post(f"/api/strategies/{strategy_id}/start").json()["status"] == "running"
    assert [s["id"] for s in api_client.get("/api/strategies/").json()] == [strategy_id]
    assert api_client.get(f"/api/strategies/{strategy_id}/signals").json() == []
    kinds = {k["key"]: k for k in api_client.get("/api/strategies/kinds").json()}
    assert {"condition", "ma_cross", "breakout", "rsi"} <= set(kinds)
    assert kinds["condition"]["uses_condition"] is True
    patch = api_client.patch(f"/api/strategies/{strategy_id}", {"capital": 1}, format="json")
    assert patch.status_code == 409 and patch.json()["error"]["code"] == "strategy_not_startable"


@pytest.mark.parametrize(
    ("extra", "code", "field"),
    [
        ({"params": {"fast": "x"}}, "invalid_strategy_params", "fast"),
        ({"params": {"fast": 0}}, "invalid_strategy_params", "fast"),
        ({"params": {"nope": 1}}, "invalid_strategy_params", "nope"),
        ({"params": {"fast": 9, "slow": 4}}, "invalid_strategy_params", "fast"),
        (
            {"kind": "condition", "params": {"stop_loss_pct": 3}, "condition_id": 1},
            "invalid_strategy_params",
            "take_profit_pct",
        ),
        ({"params": [1, 2]}, "invalid_strategy_params", "params"),
        ({"kind": "rm -rf"}, "unknown_strategy_kind", "kind"),
        ({"codes": ["ABCDEFG"]}, "invalid_strategy", "codes"),
        ({"codes": ["999999"]}, "invalid_strategy", "codes"),
        ({"codes": []}, "invalid_strategy", "codes"),
        ({"capital": 0}, "invalid_strategy", "capital"),
        ({"capital": "many"}, "invalid_strategy", "capital"),
        ({"max_order_value": -1}, "invalid_strategy", "max_order_value"),
        ({"capital": 10**30}, "invalid_strategy", "capital"),
        ({"account_id": 999999}, "invalid_strategy", "account_id"),
        ({"kind": "condition", "params": {}, "condition_id": 999999}, "invalid_strategy", "condition_id"),
        ({"name": "x" * 500}, "invalid_strategy", "name"),
    ],
)
def test_malformed_strategy_input_is_a_coded_400(api_client, account, stock, extra, code, field):
    response = _create(api_client, account, **extra)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert field in response.json()["error"]["fields"] or field in response.content.decode()


def test_non_object_bodies_are_coded_400s(api_client):
    for body in ("[1, 2]", '"text"', "{broken"):
        response = api_client.post("/api/strategies/", body, content_type="application/json")
        assert response.status_code == 400
        assert response.json()["error"]["code"]


def test_other_users_strategies_and_backtests_are_404(api_client, account, stock, django_user_model):
    from rest_framework.test import APIClient

    strategy_id = _create(api_client, account).json()["id"]
    backtest = api_client.post("/api/strategies/backtests", {"strategy_id": strategy_id, "start": "2026-03-03",
                                                             "end": "2026-03-03"}, format="json")  # fmt: skip
    assert backtest.status_code == 201, backtest.content
    backtest_id = backtest.json()["id"]
    other = APIClient()
    other.force_authenticate(django_user_model.objects.create_user(username="other", password="pw-12345678"))
    for path in (
        f"/api/strategies/{strategy_id}",
        f"/api/strategies/{strategy_id}/signals",
        f"/api/strategies/backtests/{backtest_id}",
        f"/api/strategies/backtests/compare?ids={backtest_id}",
    ):
        assert other.get(path).status_code == 404, path
    for path in (f"/api/strategies/{strategy_id}/start", f"/api/strategies/{strategy_id}/stop"):
        assert other.post(path).status_code == 404
    assert other.patch(f"/api/strategies/{strategy_id}", {"name": "mine"}, format="json").status_code == 404
    assert (
        other.post(
            "/api/strategies/backtests",
            {"strategy_id": strategy_id, "start": "2026-03-03", "end": "2026-03-03"},
            format="json",
        ).status_code
        == 400
    )
    for bad in ("abc", "0", "-1", "99999999999999999999999"):
        assert api_client.get(f"/api/strategies/{bad}").status_code == 404
        assert api_client.get(f"/api/strategies/backtests/{bad}").status_code == 404
    assert Strategy.objects.get(pk=strategy_id).status == StrategyStatus.DRAFT
    client_pages = other.get(f"/strategies/{strategy_id}/")
    assert client_pages.status_code in (302, 404)


def test_other_users_pages_are_404(client, user, account, stock, django_user_model, api_client):
    strategy_id = _create(api_client, account).json()["id"]
    client.force_login(django_user_model.objects.create_user(username="other", password="pw-12345678"))
    assert client.get(f"/strategies/{strategy_id}/").status_code == 404
    assert client.get(f"/strategies/{strategy_id}/trail").status_code == 404
    assert client.post(f"/strategies/{strategy_id}/stop").status_code == 404
    assert client.post(f"/strategies/{strategy_id}/start").status_code == 404
    client.force_login(user)
    page = client.get(f"/strategies/{strategy_id}/")
    assert page.status_code == 200 and "감사 기록" in page.content.decode()
    assert client.get("/strategies/").status_code == 200
    bad = client.post("/strategies/create", {"kind": "ma_cross", "codes": "005930", "capital": "lots"})
    assert bad.status_code == 302 and Strategy.objects.count() == 1
    backtest = client.post("/strategies/backtests/create", {"strategy_id": strategy_id, "start": "2026-03-03",
                                                            "end": "2026-03-03"})  # fmt: skip
    assert backtest.status_code == 302
    backtest_id = Backtest.objects.get().pk
    assert client.get(f"/strategies/backtests/{backtest_id}/").status_code == 200
    assert client.get(f"/strategies/backtests/?ids={backtest_id}").status_code == 200
    client.force_login(django_user_model.objects.get(username="other"))
    assert client.get(f"/strategies/backtests/{backtest_id}/").status_code == 404


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"start": "2026-13-01"}, "start"),
        ({"end": "2026-01-01"}, "end"),
        ({"timeframe": "5m"}, "timeframe"),
        ({"start": "2020-01-01"}, "end"),
        ({"codes": ["005930"] * 0}, "codes"),
    ],
)
def test_malformed_backtests_are_coded_400s(api_client, stock, extra, field):
    body = {"kind": "ma_cross", "codes": ["005930"], "start": "2026-03-01", "end": "2026-03-03", "capital": 1_000_000,
            **extra}  # fmt: skip
    response = api_client.post("/api/strategies/backtests", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in ("invalid_backtest", "invalid_strategy")
    assert field in response.content.decode()


def test_a_backtest_runs_as_a_task_stores_results_and_compares(api_client, user, account, stock,
                                                             django_capture_on_commit_callbacks):  # fmt: skip
    from apps.live.feed.bars import BarBuilder, store_bars
    from apps.strategies.interface import TickEvent

    builder = BarBuilder()
    for code, price, volume, when in minute_prints(CLOSES, start=at(9, 1)):
        builder.add(TickEvent(code, when, price, volume, "0-0"))  # type: ignore[arg-type]
    store_bars(builder.drain())
    ids = []
    for slow in (4, 6):
        body = {"kind": "ma_cross", "params": {"fast": 2, "slow": slow, "quantity": 10}, "codes": ["005930"],
                "start": DAY.isoformat(), "end": DAY.isoformat(), "capital": 5_000_000}  # fmt: skip
        with django_capture_on_commit_callbacks(execute=True):
            response = api_client.post("/api/strategies/backtests", body, format="json")
        assert response.status_code == 201
        ids.append(response.json()["id"])
    first = Backtest.objects.get(pk=ids[0])
    assert first.status == BacktestStatus.DONE, first.error
    assert (first.progress, first.bars_total, first.bars_done) == (1.0, len(CLOSES), len(CLOSES))
    assert first.result["trades"] == 2 and len(first.result["signals"]) == 4
    assert first.result["equity"][0][0] == DAY.isoformat()
    assert first.task_id
    compared = api_client.get(f"/api/strategies/backtests/compare?ids={ids[0]},{ids[1]}").json()
    assert [row["id"] for row in compared] == ids
    assert compared[0]["figures"]["trades"] == 2 and compared[1]["figures"]["trades"] != 2 or compared[1][
        "params"]["slow"] == 6  # fmt: skip
    page = api_client.get(f"/api/strategies/backtests/{ids[0]}").json()
    assert page["status"] == "done" and page["result"]["sharpe"] is None or isinstance(page["result"]["sharpe"], float)


def test_the_admin_kill_switch_stops_and_cancels(admin_client, user, make_strategy, live, account):
    from apps.trading.orders.models import Order, OrderStatus

    from .test_live import _feed_until_signal

    strategy = make_strategy()
    _feed_until_signal(live, minute_prints(CLOSES, start=at(9, 1)))
    response = admin_client.post("/admin/strategies/strategy/", {"action": "kill_switch",
                                                                  "_selected_action": [strategy.pk]})  # fmt: skip
    assert response.status_code == 302
    strategy.refresh_from_db()
    assert (strategy.status, strategy.stopped_by) == (StrategyStatus.STOPPED, "admin")
    assert Order.objects.get(account=account).status == OrderStatus.CANCELLED


def test_operator_deployed_strategy_packages_add_kinds(api_client, settings, stock):
    from apps.strategies.registry import strategy_classes

    settings.HOGA_STRATEGY_PACKAGES = ["tests.strategies.test_risk"]
    strategy_classes.cache_clear()
    try:
        kinds = {k["key"] for k in api_client.get("/api/strategies/kinds").json()}
        assert "script" in kinds and "ma_cross" in kinds
    finally:
        settings.HOGA_STRATEGY_PACKAGES = []
        strategy_classes.cache_clear()
    assert "script" not in {k["key"] for k in api_client.get("/api/strategies/kinds").json()}


def test_the_strategy_page_shows_its_ledger_and_trail(client, user, make_strategy, live):
    strategy = make_strategy()
    live.feed(minute_prints(CLOSES[:8], start=at(9, 1)))
    client.force_login(user)
    page = client.get(f"/strategies/{strategy.pk}/").content.decode()
    assert 'id="ledger"' in page and "005930 × 10" in page
    trail = client.get(f"/strategies/{strategy.pk}/trail").content.decode()
    assert "fast_ma" in trail and "주문 접수됨" in trail and 'hx-trigger="every 2s"' in trail


def test_a_broker_linked_account_takes_no_strategy(api_client, account, stock, monkeypatch):
    from apps.strategies import services

    monkeypatch.setattr(services, "executor_for", lambda account: object())
    response = _create(api_client, account)
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["account_id"] == ["Linked to a broker."]
