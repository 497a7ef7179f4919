"""Expected prices of the KRX call auctions, consistent with the replayed tape (krx-rules.md §3.3).

The replayed day has two single-price prints: the opening print (09:00:00.000 on a regular day, the first print
of a bar that starts at the open) and the closing print (15:30:00.000 plus the random end, a bar of zero
duration). While each
auction's book builds (opening: 08:30-09:00 order entry, the indicative price published from 08:50 since
2025-03-04 per krx-rules.md §3.3 (verify); closing: 15:20-15:30) the sandbox publishes an expected price and
quantity that walk from where the market stood (the previous close before the open, the last continuous print
before the close) to the print the tape then makes, on the tick grid, a step every ``STEP_S`` seconds, with the
expected quantity growing to the print's volume. Each step's figures are the uncrossing, by Hoga's auction rules
(``apps.core.krx.auction.expected``), of a book synthesized around the walk's price (``synthesized_book``). So
the last expected price of an auction is its print, as on the real feed. Everything between is a model
(deterministic per stock and day), not recorded data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from apps.core.krx import auction as core_auction
from apps.sandbox.replay import DayTape

#: Seconds between two expected-price updates of the model.
STEP_S = 10
#: The opening auction's expected price is published from this many seconds before the open (08:50).
OPENING_PUBLISH_S = 600
#: The closing auction runs this many seconds before the closing print (15:20-15:30).
CLOSING_AUCTION_S = 600


@dataclass(frozen=True, slots=True)
class Expected:
    """One expected-price state: price, quantity, and which auction ("open" / "close")."""

    t_ms: int
    price: int
    quantity: int
    auction: str


def auction_prints(tape: DayTape) -> tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]:
    """((t_ms, price, volume) of the opening print, of the closing print); None where the tape has none."""
    opening = closing = None
    if tape.bars and tape.bars[0].start_s == tape.times.open_s:
        ticks = tape.bar_ticks(0)
        if ticks and ticks[0].t_ms == tape.times.open_s * 1000:
            opening = (ticks[0].t_ms, ticks[0].price, ticks[0].volume)
    last = tape.bars[-1] if tape.bars else None
    if last is not None and last.start_s == last.end_s and last.volume > 0:
        if last.open == last.high == last.low == last.close:
            # One price: its one print is the bar (no need to generate the day up to it).
            closing = (last.start_s * 1000, last.close, last.volume)
        else:
            ticks = tape.bar_ticks(len(tape.bars) - 1)
            if ticks:
                closing = (ticks[-1].t_ms, ticks[-1].price, sum(t.volume for t in ticks))
    return opening, closing


def expected_at(tape: DayTape, t_ms: int) -> Expected | None:
    """The expected price in force at ``t_ms`` (None outside the two auction windows). The closing auction
    lasts until its print (the close plus the random end, ``DayTape.closing_print_ms``)."""
    opening, closing = auction_prints(tape)
    open_ms = tape.times.open_s * 1000
    close_ms = tape.times.close_s * 1000
    close_end_ms = closing[0] if closing is not None else close_ms
    if opening is not None and open_ms - OPENING_PUBLISH_S * 1000 <= t_ms < open_ms:
        start_ms, start_price = open_ms - OPENING_PUBLISH_S * 1000, tape.prev_close
        end_price, end_qty, name, end_ms = opening[1], opening[2], "open", open_ms
    elif closing is not None and close_ms - CLOSING_AUCTION_S * 1000 <= t_ms < close_end_ms:
        start_ms = close_ms - CLOSING_AUCTION_S * 1000
        before = tape.state_at(start_ms)
        start_price = before.last if before.count else tape.prev_close
        end_price, end_qty, name, end_ms = closing[1], closing[2], "close", close_end_ms
    else:
        return None
    return walk(tape, name, t_ms, start_ms, end_ms, start_price, end_price, end_qty)


def walk(
    tape: DayTape,
    name: str,
    t_ms: int,
    start_ms: int,
    end_ms: int,
    start_price: int,
    end_price: int,
    end_qty: int,
    *,
    lower: int | None = None,
    upper: int | None = None,
) -> Expected:
    """The model's expected price at ``t_ms`` of a call from ``start_ms`` to ``end_ms`` whose single price is
    ``end_price`` for ``end_qty`` shares (see the module docstring); ``lower``/``upper`` bound the wobble
    (default: the daily limits)."""
    lower = tape.lower_limit if lower is None else lower
    upper = tape.upper_limit if upper is None else upper
    steps = max(1, (end_ms - start_ms) // (STEP_S * 1000))
    k = min(steps, (t_ms - start_ms) // (STEP_S * 1000) + 1)
    rng = random.Random(f"{tape.seed}:{tape.date.isoformat()}:{tape.code}:{name}:{k}")
    frac = k / steps
    raw = start_price + (end_price - start_price) * frac
    # A wobble of up to two ticks that dies out as the auction ends.
    wobble = int(round(rng.uniform(-2, 2) * (1 - frac))) * tape.grid.tick(max(1, int(raw)))
    price = tape.grid.floor(max(1, int(raw) + wobble)) if k < steps else end_price
    price = min(max(price, lower), upper) if k < steps else end_price
    quantity = max(1, int(end_qty * frac**1.5)) if end_qty else 0
    if quantity:
        # The published figures are those of a synthesized book uncrossed by Hoga's auction rules.
        found = core_auction.expected(synthesized_book(tape, rng, price, quantity, lower, upper), ticks=tape.grid.table)
        if found.price is not None:
            price, quantity = found.price, found.volume
    return Expected(start_ms + (k - 1) * STEP_S * 1000, price, quantity, name)


def synthesized_book(
    tape: DayTape, rng: random.Random, price: int, quantity: int, lower: int, upper: int
) -> core_auction.CallBook:
    """A call book whose uncrossing (``apps.core.krx.auction``) is ``price`` for ``quantity`` shares: the crossing
    interest sits at ``price`` on both sides (the buy side with a surplus), and up to three levels of resting
    interest on each side do not cross (buys below, sells above). A model, not recorded data."""
    grid = tape.grid
    orders = [
        core_auction.AuctionOrder(("b", 0), core_auction.BUY, price, quantity + int(quantity * rng.uniform(0, 0.3))),
        core_auction.AuctionOrder(("s", 0), core_auction.SELL, price, quantity),
    ]
    bid = ask = price
    for level in range(1, 4):
        bid, ask = grid.down(bid), grid.up(ask)
        size = max(1, int(quantity * rng.uniform(0.1, 0.6)))
        if bid >= lower:
            orders.append(core_auction.AuctionOrder(("b", level), core_auction.BUY, bid, size))
        if ask <= upper:
            orders.append(core_auction.AuctionOrder(("s", level), core_auction.SELL, ask, size))
    return core_auction.CallBook(
        tuple(orders),
        reference=price,
        lower=min(lower, price),
        upper=max(upper, price),
        on=tape.date,
        market=tape.instrument.market,
    )
