"""Publishes ticks and books from the feed holder: one pipelined Redis round trip for the stores, one
group message per event through the Channels layer (the PubSub layer: one PUBLISH per group message,
whatever the number of browsers). It never waits on a consumer: browsers coalesce on their side, the
fill path reads a durable stream at its own pace.
"""

from __future__ import annotations

import json
import logging

from ..brokers.base import OrderBook, Tick
from . import keys
from .snapshots import book_snapshot, quote_snapshot

logger = logging.getLogger(__name__)


class QuotePublisher:
    def __init__(self, *, redis, channel_layer, fill_codes_refresh: float = 1.0):
        """``redis``: an asyncio Redis client; ``channel_layer``: the Channels layer."""
        self.redis = redis
        self.layer = channel_layer
        self._fill_codes: set[str] = set()
        self._fill_codes_at = 0.0
        self._fill_codes_refresh = fill_codes_refresh
        self.published = 0

    async def _codes_with_orders(self, now: float) -> set[str]:
        if now - self._fill_codes_at >= self._fill_codes_refresh:
            members = await self.redis.smembers(keys.ORDERS_SET)
            self._fill_codes = {m.decode() if isinstance(m, bytes) else m for m in members}
            self._fill_codes_at = now
        return self._fill_codes

    async def publish_tick(self, tick: Tick, *, now: float, source: str = "ws") -> dict:
        """``source``: ``ws`` (a trade print of the live feed) or ``poll`` (a REST snapshot of a stock without a
        live slot; its fill-stream entry says so, and the fills it makes record it)."""
        snapshot = quote_snapshot(tick, source=source)
        payload = json.dumps(snapshot, ensure_ascii=False)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.QUOTES_HASH, tick.code, payload)
        if tick.code in await self._codes_with_orders(now) and (source == "ws" or tick.volume > 0):
            entry = {"code": tick.code, "price": tick.price, "volume": tick.volume, "cum_volume": tick.cum_volume,
                     "at": tick.at.isoformat(), "ask": tick.ask1, "bid": tick.bid1}  # fmt: skip
            if source == "poll":
                entry["source"] = "poll"
            pipe.xadd(keys.FILL_TICKS_STREAM, entry, maxlen=keys.FILL_TICKS_MAXLEN, approximate=True)
        await pipe.execute()
        await self.layer.group_send(keys.quote_group(tick.code), {"type": "quote.tick", "quote": snapshot})
        self.published += 1
        return snapshot

    async def publish_book(self, book: OrderBook) -> dict:
        snapshot = book_snapshot(book)
        await self.redis.hset(keys.BOOKS_HASH, book.code, json.dumps(snapshot))
        await self.layer.group_send(keys.quote_group(book.code), {"type": "book.snapshot", "book": snapshot})
        self.published += 1
        return snapshot

    async def publish_status(self, status: str, detail: dict) -> None:
        """Feed status for /healthz and every browser (``status`` message)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.FEED_STATUS_KEY, status, ex=30)
        pipe.set(keys.FEED_STATUS_DETAIL_KEY, json.dumps(detail, default=str), ex=30)
        await pipe.execute()
        await self.layer.group_send(keys.STATUS_GROUP, {"type": "feed.status", "status": status, "detail": detail})
