"""Nextrade (NXT) and the integrated (통합) view of the replayed market: a SYNTHETIC model.

NXT data is not recorded anywhere in ``HOGA_DATA_DIR``. The sandbox derives an NXT tape from the replayed KRX
tape so that the NXT and integrated TRs (``FID_COND_MRKT_DIV_CODE`` NX/UN, ``H0NXCNT0``/``H0UNCNT0``,
``H0NXASP0``/``H0UNASP0``, orders with ``EXCG_ID_DVSN_CD`` NXT/SOR) have something consistent to serve:

- NXT prints: a deterministic ``NXT_PRINT_SHARE`` of the KRX continuous-session prints from 09:00:30 (NXT's main
  market, krx-rules.md §3.4) to 15:20 is mirrored on NXT at the same time and price with ``NXT_SIZE_SHARE`` of
  the volume (at least one share). Auction prints (09:00:00.000 and 15:30) are KRX-only: NXT takes its opening
  and closing prices from KRX. NXT's pre-market (08:00-08:50) and after-market (15:30-20:00) are not modelled:
  the recorded data has no trades there.
- NXT book: the KRX book's prices with ``NXT_SIZE_SHARE`` of each level's quantity.
- Integrated (UN): KRX and NXT together: the prints of both, the books added level by level (same prices).

Every answer built from this model is synthetic: the REST answers and the sandbox's clock status say so.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from apps.sandbox.replay import DayTape, OrderBook, RunningState, Tick

NXT_PRINT_SHARE = 0.15
NXT_SIZE_SHARE = 0.4
NXT_MAIN_START_S = 9 * 3600 + 30  # 09:00:30 (krx-rules.md §3.4)
VENUES = ("KRX", "NXT", "UN")


def _mirrored(tape: DayTape, tick: Tick) -> bool:
    if tick.t_ms < tape.times.open_s * 1000 + (NXT_MAIN_START_S - 9 * 3600) * 1000:
        return False
    if tick.t_ms >= tape.times.continuous_end_s * 1000:
        return False
    key = f"{tape.seed}:{tape.code}:{tick.t_ms}:{tick.price}:{tick.volume}".encode()
    return zlib.crc32(key) % 10_000 < NXT_PRINT_SHARE * 10_000


def nxt_tick(tape: DayTape, tick: Tick) -> Tick | None:
    """The NXT print mirrored from KRX print ``tick`` (None when the model mirrors none)."""
    if not _mirrored(tape, tick):
        return None
    return Tick(tick.t_ms, tick.price, max(1, int(tick.volume * NXT_SIZE_SHARE)), tick.side)


def nxt_book(book: OrderBook) -> OrderBook:
    aq = tuple(max(1, int(q * NXT_SIZE_SHARE)) if q else 0 for q in book.ask_qty)
    bq = tuple(max(1, int(q * NXT_SIZE_SHARE)) if q else 0 for q in book.bid_qty)
    return OrderBook(book.asks, book.bids, aq, bq, sum(aq), sum(bq))


def combined_book(book: OrderBook) -> OrderBook:
    nxt = nxt_book(book)
    aq = tuple(a + b for a, b in zip(book.ask_qty, nxt.ask_qty, strict=True))
    bq = tuple(a + b for a, b in zip(book.bid_qty, nxt.bid_qty, strict=True))
    return OrderBook(book.asks, book.bids, aq, bq, sum(aq), sum(bq))


def venue_book(book: OrderBook, venue: str) -> OrderBook:
    return book if venue == "KRX" else nxt_book(book) if venue == "NXT" else combined_book(book)


@dataclass
class VenueStates:
    """Running NXT states of one tape, advanced incrementally (a REST quote must not replay the day)."""

    tape: DayTape
    cursor_ms: int = -1
    nxt: RunningState = field(default_factory=RunningState)

    def nxt_at(self, t_ms: int) -> RunningState:
        if t_ms < self.cursor_ms:
            self.cursor_ms, self.nxt = -1, RunningState()
        for tick in self.tape.ticks_between(self.cursor_ms, t_ms):
            mirrored = nxt_tick(self.tape, tick)
            if mirrored is not None:
                self.nxt.apply(mirrored)
        self.cursor_ms = max(self.cursor_ms, t_ms)
        return self.nxt.copy()


def merge_states(krx: RunningState, nxt: RunningState) -> RunningState:
    """The integrated state: volumes and counts added; open/high/low/last from both venues' prints."""
    if not nxt.count:
        return krx.copy()
    if not krx.count:
        return nxt.copy()
    out = krx.copy()
    out.count += nxt.count
    out.volume += nxt.volume
    out.value += nxt.value
    out.buy_volume += nxt.buy_volume
    out.sell_volume += nxt.sell_volume
    out.buy_count += nxt.buy_count
    out.sell_count += nxt.sell_count
    if nxt.high > out.high:
        out.high, out.high_ms = nxt.high, nxt.high_ms
    if nxt.low < out.low:
        out.low, out.low_ms = nxt.low, nxt.low_ms
    if nxt.last_ms > out.last_ms:
        out.last, out.last_ms, out.last_side, out.last_volume = nxt.last, nxt.last_ms, nxt.last_side, nxt.last_volume
    return out


class VenueModel:
    """NXT / integrated states for every stock of the market (cached per tape)."""

    def __init__(self) -> None:
        self._states: dict[str, VenueStates] = {}

    def state(self, tape: DayTape, venue: str, t_ms: int) -> RunningState:
        krx = tape.state_at(t_ms)
        if venue == "KRX":
            return krx
        holder = self._states.setdefault(tape.code, VenueStates(tape))
        nxt = holder.nxt_at(t_ms)
        return nxt if venue == "NXT" else merge_states(krx, nxt)
