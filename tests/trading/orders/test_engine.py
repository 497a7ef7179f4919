"""The fill engine against real Redis and PostgreSQL: reads the stream, applies, acks, claims a dead
consumer's ticks, keeps ORDERS_SET in sync, and survives poison ticks."""

from __future__ import annotations

import threading
import time

import pytest

from apps.live.realtime import keys
from apps.trading.orders.engine import FillEngine
from apps.trading.orders.models import Execution, OrderStatus

pytestmark = pytest.mark.django_db


def _xadd(redis, tick):
    return redis.xadd(
        keys.FILL_TICKS_STREAM,
        {"code": tick.code, "price": tick.price, "volume": tick.volume, "cum_volume": 0, "at": tick.at.isoformat(),
         "ask": tick.ask, "bid": tick.bid},
    ).decode()  # fmt: skip


@pytest.fixture
def fast(settings):
    settings.PAPER_FILL_BLOCK_MS = 10
    settings.PAPER_FILL_CLAIM_IDLE_MS = 1
    settings.PAPER_FILL_EXPIRY_CHECK = 3600


def _pending(redis, group="fills"):
    return redis.xpending(keys.FILL_TICKS_STREAM, group)["pending"]


def test_engine_applies_stream_ticks_and_acks_them(place, tick, clean_redis, fast):
    engine = FillEngine(consumer="a")
    engine.reader.ensure_group()
    order = place("BUY", 10, 70_000)
    _xadd(clean_redis, tick(70_000, 4))
    _xadd(clean_redis, tick(70_000, 4))
    assert engine.step() == 2
    order.refresh_from_db()
    assert (order.filled_quantity, order.status) == (8, OrderStatus.PARTIALLY_FILLED)
    assert _pending(clean_redis) == 2  # committed; acknowledged with the next read, in its round trip
    assert engine.step() == 0
    assert _pending(clean_redis) == 0


def test_applied_ticks_are_acknowledged_when_the_loop_stops(place, tick, clean_redis, fast, monkeypatch):
    """The last batch before a stop is not left pending (for another engine to claim 30 s later)."""
    monkeypatch.setattr(FillEngine, "_expire_due", staticmethod(lambda _fn: 0))
    engine = FillEngine(consumer="a")
    engine.reader.ensure_group()
    order = place("BUY", 10, 70_000)
    _xadd(clean_redis, tick(70_000, 4))
    stop = threading.Event()
    original = engine.step

    def step_once():
        created = original()
        stop.set()
        return created

    engine.step = step_once
    engine.run(stop)
    order.refresh_from_db()
    assert (order.filled_quantity, _pending(clean_redis)) == (4, 0)


def test_an_unacknowledged_batch_is_kept_when_the_read_fails(place, tick, clean_redis, fast, monkeypatch):
    """A Redis error on the read that carries the acknowledgement keeps the batch for the next attempt."""
    import redis as redis_lib

    engine = FillEngine(consumer="a")
    engine.reader.ensure_group()
    place("BUY", 10, 70_000)
    _xadd(clean_redis, tick(70_000, 4))
    assert engine.step() == 1
    real_read = engine.reader.read

    def down(**_kwargs):
        raise redis_lib.ConnectionError("Redis is down")

    monkeypatch.setattr(engine.reader, "read", down)
    with pytest.raises(redis_lib.ConnectionError):
        engine.step()
    assert _pending(clean_redis) == 1
    monkeypatch.setattr(engine.reader, "read", real_read)
    assert engine.step() == 0
    assert _pending(clean_redis) == 0


def test_a_dead_consumers_ticks_are_claimed_and_applied_once(place, tick, clean_redis, fast):
    dead, alive = FillEngine(consumer="dead"), FillEngine(consumer="alive")
    dead.reader.ensure_group()
    order = place("BUY", 10, 70_000)
    _xadd(clean_redis, tick(70_000, 3))
    assert len(dead.reader.read(block_ms=10)) == 1  # read, never acked: the consumer "crashed"
    time.sleep(0.01)  # idle longer than PAPER_FILL_CLAIM_IDLE_MS
    assert alive.step() == 1
    order.refresh_from_db()
    assert order.filled_quantity == 3
    assert _pending(clean_redis) == 0
    assert Execution.objects.count() == 1


def test_a_redelivered_tick_is_applied_once(place, tick, clean_redis, fast):
    engine = FillEngine(consumer="a")
    engine.reader.ensure_group()
    order = place("BUY", 10, 70_000)
    _xadd(clean_redis, tick(70_000, 3))
    batch = engine.reader.read(block_ms=10)
    engine.apply(batch)
    engine.apply(batch)  # e.g. processed again after a crash before the ack
    order.refresh_from_db()
    assert order.filled_quantity == 3


def test_a_poison_tick_is_logged_and_acked(place, tick, clean_redis, fast, monkeypatch):
    from apps.trading.orders import engine as engine_module

    engine = FillEngine(consumer="a")
    engine.reader.ensure_group()
    place("BUY", 10, 70_000)
    _xadd(clean_redis, tick(70_000, 3))

    def boom(**_):
        raise ValueError("bad tick")

    monkeypatch.setattr(engine_module, "order_fills_apply", boom)
    engine.step()
    engine.flush_acks()
    assert (engine.stats.poison, _pending(clean_redis)) == (1, 0)


def test_a_poison_tick_does_not_hold_back_the_rest_of_its_batch(place, tick, clean_redis, fast, monkeypatch):
    """The batch's transaction fails because of one tick: the others are applied one by one, the bad one is
    counted, logged and acked."""
    from apps.trading.orders import engine as engine_module

    engine = FillEngine(consumer="a")
    engine.reader.ensure_group()
    order = place("BUY", 10, 70_000)
    for volume in (2, 3, 4):
        _xadd(clean_redis, tick(70_000, volume))
    real = engine_module.order_fills_apply

    def fails_on_volume_3(*, ticks):
        if any(t.volume == 3 for t in ticks):
            raise ValueError("bad tick")
        return real(ticks=ticks)

    monkeypatch.setattr(engine_module, "order_fills_apply", fails_on_volume_3)
    assert engine.step() == 2
    engine.flush_acks()
    order.refresh_from_db()
    assert (order.filled_quantity, engine.stats.poison, _pending(clean_redis)) == (6, 1, 0)


def test_a_transient_failure_is_retried_by_the_same_engine_on_its_next_step(
    place, tick, clean_redis, fast, monkeypatch, settings
):
    """A deadlock victim (OperationalError) leaves its ticks unacked and re-applies them at once, not after
    the claim timeout; a tick applied meanwhile (here: committed just before the failure) is not applied
    twice."""
    from django.db import OperationalError

    from apps.trading.orders import engine as engine_module

    settings.PAPER_FILL_CLAIM_IDLE_MS = 3_600_000  # only the retry, not a claim, can re-read the ticks
    engine = FillEngine(consumer="a")
    engine.reader.ensure_group()
    order = place("BUY", 10, 70_000)
    _xadd(clean_redis, tick(70_000, 3))
    _xadd(clean_redis, tick(70_000, 4))
    real, calls = engine_module.order_fills_apply, []

    def deadlock_once(*, ticks):
        calls.append([t.stream_id for t in ticks])
        if len(calls) == 1:
            real(ticks=ticks[:1])
            raise OperationalError("deadlock detected")
        return real(ticks=ticks)

    monkeypatch.setattr(engine_module, "order_fills_apply", deadlock_once)
    with pytest.raises(OperationalError):
        engine.step()
    assert _pending(clean_redis) == 2
    assert engine.step() == 1  # the first tick is a no-op now, the second fills
    assert calls[1] == calls[0]  # the whole batch again
    order.refresh_from_db()
    assert order.filled_quantity == 7
    assert (_pending(clean_redis), Execution.objects.count()) == (0, 2)


def test_demand_sync_rebuilds_the_open_order_set(place, clean_redis, fast):
    place("BUY", 1, 70_000)
    clean_redis.sadd(keys.ORDERS_SET, "000660")  # stale: no open order
    FillEngine(consumer="a").housekeeping(force=False)
    assert clean_redis.smembers(keys.ORDERS_SET) == {b"005930"}


def test_run_stops_when_asked(clean_redis, fast, settings, monkeypatch):
    from apps.trading.orders.engine import FillEngine as Engine

    monkeypatch.setattr(Engine, "_expire_due", staticmethod(lambda _fn: 0))
    stop = threading.Event()
    engine = Engine(consumer="a")
    calls = []
    original = engine.step

    def step():
        calls.append(1)
        if len(calls) >= 3:
            stop.set()
        return original()

    engine.step = step
    engine.run(stop)
    assert len(calls) == 3
