"""Uncrossing a KRX call-auction book (단일가매매): one price clears the book; pure functions, no ORM.

Used by the paper engine when a call ends (opening and closing auctions, a VI's call, an after-hours single-price
call) and, through ``expected``, for the expected price and volume published while the book builds.

The clearing price (KRX, "Trading Mechanism: single price auction", global.krx.co.kr GLB0606030102T1; the
matching-price conditions of 유가증권시장 업무규정 제23조 as explained there; tie-break order (verify)):

1. **Maximum executable volume.** At a price p the executable volume is min(B(p), S(p)), B(p) the buy quantity at p
   or higher, S(p) the sell quantity at p or lower. A market order counts at its band edge (a buy at the upper
   limit, a sell at the lower), so it crosses at every price and an unmatched surplus of market buys takes the
   price to the upper limit (verify).
2. **The tie-break steps among the maximum-volume prices, in the order of ``tie_break``** (default
   ``DEFAULT_TIE_BREAK`` = matching, reference, surplus; setting ``KRX_AUCTION_TIE_BREAK``):
   - ``"matching"``: KRX's matching-price condition (합치가격): every buy above p and every sell below p executes in
     full, i.e. the strictly better buy quantity is at most S(p) and the strictly better sell quantity at most
     B(p); the prices meeting it are kept (all are kept if none does).
   - ``"reference"``: KRX's documented rule: the reference price (직전가격: the previous close for the opening
     auction, the last trade for the closing auction or a VI) when it is one of the candidates, else the
     candidate nearest to it (KRX's worked examples: 7,820 chosen among 7,810–7,840 with the preceding price
     7,820; 7,840 chosen with the preceding price 7,850).
   - ``"surplus"``: toward the side with the surplus: the highest candidate when buys exceed sells at every
     remaining one, the lowest when sells do (the usual exchange practice; not in the KRX text we hold (verify)).
     After "matching" it can no longer split candidates (at most one matching price has a strict surplus); it
     matters when "matching" is left out.
   - ``"imbalance"``: the minimum |B(p) − S(p)| (the Euronext/LSE convention; optional, not in the KRX text).
   A final fixed rule picks the higher price of whatever remains, so the result is always deterministic.
3. The price is kept inside the daily band ``[lower, upper]`` and on the tick grid.

Allocation at the clearing price P (KRX, same page: price priority, then time priority since 2001-09): market
orders first, then limit orders by price (buys high to low, sells low to high), then by the order's time
priority key; every order is filled in full until the volume runs out, the marginal order partially. KRX's
quantity-based allocation when the opening price is the upper or lower limit (동시호가: 100, 500, 1,000, 2,000
shares, half the rest, the rest) is not emulated: time priority applies there too (approximated).

The random end (임의종료): a call ends at its scheduled time plus a uniform 0–30 s extension (krx-rules §3.5 for VI;
the opening and closing auctions likewise; ``random_end``), seeded so a replay is repeatable.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from apps.core.krx.rules import DEFAULT_TICKS, TickTable

BUY = "buy"
SELL = "sell"

MATCHING = "matching"
REFERENCE = "reference"
SURPLUS = "surplus"
IMBALANCE = "imbalance"
TIE_BREAK_STEPS = (MATCHING, REFERENCE, SURPLUS, IMBALANCE)
#: KRX's documented steps (the matching-price condition, then the reference price), then the surplus side
#: (verify). Setting KRX_AUCTION_TIE_BREAK.
DEFAULT_TIE_BREAK: tuple[str, ...] = (MATCHING, REFERENCE, SURPLUS)

#: The random end's longest extension of a call (krx-rules §3.5: "a random extension of up to 30 s").
RANDOM_END_MAX_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class AuctionOrder:
    """One resting order of the call. ``price`` None = a market order. ``priority``: the time priority key
    (earlier first; any comparable value, e.g. (accepted_at, id)). ``key`` identifies the order in the fills."""

    key: Hashable
    side: str  # BUY | SELL
    price: int | None
    quantity: int
    priority: object = 0

    def __post_init__(self) -> None:
        if self.side not in (BUY, SELL):
            raise ValueError(f"side must be {BUY!r} or {SELL!r}, not {self.side!r}")
        if self.quantity <= 0:
            raise ValueError("quantity must be positive")
        if self.price is not None and self.price <= 0:
            raise ValueError("a limit price must be positive")


@dataclass(frozen=True, slots=True)
class CallBook:
    """A call's book: its orders, the reference price (직전가격) and the daily band ``lower``..``upper``."""

    orders: tuple[AuctionOrder, ...]
    reference: int
    lower: int
    upper: int
    on: date
    market: str = "KOSPI"

    def __post_init__(self) -> None:
        if not 0 < self.lower <= self.upper:
            raise ValueError("the band must satisfy 0 < lower <= upper")


@dataclass(frozen=True, slots=True)
class Fill:
    key: Hashable
    side: str
    quantity: int
    price: int


@dataclass(frozen=True, slots=True)
class Uncross:
    """The result of a call: ``price`` None (and volume 0) when the book does not cross. ``buy_quantity`` /
    ``sell_quantity``: B(P) and S(P), the quantity bid at P or better and offered at P or better."""

    price: int | None
    volume: int
    fills: tuple[Fill, ...] = ()
    buy_quantity: int = 0
    sell_quantity: int = 0

    @property
    def surplus(self) -> int:
        """Unfilled quantity at the price: positive on the buy side, negative on the sell side."""
        return self.buy_quantity - self.sell_quantity


@dataclass(frozen=True, slots=True)
class Expected:
    price: int | None
    volume: int


class _Curves:
    """B(p), S(p) and their strict variants. A market order counts at its band edge (a buy at the upper limit, a
    sell at the lower): it crosses at every price, and a surplus of market buys drives the price up to the limit,
    as a surplus of buys at the limit would (verify)."""

    def __init__(self, book: CallBook) -> None:
        buys: list[tuple[int, int]] = []
        sells: list[tuple[int, int]] = []
        for order in book.orders:
            if order.side == BUY:
                buys.append((book.upper if order.price is None else order.price, order.quantity))
            else:
                sells.append((book.lower if order.price is None else order.price, order.quantity))
        buys.sort()
        sells.sort()
        self.buy_prices = [p for p, _ in buys]
        self.sell_prices = [p for p, _ in sells]
        self.buy_suffix = [0] * (len(buys) + 1)  # quantity of buys[i:]
        for i in range(len(buys) - 1, -1, -1):
            self.buy_suffix[i] = self.buy_suffix[i + 1] + buys[i][1]
        self.sell_prefix = [0] * (len(sells) + 1)  # quantity of sells[:i]
        for i, (_, qty) in enumerate(sells):
            self.sell_prefix[i + 1] = self.sell_prefix[i] + qty

    def bought(self, p: int, strict: bool = False) -> int:
        """Quantity bid at ``p`` or higher (strictly higher with ``strict``)."""
        index = bisect_right(self.buy_prices, p) if strict else bisect_left(self.buy_prices, p)
        return self.buy_suffix[index]

    def sold(self, p: int, strict: bool = False) -> int:
        """Quantity offered at ``p`` or lower (strictly lower with ``strict``)."""
        index = bisect_left(self.sell_prices, p) if strict else bisect_right(self.sell_prices, p)
        return self.sell_prefix[index]


def _candidates(book: CallBook, curves: _Curves, ticks: TickTable) -> list[int]:
    """Grid prices between the lowest and highest of the limit prices and the reference, inside the band."""
    points = [*curves.buy_prices, *curves.sell_prices, book.reference]
    low = max(min(points), book.lower)
    high = min(max(points), book.upper)
    if low > high:  # every price and the reference outside the band: its nearest edge
        low = high = book.lower if max(points) < book.lower else book.upper
    return ticks.grid_between(low, high, book.on, book.market)


def clearing_price(
    book: CallBook, *, tie_break: Sequence[str] = DEFAULT_TIE_BREAK, ticks: TickTable = DEFAULT_TICKS
) -> Expected:
    """The price at which the call clears and its volume (no fills); price None when nothing crosses."""
    unknown = set(tie_break) - set(TIE_BREAK_STEPS)
    if unknown:
        raise ValueError(f"unknown tie-break steps {sorted(unknown)} (known: {TIE_BREAK_STEPS})")
    curves = _Curves(book)
    rows = []
    for p in _candidates(book, curves, ticks):
        bought, sold = curves.bought(p), curves.sold(p)
        rows.append((p, min(bought, sold), bought, sold))
    best = max((row[1] for row in rows), default=0)
    if best <= 0:
        return Expected(price=None, volume=0)
    rows = [row for row in rows if row[1] == best]
    for step in tie_break:
        if len(rows) == 1:
            break
        if step == MATCHING:
            rows = [
                row
                for row in rows
                if curves.bought(row[0], strict=True) <= row[3] and curves.sold(row[0], strict=True) <= row[2]
            ] or rows
        elif step == REFERENCE:
            nearest = min(abs(row[0] - book.reference) for row in rows)
            rows = [row for row in rows if abs(row[0] - book.reference) == nearest]
        elif step == IMBALANCE:
            least = min(abs(row[2] - row[3]) for row in rows)
            rows = [row for row in rows if abs(row[2] - row[3]) == least]
        elif step == SURPLUS:
            if all(row[2] > row[3] for row in rows):
                rows = [max(rows)]
            elif all(row[2] < row[3] for row in rows):
                rows = [min(rows)]
    price = max(row[0] for row in rows)  # the final fixed rule: the higher price
    return Expected(price=price, volume=best)


def _allocation_order(order: AuctionOrder) -> tuple[int, int, object]:
    if order.price is None:
        return (0, 0, order.priority)
    return (1, -order.price if order.side == BUY else order.price, order.priority)


def uncross(
    book: CallBook, *, tie_break: Sequence[str] = DEFAULT_TIE_BREAK, ticks: TickTable = DEFAULT_TICKS
) -> Uncross:
    """The call's single price, volume and per-order fills (see the module docstring for the rules)."""
    result = clearing_price(book, tie_break=tie_break, ticks=ticks)
    if result.price is None:
        return Uncross(price=None, volume=0)
    price = result.price
    fills: list[Fill] = []
    bought = sold = 0
    for side in (BUY, SELL):
        eligible = [
            order
            for order in book.orders
            if order.side == side
            and (order.price is None or (order.price >= price if side == BUY else order.price <= price))
        ]
        if side == BUY:
            bought = sum(order.quantity for order in eligible)
        else:
            sold = sum(order.quantity for order in eligible)
        left = result.volume
        for order in sorted(eligible, key=_allocation_order):
            if left == 0:
                break
            quantity = min(order.quantity, left)
            fills.append(Fill(key=order.key, side=side, quantity=quantity, price=price))
            left -= quantity
    return Uncross(price=price, volume=result.volume, fills=tuple(fills), buy_quantity=bought, sell_quantity=sold)


def expected(
    book: CallBook, *, tie_break: Sequence[str] = DEFAULT_TIE_BREAK, ticks: TickTable = DEFAULT_TICKS
) -> Expected:
    """The expected price and volume (예상체결가/예상체결량) were the call to end now."""
    return clearing_price(book, tie_break=tie_break, ticks=ticks)


def random_end(
    scheduled: datetime, *, seed: object, key: object, max_seconds: float = RANDOM_END_MAX_SECONDS
) -> datetime:
    """When the call scheduled to end at ``scheduled`` really ends: plus a uniform 0..``max_seconds`` extension,
    whole milliseconds, the same for the same (seed, key, scheduled) in every process (string seeding is
    deterministic, unlike ``hash``). ``key`` names the call, e.g. ``("005930", "opening_auction")``."""
    rng = random.Random(f"{seed}|{key}|{scheduled.isoformat()}")  # noqa: S311 (a simulation, not security)
    return scheduled + timedelta(milliseconds=round(rng.uniform(0.0, max_seconds) * 1000))


def tie_break_setting() -> tuple[str, ...]:
    """``KRX_AUCTION_TIE_BREAK`` (comma-separated steps) or the default."""
    from django.conf import settings

    raw = getattr(settings, "KRX_AUCTION_TIE_BREAK", "") if settings.configured else ""
    steps = tuple(step.strip() for step in str(raw).split(",") if step.strip())
    return steps or DEFAULT_TIE_BREAK
