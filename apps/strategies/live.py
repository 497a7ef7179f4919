"""The live host: runs every running strategy on the tick stream, the way the fill engine runs fills.

One ``StrategyHost`` at a time holds the host lease (a Redis key renewed every pass); every Celery worker that
consumes the ``default`` queue runs one (``bootstep.py``), and a standby takes over within
``STRATEGY_LEASE_MS`` when the holder dies. The holder reads the fill-tick stream (``FILL_TICKS_STREAM``: prints
of stocks with open orders or running strategies) in its own consumer group ``STRATEGY_GROUP`` under one
consumer name, so a new holder first takes over every entry the dead one read but never acknowledged.

Each pass, per running strategy, in one transaction: its prints after ``last_stream_id`` build minute bars
(``apps.live.feed.bars.BarBuilder``, the builder that stores the live bars), completed bars go to ``on_bar``,
prints to ``on_tick``; new events of its condition go to ``on_condition_event``; new executions of its orders to
``on_fill``; its signals, orders (``orders.signal_order_place``), engine state and stream position are written.
Then the batch is acknowledged. A crash before the commit loses nothing (the batch is read again, the
transaction never happened); a crash after it duplicates nothing (the prints up to ``last_stream_id`` are
skipped, and a replayed signal has the same client order id, which ``order_place`` answers with the existing
order).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis as redis_lib
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction

from apps.conditions.models import ConditionEvent
from apps.core.redis import get_redis
from apps.live.feed.bars import BarBuilder
from apps.live.quotes import quote_snapshot, snapshot_price
from apps.live.realtime.fillpath import FillTick, FillTickReader
from apps.marketdata.bars import OFF_HOURS_PHASES as OFF_HOURS
from apps.trading.orders.fills import stream_id_key
from apps.trading.orders.models import OPEN_STATUSES, Execution, Order

from .engine import Engine, OrderRequest, RiskLimits, SignalRecord, Submitted
from .interface import Bar, ConditionSignal, Fill, TickEvent
from .models import Signal, Strategy, StrategyStatus
from .orders import signal_order_place
from .registry import strategy_class
from .services import strategy_codes_sync, strategy_orders_cancel, strategy_stop

logger = logging.getLogger(__name__)

LEASE_KEY = "hoga:strategies:host"
CONSUMER = "strategy-host"
TRANSIENT = (OperationalError, InterfaceError, redis_lib.ConnectionError, redis_lib.TimeoutError)


class PaperBroker:
    """Places a signal's order on the strategy's paper account; cancels its open orders on a stop."""

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy

    def submit(self, request: OrderRequest) -> Submitted:
        return signal_order_place(account=self.strategy.account, request=request)

    def cancel_all(self, reason: str) -> int:
        return len(strategy_orders_cancel(strategy=self.strategy))


def signal_save(strategy: Strategy, record: SignalRecord) -> None:
    """Record a signal once (its key is unique per strategy: a replayed trigger changes nothing)."""
    try:
        with transaction.atomic():
            Signal.objects.get_or_create(
                strategy=strategy, key=record.key[:120],
                defaults={"at": record.at, "code": record.code, "side": record.side, "quantity": record.quantity,
                          "inputs": record.inputs, "client_order_id": record.client_order_id,
                          "outcome": record.outcome, "reason": record.reason[:300], "order_id": record.order_id},
            )  # fmt: skip
    except IntegrityError:
        pass


def quote_price(code: str) -> int | None:
    """The stock's last price from the live quote store (None when Redis has none or is down)."""
    try:
        snapshot = quote_snapshot(code)
    except Exception:  # Redis down: the signal is refused with no_price and recorded
        logger.warning("quote unavailable for a strategy signal", extra={"code": code})
        return None
    return snapshot_price(snapshot) if snapshot else None


@dataclass
class Runner:
    """One running strategy inside the host: its engine and bar builder, rebuilt from its stored state."""

    strategy: Strategy
    engine: Engine
    builder: BarBuilder
    seen_executions: dict[str, list[int]] = field(default_factory=dict)
    stop_reason: str = ""

    @classmethod
    def load(cls, strategy: Strategy) -> Runner:
        kind = strategy_class(strategy.kind)
        instance = kind(strategy.params)
        limits = RiskLimits(strategy.capital, strategy.max_position_value, strategy.max_order_value,
                            strategy.daily_loss_limit, strategy.max_orders_per_minute)  # fmt: skip
        engine = Engine(
            instance, broker=PaperBroker(strategy), limits=limits, prefix=strategy.order_prefix,
            record=lambda record: signal_save(strategy, record), state=strategy.state.get("engine"),
            price_of=quote_price,
        )  # fmt: skip
        builder = BarBuilder(lateness=0.0)
        builder.restore(strategy.state.get("bars", []))
        runner = cls(strategy, engine, builder, dict(strategy.state.get("seen", {})))
        engine.on_stop = runner._stopped
        return runner

    def _stopped(self, reason: str) -> None:
        self.stop_reason = reason

    def state(self) -> dict[str, Any]:
        seen = {cid: ids for cid, ids in self.seen_executions.items() if cid in self.engine.ledger.pending}
        return {"engine": self.engine.dump(), "bars": self.builder.snapshot(), "seen": seen}

    # --- one batch ---------------------------------------------------------------------------------------

    def apply_ticks(self, ticks: list[FillTick]) -> None:
        strategy, engine, builder = self.strategy, self.engine, self.builder
        watched = set(strategy.codes or [])
        last = stream_id_key(strategy.last_stream_id)
        for tick in ticks:
            key = stream_id_key(tick.stream_id)
            if key <= last:
                continue  # applied before a restart
            strategy.last_stream_id, last = tick.stream_id, key
            if tick.code not in watched or tick.venue != "KRX" or tick.source != "tick" or tick.phase in OFF_HOURS:
                continue
            builder.add(tick)  # type: ignore[arg-type]  # duck-typed: code, at, price, volume, phase
            for done in builder.complete():
                engine.on_bar(Bar(done.code, done.ts, done.open, done.high, done.low, done.close, done.volume))
            engine.on_tick(TickEvent(tick.code, tick.at, tick.price, tick.volume, tick.stream_id))

    def apply_events(self) -> None:
        strategy = self.strategy
        if strategy.condition_id is None:
            return
        events = ConditionEvent.objects.filter(condition_id=strategy.condition_id, pk__gt=strategy.last_event_id)
        if strategy.last_event_id == 0 and strategy.started_at is not None:
            events = events.filter(created_at__gte=strategy.started_at)  # alerts from the start on
        for event in events.order_by("pk")[:500]:
            strategy.last_event_id = event.pk
            self.engine.on_condition_event(ConditionSignal(event.pk, event.code, event.kind, event.at, event.price))

    def apply_fills(self) -> None:
        self.apply_leg_fills()
        pending = self.engine.ledger.pending
        if not pending:
            return
        orders = {
            o.client_order_id: o
            for o in Order.objects.filter(account_id=self.strategy.account_id, client_order_id__in=list(pending))
        }
        executions = Execution.objects.filter(order__in=list(orders.values())).select_related("order", "stock")
        for execution in executions.order_by("pk"):
            cid = execution.order.client_order_id or ""
            seen = self.seen_executions.setdefault(cid, [])
            if execution.pk in seen or cid not in pending:
                continue
            seen.append(execution.pk)
            self.engine.on_fill(
                Fill(execution.stock.code, execution.side, execution.price, execution.quantity, execution.commission,
                     execution.tax, execution.executed_at, cid)
            )  # fmt: skip
        for cid, order in orders.items():
            if order.status not in OPEN_STATUSES and cid in pending:
                self.engine.order_closed(cid)  # cancelled, expired or rejected: it holds nothing now

    def apply_leg_fills(self) -> None:
        """Fills of the bracket legs of its entries (the paper engine places and fires them, not the strategy)."""
        strategy = self.strategy
        executions = Execution.objects.filter(
            account_id=strategy.account_id,
            order__parent__client_order_id__startswith=f"{strategy.order_prefix}-",
            pk__gt=strategy.last_execution_id,
        ).select_related("stock")
        for execution in executions.order_by("pk"):
            strategy.last_execution_id = execution.pk
            self.engine.on_fill(
                Fill(execution.stock.code, execution.side, execution.price, execution.quantity, execution.commission,
                     execution.tax, execution.executed_at, f"leg-{execution.order_id}")
            )  # fmt: skip

    def save(self) -> None:
        strategy = self.strategy
        Strategy.objects.filter(pk=strategy.pk).update(
            state=self.state(), last_stream_id=strategy.last_stream_id, last_event_id=strategy.last_event_id,
            last_execution_id=strategy.last_execution_id,
        )  # fmt: skip


def _lease_ms() -> int:
    return max(settings.STRATEGY_BLOCK_MS * 3, 5_000)


class StrategyHost:
    def __init__(self, *, redis: redis_lib.Redis | None = None, holder: str | None = None) -> None:
        self.redis = redis or get_redis()
        self.holder = holder or f"{socket.gethostname()}-{threading.get_ident()}-{time.monotonic_ns()}"
        self.reader = FillTickReader(self.redis, group=settings.STRATEGY_GROUP, consumer=CONSUMER)
        self._leased = self._claim = False
        self._last_sync = float("-inf")
        self.passes = 0
        self.idle = False  # the last pass found no running strategy (it read nothing)

    def lease(self) -> bool:
        """Hold (or take) the host lease; a new holder first takes over the unacknowledged entries."""
        held = self.redis.get(LEASE_KEY)
        mine = held is not None and (held.decode() if isinstance(held, bytes) else held) == self.holder
        if mine:
            self.redis.pexpire(LEASE_KEY, _lease_ms())
            if not self._leased:  # after an error: the group may have gone with a flushed Redis
                self._leased = self._claim = True
                self.reader.ensure_group()
            return True
        if not self.redis.set(LEASE_KEY, self.holder, nx=True, px=_lease_ms()):
            self._leased = False
            return False
        self._leased = self._claim = True
        self.reader.ensure_group()
        return True

    def release(self) -> None:
        held = self.redis.get(LEASE_KEY)
        if held is not None and (held.decode() if isinstance(held, bytes) else held) == self.holder:
            self.redis.delete(LEASE_KEY)

    def step(self, *, block_ms: int | None = None) -> int:
        """One pass: returns the number of prints read (0 without the lease, and while no strategy runs)."""
        if not self.lease():
            return 0
        now = time.monotonic()
        if now - self._last_sync >= 10:
            strategy_codes_sync()
            self._last_sync = now
        running = list(Strategy.objects.filter(status=StrategyStatus.RUNNING).values_list("pk", flat=True))
        if not running:
            self._idle_pass()
            return 0
        self.idle = False
        ticks: list[FillTick] = []
        if self._claim:
            self._claim = False
            ticks += self.reader.claim_stale(min_idle_ms=0, count=10_000)  # a dead holder's unacknowledged prints
        ticks += self.reader.read(count=settings.PAPER_FILL_BATCH,
                                  block_ms=settings.STRATEGY_BLOCK_MS if block_ms is None else block_ms)  # fmt: skip
        ticks.sort(key=lambda t: stream_id_key(t.stream_id))
        for strategy_id in running:
            self.run_one(strategy_id, ticks)
        self.reader.ack(ticks)
        self.passes += 1
        return len(ticks)

    def _idle_pass(self) -> None:
        """No strategy runs: the prints are not read. Reading them took about a quarter of a default worker's
        profile samples during a busy session (py-spy, ``bench/orders.py``), beside the fill engine in the same
        process, for nothing. The group is kept at the stream's end, so a strategy started later begins with the
        prints from its start (at most one pass, ``STRATEGY_BLOCK_MS``, earlier), never with a backlog; a dead
        holder's unacknowledged prints are dropped."""
        self.reader.skip_to_latest()  # (and the group again after a flushed Redis)
        if self._claim:
            self._claim = False
            self.reader.ack(self.reader.claim_stale(min_idle_ms=0, count=10_000))
        self.idle = True

    def run_one(self, strategy_id: int, ticks: list[FillTick]) -> None:
        try:
            with transaction.atomic():
                strategy = (
                    Strategy.objects.select_for_update(of=("self",)).select_related("account")
                    .filter(pk=strategy_id, status=StrategyStatus.RUNNING).first()
                )  # fmt: skip
                if strategy is None:
                    return
                runner = Runner.load(strategy)
                runner.apply_fills()
                runner.apply_events()
                runner.apply_ticks(ticks)
                runner.apply_fills()
                runner.save()
                if runner.stop_reason:
                    strategy_stop(strategy_id=strategy_id, reason=runner.stop_reason, by="risk")
        except TRANSIENT:
            raise
        except Exception as exc:
            logger.exception("strategy failed; stopped", extra={"strategy_id": strategy_id})
            strategy_stop(strategy_id=strategy_id, reason=f"error: {type(exc).__name__}: {exc}"[:300], by="error")

    def run(self, stop: threading.Event) -> None:
        logger.info("strategy host started", extra={"holder": self.holder})
        failures = 0
        while not stop.is_set():
            try:
                if self.step() == 0 and (not self._leased or self.idle):
                    stop.wait(settings.STRATEGY_BLOCK_MS / 1000)
                failures = 0
            except Exception:
                failures += 1
                self._leased = False
                delay = min(0.5 * 2 ** (failures - 1), 30.0)
                logger.exception("strategy host error", extra={"delay_s": delay})
                stop.wait(delay)
        self.release()
        logger.info("strategy host stopped", extra={"holder": self.holder})
