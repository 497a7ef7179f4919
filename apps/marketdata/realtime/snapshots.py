"""Full snapshots (never deltas) of a stock's quote and order book, as JSON-ready dicts.

A snapshot carries everything a page needs to redraw: a client that missed messages is up to date with
the next one. Times are ISO 8601 with +09:00.
"""

from __future__ import annotations

from ..brokers.base import OrderBook, Tick


def quote_snapshot(tick: Tick, *, source: str = "ws") -> dict:
    return {
        "code": tick.code,
        "price": tick.price,
        "change": tick.change,
        "change_rate": str(tick.change_rate),
        "sign": int(tick.sign),
        "volume": tick.volume,
        "cum_volume": tick.cum_volume,
        "cum_value": tick.cum_value,
        "open": tick.open,
        "high": tick.high,
        "low": tick.low,
        "ask": tick.ask1,
        "bid": tick.bid1,
        "side": int(tick.side) if tick.side is not None else None,
        "time": tick.at.isoformat(),
        "received_at": tick.received_at.isoformat(timespec="milliseconds"),
        "source": source,
    }


def book_snapshot(book: OrderBook) -> dict:
    return {
        "code": book.code,
        "asks": [list(level) for level in book.asks],
        "bids": [list(level) for level in book.bids],
        "total_ask_qty": book.total_ask_qty,
        "total_bid_qty": book.total_bid_qty,
        "cum_volume": book.cum_volume,
        "time": book.at.isoformat(),
        "received_at": book.received_at.isoformat(timespec="milliseconds"),
    }
