"""The one reader of the live quote store: the latest quote and order-book snapshots and the feed status in Redis.

The feed holder's publisher (:mod:`.realtime.publisher`) writes them; everyone else reads them here, so the
snapshot JSON is parsed in one place. Snapshots are the dicts of :mod:`.realtime.snapshots` (``price``,
``change``, ``time`` in ISO 8601 +09:00, ...). A snapshot that does not parse is treated as missing. The
synchronous readers raise what Redis raises (callers decide whether a missing store is an error); the
asynchronous ones are for the consumers.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from apps.core.krx.calendar import KST
from apps.core.redis import async_redis, get_redis
from apps.marketdata.models import DailyBar, MinuteBar, ReferencePrice

from .realtime.keys import BOOKS_HASH, FEED_STATUS_KEY, QUOTES_HASH, STATES_HASH

FEED_STATUSES = frozenset({"connected", "reconnecting", "stale", "closed", "stopped"})


def parse_snapshot(raw: bytes | str | None) -> dict[str, Any] | None:
    """A stored snapshot as a dict; None when there is none or it does not parse."""
    if not raw:
        return None
    try:
        snapshot = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return snapshot if isinstance(snapshot, dict) else None


def snapshot_price(snapshot: dict[str, Any] | None) -> int | None:
    """The traded price of a quote snapshot (> 0), else None."""
    if snapshot is None:
        return None
    try:
        price = int(snapshot["price"])
    except (KeyError, TypeError, ValueError):
        return None
    return price if price > 0 else None


def snapshot_time(snapshot: dict[str, Any]) -> dt.datetime | None:
    """When the snapshot's event happened (aware, KST), else None."""
    try:
        return dt.datetime.fromisoformat(snapshot["time"]).astimezone(KST)
    except (KeyError, TypeError, ValueError):
        return None


def _decode(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


# --- synchronous readers ----------------------------------------------------------------------------------------


def quote_snapshots(codes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The latest quote snapshot of each code that has one."""
    if not codes:
        return {}
    raws = get_redis().hmget(QUOTES_HASH, list(codes))
    found = {code: parse_snapshot(raw) for code, raw in zip(codes, raws, strict=True)}
    return {code: snap for code, snap in found.items() if snap is not None}


def quote_snapshot(code: str) -> dict[str, Any] | None:
    return parse_snapshot(get_redis().hget(QUOTES_HASH, code))


def quote_prices(codes: Iterable[str]) -> dict[str, int]:
    """The latest traded price of each code that has a quote."""
    snaps = quote_snapshots(sorted(set(codes)))
    prices = {code: snapshot_price(snap) for code, snap in snaps.items()}
    return {code: price for code, price in prices.items() if price is not None}


def book_snapshot(code: str) -> dict[str, Any] | None:
    return parse_snapshot(get_redis().hget(BOOKS_HASH, code))


def book_snapshots(codes: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """``book_snapshot`` of each code, in one round trip."""
    if not codes:
        return {}
    return {
        code: parse_snapshot(raw) for code, raw in zip(codes, get_redis().hmget(BOOKS_HASH, list(codes)), strict=True)
    }


def market_states(codes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The market state of each code the feed has one for: ``phase``, ``venue``, ``halted``, ``vi``
    ({"kind", "reference", "until"} or None), ``expected`` ({"price", "quantity", "phase"} or None) and ``nxt``
    (the last NXT print or None); see :mod:`.realtime.snapshots`. Known before a stock's first trade of the day
    too (an opening auction's expected price), unlike the quote snapshot that also carries them."""
    if not codes:
        return {}
    raws = get_redis().hmget(STATES_HASH, list(codes))
    found = {code: parse_snapshot(raw) for code, raw in zip(codes, raws, strict=True)}
    return {code: state for code, state in found.items() if state is not None}


def market_state(code: str) -> dict[str, Any] | None:
    return parse_snapshot(get_redis().hget(STATES_HASH, code))


def quote_and_state_send(
    pipe: Any, code: str
) -> Callable[[bytes | None, bytes | None], tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Queue the reads of ``quote_snapshot(code)`` and ``market_state(code)`` on a Redis pipeline (so other reads
    can share the round trip); the function returned parses their two replies into that pair."""
    pipe.hget(QUOTES_HASH, code)
    pipe.hget(STATES_HASH, code)
    return lambda quote, state: (parse_snapshot(quote), parse_snapshot(state))


def feed_status() -> str | None:
    """The feed holder's status as last published (None: no holder has reported within its TTL)."""
    return _decode(get_redis().get(FEED_STATUS_KEY))


# --- asynchronous readers (consumers) ----------------------------------------------------------------------------


async def feed_status_async() -> str | None:
    return _decode(await async_redis().get(FEED_STATUS_KEY))


async def snapshot_texts_async(codes: Sequence[str]) -> list[tuple[str, str | None, str | None]]:
    """(code, quote snapshot, book snapshot) for each code as the stored JSON text, in one round trip: the
    fan-out splices the feed's JSON into frames without decoding it."""
    if not codes:
        return []
    pipe = async_redis().pipeline(transaction=False)
    pipe.hmget(QUOTES_HASH, list(codes))
    pipe.hmget(BOOKS_HASH, list(codes))
    quotes, books = await pipe.execute()
    return [(code, _decode(q), _decode(b)) for code, q, b in zip(codes, quotes, books, strict=True)]


# --- the latest known price of a stock, with provenance --------------------------------------------------------


def quotes_latest(*, codes: list[str]) -> dict[str, Any]:
    """The latest known quote of each code, never invented: the live snapshot in Redis (``source: "ws"``, or
    ``"poll"`` when the feed polled it over REST for want of a live slot; ``as_of`` the trade time), else the
    newest stored minute bar (``minute_bar:<bar source>``, ``as_of`` the bar's minute, KST), else the last
    daily close (``daily_bar:<source>``, ``as_of`` the date).
    When no bar is stored, the newest base price the broker gave (``ReferencePrice``, ``source:
    "reference:<source>"``, ``as_of`` its trading date): the start-up fill stores one for every stock the
    broker knows that has no daily bar, so no such stock is shown without a price.
    Codes found nowhere are listed in ``missing``. ``codes`` must already be validated.

    Returns ``{"quotes": [...in the order of codes...], "missing": [...], "feed_status": str}``.
    """
    redis = get_redis()
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(QUOTES_HASH, codes)
    pipe.get(FEED_STATUS_KEY)
    stored, status = pipe.execute()
    found: dict[str, dict[str, Any]] = {}
    for code, raw in zip(codes, stored, strict=True):
        snapshot = parse_snapshot(raw)
        if snapshot is not None:
            # "ws": a live slot of the feed; "poll": polled over REST because no slot was free
            live = "poll" if snapshot.get("source") == "poll" else "ws"
            found[code] = {**snapshot, "source": live, "as_of": snapshot["time"]}

    # Fallbacks, newest first per stock (PostgreSQL DISTINCT ON; on a tie between sources, the first by name).
    fallbacks: tuple[tuple[Any, str, str, Any], ...] = (
        (MinuteBar, "ts", "minute_bar", lambda ts: ts.astimezone(KST).isoformat()),
        (DailyBar, "date", "daily_bar", lambda day: day.isoformat()),
    )
    for model, stamp, label, as_of in fallbacks:
        rest = [c for c in codes if c not in found]
        if not rest:
            break
        bars = (
            model.objects.filter(stock__code__in=rest)
            .order_by("stock__code", f"-{stamp}", "source")
            .distinct("stock__code")
            .values("stock__code", stamp, "open", "high", "low", "close", "volume", "source")
        )
        for bar in bars:
            found[bar["stock__code"]] = {
                "code": bar["stock__code"],
                "price": bar["close"],
                "open": bar["open"],
                "high": bar["high"],
                "low": bar["low"],
                "volume": bar["volume"],
                "source": f"{label}:{bar['source']}",
                "as_of": as_of(bar[stamp]),
            }
    rest = [c for c in codes if c not in found]
    if rest:
        bases = (
            ReferencePrice.objects.filter(stock__code__in=rest)
            .order_by("stock__code", "-trading_date")
            .distinct("stock__code")
            .values("stock__code", "trading_date", "price", "source")
        )
        for base in bases:
            found[base["stock__code"]] = {
                "code": base["stock__code"],
                "price": base["price"],
                "open": None,
                "high": None,
                "low": None,
                "volume": 0,
                "source": f"reference:{base['source']}",
                "as_of": base["trading_date"].isoformat(),
            }
    return {
        "quotes": [found[c] for c in codes if c in found],
        "missing": [c for c in codes if c not in found],
        "feed_status": _decode(status) or "unknown",
    }
