"""Full snapshots (never deltas) of a stock's quote and order book, as JSON-ready dicts.

A snapshot carries everything a page needs to redraw: a client that missed messages is up to date with
the next one. Times are ISO 8601 with +09:00.

The market state of a stock (``market_state``) rides on its quote snapshot:

- ``phase``: the phase of the stock on KRX now (``apps.core.krx.phases`` names; ``vi_auction`` under a VI);
- ``venue``: the venue of the snapshot's price (KRX: NXT prints are kept apart under ``nxt``);
- ``halted``: trading halted (TRHT_YN / H0STMKO0);
- ``vi``: ``{"kind": "static"|"dynamic", "reference": price, "until": ISO time}`` or null; ``until`` is the
  earliest end (2 minutes after the start; the random end adds up to 30 s), ``reference`` the VI reference
  price (VI_STND_PRC for a static VI, the last trade for a dynamic one; null when unknown);
- ``expected``: ``{"price", "quantity", "phase"}`` of the call building now (opening/closing auction, VI,
  after-hours call) or null;
- ``nxt``: the last NXT print ``{"price", "volume", "cum_volume", "time", "phase"}`` or null.
"""

from __future__ import annotations

from apps.brokers.base import OrderBook, Tick

#: The market-state fields every quote snapshot carries (``QuotePublisher`` keeps them per stock).
STATE_DEFAULTS: dict = {"phase": None, "venue": "KRX", "halted": False, "vi": None, "expected": None, "nxt": None}


def quote_snapshot(tick: Tick, *, source: str = "ws", state: dict | None = None) -> dict:
    """The quote snapshot of a KRX trade print, with the stock's market state (``state``; defaults without)."""
    snapshot = _quote_fields(tick, source)
    snapshot.update(STATE_DEFAULTS if state is None else {k: state.get(k, v) for k, v in STATE_DEFAULTS.items()})
    if state is None:
        snapshot["phase"] = tick.phase
        snapshot["halted"] = tick.halted
    return snapshot


def _quote_fields(tick: Tick, source: str) -> dict:
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
