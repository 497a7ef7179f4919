"""The feed source ``MARKET_FEED=koa``: consumes the Kiwoom OpenAPI+ bridge's Redis pub/sub protocol.

The protocol (version 1) is documented in ``docs/koa-bridge.md``; in short, with ``<p>`` = KOA_CHANNEL_PREFIX:

- bridge → Hoga: ``<p>:tick:<code>`` / ``<p>:book:<code>`` (``{"v":1,"type":"tick"|"book","code":..,"fids":{..}}``,
  the FID values exactly as ``GetCommRealData`` returns them, i.e. the same FIDs and sign conventions as the
  REST ``REAL`` 0B / 0D pushes, so :mod:`apps.brokers.kiwoom.parsing` parses both);
  ``<p>:condition`` (``{"v":1,"type":"condition","seq":..,"code":..,"kind":"I"|"D","time":"HHMMSS"}``);
  ``<p>:heartbeat`` (``{"v":1,"type":"heartbeat","connected":true|false,"codes":[..],"conditions":[..]}``).
- Hoga → bridge: what to register, as ``{"v":1,"type":"want","codes":[..],"conditions":[..]}`` stored in the key
  ``<p>:want`` and published on ``<p>:control`` whenever it changes and every ``control_interval`` seconds.

:class:`KoaBridgeSession` has the session surface the feed holder uses. A malformed message (not JSON,
wrong version, missing fields, unparsable values) is logged and skipped, never raised. The bridge's heartbeat
drives the status: ``connected`` while a heartbeat younger than ``heartbeat_timeout`` says the OpenAPI+
control is connected, ``stale`` when heartbeats stop or say disconnected, ``reconnecting`` while Redis is
unreachable (re-subscribed with back-off and jitter).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from apps.brokers.base import KST, BrokerProtocolError, ConditionAlert, OrderBook, Tick
from apps.brokers.kiwoom import parsing
from apps.brokers.rest import backoff_delay
from apps.brokers.websocket import RealtimeStats, SubscriptionLimitExceeded

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
KINDS = ("tick", "book")
EventSink = Callable[[Any], None]


@dataclasses.dataclass(frozen=True, slots=True)
class KoaConfig:
    """Where the bridge publishes. ``redis_url`` is a connection string (may hold a password: not logged)."""

    redis_url: str = dataclasses.field(repr=False)
    prefix: str = "koa"
    heartbeat_timeout: float = 10.0
    max_stocks: int = 100
    control_interval: float = 2.0

    def __post_init__(self) -> None:
        if not self.redis_url or not self.prefix.strip() or any(ch in self.prefix for ch in " *?[]"):
            raise ValueError("KOA redis_url and a prefix without spaces or glob characters are required")
        if self.heartbeat_timeout <= 0 or self.max_stocks < 1 or self.control_interval <= 0:
            raise ValueError("heartbeat_timeout > 0, max_stocks >= 1, control_interval > 0 are required")

    @property
    def env(self) -> str:
        return "koa"

    @property
    def scope(self) -> str:
        """Lease scope: one holder per bridge prefix."""
        return f"koa:{self.prefix}"

    @property
    def key_id(self) -> str:
        return self.prefix

    def channel(self, kind: str, code: str = "") -> str:
        return f"{self.prefix}:{kind}:{code}" if code else f"{self.prefix}:{kind}"

    @classmethod
    def from_settings(cls, settings: Any = None) -> KoaConfig:
        if settings is None:
            from django.conf import settings as django_settings

            settings = django_settings
        return cls(
            redis_url=str(settings.KOA_REDIS_URL or settings.REDIS_URL),
            prefix=str(settings.KOA_CHANNEL_PREFIX).strip(),
            heartbeat_timeout=float(settings.KOA_HEARTBEAT_TIMEOUT),
            max_stocks=int(settings.KOA_MAX_STOCKS),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Heartbeat:
    connected: bool
    codes: tuple[str, ...]
    conditions: tuple[str, ...]
    received_monotonic: float


def parse_message(
    channel: str, data: Any, *, prefix: str, received_at: dt.datetime
) -> Tick | OrderBook | ConditionAlert | Heartbeat:
    """One pub/sub message of the protocol → event or heartbeat; :class:`BrokerProtocolError` when malformed."""
    if isinstance(data, bytes):
        try:
            data = data.decode()
        except UnicodeDecodeError:
            raise BrokerProtocolError("message is not UTF-8") from None
    try:
        message = json.loads(data)
    except (TypeError, ValueError):
        raise BrokerProtocolError("message is not JSON") from None
    if not isinstance(message, Mapping):
        raise BrokerProtocolError("message is not a JSON object")
    version = message.get("v")
    if version != PROTOCOL_VERSION:
        raise BrokerProtocolError(f"unsupported protocol version {version!r}")
    kind = str(message.get("type") or "")
    if kind in KINDS:
        code = parsing.strip_code(message.get("code"))
        if channel != f"{prefix}:{kind}:{code}":
            raise BrokerProtocolError(f"{kind} for {code} on channel {channel}")
        fids = message.get("fids")
        if not isinstance(fids, Mapping):
            raise BrokerProtocolError("fids is not an object")
        if kind == "tick":
            return parsing.tick_from_values(code, fids, received_at=received_at)
        return parsing.book_from_values(code, fids, received_at=received_at)
    if kind == "condition":
        return parsing.condition_alert(
            message.get("seq"), message.get("code"), message.get("kind"), message.get("time"), received_at=received_at
        )
    if kind == "heartbeat":
        codes = message.get("codes") or []
        conditions = message.get("conditions") or []
        if not isinstance(codes, list) or not isinstance(conditions, list):
            raise BrokerProtocolError("heartbeat codes/conditions are not lists")
        return Heartbeat(
            connected=message.get("connected") is True,
            codes=tuple(str(c) for c in codes),
            conditions=tuple(str(c) for c in conditions),
            received_monotonic=time.monotonic(),
        )
    raise BrokerProtocolError(f"unknown message type {kind!r}")


class KoaBridgeSession:
    """The holder's session over the bridge's channels (see module docstring)."""

    def __init__(
        self,
        config: KoaConfig,
        *,
        on_event: EventSink,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        redis_factory: Callable[[], Any] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self._on_event = on_event
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._redis_factory = redis_factory or self._default_redis
        self._rng = rng
        self._stats = RealtimeStats()
        self._codes: set[str] = set()
        self._conditions: set[str] = set()
        self._subscribed: set[str] = set()  # codes whose channels the current pubsub listens to
        self._redis: Any = None
        self._pubsub: Any = None
        self._ops = asyncio.Lock()
        self._changed = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._connected_redis = False
        self.heartbeat: Heartbeat | None = None
        self._log = {"source": "koa", "prefix": config.prefix}
        self._malformed_logged = 0

    def _default_redis(self) -> Any:
        import redis.asyncio as aioredis

        return aioredis.Redis.from_url(self.config.redis_url, socket_connect_timeout=2, socket_timeout=5)

    # --- public state ----------------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        if self._task is None or self._task.done():
            return "stopped"
        if not self._connected_redis:
            return "reconnecting"
        hb = self.heartbeat
        if hb is None:
            return "connecting"
        if time.monotonic() - hb.received_monotonic > self.config.heartbeat_timeout or not hb.connected:
            return "stale"
        return "connected"

    @property
    def stats(self) -> RealtimeStats:
        return self._stats.snapshot()

    @property
    def registrations(self) -> frozenset[tuple[str, str]]:
        return frozenset((k, c) for c in self._codes for k in KINDS)

    @property
    def active_registrations(self) -> frozenset[tuple[str, str]]:
        """Codes this side listens to and the bridge's last live heartbeat says it has registered."""
        if self.status != "connected" or self.heartbeat is None:
            return frozenset()
        live = set(self.heartbeat.codes) & self._subscribed
        return frozenset((k, c) for c in live for k in KINDS)

    @property
    def conditions(self) -> frozenset[str]:
        return frozenset(self._conditions)

    # --- wanted set ----------------------------------------------------------------------------------------------
    async def subscribe(self, code: str, tr_ids: Iterable[str] | None = None) -> None:
        code = parsing.normalize_code(code)
        if code in self._codes:
            return
        if len(self._codes) >= self.config.max_stocks:
            raise SubscriptionLimitExceeded(f"KOA bridge limit of {self.config.max_stocks} stocks", kind="local_limit")
        self._codes.add(code)
        await self._sync_channels()
        self._changed.set()

    async def unsubscribe(self, code: str, tr_ids: Iterable[str] | None = None) -> None:
        code = parsing.normalize_code(code)
        self._codes.discard(code)
        await self._sync_channels()
        self._changed.set()

    async def set_conditions(self, seqs: Iterable[str]) -> tuple[list[str], list[str]]:
        wanted = {str(s).strip() for s in seqs if str(s).strip()}
        added, removed = sorted(wanted - self._conditions), sorted(self._conditions - wanted)
        self._conditions = wanted
        if added or removed:
            self._changed.set()
        return added, removed

    def want_message(self) -> str:
        return json.dumps(
            {
                "v": PROTOCOL_VERSION,
                "type": "want",
                "codes": sorted(self._codes),
                "conditions": sorted(self._conditions),
                "at": dt.datetime.now(KST).isoformat(timespec="seconds"),
            }
        )

    # --- lifecycle -------------------------------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"koa-bridge {self.config.prefix}")
        return self._task

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        self._changed.set()
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    async def run(self) -> None:
        failures = 0
        ever = False
        logger.info("koa bridge consumer started", extra=self._log)
        try:
            while not self._stopping:
                try:
                    await self._connect()
                    if ever:
                        self._stats.reconnects += 1
                    ever = True
                    failures = 0
                    await self._consume()
                except Exception as exc:  # Redis gone, or a bug: log, back off, reconnect
                    self._stats.connect_failures += 1
                    logger.warning("koa bridge consumer lost Redis; reconnecting", extra={**self._log,
                                   "error": repr(exc)[:200]})  # fmt: skip
                finally:
                    await self._disconnect()
                if self._stopping:
                    break
                failures += 1
                delay = backoff_delay(failures, base=self.backoff_base, cap=self.backoff_max, rng=self._rng)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait_stop(), delay)
        finally:
            logger.info("koa bridge consumer stopped", extra={**self._log, "frames": self._stats.frames,
                        "protocol_errors": self._stats.protocol_errors})  # fmt: skip

    async def _wait_stop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.1)

    # --- internals ---------------------------------------------------------------------------------------------------
    async def _connect(self) -> None:
        self._redis = self._redis_factory()
        self._pubsub = self._redis.pubsub()
        self._subscribed = set()
        await self._pubsub.subscribe(self.config.channel("heartbeat"), self.config.channel("condition"))
        self._connected_redis = True
        await self._sync_channels()
        await self._publish_want()

    async def _disconnect(self) -> None:
        self._connected_redis = False
        self._subscribed = set()
        pubsub, redis = self._pubsub, self._redis
        self._pubsub = self._redis = None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pubsub.aclose(), 2.0)
        if redis is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(redis.aclose(), 2.0)

    async def _sync_channels(self) -> None:
        """Make the pubsub's per-code channels equal to the wanted codes."""
        async with self._ops:
            pubsub = self._pubsub
            if pubsub is None or not self._connected_redis:
                return
            add = sorted(self._codes - self._subscribed)
            drop = sorted(self._subscribed - self._codes)
            if add:
                await pubsub.subscribe(*(self.config.channel(k, c) for c in add for k in KINDS))
                self._subscribed.update(add)
            if drop:
                await pubsub.unsubscribe(*(self.config.channel(k, c) for c in drop for k in KINDS))
                self._subscribed.difference_update(drop)

    async def _publish_want(self) -> None:
        text = self.want_message()
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self.config.channel("want"), text, ex=max(30, int(self.config.heartbeat_timeout * 3)))
        pipe.publish(self.config.channel("control"), text)
        await asyncio.wait_for(pipe.execute(), 5.0)

    async def _consume(self) -> None:
        next_control = time.monotonic() + self.config.control_interval
        while not self._stopping:
            if self._changed.is_set() or time.monotonic() >= next_control:
                self._changed.clear()
                await self._sync_channels()
                await self._publish_want()
                next_control = time.monotonic() + self.config.control_interval
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is None or message.get("type") != "message":
                continue
            channel = message.get("channel")
            if isinstance(channel, bytes):
                channel = channel.decode(errors="replace")
            self._handle(str(channel), message.get("data"))

    def _handle(self, channel: str, data: Any) -> None:
        received_at = dt.datetime.now(KST)
        try:
            item = parse_message(channel, data, prefix=self.config.prefix, received_at=received_at)
        except BrokerProtocolError as exc:
            self._stats.protocol_errors += 1
            if self._malformed_logged < 20 or self._stats.protocol_errors % 1000 == 0:
                self._malformed_logged += 1
                logger.warning("koa bridge: malformed message skipped", extra={**self._log, "channel": channel[:80],
                               "error": str(exc)[:200], "protocol_errors": self._stats.protocol_errors})  # fmt: skip
            return
        if isinstance(item, Heartbeat):
            previous = self.heartbeat
            self.heartbeat = item
            self._stats.pingpongs += 1
            if previous is None or previous.connected != item.connected:
                logger.info("koa bridge heartbeat", extra={**self._log, "bridge_connected": item.connected,
                            "bridge_codes": len(item.codes)})  # fmt: skip
            return
        if isinstance(item, ConditionAlert):
            wanted = {int_or(s): s for s in self._conditions}
            seq = wanted.get(int_or(item.seq))
            if seq is None:
                self._stats.ignored += 1
                return
            item = dataclasses.replace(item, seq=seq)  # the seq as Hoga asked for it ("3", not "003")
        elif item.code not in self._codes:
            self._stats.ignored += 1
            return
        else:
            now = time.monotonic()
            self._stats.frames += 1
            self._stats.last_frame_at, self._stats.last_frame_monotonic = received_at, now
            if isinstance(item, Tick):
                self._stats.ticks += 1
            else:
                self._stats.books += 1
        try:
            self._on_event(item)
        except Exception:
            self._stats.callback_errors += 1
            if self._stats.callback_errors == 1 or self._stats.callback_errors % 1000 == 0:
                logger.exception("koa bridge: event callback failed", extra=self._log)


def int_or(value: str) -> int | str:
    """``"003"`` and ``"3"`` name the same condition (OpenAPI+ pads indexes to 3 digits, REST does not)."""
    try:
        return int(value)
    except ValueError:
        return value


__all__ = ["PROTOCOL_VERSION", "Heartbeat", "KoaBridgeSession", "KoaConfig", "parse_message"]
