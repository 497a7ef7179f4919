"""Publishes ticks and books from the feed holder in batches.

``publish(events)`` takes whatever the holder drained from its queue: one pipelined Redis round trip stores
the latest snapshot of every stock of the batch (and appends every trade print of a stock with open orders to
the fill stream, in order), then ONE group message per bucket group (``apps.core.groups.quote_group``) carries
the latest snapshot of each stock of that bucket, already JSON-encoded::

    {"type": "quote.batch", "at": <publish time, epoch s>, "quotes": {code: json}, "books": {code: json}}

So the channel-layer cost is at most ``QUOTE_BUCKETS`` messages per batch, whatever the tick rate: a faster
tape only makes batches larger. It never waits on a consumer: web processes conflate per connection, the fill
path reads its durable stream at its own pace.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Iterable

from apps.brokers.base import ExpectedTrade, MarketStatus, OrderBook, Tick
from apps.core import groups
from apps.core.krx import phases
from apps.core.realtime import group_send

from . import keys, metrics
from .snapshots import STATE_DEFAULTS, book_snapshot, quote_snapshot

logger = logging.getLogger(__name__)

QUOTE_BATCH = "quote.batch"
#: A VI lasts 2 minutes plus a random end of up to 30 s (krx-rules §3.5): ``vi.until`` is the earliest end.
VI_MIN_SECONDS = 120
#: A book older than the stock's last print by at most this much was overtaken by that print and is dropped; a book
#: older by more means the market clock moved back (a sandbox replay restarted or jumped back): it starts afresh.
STALE_BOOK_WINDOW = dt.timedelta(seconds=60)
#: The static VI threshold (krx-rules §3.5 (verify)), to tell a static VI from a dynamic one seen only by its call.
VI_STATIC_PCT = 10


class QuotePublisher:
    def __init__(self, *, redis, channel_layer, fill_codes_refresh: float = 1.0):
        """``redis``: an asyncio Redis client; ``channel_layer``: the Channels layer."""
        self.redis = redis
        self.layer = channel_layer
        self._fill_codes: set[str] = set()
        self._fill_codes_at = 0.0
        self._fill_codes_refresh = fill_codes_refresh
        self.published = 0  # snapshots (quotes and books)
        self.batches = 0  # group messages
        #: Per stock: the market state (``snapshots.STATE_DEFAULTS`` fields), the last KRX quote snapshot, the
        #: last KRX price and VI reference (for a VI's reference). Only this process writes these stocks' keys.
        self._states: dict[str, dict] = {}
        self._last_quote: dict[str, dict] = {}
        self._last_price: dict[str, int] = {}
        self._vi_reference: dict[str, int] = {}
        self._no_quote: set[str] = set()
        self._last_print_at: dict[str, dt.datetime] = {}

    async def _codes_with_orders(self, now: float) -> set[str]:
        if now - self._fill_codes_at >= self._fill_codes_refresh:
            members = await self.redis.sunion(keys.ORDERS_SET, keys.STRATEGY_CODES_SET)
            self._fill_codes = {m.decode() if isinstance(m, bytes) else m for m in members}
            self._fill_codes_at = now
        return self._fill_codes

    def _state(self, code: str) -> dict:
        state = self._states.get(code)
        if state is None:
            state = self._states[code] = dict(STATE_DEFAULTS)
        return state

    def _apply_state(self, event: Tick | OrderBook | ExpectedTrade | MarketStatus) -> bool:
        """Fold one event into its stock's market state; True when the state changed."""
        state = self._state(event.code)
        before = dict(state)
        if isinstance(event, Tick):
            if event.venue == phases.NXT:
                state["nxt"] = {"price": event.price, "volume": event.volume, "cum_volume": event.cum_volume,
                                "time": event.at.isoformat(), "phase": event.phase}  # fmt: skip
            else:
                state["phase"] = phases.CONTINUOUS if event.phase == phases.VI_AUCTION else event.phase
                state["halted"] = event.halted
                state["expected"] = None  # a print ends the call that was building
                state["vi"] = None  # no KRX print happens during a VI: its single print (or any later one) ends it
                self._last_print_at[event.code] = event.at
                self._last_price[event.code] = event.price
                if event.vi_reference > 0:
                    self._vi_reference[event.code] = event.vi_reference
        elif isinstance(event, OrderBook):
            last_print = self._last_print_at.get(event.code)
            if last_print is not None and event.at < last_print:
                if last_print - event.at <= STALE_BOOK_WINDOW:
                    return False  # a book from before the last print (trades and books travel in separate frames)
                del self._last_print_at[event.code]  # far older: the market clock moved back (a replay restarted)
            if event.expected_price > 0:
                state["expected"] = {"price": event.expected_price, "quantity": event.expected_qty,
                                     "phase": event.phase or None}  # fmt: skip
                if event.phase:
                    state["phase"] = event.phase
                if event.phase == phases.VI_AUCTION and state["vi"] is None:
                    state["vi"] = self._vi_from_call(event.code, event.expected_price, event.at)
            elif event.session == "0" and state["expected"] is not None and state["phase"] == phases.CONTINUOUS:
                state["expected"] = None
        elif isinstance(event, ExpectedTrade):
            state["expected"] = {"price": event.price, "quantity": event.quantity, "phase": event.phase or None}
            if event.phase:
                state["phase"] = event.phase
            if event.phase == phases.VI_AUCTION and state["vi"] is None:
                state["vi"] = self._vi_from_call(event.code, event.price, event.at)
        else:
            state["halted"] = event.halted
            if event.phase:
                state["phase"] = event.phase
            if event.vi:
                if state["vi"] is None or state["vi"]["kind"] != event.vi:
                    reference = (
                        self._vi_reference.get(event.code) if event.vi == "static" else self._last_price.get(event.code)
                    )
                    until = event.at + dt.timedelta(seconds=VI_MIN_SECONDS)
                    state["vi"] = {"kind": event.vi, "reference": reference or None, "until": until.isoformat()}
            else:
                state["vi"] = None
                if state["phase"] == phases.VI_AUCTION:
                    state["phase"] = event.phase or phases.CONTINUOUS
        return state != before

    def _vi_from_call(self, code: str, expected: int, at: dt.datetime) -> dict:
        """A VI seen through its call (a book or expected trade of phase VI_AUCTION) before or without its
        H0STMKO0 record (the slot budget leaves none for it): the kind is inferred, APPROXIMATELY, from the call's
        first expected price (near the price that triggered it): static when it lies 10 % or more from the static
        reference (VI_STND_PRC of the last print), else dynamic (reference: the last trade); ``until`` counts
        from this first sight. An H0STMKO0 record, when subscribed, replaces it."""
        static_ref = self._vi_reference.get(code) or 0
        last = self._last_price.get(code) or 0
        static = bool(static_ref) and abs(expected - static_ref) * 100 >= VI_STATIC_PCT * static_ref
        reference = static_ref if static else last
        until = at + dt.timedelta(seconds=VI_MIN_SECONDS)
        return {"kind": "static" if static else "dynamic", "reference": reference or None, "until": until.isoformat()}

    async def publish(
        self, events: Iterable[Tick | OrderBook | ExpectedTrade | MarketStatus], *, now: float, source: str = "ws"
    ) -> list[dict]:
        """Store and publish a batch of ticks, books and market-state events (in their order); returns the
        snapshots published.

        ``source``: ``ws`` (trade prints of the live feed) or ``poll`` (REST snapshots of stocks without a live
        slot; their fill-stream entries say so, and the fills they make record it). KRX trade prints make the quote
        snapshot; NXT prints (``Tick.venue``) go to the fill stream and the snapshot's ``nxt``; expected prices,
        VI and halts (books, H0STANC0, H0STMKO0) change the stock's market state, stored in ``STATES_HASH`` and
        merged into its last quote snapshot."""
        snapshots: list[dict] = []
        quotes: dict[str, str] = {}
        books: dict[str, str] = {}
        states: dict[str, str] = {}
        fill_entries: list[dict] = []
        fill_codes = None
        ticks = 0
        for event in events:
            if not isinstance(event, Tick | OrderBook | ExpectedTrade | MarketStatus):
                raise TypeError(f"not a tick, a book or a market state: {type(event).__name__}")
            changed = self._apply_state(event)
            code = event.code
            snapshot: dict | None = None
            if isinstance(event, Tick):
                if fill_codes is None:
                    fill_codes = await self._codes_with_orders(now)
                if code in fill_codes and (source == "ws" or event.volume > 0):
                    fill_entries.append(_fill_entry(event, source))
                ticks += 1
                if event.venue == phases.NXT:
                    snapshot = await self._restamp(code)
                else:
                    snapshot = quote_snapshot(event, source=source, state=self._state(code))
                    self._last_quote[code] = snapshot
                    self._no_quote.discard(code)
            elif isinstance(event, OrderBook):
                book = book_snapshot(event)
                books.pop(code, None)
                books[code] = json.dumps(book)
                snapshots.append(book)
                if changed:
                    snapshot = await self._restamp(code)
            elif changed:
                snapshot = await self._restamp(code)
            if changed or isinstance(event, Tick):
                states[code] = json.dumps(self._state(code), ensure_ascii=False)
            if snapshot is not None:
                quotes.pop(code, None)  # keep the batch's order of last changes
                quotes[code] = json.dumps(snapshot, ensure_ascii=False)
                snapshots.append(snapshot)
        if not snapshots and not states:
            return snapshots
        pipe = self.redis.pipeline(transaction=False)
        if quotes:
            pipe.hset(keys.QUOTES_HASH, mapping=quotes)
        if books:
            pipe.hset(keys.BOOKS_HASH, mapping=books)
        if states:
            pipe.hset(keys.STATES_HASH, mapping=states)
        for entry in fill_entries:
            pipe.xadd(keys.FILL_TICKS_STREAM, entry, maxlen=keys.FILL_TICKS_MAXLEN, approximate=True)
        await pipe.execute()
        if quotes or books:
            await self._send_buckets(quotes, books)
        self.published += len(snapshots)
        metrics.TICKS_PUBLISHED.labels("quote").inc(ticks)
        metrics.TICKS_PUBLISHED.labels("book").inc(len(books))
        return snapshots

    async def _restamp(self, code: str) -> dict | None:
        """The stock's last KRX quote snapshot with its current market state: the one this publisher made last, else
        the stored one (an earlier holder's, the previous session's); None when there is none (the state is then
        only in ``STATES_HASH``)."""
        last = self._last_quote.get(code)
        if last is None and code not in self._no_quote:
            raw = await self.redis.hget(keys.QUOTES_HASH, code)
            try:
                stored = json.loads(raw) if raw else None
            except ValueError:
                stored = None
            if isinstance(stored, dict):
                last = self._last_quote[code] = stored
            else:
                self._no_quote.add(code)  # asked once: the next KRX print makes it
        if last is None:
            return None
        snapshot = {**last, **self._state(code)}
        self._last_quote[code] = snapshot
        return snapshot

    async def _send_buckets(self, quotes: dict[str, str], books: dict[str, str]) -> None:
        at = time.time()
        messages: dict[int, dict] = {}
        for field, snapshots in (("quotes", quotes), ("books", books)):
            for code, payload in snapshots.items():
                bucket = groups.quote_bucket(code)
                message = messages.get(bucket)
                if message is None:
                    message = messages[bucket] = {"type": QUOTE_BATCH, "at": at, "quotes": {}, "books": {}}
                message[field][code] = payload
        sends = [group_send(self.layer, groups.bucket_group(b), m) for b, m in messages.items()]
        if len(sends) == 1:
            await sends[0]
        else:
            results = await asyncio.gather(*sends, return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                raise failed[0]
        self.batches += len(sends)
        metrics.BATCHES_PUBLISHED.inc(len(sends))

    async def publish_tick(self, tick: Tick, *, now: float, source: str = "ws") -> dict:
        """One tick as a batch of one (the REST poller, tests)."""
        return (await self.publish([tick], now=now, source=source))[0]

    async def publish_book(self, book: OrderBook) -> dict:
        return (await self.publish([book], now=time.monotonic()))[0]

    async def publish_status(self, status: str, detail: dict) -> None:
        """Feed status for /healthz and every browser (``status`` message)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.FEED_STATUS_KEY, status, ex=30)
        pipe.set(keys.FEED_STATUS_DETAIL_KEY, json.dumps(detail, default=str), ex=30)
        await pipe.execute()
        await group_send(self.layer, groups.MARKET_STATUS, {"type": "feed.status", "status": status, "detail": detail})


def _fill_entry(tick: Tick, source: str) -> dict:
    """A fill-stream entry (``fillpath.FillTick``): the print with its venue and phase."""
    entry = {"code": tick.code, "price": tick.price, "volume": tick.volume, "cum_volume": tick.cum_volume,
             "at": tick.at.isoformat(), "ask": tick.ask1, "bid": tick.bid1, "venue": tick.venue,
             "phase": tick.phase}  # fmt: skip
    if source == "poll":
        entry["source"] = "poll"
    return entry
