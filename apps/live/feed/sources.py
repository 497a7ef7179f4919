"""Real-time sources of the feed holder (``MARKET_FEED``): KIS, Kiwoom, or the OpenAPI+ (KOA) bridge.

The holder (lease, demand, publisher, bars, recorder, status) is the same for all three; a source only says
how to build a session and what its lease scope and per-connection budget are. Every session has the
surface of :class:`RealtimeSession` and delivers the same :class:`~apps.brokers.base.Tick` /
:class:`~apps.brokers.base.OrderBook` events (and, for Kiwoom and KOA, ``ConditionAlert``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from apps.brokers.kis.config import KisConfig
from apps.brokers.kis.realtime import MAX_REGISTRATIONS
from apps.brokers.kis.ws import ApprovalKeyProvider, KisRealtimeSession
from apps.brokers.kiwoom.config import KiwoomConfig
from apps.brokers.kiwoom.ws import KiwoomRealtimeSession, TokenProvider
from apps.brokers.websocket import RealtimeStats
from apps.marketdata.broker_services import kis_client_async, kiwoom_client_async

from .koa import KoaBridgeSession, KoaConfig

EventSink = Callable[[Any], None]


class RealtimeSession(Protocol):
    """What the holder uses of a session (KisRealtimeSession, KiwoomRealtimeSession, KoaBridgeSession)."""

    @property
    def status(self) -> str: ...
    @property
    def stats(self) -> RealtimeStats: ...
    @property
    def registrations(self) -> frozenset[tuple[str, str]]: ...
    @property
    def active_registrations(self) -> frozenset[tuple[str, str]]: ...
    async def subscribe(self, code: str) -> None: ...
    async def unsubscribe(self, code: str) -> None: ...
    def start(self) -> Any: ...
    async def stop(self, timeout: float = 10.0) -> None: ...


class ConditionSession(RealtimeSession, Protocol):
    @property
    def conditions(self) -> frozenset[str]: ...
    async def set_conditions(self, seqs: Iterable[str]) -> tuple[list[str], list[str]]: ...


class FeedSource:
    """Base: identity (``scope`` for the lease, ``env`` / ``key_id`` for logs and status) and the session factory."""

    name = ""
    #: Whether the source delivers condition alerts (the holder then keeps the enabled conditions subscribed).
    conditions = False

    def __init__(self, config: Any) -> None:
        self.config = config

    @property
    def scope(self) -> str:
        return self.config.scope

    @property
    def env(self) -> str:
        return self.config.env

    @property
    def key_id(self) -> str:
        return self.config.key_id

    def max_registrations(self, configured: int) -> int:
        """Registrations one connection carries (two per stock); ``configured`` is FEED_MAX_REGISTRATIONS."""
        return configured

    async def open(self) -> None:
        """Create what sessions need (clients); called when the holder takes the lease."""

    async def aclose(self) -> None:
        """Release what :meth:`open` created."""

    def new_session(self, on_event: EventSink, settings: Any, trading_date: Any = None) -> RealtimeSession:
        raise NotImplementedError


class KisSource(FeedSource):
    name = "kis"

    def __init__(self, config: KisConfig, approval_key: Callable[[KisConfig], ApprovalKeyProvider] | None = None):
        super().__init__(config)
        self._factory = approval_key
        self._client: Any = None
        self._provider: ApprovalKeyProvider | None = None

    async def open(self) -> None:
        if self._factory is not None:
            self._provider = self._factory(self.config)
            return

        self._client = kis_client_async(self.config)
        self._provider = self._client.approval_key

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def new_session(self, on_event: EventSink, settings: Any, trading_date: Any = None) -> KisRealtimeSession:
        assert self._provider is not None, "open() first"
        return KisRealtimeSession(
            self.config,
            self._provider,
            on_event=on_event,
            max_registrations=settings.max_registrations,
            stall_timeout=settings.stall_timeout,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
        )


class KiwoomSource(FeedSource):
    name = "kiwoom"
    conditions = True

    def __init__(self, config: KiwoomConfig, token: Callable[[KiwoomConfig], TokenProvider] | None = None):
        super().__init__(config)
        self._factory = token
        self._client: Any = None
        self._provider: TokenProvider | None = None

    def max_registrations(self, configured: int) -> int:
        return 2 * self.config.ws_max_stocks

    async def open(self) -> None:
        if self._factory is not None:
            self._provider = self._factory(self.config)
            return

        self._client = kiwoom_client_async(self.config)
        self._provider = self._client.ws_token

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def new_session(self, on_event: EventSink, settings: Any, trading_date: Any = None) -> KiwoomRealtimeSession:
        assert self._provider is not None, "open() first"
        return KiwoomRealtimeSession(
            self.config,
            self._provider,
            on_event=on_event,
            stall_timeout=settings.stall_timeout,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
            trading_date=trading_date,
        )


class KoaSource(FeedSource):
    name = "koa"
    conditions = True

    def max_registrations(self, configured: int) -> int:
        return 2 * self.config.max_stocks

    def new_session(self, on_event: EventSink, settings: Any, trading_date: Any = None) -> KoaBridgeSession:
        return KoaBridgeSession(
            self.config, on_event=on_event, backoff_base=settings.backoff_base, backoff_max=settings.backoff_max
        )


def source_for(config: Any, *, approval_key: Any = None, token: Any = None) -> FeedSource:
    """The source of a config: KisConfig → KIS, KiwoomConfig → Kiwoom, KoaConfig → KOA bridge (or a FeedSource)."""
    if isinstance(config, FeedSource):
        return config
    if isinstance(config, KisConfig):
        return KisSource(config, approval_key)
    if isinstance(config, KiwoomConfig):
        return KiwoomSource(config, token)
    if isinstance(config, KoaConfig):
        return KoaSource(config)
    raise TypeError(f"no feed source for {type(config).__name__}")


__all__ = [
    "MAX_REGISTRATIONS",
    "ConditionSession",
    "FeedSource",
    "KisSource",
    "KiwoomSource",
    "KoaSource",
    "RealtimeSession",
    "source_for",
]
