"""The live clock: risk stops, the kill switch with open orders, a worker dying mid-run, and a condition alert
turning into exactly one order."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.strategies.live import LEASE_KEY, Runner, StrategyHost
from apps.strategies.models import Outcome, Signal, Strategy, StrategyStatus
from apps.trading.accounts.models import PaperAccount
from apps.trading.orders.models import Order, OrderStatus

from .conftest import CLOSES, Live, at, minute_prints, xadd

pytestmark = pytest.mark.django_db


def _feed_until_signal(live, prints):
    """Feed prints until the first signal; the rest are returned (its order is then still open)."""
    for i, item in enumerate(prints):
        code, price, volume, when = item
        xadd(live.redis, code, price, volume, when)
        live.host.step(block_ms=5)
        if Signal.objects.exists():
            return prints[i + 1 :]
        live.fills.step()
    raise AssertionError("no signal")


def test_a_risk_breach_stops_the_strategy_live_and_says_why(live, make_strategy, account):
    strategy = make_strategy(max_order_value=500_000)  # 10 shares x ~70,000 > 500,000
    live.feed(minute_prints(CLOSES[:8], start=at(9, 1)))
    strategy.refresh_from_db()
    assert strategy.status == StrategyStatus.STOPPED
    assert strategy.stopped_by == "risk" and strategy.stop_reason.startswith("max_order_value:")
    signal = Signal.objects.get(strategy=strategy)
    assert signal.outcome == Outcome.RISK_STOP and signal.order is None
    assert not Order.objects.filter(account=account).exists()
    live.feed(minute_prints(CLOSES[8:], start=at(9, 9)))
    assert Signal.objects.filter(strategy=strategy).count() == 1  # a stopped strategy is not run


def test_the_kill_switch_cancels_open_orders(live, make_strategy, account, api_client):
    strategy = make_strategy()
    _feed_until_signal(live, minute_prints(CLOSES, start=at(9, 1)))
    order = Order.objects.get(account=account)
    assert order.status == OrderStatus.PENDING and order.reserved_cash > 0
    response = api_client.post(f"/api/strategies/{strategy.pk}/stop", {"reason": "enough"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["cancelled_orders"] == [order.pk]
    order.refresh_from_db()
    strategy.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert PaperAccount.objects.get(pk=account.pk).reserved_cash == 0
    assert (strategy.status, strategy.stopped_by, strategy.stop_reason) == (StrategyStatus.STOPPED, "user", "enough")


class Killed(BaseException):
    """A worker killed mid-transaction (nothing after this point runs; the transaction never commits)."""


def test_a_worker_killed_mid_run_leaves_no_duplicate_and_no_lost_order(live, make_strategy, account, monkeypatch):
    strategy = make_strategy()
    prints = minute_prints(CLOSES, start=at(9, 1))
    real_save = Runner.save
    crashed = []

    def save_then_die(self):
        if not crashed and Order.objects.filter(account=account).exists():  # the first order is placed, uncommitted
            crashed.append(self.strategy.last_stream_id)
            raise Killed
        real_save(self)

    monkeypatch.setattr(Runner, "save", save_then_die)
    rest = prints
    with pytest.raises(Killed):
        for i, (code, price, volume, when) in enumerate(prints):
            rest = prints[i + 1 :]
            xadd(live.redis, code, price, volume, when)
            live.host.step(block_ms=5)
            live.fills.step()
    assert crashed and not Order.objects.exists()  # rolled back with the worker
    live.redis.delete(LEASE_KEY)  # the dead holder's lease expires
    survivor = Live(live.redis, holder="host-b")
    survivor.fills = live.fills
    survivor.feed(rest)

    signals = list(Signal.objects.filter(strategy=strategy).order_by("at"))
    orders = list(Order.objects.filter(account=account).order_by("id"))
    assert [s.outcome for s in signals] == [Outcome.PLACED] * 4
    assert [o.client_order_id for o in orders] == [s.client_order_id for s in signals]
    assert len({o.client_order_id for o in orders}) == 4
    assert all(o.status == OrderStatus.FILLED for o in orders)
    assert live.redis.xpending("hoga:rt:fill-ticks", "strategies")["pending"] == 0


def test_a_standby_host_does_nothing_while_the_lease_is_held(live, make_strategy):
    make_strategy()
    standby = StrategyHost(redis=live.redis, holder="standby")
    xadd(live.redis, "005930", 70_000, 1, at(9, 1))
    assert standby.step(block_ms=5) == 0
    assert live.host.step(block_ms=5) == 1


@pytest.fixture
def condition(user):
    from apps.brokers.base import ConditionInfo
    from apps.conditions.models import Condition
    from apps.conditions.services import broker_connection_link, conditions_sync

    broker_connection_link(user=user)
    conditions_sync(owner=user, infos=[ConditionInfo("0", "거래량 급증")])
    return Condition.objects.get(owner=user, seq="0")


def _alert(kind: str, when: dt.datetime):
    from apps.brokers.base import ConditionAlert
    from apps.conditions.services import condition_alert_record

    return condition_alert_record(alert=ConditionAlert("0", "005930", kind, when, when), price=70_000)


def test_a_condition_alert_becomes_exactly_one_bracket_order(live, user, account, stock, condition):
    from apps.strategies.services import strategy_create, strategy_start
    from apps.trading.orders.models import BracketLeg

    strategy = strategy_create(user=user, data={
        "kind": "condition", "condition_id": condition.pk, "account_id": account.pk, "capital": 5_000_000,
        "params": {"quantity": 0, "amount": 700_000, "stop_loss_pct": 3, "take_profit_pct": 5},
    })  # fmt: skip
    strategy = strategy_start(strategy=strategy)
    assert len(_alert("IN", at(10, 0, 1))) == 1
    live.host.step(block_ms=5)
    live.host.step(block_ms=5)  # the same event is not applied twice
    Strategy.objects.filter(pk=strategy.pk).update(last_event_id=0, state={})  # state lost: the event is replayed
    live.host.step(block_ms=5)

    entries = list(Order.objects.filter(account=account, parent__isnull=True))
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.side, entry.order_type, entry.quantity, entry.bracket_leg) == ("BUY", "MARKET", 10, BracketLeg.ENTRY)
    legs = {leg.bracket_leg: leg for leg in Order.objects.filter(parent=entry)}
    assert Order.objects.filter(account=account).count() == 3
    assert legs[BracketLeg.TAKE_PROFIT].trigger_price == 73_500  # 70,000 + 5 %
    assert legs[BracketLeg.STOP_LOSS].trigger_price == 67_900  # 70,000 - 3 %
    assert all(leg.quantity == 10 and leg.side == "SELL" for leg in legs.values())
    signal = Signal.objects.get(strategy=strategy)
    assert signal.order_id == entry.pk and signal.client_order_id == entry.client_order_id
    assert signal.inputs["kind"] == "IN" and signal.inputs["price"] == 70_000
    assert signal.reason == "bracket: take-profit 73500 / stop-loss 67900"

    live.feed([("005930", 70_100, 100, at(10, 0, 5))])  # fills the entry: the legs are armed
    entry.refresh_from_db()
    assert entry.status == OrderStatus.FILLED
    assert len(_alert("OUT", at(10, 3))) == 1
    live.host.step(block_ms=5)
    sell = Order.objects.get(account=account, side="SELL", parent__isnull=True)
    assert sell.quantity == 10
    assert all(leg.status == OrderStatus.CANCELLED for leg in Order.objects.filter(parent=entry))
    assert Signal.objects.filter(strategy=strategy).count() == 2


def test_a_fired_bracket_leg_closes_the_strategys_position(live, user, account, stock, condition):
    from apps.strategies.services import strategy_create, strategy_start

    strategy = strategy_start(strategy=strategy_create(user=user, data={
        "kind": "condition", "condition_id": condition.pk, "capital": 5_000_000,
        "params": {"quantity": 10, "stop_loss_pct": 3, "take_profit_pct": 5},
    }))  # fmt: skip
    assert len(_alert("IN", at(10, 0, 1))) == 1
    live.host.step(block_ms=5)
    live.feed([("005930", 70_000, 100, at(10, 0, 5)), ("005930", 73_500, 100, at(10, 0, 9)),
               ("005930", 73_500, 100, at(10, 0, 12))])  # fmt: skip
    take_profit = Order.objects.get(account=account, bracket_leg="TAKE_PROFIT")
    assert take_profit.status == OrderStatus.FILLED
    strategy.refresh_from_db()
    assert strategy.state["engine"]["ledger"]["positions"] == {}
    assert len(_alert("OUT", at(10, 3))) == 1
    live.host.step(block_ms=5)
    out = Signal.objects.get(strategy=strategy, side="SELL")
    assert out.outcome == Outcome.SKIPPED and out.reason.startswith("no_position")


def test_the_kill_switch_cancels_a_bracket_entry_and_its_legs(live, user, account, stock, condition):
    from apps.strategies.services import strategy_create, strategy_start, strategy_stop

    strategy = strategy_start(strategy=strategy_create(user=user, data={
        "kind": "condition", "condition_id": condition.pk, "capital": 5_000_000,
        "params": {"quantity": 10, "stop_loss_pct": 3, "take_profit_pct": 5},
    }))  # fmt: skip
    assert len(_alert("IN", at(10, 0, 1))) == 1
    live.host.step(block_ms=5)
    live.feed([("005930", 70_000, 100, at(10, 0, 5))])  # entry filled, legs armed (holding the shares)
    _stopped, cancelled = strategy_stop(strategy_id=strategy.pk, reason="kill", by="user")
    assert len(cancelled) == 2
    assert not Order.objects.filter(account=account, status__in=["PENDING", "PARTIALLY_FILLED"]).exists()


def test_an_alert_without_a_price_is_sized_from_the_live_quote(live, user, account, stock, condition):
    import json

    from apps.conditions.models import ConditionEvent
    from apps.live.realtime.keys import QUOTES_HASH
    from apps.strategies.services import strategy_create, strategy_start

    strategy = strategy_start(strategy=strategy_create(user=user, data={
        "kind": "condition", "condition_id": condition.pk, "capital": 5_000_000,
        "params": {"quantity": 0, "amount": 350_000},
    }))  # fmt: skip
    live.redis.hset(QUOTES_HASH, "005930", json.dumps({"code": "005930", "price": 70_000}))
    ConditionEvent.objects.create(condition=condition, code="005930", kind="IN", at=at(10, 0), source="realtime")
    live.host.step(block_ms=5)
    signal = Signal.objects.get(strategy=strategy)
    assert (signal.outcome, signal.quantity) == (Outcome.PLACED, 5)
    assert Order.objects.get(account=account).quantity == 5


def test_alerts_recorded_while_stopped_are_not_acted_on_after_a_restart(live, user, account, stock, condition):
    from apps.strategies.services import strategy_create, strategy_start, strategy_stop

    strategy = strategy_start(strategy=strategy_create(user=user, data={
        "kind": "condition", "condition_id": condition.pk, "capital": 5_000_000, "params": {"quantity": 1},
    }))  # fmt: skip
    strategy_stop(strategy_id=strategy.pk, reason="pause", by="user")
    assert len(_alert("IN", at(10, 0))) == 1  # while stopped
    live.host.step(block_ms=5)
    strategy_start(strategy=Strategy.objects.get(pk=strategy.pk))
    live.host.step(block_ms=5)
    assert not Signal.objects.filter(strategy=strategy).exists()
    assert len(_alert("OUT", at(10, 1))) == 1
    assert len(_alert("IN", at(10, 2))) == 1  # after the restart
    live.host.step(block_ms=5)
    assert [(s.side, s.outcome) for s in Signal.objects.filter(strategy=strategy).order_by("at")] == [
        ("SELL", Outcome.SKIPPED), ("BUY", Outcome.PLACED)
    ]  # fmt: skip


def test_without_a_running_strategy_the_host_reads_no_print_and_a_new_strategy_starts_from_now(live, make_strategy):
    """A session's prints are not read while no strategy runs (they would cost the worker's CPU beside its fill
    engine); a strategy started afterwards begins with the prints from its start, not with that backlog."""
    stream, group = "hoga:rt:fill-ticks", "strategies"
    for second in range(5):
        xadd(live.redis, "005930", 70_000 + second * 100, 1, at(9, 1, second))
    assert live.host.step(block_ms=5) == 0
    assert live.host.idle is True
    assert live.redis.xpending(stream, group)["pending"] == 0
    xadd(live.redis, "005930", 70_500, 1, at(9, 1, 10))  # while still idle: skipped at the next pass
    assert live.host.step(block_ms=5) == 0

    make_strategy()
    xadd(live.redis, "005930", 70_600, 1, at(9, 1, 20))
    assert live.host.step(block_ms=5) == 1  # the print after the start only
    assert live.host.idle is False
    assert live.redis.xpending(stream, group)["pending"] == 0


def test_an_idle_host_drops_a_dead_holders_unacknowledged_prints(live, clean_redis):
    """A holder died with prints read and not acknowledged; the next holder, with no strategy to run them,
    acknowledges them instead of leaving them pending for a strategy started later."""
    stream, group = "hoga:rt:fill-ticks", "strategies"
    xadd(clean_redis, "005930", 70_000, 1, at(9, 1))
    clean_redis.xreadgroup(group, "dead-holder", {stream: ">"}, count=10)
    assert clean_redis.xpending(stream, group)["pending"] == 1
    clean_redis.delete(LEASE_KEY)
    successor = StrategyHost(redis=clean_redis, holder="successor")
    assert successor.step(block_ms=5) == 0
    assert clean_redis.xpending(stream, group)["pending"] == 0


def test_an_idle_host_recreates_its_group_after_redis_lost_it(live, clean_redis):
    clean_redis.delete("hoga:rt:fill-ticks")  # the stream and its groups, as a flushed Redis
    assert live.host.step(block_ms=5) == 0
    groups = [g["name"].decode() for g in clean_redis.xinfo_groups("hoga:rt:fill-ticks")]
    assert "strategies" in groups
