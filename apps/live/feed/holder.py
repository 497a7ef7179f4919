"""The feed holder: for one app key, hold the Redis lease, run the real-time session, fan out every event.

One :class:`FeedHolder` per configured app key (slot ``k`` of ``n``). The real-time source (``MARKET_FEED``)
is a :class:`~.sources.FeedSource`: KIS (:class:`~apps.brokers.kis.ws.KisRealtimeSession`), Kiwoom
(:class:`~apps.brokers.kiwoom.ws.KiwoomRealtimeSession`) or the OpenAPI+ bridge
(:class:`~.koa.KoaBridgeSession`); all deliver the same Tick / OrderBook events, and everything below is
shared. Its :meth:`FeedHolder.run` loops until ``stop`` is set:

- **stand-by**: try the lease (:mod:`.lease`) every ``lease_retry`` seconds, logging who holds it;
- **holding**: the source's session (reconnect with back-off and jitter, restore of every registration,
  stall detection) plus these tasks, all stopped together as soon as one ends:

  - ``renew``: renews the lease every ``lease_renew`` s; a refusal (another token holds it) or no confirmed
    renewal for ``ttl - renew`` s means the lease is lost: the session is stopped at once;
  - ``control`` (every ``demand_interval`` s): demand (:mod:`.demand`) → subscribe / unsubscribe the
    difference; replaces a session whose connection stays open but carries no data frame for
    ``silence_timeout`` s while the market is open (the session's own stall check counts PINGPONGs);
  - ``publish``: events go from the session callback (synchronous, O(1)) into a bounded drop-oldest queue;
    this task drains it into batches (at most ``FEED_PUBLISH_BATCH_MAX`` events) for
    :meth:`~apps.live.realtime.publisher.QuotePublisher.publish` (one Redis round trip, one Channels
    message per quote bucket). A slow Redis never blocks the socket reader: the oldest events are dropped and counted;
  - ``status`` (every ``status_interval`` s): connected / reconnecting / stale / closed via ``publish_status``
    (TTL 30 s), ``market`` (market clock), ``bars`` (completed 1-minute bars stored from a thread),
    ``heartbeat`` (a log line with counters every ``heartbeat_interval`` s);
  - ``poll`` (slot 0 only, ``FEED_POLL_ENABLED``): stocks wanted by orders or viewers that got no live slot
    (``demand.overflow``, plus codes the broker refused) are polled over REST at the budget collection leaves
    (:mod:`.poller`), so they still get prices and their orders still fill (``source="poll"``);
  - for sources with condition search (Kiwoom, KOA): ``conditions`` re-reads ``enabled_seqs()`` (the hooks
    registered in :mod:`.conditions`, in a thread) every ``condition_refresh`` s and keeps exactly those real-time
    conditions subscribed; ``alerts`` hands every ConditionAlert, taken from a bounded drop-oldest queue
    (the socket reader never waits), to ``record_alert`` in a thread; a failing sink is logged
    and counted. Without that module there are no conditions (logged once).

No Celery task is involved per tick, and nothing here touches the ORM on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import RedisError

from apps.brokers.base import BrokerError, ConditionAlert, ExpectedTrade, MarketStatus, OrderBook, Tick
from apps.brokers.kis.config import ImproperlyConfiguredBroker, KisConfig
from apps.brokers.kis.realtime import (
    MAX_REGISTRATIONS,
    TR_BOOK,
    TR_NXT_TRADES,
    TR_OFF_HOURS_BOOK,
    TR_OFF_HOURS_TRADES,
    TR_TRADES,
    RealtimeEvent,
)
from apps.brokers.kis.ws import ApprovalKeyProvider, KisRealtimeSession
from apps.brokers.rest import backoff_delay
from apps.brokers.websocket import DropOldestQueue, QueueClosed
from apps.core.krx.calendar import KST
from apps.core.metrics import FEED_BOOKS, FEED_TICKS
from apps.marketdata.broker_services import kis_client_async, kis_config, kiwoom_config
from apps.marketdata.market_clock import MarketClockUnavailable, market_now
from apps.marketdata.selectors import krx_calendar, stock_list_universe

from ..realtime import keys
from ..realtime.publisher import QuotePublisher
from .bars import BarBuilder, LiveBar, store_bars
from .conditions import condition_hooks
from .demand import overflow, plan, read_demand, stocks_per_connection
from .koa import KoaConfig
from .lease import RedisLease, lease_key, new_token
from .poller import RestPoller
from .recorder import FrameRecorder
from .sources import FeedSource, KisSource, RealtimeSession, source_for

logger = logging.getLogger(__name__)

#: ``await market_open()`` → True / False, or None when the market clock is unavailable.
MarketOpenProvider = Callable[[], Awaitable[bool | None]]
#: ``await watchlist()`` → codes of the active universe, best rank first.
WatchlistProvider = Callable[[], Awaitable[Sequence[str]]]
BarStore = Callable[[list[LiveBar]], int]

FEED_STATUSES = ("connected", "reconnecting", "stale", "closed", "stopped")


@dataclasses.dataclass(frozen=True, slots=True)
class FeedSettings:
    """Timings and limits of the holder (seconds unless stated). Built from Django settings by
    :meth:`from_settings`; tests build it directly."""

    lease_ttl: float = 6.0
    lease_renew: float = 2.0
    lease_retry: float = 1.0
    max_registrations: int = MAX_REGISTRATIONS
    viewer_grace: float = 30.0
    viewer_ttl: float = keys.VIEWER_TTL
    demand_interval: float = 1.0
    status_interval: float = 3.0
    heartbeat_interval: float = 60.0
    stall_timeout: float = 30.0
    silence_timeout: float = 90.0
    queue_size: int = 10_000
    #: Most events published in one batch (one Redis round trip, one group message per bucket).
    publish_batch_max: int = 500
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    watchlist_size: int = 50
    watchlist_refresh: float = 300.0
    market_refresh: float = 15.0
    bars_interval: float = 5.0
    record_dir: str = ""
    #: Seconds a code refused by the broker is not retried.
    refused_cooldown: float = 60.0
    #: Seconds between re-reads of the enabled real-time conditions (Kiwoom / KOA sources).
    condition_refresh: float = 5.0
    #: Condition alerts buffered for the sink (oldest dropped beyond, counted).
    alert_queue_size: int = 1000
    #: Longest one ``condition_alert_record`` call may take before it is counted as failed.
    alert_timeout: float = 30.0
    #: Open-order stocks per user that rank first at least (demand.fair_order_share).
    order_codes_min_per_user: int = 2
    #: REST polling of wanted stocks without a live slot (slot 0's holder only; .poller).
    poll_enabled: bool = False
    poll_rate: float = 0.5
    poll_min_interval: float = 5.0
    #: Registrations kept for NXT trades of NXT-eligible stocks with open orders (``FeedHolder._budget``).
    nxt_registrations: int = 5
    nxt_eligible: frozenset[str] = frozenset()
    #: Subscribe NXT trades on a KIS paper connection too (the sandbox with SANDBOX_PAPER_NXT; KIS paper has none).
    nxt_in_paper: bool = False
    #: Market-time window in which a KIS stock is registered with the off-hours TRs (H0STOUP0 / H0STOAA0).
    off_hours_from: dt.time = dt.time(15, 35)
    off_hours_until: dt.time = dt.time(18, 5)

    @classmethod
    def from_settings(cls, settings: Any = None) -> FeedSettings:
        if settings is None:
            from django.conf import settings as django_settings

            settings = django_settings
        return cls(
            lease_ttl=float(settings.FEED_LEASE_TTL),
            lease_renew=float(settings.FEED_LEASE_RENEW),
            lease_retry=float(settings.FEED_LEASE_RETRY),
            max_registrations=int(settings.FEED_MAX_REGISTRATIONS),
            viewer_grace=float(settings.FEED_VIEWER_GRACE),
            status_interval=float(settings.FEED_STATUS_INTERVAL),
            stall_timeout=float(settings.FEED_STALL_TIMEOUT),
            silence_timeout=float(settings.FEED_SILENCE_TIMEOUT),
            queue_size=int(settings.FEED_QUEUE_SIZE),
            publish_batch_max=int(settings.FEED_PUBLISH_BATCH_MAX),
            backoff_base=float(settings.FEED_BACKOFF_BASE),
            backoff_max=float(settings.FEED_BACKOFF_MAX),
            watchlist_size=int(settings.FEED_WATCHLIST_SIZE),
            record_dir=str(settings.FEED_RECORD_DIR),
            order_codes_min_per_user=int(settings.FEED_ORDER_CODES_MIN_PER_USER),
            poll_enabled=bool(settings.FEED_POLL_ENABLED),
            poll_rate=float(settings.FEED_POLL_RATE),
            poll_min_interval=float(settings.FEED_POLL_MIN_INTERVAL),
            nxt_registrations=int(getattr(settings, "FEED_NXT_REGISTRATIONS", 5)),
            nxt_in_paper=bool(getattr(settings, "FEED_NXT_IN_PAPER", False)),
            nxt_eligible=frozenset(
                str(c).strip() for c in getattr(settings, "NXT_ELIGIBLE_CODES", []) if str(c).strip()
            ),
        )


@dataclasses.dataclass(slots=True)
class FeedCounters:
    """Counters of one holder since its process started (logged by the heartbeat, sent in the status)."""

    ticks: int = 0
    books: int = 0
    published: int = 0
    dropped: int = 0
    publish_errors: int = 0
    leases: int = 0
    leases_lost: int = 0
    replacements: int = 0
    subscription_changes: int = 0
    bars_stored: int = 0
    bar_errors: int = 0
    condition_alerts: int = 0
    alerts_recorded: int = 0
    alert_errors: int = 0
    alerts_dropped: int = 0
    polled_stocks: int = 0
    polls: int = 0
    poll_errors: int = 0


FEED_SOURCES = ("kis", "kiwoom", "koa")


def feed_configs(settings: Any = None) -> list[Any]:
    """What the feed holds, by MARKET_FEED.

    ``kis``: KIS_APP_KEY (via ``kis_config()``) then each FEED_EXTRA_APP_KEYS entry ``<app key>:<app secret>``;
    ``kiwoom``: the Kiwoom key (``kiwoom_config()``) then each FEED_EXTRA_APP_KEYS entry as a Kiwoom
    ``<app key>:<secret key>``; ``koa``: the one OpenAPI+ bridge (KOA_*). Secrets are never echoed in errors.
    """

    if settings is None:
        from django.conf import settings as django_settings

        settings = django_settings
    source = str(getattr(settings, "MARKET_FEED", "kis")).strip().lower()
    if source not in FEED_SOURCES:
        raise ImproperlyConfiguredBroker(f"MARKET_FEED must be one of {FEED_SOURCES}, got {source!r}")
    if source == "koa":
        return [KoaConfig.from_settings(settings)]
    primary: Any = kis_config() if source == "kis" else kiwoom_config()
    secret_field = "app_secret" if source == "kis" else "secret_key"
    configs = [primary]
    for i, entry in enumerate(settings.FEED_EXTRA_APP_KEYS):
        app_key, sep, app_secret = str(entry).partition(":")
        if not sep or not app_key.strip() or not app_secret.strip():
            raise ImproperlyConfiguredBroker(f"FEED_EXTRA_APP_KEYS entry #{i + 1} is not '<app key>:<app secret>'")
        configs.append(primary.with_overrides(app_key=app_key.strip(), **{secret_field: app_secret.strip()}))
    scopes = [c.scope for c in configs]
    if len(set(scopes)) != len(scopes):
        raise ImproperlyConfiguredBroker("FEED_EXTRA_APP_KEYS repeats an app key (one connection per key)")
    return configs


async def universe_watchlist(size: int) -> list[str]:
    """The active universe by rank (ORM in a thread; the thread's connection is closed afterwards)."""

    def load() -> list[str]:
        from django.db import connection

        try:
            return list(stock_list_universe().values_list("code", flat=True)[:size])
        finally:
            connection.close()

    return await asyncio.to_thread(load)


class _CalendarClock:
    """Market open/closed from ``market_now`` (sandbox clock or KRX calendar), calendar reloaded daily."""

    def __init__(self) -> None:
        self._calendar: Any = None
        self._calendar_day: dt.date | None = None
        #: The trading date of the last answer (the sandbox's replay date, or today's KRX session).
        self.trading_date: dt.date | None = None
        #: Market clock minus the wall clock at the last answer (a replayed session runs on another day); None until
        #: the first answer (the wall clock then says nothing of the market's time).
        self.offset: dt.timedelta | None = None

    def _now(self) -> bool | None:
        from django.db import connection

        today = dt.datetime.now(KST).date()
        try:
            if self._calendar is None or self._calendar_day != today:
                self._calendar, self._calendar_day = krx_calendar(), today
        finally:
            connection.close()
        try:
            market = market_now(self._calendar)
        except MarketClockUnavailable as exc:
            logger.warning("feed: market clock unavailable; status follows the connection", extra={"error": str(exc)})
            return None
        self.trading_date = market.trading_date
        self.offset = market.now - dt.datetime.now(KST)
        return market.is_open

    async def __call__(self) -> bool | None:
        return await asyncio.to_thread(self._now)


class FeedHolder:
    """Candidate and, when it holds the lease, holder of one app key's feed connection (slot of slots)."""

    def __init__(
        self,
        config: Any,
        *,
        redis: Any,
        channel_layer: Any,
        settings: FeedSettings | None = None,
        slot: int = 0,
        slots: int = 1,
        approval_key: Callable[[KisConfig], ApprovalKeyProvider] | None = None,
        watchlist: WatchlistProvider | None = None,
        market_open: MarketOpenProvider | None = None,
        bar_store: BarStore | None = store_bars,
        token: str | None = None,
        condition_hooks: tuple[Callable[[], list[str]], Callable[[ConditionAlert], None]] | None = None,
        rest_quotes: Any = None,
    ) -> None:
        """``config``: a KisConfig, KiwoomConfig or KoaConfig (or a FeedSource); ``condition_hooks`` replaces
        the registered hooks ``(enabled_seqs, record_alert)`` of :mod:`.conditions`."""
        self.source: FeedSource = source_for(config, approval_key=approval_key)
        self.config = self.source.config
        self.settings = settings or FeedSettings()
        self.redis = redis
        self.layer = channel_layer
        self.slot, self.slots = slot, slots
        self.per_connection = stocks_per_connection(self.source.max_registrations(self.settings.max_registrations))
        self.lease = RedisLease(
            redis,
            lease_key(self.source.scope),
            token=token or new_token(),
            ttl=self.settings.lease_ttl,
            renew_interval=self.settings.lease_renew,
            retry_interval=self.settings.lease_retry,
        )
        self._condition_hooks = condition_hooks
        #: An AsyncKisClient-like object (``current_price``, ``limiter.idle``) for the REST poller; None: the
        #: collection client from settings (kis_client_async), built when the lease is taken.
        self._rest_quotes = rest_quotes
        self._poller: RestPoller | None = None
        self._hooks_missing_logged = False
        self._alerts: DropOldestQueue[ConditionAlert] | None = None
        self._watchlist_provider = watchlist or (lambda: universe_watchlist(self.settings.watchlist_size))
        self._market_open_provider = market_open or _CalendarClock()
        self._bar_store = bar_store
        self.counters = FeedCounters()
        self.session: RealtimeSession | None = None
        self.codes: list[str] = []
        self.market_open: bool | None = None
        self.trading_date: dt.date | None = None
        self.status = "stopped"
        self._running = False
        self._watchlist: list[str] = []
        self._watchlist_at = -1e9
        self._refused_until: dict[str, float] = {}
        self._connected_since: float | None = None
        self._queue: DropOldestQueue[RealtimeEvent] | None = None
        self._bars = BarBuilder()
        self._recorder = FrameRecorder(self.settings.record_dir) if self.settings.record_dir else None
        self._log: dict[str, Any] = {
            "source": self.source.name,
            "env": self.source.env,
            "key_id": self.source.key_id,
            "slot": slot,
            "holder": self.lease.token,
        }

    @property
    def holding(self) -> bool:
        return self.session is not None

    # --- stand-by ----------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Wait for the lease, hold the feed, repeat until ``stop`` is set. Never raises (logs instead)."""
        logger.info("feed candidate started", extra={**self._log, "lease": self.lease.key})
        last_seen: str | None = None
        waiting_log_at = 0.0
        crashes = 0
        while not stop.is_set():
            try:
                acquired = await asyncio.wait_for(self.lease.acquire(), self.settings.lease_retry * 5)
            except (RedisError, OSError, TimeoutError) as exc:
                logger.warning("feed lease check failed (Redis); retrying", extra={**self._log, "error": repr(exc)})
                acquired = False
            if acquired:
                self.counters.leases += 1
                try:
                    await self._hold(stop)
                    crashes = 0
                except Exception:
                    crashes += 1
                    logger.exception("feed holder failed; lease released, retrying", extra=self._log)
                if not stop.is_set():
                    delay = self.settings.lease_retry
                    if crashes:
                        delay = max(delay, backoff_delay(crashes, base=1.0, cap=self.settings.backoff_max))
                    await _sleep_or_stop(stop, delay)
                continue
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                current = await asyncio.wait_for(self.lease.holder(), self.settings.lease_retry * 5)
                now = time.monotonic()
                if current != last_seen or now - waiting_log_at >= self.settings.heartbeat_interval:
                    logger.info("feed lease held elsewhere; standing by", extra={**self._log, "lease_holder": current})
                    last_seen, waiting_log_at = current, now
            await _sleep_or_stop(stop, self.settings.lease_retry)
        logger.info("feed candidate stopped", extra=self._log)

    # --- holding -----------------------------------------------------------------------------------------------
    async def _hold(self, stop: asyncio.Event) -> None:
        lost = asyncio.Event()
        await self.source.open()
        self._queue = DropOldestQueue(self.settings.queue_size, on_drop=self._dropped)
        self._alerts = DropOldestQueue(self.settings.alert_queue_size, on_drop=self._alert_dropped)
        self._bars = BarBuilder()
        self.codes = []
        self._refused_until.clear()
        self._connected_since = None
        self.session = self._new_session()
        self.session.start()
        self._running = True
        publisher = QuotePublisher(redis=self.redis, channel_layer=self.layer)
        rest_client, owned_client = self._rest_client()
        self._poller = self._new_poller(rest_client, publisher) if rest_client is not None else None
        tasks = {
            asyncio.create_task(self._renew_loop(lost), name="feed-renew"),
            asyncio.create_task(self._control_loop(), name="feed-control"),
            asyncio.create_task(self._publish_loop(publisher), name="feed-publish"),
            asyncio.create_task(self._status_loop(publisher), name="feed-status"),
            asyncio.create_task(self._market_loop(), name="feed-market"),
            asyncio.create_task(self._bars_loop(), name="feed-bars"),
            asyncio.create_task(self._heartbeat_loop(), name="feed-heartbeat"),
        }
        if self._poller is not None:
            tasks.add(asyncio.create_task(self._poller.run(lambda: self._running), name="feed-poll"))
        if self.source.conditions:
            tasks.add(asyncio.create_task(self._conditions_loop(), name="feed-conditions"))
            tasks.add(asyncio.create_task(self._alerts_loop(), name="feed-alerts"))
        waiters = {asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())}
        reason = "stopped"
        logger.info("feed holding", extra={**self._log, "per_connection": self.per_connection})
        try:
            done, _ = await asyncio.wait(tasks | waiters, return_when=asyncio.FIRST_COMPLETED)
            if lost.is_set():
                reason = "lease lost"
            for task in done & tasks:
                if not task.cancelled() and task.exception() is not None:
                    reason = f"{task.get_name()} failed"
                    logger.error("feed task failed", extra={**self._log, "task": task.get_name()},
                                 exc_info=task.exception())  # fmt: skip
        finally:
            session, self.session = self.session, None
            # The connection goes first: after a lost lease another holder may already be connecting.
            if session is not None:
                await session.stop(timeout=5.0)
            await self._halt(tasks | waiters)
            self._poller = None
            if owned_client is not None:
                with contextlib.suppress(Exception):
                    await owned_client.aclose()
            self._queue.close()
            self._alerts.close()
            if lost.is_set():
                self.counters.leases_lost += 1
            else:
                self.status = "stopped"
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(publisher.publish_status("stopped", self._detail()), 2.0)
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    await asyncio.wait_for(self.lease.release(), 2.0)
            await self._store_bars(self._bars.drain())
            if self._recorder is not None:
                await asyncio.to_thread(self._recorder.close)
            with contextlib.suppress(Exception):
                await self.source.aclose()
            self.status = "stopped"
            logger.info("feed released", extra={**self._log, "reason": reason, **self._counter_log()})

    async def _halt(self, tasks: set[asyncio.Task[Any]]) -> None:
        """Stop the holder's tasks. Loops also check ``_running``: on Python 3.11 ``wait_for`` can swallow a
        cancellation that races with its inner result, so a single ``cancel()`` is not always enough."""
        self._running = False
        pending = set(tasks)
        for _attempt in range(5):
            for task in pending:
                task.cancel()
            _done, pending = await asyncio.wait(pending, timeout=1.0)
            if not pending:
                return
        logger.error("feed tasks did not stop", extra={**self._log, "tasks": ",".join(t.get_name() for t in pending)})

    def _rest_client(self) -> tuple[Any, Any]:
        """(client for the poller or None, client to close afterwards or None). Only slot 0 polls."""
        if self.slot != 0 or not self.settings.poll_enabled:
            return None, None
        if self._rest_quotes is not None:
            return self._rest_quotes, None
        try:
            client = kis_client_async()
        except Exception as exc:
            logger.warning("feed REST poller off: no broker client", extra={**self._log, "error": repr(exc)[:200]})
            return None, None
        return client, client

    def _new_poller(self, client: Any, publisher: QuotePublisher) -> RestPoller:
        async def publish(tick: Tick) -> None:
            await publisher.publish_tick(tick, now=time.monotonic(), source="poll")
            self.counters.polls += 1

        return RestPoller(
            fetch=client.current_price,
            idle=client.limiter.idle,
            publish=publish,
            rate=self.settings.poll_rate,
            min_interval=self.settings.poll_min_interval,
            clock_offset=lambda: getattr(self._market_open_provider, "offset", None) or dt.timedelta(0),
            backoff_max=self.settings.backoff_max,
        )

    def _new_session(self) -> RealtimeSession:
        # Kiwoom frames carry times without a date: they are dated by the market clock (a replayed session's
        # trading date differs from the wall date); KIS frames carry their own date.
        return self.source.new_session(self._on_event, self.settings, trading_date=lambda: self.trading_date)

    def _on_event(self, event: RealtimeEvent | ConditionAlert) -> None:
        """Session callback: O(1), never blocks, never raises for a full queue (drop-oldest)."""
        if isinstance(event, ConditionAlert):
            self.counters.condition_alerts += 1
            if self._alerts is not None:
                self._alerts.put_nowait(event)
            return
        if isinstance(event, Tick):
            self.counters.ticks += 1
            FEED_TICKS.labels(self.source.name).inc()
            if event.venue == "KRX":  # the live 1-minute bars are KRX's; NXT prints go to the fill path only
                self._bars.add(event)
        elif isinstance(event, OrderBook):
            self.counters.books += 1
            FEED_BOOKS.labels(self.source.name).inc()
        if self._recorder is not None and isinstance(event, Tick | OrderBook):
            self._recorder.record(event)
        assert self._queue is not None
        self._queue.put_nowait(event)

    def _dropped(self) -> None:
        self.counters.dropped += 1
        if self.counters.dropped == 1 or self.counters.dropped % 10_000 == 0:
            logger.warning(
                "feed publish queue full: oldest events dropped (Redis slow?)",
                extra={**self._log, "dropped": self.counters.dropped, "queue_size": self.settings.queue_size},
            )

    def _alert_dropped(self) -> None:
        self.counters.alerts_dropped += 1
        if self.counters.alerts_dropped == 1 or self.counters.alerts_dropped % 1000 == 0:
            logger.warning("feed condition alert queue full: oldest alerts dropped (sink slow?)",
                           extra={**self._log, "alerts_dropped": self.counters.alerts_dropped})  # fmt: skip

    def _hooks(self) -> tuple[Callable[[], list[str]], Callable[[ConditionAlert], None]] | None:
        """``(enabled_seqs, record_alert)`` (:mod:`.conditions`); None (logged once) while none are registered."""
        if self._condition_hooks is not None:
            return self._condition_hooks
        hooks = condition_hooks()
        if hooks is None and not self._hooks_missing_logged:
            self._hooks_missing_logged = True
            logger.warning("feed: no condition hooks registered; no real-time conditions", extra=self._log)
        return hooks

    async def _conditions_loop(self) -> None:
        """Keep the session's real-time conditions equal to the enabled ones (read in a thread)."""
        while self._running:
            hooks = self._hooks()
            session = self.session
            if session is not None:
                try:
                    seqs = await asyncio.wait_for(asyncio.to_thread(_seqs_closing, hooks[0]), 30.0) if hooks else []
                    added, removed = await session.set_conditions(seqs)  # type: ignore[attr-defined]
                    if added or removed:
                        logger.info("feed conditions changed", extra={**self._log, "added": ",".join(added),
                                    "removed": ",".join(removed)})  # fmt: skip
                except Exception as exc:
                    logger.warning("feed conditions not refreshed; keeping the current ones", extra={**self._log,
                                   "error": repr(exc)[:200]})  # fmt: skip
            await asyncio.sleep(self.settings.condition_refresh)

    async def _alerts_loop(self) -> None:
        """Hand each alert to ``condition_alert_record`` in a thread, one at a time; failures logged and counted."""
        assert self._alerts is not None
        while self._running:
            try:
                alert = await self._alerts.get(timeout=1.0)
            except TimeoutError:
                continue
            except QueueClosed:
                return
            hooks = self._hooks()
            if hooks is None:
                continue
            try:
                await asyncio.wait_for(asyncio.to_thread(_record_closing, hooks[1], alert), self.settings.alert_timeout)
                self.counters.alerts_recorded += 1
            except Exception as exc:
                self.counters.alert_errors += 1
                if self.counters.alert_errors <= 10 or self.counters.alert_errors % 1000 == 0:
                    logger.warning("feed condition alert not recorded", extra={**self._log, "seq": alert.seq,
                                   "code": alert.code, "kind": alert.kind, "error": repr(exc)[:200],
                                   "alert_errors": self.counters.alert_errors})  # fmt: skip

    async def _renew_loop(self, lost: asyncio.Event) -> None:
        while self._running:
            await asyncio.sleep(self.lease.renew_interval)
            try:
                ok: bool | None = await asyncio.wait_for(self.lease.renew(), self.lease.renew_interval)
            except (RedisError, OSError, TimeoutError) as exc:
                ok = None
                logger.warning("feed lease renewal failed (Redis); retrying", extra={**self._log, "error": repr(exc)})
            if ok is False:
                logger.error("feed lease lost to another holder; disconnecting now", extra=self._log)
                lost.set()
                return
            if ok is None and self.lease.expired_locally():
                logger.error("feed lease not renewed in time; disconnecting now", extra=self._log)
                lost.set()
                return

    async def _control_loop(self) -> None:
        while self._running:
            try:
                await self._control_once()
            except (RedisError, OSError, TimeoutError) as exc:
                logger.warning("feed demand unavailable (Redis); keeping subscriptions", extra={**self._log,
                               "error": repr(exc)})  # fmt: skip
            await asyncio.sleep(self.settings.demand_interval)

    async def _control_once(self) -> None:
        session = self.session
        assert session is not None
        mono = time.monotonic()
        if session.status == "connected":
            if self._connected_since is None:
                self._connected_since = mono
        else:
            self._connected_since = None
        if self._silent(session, mono):
            await self._replace_session()
            return
        if mono - self._watchlist_at >= self.settings.watchlist_refresh:
            try:
                self._watchlist = list(await asyncio.wait_for(self._watchlist_provider(), 30.0))
                self._watchlist_at = mono
            except Exception as exc:
                self._watchlist_at = mono - self.settings.watchlist_refresh + 30.0  # retry in 30 s
                logger.warning("feed watchlist unavailable; keeping the last one", extra={**self._log,
                               "error": repr(exc)})  # fmt: skip
        now = time.time()
        demand = await asyncio.wait_for(
            read_demand(
                self.redis,
                now=now,
                watchlist=self._watchlist,
                grace=self.settings.viewer_grace,
                viewer_ttl=self.settings.viewer_ttl,
            ),
            5.0,
        )
        per_connection, nxt_wanted = self._budget(demand.orders)
        target = plan(
            demand,
            now=now,
            grace=self.settings.viewer_grace,
            per_connection=per_connection,
            slot=self.slot,
            slots=self.slots,
            min_per_user=self.settings.order_codes_min_per_user,
        )
        nxt = {c for c in target if c in nxt_wanted}
        nxt = set(sorted(nxt, key=target.index)[: self.source.max_registrations(self.settings.max_registrations)
                                                  - 2 * len(target)])  # fmt: skip
        await self._apply(session, target, mono, nxt=nxt)
        if self._poller is not None:
            polled = overflow(
                demand, now=now, grace=self.settings.viewer_grace, per_connection=per_connection,
                slots=self.slots, min_per_user=self.settings.order_codes_min_per_user,
            )  # fmt: skip
            refused = [c for c in target if self._refused_until.get(c, 0.0) > mono]  # refused live: poll them too
            self._poller.set_codes([*polled, *refused])
            self.counters.polled_stocks = len(self._poller.codes)
            self.counters.poll_errors = self._poller.errors

    def _budget(self, order_codes: frozenset[str]) -> tuple[int, frozenset[str]]:
        """(stocks per connection, NXT-eligible codes with open orders) under the slot budget.

        Slot budget of a KIS connection (41 registrations, kis-api.md §6.8): two per stock (trades + book:
        H0STCNT0 + H0STASP0 in the day, H0STOUP0 + H0STOAA0 in the off-hours window, see ``kis_trs``), plus one
        H0NXCNT0 for each NXT-eligible stock with open orders, at most ``nxt_registrations`` of them (the stocks
        carried shrink to make room: 41 → 20 stocks without NXT, 18 with 5 NXT stocks). Market status (H0STMKO0)
        and expected trades (H0STANC0) take no slot: the phase, halt and VI reference ride on every trade print
        (NEW_MKOP_CLS_CODE, TRHT_YN, VI_STND_PRC) and the expected price on the book (ANTC_CNPR / ANTC_CNQN, with
        HOUR_CLS_CODE naming the call). Other sources, and KIS paper (no NXT feeds, kis-api.md §7) unless
        ``nxt_in_paper`` (a sandbox that serves them): two per stock, no NXT."""
        limit = self.source.max_registrations(self.settings.max_registrations)
        paper_ok = self.source.env == "real" or self.settings.nxt_in_paper
        if not isinstance(self.source, KisSource) or not paper_ok or self.settings.nxt_registrations <= 0:
            return self.per_connection, frozenset()
        wanted = frozenset(c for c in order_codes if c in self.settings.nxt_eligible)
        reserve = min(self.settings.nxt_registrations, len(wanted), max(0, limit - 2))
        if not reserve:
            return self.per_connection, frozenset()
        return stocks_per_connection(limit - reserve), wanted

    def kis_trs(self, code: str, nxt: set[str] | frozenset[str] = frozenset()) -> tuple[str, ...]:
        """The KIS TRs a stock is registered with now (market time): trades and book, the off-hours pair from
        ``off_hours_from`` to ``off_hours_until`` (15:35–18:05: after the closing print, through the last
        after-hours call), plus NXT trades for ``nxt`` codes. On a shifted day (CSAT) the window does not move
        (approximate). A ``market_open`` provider without a market clock (no ``offset``: it only says open or
        closed), or one that has not answered yet, keeps the day's TRs: the wall clock says nothing of the market
        time it answers for."""
        offset = getattr(self._market_open_provider, "offset", None)
        if offset is None:
            off_hours = False
        else:
            now = (dt.datetime.now(KST) + offset).time()
            off_hours = self.settings.off_hours_from <= now < self.settings.off_hours_until
        trs = (TR_OFF_HOURS_TRADES, TR_OFF_HOURS_BOOK) if off_hours else (TR_TRADES, TR_BOOK)
        return trs + ((TR_NXT_TRADES,) if code in nxt else ())

    async def _apply(
        self, session: RealtimeSession, target: list[str], mono: float, *, nxt: set[str] | None = None
    ) -> None:
        kis = isinstance(session, KisRealtimeSession)
        current: dict[str, set[str]] = {}
        for tr, code in session.registrations:
            current.setdefault(code, set()).add(tr)
        wanted = set(target)
        removed = sorted(set(current) - wanted)
        added = [c for c in target if c not in current and self._refused_until.get(c, 0.0) <= mono]
        for code in removed:
            if kis:
                await session.unsubscribe(code, tuple(sorted(current[code])))  # type: ignore[call-arg]
            else:
                await session.unsubscribe(code)
        swapped = []
        if kis:
            for code in target:
                if code not in current:
                    continue
                want = set(self.kis_trs(code, nxt or set()))
                if want != current[code]:
                    swapped.append(code)
                    await session.unsubscribe(code, tuple(sorted(current[code] - want)))  # type: ignore[call-arg]
                    try:
                        await session.subscribe(code, tuple(sorted(want - current[code])))  # type: ignore[call-arg]
                    except BrokerError as exc:
                        logger.warning("feed TR change refused", extra={**self._log, "code": code,
                                       "error_code": exc.code})  # fmt: skip
        for code in added:
            try:
                if kis:
                    await session.subscribe(code, self.kis_trs(code, nxt or set()))  # type: ignore[call-arg]
                else:
                    await session.subscribe(code)
            except BrokerError as exc:
                self._refused_until[code] = mono + self.settings.refused_cooldown
                logger.warning(
                    "feed subscription refused; retried later",
                    extra={**self._log, "code": code, "error_code": exc.code,
                           "retry_in_s": self.settings.refused_cooldown},
                )  # fmt: skip
        if removed or added or swapped:
            self.counters.subscription_changes += 1
            logger.info(
                "feed subscriptions changed",
                extra={**self._log, "added": ",".join(added[:20]), "removed": ",".join(removed[:20]),
                       "changed_trs": ",".join(swapped[:20]), "registrations": len(session.registrations),
                       "stocks": len({code for _tr, code in session.registrations})},
            )  # fmt: skip
        self.codes = sorted({code for _tr, code in session.registrations})

    def _silent(self, session: RealtimeSession, mono: float) -> bool:
        """Open, registered, market open, yet no data frame for ``silence_timeout`` s (PINGPONGs only)."""
        if self._connected_since is None or self.market_open is False or not session.active_registrations:
            return False
        last = max(session.stats.last_frame_monotonic or 0.0, self._connected_since)
        return mono - last > self.settings.silence_timeout

    async def _replace_session(self) -> None:
        old = self.session
        assert old is not None
        self.counters.replacements += 1
        logger.warning(
            "feed connection silent during the session (no data frames); replacing it",
            extra={**self._log, "silence_timeout_s": self.settings.silence_timeout, "stocks": len(self.codes)},
        )
        new = self._new_session()
        if isinstance(new, KisRealtimeSession):
            trs: dict[str, list[str]] = {}
            for tr, code in old.registrations:
                trs.setdefault(code, []).append(tr)
            for code, code_trs in sorted(trs.items()):
                await new.subscribe(code, tuple(sorted(code_trs)))  # not started yet: records the registrations
        else:
            for code in self.codes:
                await new.subscribe(code)  # not started yet: only records the desired registrations
        if self.source.conditions:
            await new.set_conditions(old.conditions)  # type: ignore[attr-defined]
        self.session = new
        self._connected_since = None
        await old.stop(timeout=5.0)
        new.start()

    async def _publish_loop(self, publisher: QuotePublisher) -> None:
        """Drains the queue into batches of at most ``publish_batch_max`` events: whatever arrived while the
        previous batch was being published goes out in one Redis round trip and one message per bucket."""
        assert self._queue is not None
        failures = 0
        batch_max = max(1, self.settings.publish_batch_max)
        while self._running:
            try:
                batch = [await self._queue.get(timeout=1.0)]
            except TimeoutError:
                continue
            except QueueClosed:
                return
            while len(batch) < batch_max and len(self._queue):
                batch.append(self._queue.get_nowait())
            events = [e for e in batch if isinstance(e, Tick | OrderBook | ExpectedTrade | MarketStatus)]
            try:
                await publisher.publish(events, now=time.monotonic())
                self.counters.published += len(events)
                failures = 0
            except Exception as exc:
                failures += 1
                self.counters.publish_errors += len(events)
                if failures == 1 or failures % 100 == 0:
                    logger.warning("feed publish failed; batch skipped", extra={**self._log, "error": repr(exc),
                                   "events": len(events), "publish_errors": self.counters.publish_errors})  # fmt: skip
                await asyncio.sleep(min(2.0, 0.05 * failures))  # Redis down: back off, the queue drops oldest

    def _status_now(self) -> str:
        session = self.session
        if session is None:
            return "stopped"
        if self.market_open is False:
            return "closed"
        if session.status == "connected":
            if self._silent(session, time.monotonic()):
                return "stale"
            return "connected"
        if session.status == "stale":
            return "stale"
        return "reconnecting"

    def _detail(self) -> dict[str, Any]:
        session = self.session
        stats = session.stats if session is not None else None
        return {
            "holder": self.lease.token,
            "source": self.source.name,
            "env": self.source.env,
            "key_id": self.source.key_id,
            "slot": self.slot,
            "slots": self.slots,
            "session": session.status if session is not None else "stopped",
            "market_open": self.market_open,
            "stocks": len(self.codes),
            "registrations": len(session.registrations) if session is not None else 0,
            "active_registrations": len(session.active_registrations) if session is not None else 0,
            "reconnects": stats.reconnects if stats else 0,
            "stalls": stats.stalls if stats else 0,
            "last_frame_at": stats.last_frame_at.isoformat() if stats and stats.last_frame_at else None,
            **dataclasses.asdict(self.counters),
            "at": dt.datetime.now(dt.UTC).isoformat(),
        }

    async def _status_loop(self, publisher: QuotePublisher) -> None:
        last = ""
        while self._running:
            self.status = self._status_now()
            if self.status != last:
                logger.info("feed status", extra={**self._log, "status": self.status})
                last = self.status
            try:
                await asyncio.wait_for(publisher.publish_status(self.status, self._detail()), 5.0)
            except Exception as exc:
                logger.warning("feed status not published", extra={**self._log, "error": repr(exc)})
            await asyncio.sleep(self.settings.status_interval)

    async def _market_loop(self) -> None:
        while self._running:
            try:
                self.market_open = await asyncio.wait_for(self._market_open_provider(), 10.0)
                self.trading_date = getattr(self._market_open_provider, "trading_date", None)
            except Exception as exc:
                self.market_open = None
                logger.warning("feed market clock failed", extra={**self._log, "error": repr(exc)})
            await asyncio.sleep(self.settings.market_refresh)

    async def _bars_loop(self) -> None:
        while self._running:
            await asyncio.sleep(self.settings.bars_interval)
            await self._store_bars(self._bars.complete())
            if self._recorder is not None:
                await asyncio.to_thread(self._recorder.flush)

    async def _store_bars(self, bars: list[LiveBar]) -> None:
        if not bars or self._bar_store is None:
            return
        try:
            self.counters.bars_stored += await asyncio.wait_for(asyncio.to_thread(self._bar_store, bars), 30.0)
        except Exception as exc:
            self.counters.bar_errors += 1
            logger.warning("feed live bars not stored", extra={**self._log, "bars": len(bars), "error": repr(exc)})

    async def _heartbeat_loop(self) -> None:
        while self._running:
            await asyncio.sleep(self.settings.heartbeat_interval)
            logger.info("feed heartbeat", extra={**self._log, "status": self.status, **self._counter_log()})

    def _counter_log(self) -> dict[str, Any]:
        session = self.session
        stats = session.stats if session is not None else None
        return {
            **dataclasses.asdict(self.counters),
            "reconnects": stats.reconnects if stats else 0,
            "registrations": len(session.active_registrations) if session is not None else 0,
            "stocks": len(self.codes),
        }


def _seqs_closing(hook: Callable[[], list[str]]) -> list[str]:
    """Run the seqs hook in a worker thread and close that thread's database connection afterwards."""
    from django.db import connection

    try:
        return [str(s) for s in hook()]
    finally:
        connection.close()


def _record_closing(hook: Callable[[ConditionAlert], None], alert: ConditionAlert) -> None:
    from django.db import connection

    try:
        hook(alert)
    finally:
        connection.close()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run_feed(
    stop: asyncio.Event,
    *,
    settings: FeedSettings | None = None,
    configs: Sequence[Any] | None = None,
    watchlist: Sequence[str] | None = None,
    redis_url: str | None = None,
) -> list[FeedHolder]:
    """Run one candidate per configured app key until ``stop`` is set (the bootstep's and runfeed's entry).

    ``watchlist`` replaces the universe (debugging, tests). Returns the holders (for their counters).
    """
    import redis.asyncio as aioredis
    from channels.layers import get_channel_layer
    from django.conf import settings as django_settings

    feed_settings = settings or FeedSettings.from_settings()
    configs = list(configs or feed_configs())
    client = aioredis.Redis.from_url(
        redis_url or django_settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )
    layer = get_channel_layer()
    fixed: WatchlistProvider | None = None
    if watchlist is not None:
        codes = list(watchlist)

        async def fixed() -> Sequence[str]:
            return codes

    holders = [
        FeedHolder(cfg, redis=client, channel_layer=layer, settings=feed_settings, slot=i, slots=len(configs),
                   watchlist=fixed)
        for i, cfg in enumerate(configs)
    ]  # fmt: skip
    try:
        await asyncio.gather(*(h.run(stop) for h in holders))
    finally:
        await client.aclose()
    return holders
