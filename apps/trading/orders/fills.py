"""Order services: placement, fills, cancellation, expiry. Every change of money, holdings or order state of
the paper-trading domain happens here, under the row locks of ``lock_objects`` (orders -> accounts ->
positions), with ``F()`` updates or saves of locked rows only; placement reserves with one conditional
``F()`` update instead of a lock taken up front (see ``order_place``).

Invariants kept by these services (and checked by the tests):
- ``account.reserved_cash == Σ order.reserved_cash`` of its open buys; ``0 <= reserved_cash <= cash``.
- ``position.reserved_quantity == Σ remaining`` of its open sells; ``reserved_quantity <= quantity``.
- ``filled_quantity <= quantity``; each (order, tick) pair fills at most once, each tick is applied once.
- ``cash + Σ cost_basis + Σ fees_paid + Σ taxes_paid − Σ realized_pnl == initial_cash`` (to the won).

Fills by phase (``eligible``; the phases and venues of ``apps.core.krx.phases``, the order types of
``sessions``):
- A print's venue must be one the order's route allows (KRX, NXT, or either for SOR); its phase one the order's
  type trades in (``sessions.FILLED_BY``): regular orders fill from continuous prints and the calls (opening,
  closing, VI), limit orders also from NXT's pre-/after-market; PRE_CLOSE_PRICE and POST_CLOSE_PRICE orders only
  from prints of that phase, at the printed close, in time priority; AFTER_HOURS_SINGLE orders only from an
  after-hours single-price call.
- A print of a call phase (``CALL_PHASES``) is the call's single price: every eligible order that crosses it
  (buy limit >= price, sell limit <= price, market and closing-price orders within their reservation) fills at
  that price; no order book is walked. Paper orders share the print's volume as they share a continuous
  print's: each side separately, in price-time priority (market orders first, then the best limit, then the
  oldest), up to the print's volume; the rest waits (nothing fills beyond what the exchange printed).
- An order accepted during a call (``order.phase`` in CALL_PHASES) never fills from a non-call print stamped
  at or before its acceptance (``accepted_at``, market-clock time): continuous fills resume after the call's
  print. No continuous print of a stock arrives while it is under a VI; its VI_AUCTION print is a call.
- SOR, best of both venues print by print: a print of one venue fills an SOR order unless the same batch holds
  a print of the other venue within ``SOR_SAME_INSTANT`` of it that also fills the order at a strictly better
  price (lower for a buy, higher for a sell); the order then waits for that print. Prints further apart are
  taken in stream order (each was the best price of its own instant). ``Execution.venue`` records where.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from apps.core.db import insert_rows, pipeline, update_rows
from apps.core.krx import phases
from apps.core.krx.calendar import KST
from apps.core.krx.rules import DEFAULT_TICKS
from apps.live.quotes import book_snapshots
from apps.live.realtime.fillpath import FillTick
from apps.marketdata.models import Stock
from apps.trading.accounts.models import PaperAccount
from apps.trading.positions.models import AVG_PRICE_QUANT, Position
from apps.trading.positions.services import (
    HOLD,
    PositionFill,
    position_fills_apply,
    positions_lock_send,
)

from . import lock_objects
from .demand import demand_prune_on_commit
from .models import (
    OPEN_STATUSES,
    PRICED_TYPES,
    AppliedFillTick,
    BracketLeg,
    Execution,
    Order,
    OrderStatus,
    OrderType,
    Route,
    Side,
    TriggerState,
)
from .pricing import (
    buy_reservation,
    commission_for,
    reference_price,
    tax_for,
    transaction_tax_rate,
    transaction_tax_rate_send,
)
from .realtime import order_trigger_announce_on_commit, orders_push_on_commit, orders_push_snapshots_on_commit
from .release import close_open_order, waiting_legs_cancel
from .sessions import fills_from
from .triggers import fires, ratchet, ratchets

logger = logging.getLogger(__name__)


# --- helpers ---------------------------------------------------------------------------------------------


def stream_id_key(stream_id: str) -> tuple[int, int]:
    """A Redis stream id ``"<ms>-<seq>"`` as a sortable tuple."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _avg(amount: int, quantity: int) -> Decimal | None:
    if quantity <= 0:
        return None
    return (Decimal(amount) / Decimal(quantity)).quantize(AVG_PRICE_QUANT, rounding=ROUND_HALF_UP)


# --- fills -----------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    order: Order
    legs: list[tuple[int, int]] = field(default_factory=list)  # (price, quantity)


@dataclass(frozen=True, slots=True)
class _Candidate:
    """An open order as the pre-lock read sees it: enough to tell whether a tick concerns it."""

    id: int
    account_id: int
    stock_id: int
    market: str
    side: str
    order_type: str
    limit_price: int | None
    after: tuple[int, int]  # fill_after_id as a key
    trading_date: date
    band_checked: bool
    route: str
    phase: str
    accepted_at: datetime | None
    trigger_state: str = ""
    trigger_direction: str = ""
    trigger_price: int | None = None
    trail_anchor: int | None = None
    #: Orders the fill may change besides this one (locked with it): its OCO peer, a bracket entry's legs.
    linked: tuple[int, ...] = ()

    def concerned_by(self, tick: FillTick, *, day: date, key: tuple[int, int]) -> bool:
        if self.trading_date > day or self.after >= key or self.trigger_state == TriggerState.WAITING:
            return False
        if not eligible(self, tick):
            return False
        if self.trigger_state == TriggerState.ARMED:
            return fires(self.trigger_direction, self.trigger_price, tick.price) or ratchets(
                self.trigger_direction, self.trail_anchor, tick.price
            )
        if self.order_type not in PRICED_TYPES or not self.band_checked:
            return True
        limit = _limit(self.limit_price)
        return limit >= tick.price if self.side == Side.BUY else limit <= tick.price


#: Prints of KRX and NXT this close to each other are the same instant for an SOR order's best-of-both choice.
SOR_SAME_INSTANT = timedelta(seconds=1)


def eligible(order: Order | _Candidate, tick: FillTick) -> bool:
    """Whether ``tick`` can fill ``order`` by venue and phase (price aside; see the module docstring)."""
    if not fills_from(order_type=order.order_type, route=order.route, venue=tick.venue, phase=tick.phase):
        return False
    if order.phase in phases.CALL_PHASES and tick.phase not in phases.CALL_PHASES:
        # accepted during a call: no fill from a print of before its call's single price
        return order.accepted_at is None or tick.at > order.accepted_at
    return True


def _crosses(order: Order, price: int) -> bool:
    """Whether a print at ``price`` is acceptable to ``order``: within a limit, or (market and closing-price
    orders) a buy's reservation price."""
    if order.order_type in PRICED_TYPES:
        limit = _limit(order.limit_price)
        return price <= limit if order.side == Side.BUY else price >= limit
    return order.side == Side.SELL or price <= order.reserve_price


def _sor_defers(order: Order, tick: FillTick, others: list[FillTick]) -> bool:
    """An SOR order skips ``tick`` when the other venue prints a strictly better price for it at the same instant
    (``SOR_SAME_INSTANT``) in this batch (``others``: the batch's prints of the stock)."""
    if order.route != Route.SOR:
        return False
    for other in others:
        if other.venue == tick.venue or abs(other.at - tick.at) > SOR_SAME_INSTANT:
            continue
        better = other.price < tick.price if order.side == Side.BUY else other.price > tick.price
        if better and eligible(order, other) and _crosses(order, other.price):
            return True
    return False


def _limit(limit_price: int | None) -> int:
    """The limit price of a LIMIT order (the model's checks make it present)."""
    if limit_price is None:
        raise AssertionError("a LIMIT order without a limit price")
    return limit_price


def _books_prefetch(work: list[tuple[FillTick, date, list[int]]], candidates: dict[int, _Candidate]) -> dict[str, Any]:
    """Before any lock, in one round trip: the stored order books of the stocks whose MARKET candidates a batch's
    KRX continuous trade print may fill by walking the book (see ``_fills_book_locked``; a bracket leg armed by
    an earlier print of the batch, which was no candidate, has its book read there)."""
    codes = sorted(
        {
            tick.code
            for tick, _day, ids in work
            if tick.source == "tick" and tick.venue == phases.KRX and tick.phase == phases.CONTINUOUS
            and any(candidates[pk].order_type == OrderType.MARKET for pk in ids)
        }
    )  # fmt: skip
    return _books_read(codes)


def _books_read(codes: list[str]) -> dict[str, Any]:
    """``book_snapshots(codes)``; each code None when Redis cannot be asked."""
    if not codes:
        return {}
    try:
        return book_snapshots(codes)
    except Exception:
        logger.warning("order books unavailable for %s; market orders fill at the trade price", ", ".join(codes))
        return dict.fromkeys(codes)


def _book_levels(book: dict[str, Any] | None, code: str, at: datetime) -> dict[str, list[list[int]]] | None:
    """The stored order book ``book`` of ``code`` as sorted levels, when it is no older than PAPER_BOOK_MAX_AGE vs
    the tick."""
    if book is None:
        return None
    try:
        book_at = datetime.fromisoformat(book["time"])
        if abs((at - book_at).total_seconds()) > settings.PAPER_BOOK_MAX_AGE:
            return None
        asks = [[int(p), int(q)] for p, q in book.get("asks", []) if int(p) > 0 and int(q) > 0]
        bids = [[int(p), int(q)] for p, q in book.get("bids", []) if int(p) > 0 and int(q) > 0]
    except (KeyError, TypeError, ValueError):
        logger.warning("unreadable order book snapshot for %s", code)
        return None
    return {"asks": sorted(asks), "bids": sorted(bids, reverse=True)}


def _priority(order: Order) -> tuple[bool, int, int]:
    """Price-time priority: unpriced orders first (MARKET; closing-price orders, which only meet each other,
    rank by time alone), then the best limit (highest buy, lowest sell), then the oldest."""
    if order.order_type not in PRICED_TYPES:
        return (False, 0, order.pk)
    limit = _limit(order.limit_price)
    return (True, -limit if order.side == Side.BUY else limit, order.pk)


def _plan_side(orders: list[Order], tick: FillTick, levels: list[list[int]] | None) -> list[_Plan]:
    """Share one side's liquidity among its orders in priority order.

    Limit orders (and MARKET orders when no fresh book is stored) share the tick's printed volume at the
    trade price; MARKET orders with a book walk its levels (shared among them), never beyond their
    reservation price for buys.
    """
    plans: list[_Plan] = []
    volume_left = tick.volume
    for order in sorted(orders, key=_priority):
        remaining = order.remaining_quantity
        plan = _Plan(order)
        if order.order_type == OrderType.MARKET and levels:
            for level in levels:
                if remaining == 0:
                    break
                price, qty = level
                if qty <= 0 or (order.side == Side.BUY and price > order.reserve_price):
                    continue
                take = min(remaining, qty)
                level[1] -= take
                remaining -= take
                plan.legs.append((price, take))
        else:
            if _crosses(order, tick.price) and volume_left > 0:
                take = min(remaining, volume_left)
                volume_left -= take
                plan.legs.append((tick.price, take))
        if plan.legs:
            plans.append(plan)
    return plans


_MAY_CROSS = (
    "(o.trigger_state IN ('', 'TRIGGERED') AND "
    "(o.limit_price IS NULL OR NOT o.band_checked OR (o.side = 'BUY' AND o.limit_price >= %(low)s) "
    "OR (o.side = 'SELL' AND o.limit_price <= %(high)s)))"
)  # with the lowest and the highest price of the ticks of a stock (no limit price: market, closing-price)
_MAY_FIRE = (
    "(o.trigger_state = 'ARMED' AND ("
    "(o.trigger_direction = 'DOWN' AND (o.trigger_price >= %(low)s OR o.trail_anchor < %(high)s)) "
    "OR (o.trigger_direction = 'UP' AND (o.trigger_price <= %(high)s OR o.trail_anchor > %(low)s))))"
)  # armed conditional orders a print between low and high fires, or whose trailing anchor it moves


def _fill_candidates(ticks: list[FillTick]) -> dict[str, list[_Candidate]]:
    """One read, no lock: per code, the open orders one of ``ticks`` may concern (``_MAY_CROSS``): MARKET
    orders (they may walk a stored book), LIMIT BUYs at or above the lowest trade, LIMIT SELLs at or below
    the highest, and queued orders not yet checked against their session's band; and the armed conditional
    orders the batch's price range fires or whose trailing anchor it moves (``_MAY_FIRE``, the partial index
    ``order_armed_trigger``). The others are left out before any lock: a tick that crosses and fires none of
    them costs no transaction (limit prices never change, and a trailing trigger moves only in a transaction
    with a marker, remembering the print that moved it: a print older than that, redelivered late, neither
    fires nor moves it; so such a tick, marker-less, is still a no-op if it is redelivered). Plain SQL: this runs for
    every batch the engine reads."""
    prices: dict[str, list[int]] = {}
    for tick in ticks:
        prices.setdefault(tick.code, []).append(tick.price)
    latest_day = max(tick.at.astimezone(KST).date() for tick in ticks)
    where: list[str] = []
    params: dict[str, Any] = {"open": list(OPEN_STATUSES), "day": latest_day}
    for n, (code, seen) in enumerate(sorted(prices.items())):
        names = {"low": f"%(low{n})s", "high": f"%(high{n})s"}
        may_cross, may_fire = (t.replace("%(low)s", names["low"]).replace("%(high)s", names["high"])
                               for t in (_MAY_CROSS, _MAY_FIRE))  # fmt: skip
        where.append(f"(s.code = %(code{n})s AND ({may_cross} OR {may_fire}))")
        params.update({f"code{n}": code, f"low{n}": min(seen), f"high{n}": max(seen)})
    table = Order._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT o.id, o.account_id, o.stock_id, s.market, s.code, o.side, o.order_type, o.limit_price, "
            "o.fill_after_id, o.trading_date, o.band_checked, o.route, o.phase, o.accepted_at, o.trigger_state, "
            "o.trigger_direction, o.trigger_price, o.trail_anchor, o.oco_peer_id, "
            f"CASE WHEN o.bracket_leg = 'ENTRY' THEN ARRAY(SELECT l.id FROM {table} l WHERE l.parent_id = o.id "
            "AND l.status = ANY(%(open)s)) END "
            f"FROM {table} o "
            f"JOIN {Stock._meta.db_table} s ON s.id = o.stock_id "
            f"WHERE o.status = ANY(%(open)s) AND o.trading_date <= %(day)s AND ({' OR '.join(where)})",
            params,
        )
        rows = cursor.fetchall()
    candidates: dict[str, list[_Candidate]] = {}
    for pk, account_id, stock_id, market, code, side, kind, limit, after, trading_date, checked, *where_ in rows:
        route, phase, accepted_at, state, direction, trigger, anchor, peer, legs = where_
        candidate = _Candidate(
            pk, account_id, stock_id, market, side, kind, limit, stream_id_key(after), trading_date, checked,
            route, phase, accepted_at, state, direction, trigger, anchor,
            tuple(x for x in (peer, *(legs or ())) if x is not None),
        )  # fmt: skip
        candidates.setdefault(code, []).append(candidate)
    return candidates


def _mark_applied_send(ticks: list[FillTick]) -> CursorWrapper:
    """Insert the ticks' markers (in stream order, as every transaction does, so two overlapping batches
    cannot deadlock on them); ``fetchall()`` on the returned cursor gives the stream ids inserted (a tick
    another transaction already applied is missing; its insert waits for that one first). The result is
    read later, so in a pipeline the insert travels with the order locks."""
    cursor = connection.cursor()
    now = timezone.now()
    cursor.execute(
        f"INSERT INTO {AppliedFillTick._meta.db_table} (stream_id, code, applied_at) VALUES "
        + ", ".join(["(%s, %s, %s)"] * len(ticks))
        + " ON CONFLICT (stream_id) DO NOTHING RETURNING stream_id",
        [value for tick in ticks for value in (tick.stream_id, tick.code, now)],
    )
    return cursor


_ORDER_FILL_FIELDS = (
    "filled_quantity", "filled_amount", "avg_fill_price", "commission_total", "tax_total", "status", "closed_at",
    "reserved_cash", "updated_at", "trigger_state", "trigger_price", "trail_anchor", "trail_moved_id", "triggered_at",
    "reject_reason",
)  # fmt: skip


class _Fills:
    """The fills of one transaction, booked in memory tick after tick (each tick sees the orders as the
    previous ones left them), then written in a constant number of statements (``write``)."""

    def __init__(self, tax_rates: dict[tuple[str, date], Decimal] | None = None) -> None:
        self.executions: list[Execution] = []
        self.position_fills: list[PositionFill] = []
        self.cash_delta: dict[int, int] = {}
        self.reserved_delta: dict[int, int] = {}
        self.orders: dict[int, Order] = {}
        self._tax_rates: dict[tuple[str, date], Decimal] = dict(tax_rates or {})

    def tax_rate(self, market: str, day: date) -> Decimal:
        if (market, day) not in self._tax_rates:
            self._tax_rates[market, day] = transaction_tax_rate(market=market, trade_date=day)
        return self._tax_rates[market, day]

    def book(self, plans: list[_Plan], *, tick: FillTick, day: date, now: datetime) -> None:
        """Per leg: amount = price × quantity, commission and (sells) tax truncated to the won; buys release
        the part of their reservation the fill used up."""
        for plan in sorted(plans, key=lambda p: p.order.pk):
            order = plan.order
            account_id = order.account_id
            tax_rate = self.tax_rate(order.stock.market, day) if order.side == Side.SELL else Decimal("0")
            for leg, (price, quantity) in enumerate(plan.legs):
                amount = price * quantity
                commission = commission_for(amount, order.commission_rate)
                tax = tax_for(amount, tax_rate) if order.side == Side.SELL else 0
                filled_after = order.filled_quantity + quantity
                if order.side == Side.BUY:
                    new_reserved = buy_reservation(
                        order.reserve_price, order.quantity - filled_after, order.commission_rate
                    )
                    self.reserved_delta[account_id] = self.reserved_delta.get(account_id, 0) - (
                        order.reserved_cash - new_reserved
                    )
                    self.cash_delta[account_id] = self.cash_delta.get(account_id, 0) - (amount + commission)
                    order.reserved_cash = new_reserved
                else:
                    self.cash_delta[account_id] = self.cash_delta.get(account_id, 0) + (amount - commission - tax)
                self.position_fills.append(
                    PositionFill(account_id, order.side, price, quantity, commission, tax, stock_id=order.stock_id)
                )
                self.executions.append(
                    Execution(
                        order=order, account_id=account_id, stock_id=order.stock_id, side=order.side, price=price,
                        quantity=quantity, amount=amount, commission=commission, tax=tax, tax_rate=tax_rate,
                        tick_stream_id=tick.stream_id, leg=leg, executed_at=tick.at, source=tick.source,
                        venue=tick.venue, phase=tick.phase,
                    )
                )  # fmt: skip
                order.filled_quantity = filled_after
                order.filled_amount += amount
                order.avg_fill_price = _avg(order.filled_amount, order.filled_quantity)
                order.commission_total += commission
                order.tax_total += tax
                order.status = OrderStatus.FILLED if filled_after == order.quantity else OrderStatus.PARTIALLY_FILLED
                if order.status == OrderStatus.FILLED:
                    order.closed_at = now
                order.updated_at = now
            self.orders[order.pk] = order

    def write(self, positions: dict[tuple[int, int], Position]) -> None:
        """Queue the writes (the rows are locked already: orders, accounts, positions, in that order):
        positions (``position_fills_apply`` on the locked ``positions``, which also gives each sell's
        realized P&L), one ``UPDATE`` of every account's cash and reservation by delta
        (``apps.core.db.update_rows``), one of the orders and one ``INSERT`` of the executions. Nothing is
        read back, so in the fill's pipeline they travel with its ``COMMIT``. Values are computed from
        locked rows, so no per-row validation query is needed."""
        realized = position_fills_apply(fills=self.position_fills, locked=positions)
        realized = [pnl for fill, pnl in zip(self.position_fills, realized, strict=True) if fill.side != HOLD]
        for execution, pnl in zip(self.executions, realized, strict=True):
            execution.realized_pnl = pnl
        update_rows(
            PaperAccount,
            [
                {"pk": a, "cash": self.cash_delta[a], "reserved_cash": self.reserved_delta.get(a, 0)}
                for a in sorted(self.cash_delta)
            ],
            add=("cash", "reserved_cash"),
        )
        update_rows(
            Order,
            [{"pk": pk, **{f: getattr(o, f) for f in _ORDER_FILL_FIELDS}} for pk, o in sorted(self.orders.items())],
            assign=_ORDER_FILL_FIELDS,
        )
        insert_rows(self.executions)


def order_fill_apply(*, tick: FillTick) -> list[Execution]:
    """Apply one trade tick to the open orders of its stock (``order_fills_apply`` of one tick)."""
    return order_fills_apply(ticks=[tick])


def order_fills_apply(*, ticks: list[FillTick]) -> list[Execution]:
    """Apply trade ticks, in stream order, to the open orders of their stocks in one transaction; return the
    executions created (as written, without their ids: the insert reads nothing back).

    Orders a tick concerns: open, crossable by the trade (``_MAY_CROSS``), ``trading_date <= the tick's KST
    date``, accepted before the tick entered the stream (``fill_after_id < stream_id``), of a route and order type
    the print's venue and phase can fill (``eligible``, the module docstring's phase rules). Rules (see
    ``_plan_side``): a LIMIT BUY fills when the trade prints at or below its price, a SELL at or above, at
    the trade price (the limit or better); buys and sells each share the tick's printed volume in price-time
    priority; MARKET orders fill at the trade price, or walk a fresh stored order book. Each tick sees the
    orders as the ticks before it left them (an order filled by one is not filled again by the next).

    Exactly once: the ticks' marker rows and the order locks are taken in one transaction, so a redelivered
    or concurrently applied tick finds its marker and does nothing. Ticks that concern no order are left out
    before it (one read for the whole batch); when none is left, no transaction is opened. Returns after the
    commit (callers ack the stream entries then).
    """
    ticks = sorted((t for t in ticks if t.price > 0 and t.volume > 0), key=lambda t: stream_id_key(t.stream_id))
    if not ticks:
        return []
    candidates = _fill_candidates(ticks)
    work: list[tuple[FillTick, date, list[int]]] = []
    concerned: dict[int, _Candidate] = {}
    for tick in ticks:
        day, key = tick.at.astimezone(KST).date(), stream_id_key(tick.stream_id)
        found = [c for c in candidates.get(tick.code, ()) if c.concerned_by(tick, day=day, key=key)]
        if found:
            work.append((tick, day, [c.id for c in found]))
            concerned.update((c.id, c) for c in found)
    if not work:
        return []
    books = _books_prefetch(work, concerned)
    return _fills_apply_locked(work, list(concerned.values()), books)


def _queued_orders_check(orders: list[Order]) -> set[int]:
    """Re-check locked queued orders against the band of the session they are for, at its first tick.

    An order queued while the market was closed was checked against the reference price known then (e.g.
    the previous close, when the day's final close had not been collected yet). A LIMIT price outside the
    session's actual ±30 % band is REJECTED (``price_out_of_band``), releasing its reservation, as KRX
    would refuse it at the open; the others are marked checked. Returns the rejected order ids.

    The caller holds the locks of the orders' accounts and positions already (the fill transaction's
    first round trip), so releasing a rejected order's reservation takes no further lock. A rejected bracket
    entry's waiting legs (locked with it) are cancelled; their ids are returned with the rejected ones.
    """
    rejected: list[Order] = []
    legs: list[int] = []
    for order in orders:
        base = reference_price(stock_id=order.stock_id, trading_date=order.trading_date)
        if base is not None and order.limit_price is not None:
            upper, lower = DEFAULT_TICKS.price_limits(base, order.trading_date, order.stock.market)
            if not lower <= order.limit_price <= upper:
                rejected.append(order)
                continue
        order.band_checked = True
        order.save(update_fields=["band_checked", "updated_at"])
    if rejected:
        for order in rejected:
            base = reference_price(stock_id=order.stock_id, trading_date=order.trading_date)
            if base is None:  # the band was checked against a base price: it cannot have vanished
                raise AssertionError(f"no reference price for order {order.pk} on {order.trading_date}")
            upper, lower = DEFAULT_TICKS.price_limits(base, order.trading_date, order.stock.market)
            reason = f"price_out_of_band: {order.limit_price:,} is outside {lower:,}-{upper:,} on {order.trading_date}"
            close_open_order(order, status=OrderStatus.REJECTED, reason=reason)
            logger.info("queued order rejected at its session's open", extra={"order_id": order.pk, "reason": reason})
        legs = waiting_legs_cancel(entry_ids=[o.pk for o in rejected if o.bracket_leg == BracketLeg.ENTRY])
        demand_prune_on_commit({o.stock.code for o in rejected})
        orders_push_on_commit([o.pk for o in rejected] + legs)
    return {o.pk for o in rejected} | set(legs)


def _triggers_evaluate(orders: list[Order], tick: FillTick, fills: _Fills, now: datetime) -> None:
    """Fire the armed orders among ``orders`` (locked) that ``tick`` reaches, in id order: each becomes its
    ``order_type`` (TRIGGERED) and takes part in this very print like any order of that type (a stop jumped by a
    gap or a VI call fills at the print's price, a stop-limit only within its limit). A trailing stop the print
    does not fire follows a new best print (``triggers.ratchet``). The changes are written with the fills;
    the trigger is announced after the commit (``order_trigger_announce_on_commit``)."""
    key = stream_id_key(tick.stream_id)
    for order in sorted((o for o in orders if o.trigger_state == TriggerState.ARMED), key=lambda o: o.pk):
        if order.trail_moved_id and key < stream_id_key(order.trail_moved_id):
            continue  # a print older than the one that set this trailing trigger (a late redelivery)
        if fires(order.trigger_direction, order.trigger_price, tick.price):
            order.trigger_state = TriggerState.TRIGGERED
            order.triggered_at = tick.at
            order.updated_at = now
            fills.orders[order.pk] = order
            order_trigger_announce_on_commit(order)
        elif order.trail_anchor is not None and order.trigger_price is not None:
            anchor, trigger = ratchet(
                order.trigger_direction, order.trail_anchor, order.trigger_price, tick.price,
                amount=order.trail_amount, percent=order.trail_percent,
            )  # fmt: skip
            if (anchor, trigger) != (order.trail_anchor, order.trigger_price):
                order.trail_anchor, order.trigger_price, order.updated_at = anchor, trigger, now
                order.trail_moved_id = tick.stream_id
                fills.orders[order.pk] = order


def _one_leg_each(orders: list[Order]) -> list[Order]:
    """Of two OCO legs both fired and open at one print, only the one first in priority takes part in it: the
    print fills at most one of them, and that fill cancels the other (``_linked_after_fill``)."""
    kept: list[Order] = []
    seen: set[int] = set()
    for order in sorted(orders, key=_priority):
        if order.pk in seen:
            continue
        if order.oco_peer_id is not None:
            seen.add(order.oco_peer_id)
        kept.append(order)
    return kept


def _linked_after_fill(
    order: Order, orders: dict[int, Order], fills: _Fills, now: datetime, armed_now: dict[str, list[Order]]
) -> None:
    """After ``order`` filled (in part) in this transaction: cancel its open OCO peer (which held no shares of its
    own: the legs share one reservation, kept by ``order`` for its remainder), and, when a bracket entry has
    filled completely, arm its waiting legs and hold the bought shares for them once."""
    peer = orders.get(order.oco_peer_id) if order.oco_peer_id is not None else None
    if peer is not None and peer.status in OPEN_STATUSES:
        peer.status = OrderStatus.CANCELLED
        peer.closed_at = peer.updated_at = now
        peer.reject_reason = f"oco: leg #{order.pk} filled"
        fills.orders[peer.pk] = peer
    if order.bracket_leg != BracketLeg.ENTRY or order.status != OrderStatus.FILLED:
        return
    legs = [o for o in orders.values() if o.parent_id == order.pk and o.trigger_state == TriggerState.WAITING]
    legs = [o for o in legs if o.status in OPEN_STATUSES]
    if not legs:
        return
    for leg in legs:
        leg.trigger_state = TriggerState.ARMED
        leg.updated_at = now
        fills.orders[leg.pk] = leg
        armed_now.setdefault(order.stock.code, []).append(leg)
    shares = max(leg.remaining_quantity for leg in legs)  # one reservation for both legs
    fills.position_fills.append(PositionFill(order.account_id, HOLD, 0, shares, 0, stock_id=order.stock_id))


def _fills_apply_locked(
    work: list[tuple[FillTick, date, list[int]]], candidates: list[_Candidate], books: dict[str, Any] | None = None
) -> list[Execution]:
    """The fill transaction, in three round trips when every position exists: (1) the ticks' markers, the
    locks of the candidate orders, their accounts and positions (a superset of what fills), and the tax
    rates; (2) only when a buy opens a position: its insert and lock; (3) every write, with the ``COMMIT``:
    the writes are queued in a pipeline that stays open until the transaction has committed. Between (1) and
    (3) the connection is out of pipeline mode, so the rare statements whose row counts matter (a queued
    order's band check) see them."""
    with ExitStack() as until_committed, transaction.atomic():
        with pipeline():
            marker = _mark_applied_send([tick for tick, _, _ in work])
            linked = {pk for c in candidates for pk in c.linked}
            read_orders = lock_objects.orders_lock_open_send(ids={c.id for c in candidates} | linked)
            accounts = lock_objects.accounts_lock_send(ids={c.account_id for c in candidates})
            read_positions = positions_lock_send({(c.stock_id, c.account_id) for c in candidates})
            sell_markets = {c.market for c in candidates if c.side == Side.SELL}
            read_tax = {
                (market, day): transaction_tax_rate_send(market=market, trade_date=day)
                for market in sorted(sell_markets)
                for day in sorted({day for _, day, _ in work})
            }
            applied = {row[0] for row in marker.fetchall()}  # one round trip answers them all
            marker.close()
            locked = read_orders()
            positions = read_positions()
            accounts.close()
            tax_rates = {key: read() for key, read in read_tax.items()}
        return _fills_book_locked(work, applied, locked, positions, tax_rates, until_committed, books or {})


def _fills_book_locked(
    work: list[tuple[FillTick, date, list[int]]],
    applied: set[str],
    locked: list[Order],
    positions: dict[tuple[int, int], Position],
    tax_rates: dict[tuple[str, date], Decimal],
    until_committed: ExitStack,
    books: dict[str, Any],
) -> list[Execution]:
    work = [entry for entry in work if entry[0].stream_id in applied]
    orders = {o.pk: o for o in locked}

    def concerned(tick: FillTick, day: date, ids: list[int]) -> list[Order]:
        key = stream_id_key(tick.stream_id)
        found = (orders.get(pk) for pk in ids)
        return [
            o
            for o in found
            if o and o.trading_date <= day and stream_id_key(o.fill_after_id) < key and eligible(o, tick)
        ]

    by_code: dict[str, list[FillTick]] = {}
    for tick, _, _ in work:
        by_code.setdefault(tick.code, []).append(tick)

    unchecked = {o.pk: o for entry in work for o in concerned(*entry) if not o.band_checked}
    if unchecked:
        rejected = _queued_orders_check(list(unchecked.values()))
        for pk in rejected:
            orders.pop(pk, None)
        if rejected and positions:
            positions = positions_lock_send(set(positions))()  # a rejected sell gave its shares back
    fills = _Fills(tax_rates)
    now = timezone.now()
    armed_now: dict[str, list[Order]] = {}  # bracket legs armed by an earlier tick of this batch
    for tick, day, ids in work:
        found = concerned(tick, day, ids)
        found += [o for o in armed_now.get(tick.code, ()) if o.pk not in ids and eligible(o, tick)]
        found = [o for o in found if o.status in OPEN_STATUSES]  # an OCO leg cancelled by an earlier tick
        _triggers_evaluate(found, tick, fills, now)
        open_orders = [
            o
            for o in found
            if o.trigger_state in (TriggerState.NONE, TriggerState.TRIGGERED)
            and o.remaining_quantity > 0
            and not _sor_defers(o, tick, by_code[tick.code])
        ]
        open_orders = _one_leg_each(open_orders)
        if not open_orders:
            continue
        # A call's single price, a closing-price trade or an NXT print walks no book (the stored book is KRX's
        # continuous one): every fill is at the printed price.
        walks = (
            tick.source == "tick"
            and tick.venue == phases.KRX
            and tick.phase == phases.CONTINUOUS
            and any(o.order_type == OrderType.MARKET for o in open_orders)
        )
        if walks and tick.code not in books:
            books.update(_books_read([tick.code]))
        book = _book_levels(books.get(tick.code), tick.code, tick.at) if walks else None  # a polled one walks none
        plans = _plan_side([o for o in open_orders if o.side == Side.BUY], tick, book["asks"] if book else None)
        plans += _plan_side([o for o in open_orders if o.side == Side.SELL], tick, book["bids"] if book else None)
        fills.book(plans, tick=tick, day=day, now=now)
        for plan in plans:
            _linked_after_fill(plan.order, orders, fills, now, armed_now)
    if not fills.executions and not fills.orders:
        return []
    until_committed.enter_context(pipeline())  # the writes leave with the COMMIT
    fills.write(positions)
    # A stock whose last open order filled stays in ORDERS_SET until the engine's next demand sync
    # (PAPER_FILL_DEMAND_SYNC): its ticks meanwhile cost one candidate read each, where pruning here would
    # cost a query and a Redis call after every fill that closes an order, before the next batch.
    orders_push_snapshots_on_commit([o for _, o in sorted(fills.orders.items())])
    return fills.executions
