"""Order services: placement, fills, cancellation, expiry. Every change of money, holdings or order state of
the paper-trading domain happens here, under the row locks of ``lock_objects`` (orders -> accounts ->
positions), with ``F()`` updates or saves of locked rows only; placement reserves with one conditional
``F()`` update instead of a lock taken up front (see ``order_place``).

Invariants kept by these services (and checked by the tests):
- ``account.reserved_cash == Σ order.reserved_cash`` of its open buys; ``0 <= reserved_cash <= cash``.
- ``position.reserved_quantity == Σ remaining`` of its open sells; ``reserved_quantity <= quantity``.
- ``filled_quantity <= quantity``; each (order, tick) pair fills at most once, each tick is applied once.
- ``cash + Σ cost_basis + Σ fees_paid + Σ taxes_paid − Σ realized_pnl == initial_cash`` (to the won).
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from apps.accounts.models import PaperAccount
from apps.core.db import insert_guarded, insert_rows, pipeline, update_rows
from apps.core.exceptions import parse_id
from apps.core.jsonsafe import ANY_CONTROL_RE
from apps.marketdata.calendar import KST
from apps.marketdata.krx_rules import DEFAULT_TICKS
from apps.marketdata.market_clock import PRE_OPEN, MarketClockUnavailable, MarketNow, market_now
from apps.marketdata.models import Stock
from apps.marketdata.realtime.fillpath import FillTick
from apps.marketdata.realtime.keys import valid_code
from apps.positions.models import AVG_PRICE_QUANT
from apps.positions.services import (
    PositionFill,
    insufficient_holding,
    position_fills_apply,
    position_release,
    position_reserve_guard,
    positions_lock_send,
)

from . import lock_objects
from .exceptions import (
    AccountNotFound,
    ClientOrderIdConflict,
    InactiveStock,
    InsufficientCash,
    InvalidClientOrderId,
    InvalidOrderType,
    InvalidPrice,
    InvalidQuantity,
    InvalidSide,
    MarketClockUnavailableError,
    MarketClosed,
    NoReferencePrice,
    OrderNotCancellable,
    OrderNotFound,
    PriceOffTick,
    PriceOutOfBand,
    UnknownStock,
)
from .models import OPEN_STATUSES, AppliedFillTick, Execution, Order, OrderStatus, OrderType, Side
from .pricing import (
    buy_reservation,
    commission_for,
    reference_price,
    tax_for,
    transaction_tax_rate,
    transaction_tax_rate_send,
)
from .realtime import orders_push_on_commit, orders_push_snapshots_on_commit

logger = logging.getLogger(__name__)

MAX_CLIENT_ORDER_ID = 64
# Bounds checked before anything reaches the database: price × quantity (+ commission) must fit PostgreSQL's
# bigint (9.2e18) for any KRX price. No KRX stock trades above 10^7 won, so 10^9 shares × 10^9 won stays
# three orders of magnitude inside it (and far beyond any account's cash or holding).
MAX_QUANTITY = 10**9
MAX_PRICE = 10**9
APPLIED_TICK_RETENTION = timedelta(days=7)  # applied-tick markers older than this are pruned by expiry


# --- helpers ---------------------------------------------------------------------------------------------


def stream_id_key(stream_id: str) -> tuple[int, int]:
    """A Redis stream id ``"<ms>-<seq>"`` as a sortable tuple."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _fill_stream_position() -> str:
    """The id of the newest entry of the fill-tick stream: ticks up to it printed before the order existed.

    Falls back to the current time in ms when Redis cannot be asked (the stream ids are Redis server ms).
    """
    from apps.core.redis import get_redis
    from apps.marketdata.realtime import keys

    try:
        newest = get_redis().xrevrange(keys.FILL_TICKS_STREAM, count=1)
    except Exception:  # Redis down: placement still works; the engine catches up when Redis is back
        logger.warning("fill stream unavailable at order placement; using the wall clock as its position")
        return f"{int(time.time() * 1000)}-0"
    if not newest:
        return "0-0"
    entry_id = newest[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def _demand_add_on_commit(code: str, *, user_id: int | None = None) -> None:
    def add() -> None:
        from apps.core.redis import get_redis
        from apps.marketdata.realtime.fillpath import order_demand_add

        try:
            order_demand_add(get_redis(), code, user_id=user_id, at=time.time())
        except Exception:  # the engine rebuilds ORDERS_SET from the database periodically
            logger.warning("could not add %s to the open-order demand set", code)

    transaction.on_commit(add)


def _demand_prune_on_commit(codes: set[str]) -> None:
    """After commit, drop from ORDERS_SET the codes that no longer have an open order."""
    if not codes:
        return

    def prune() -> None:
        from apps.core.redis import get_redis
        from apps.marketdata.realtime.fillpath import order_demand_remove

        still_open: dict[str, set[int]] = {}
        for code, user_id in Order.objects.filter(stock__code__in=codes, status__in=OPEN_STATUSES).values_list(
            "stock__code", "account__user_id"
        ):
            still_open.setdefault(code, set()).add(user_id)
        try:
            redis = get_redis()
            for code in sorted(codes):
                order_demand_remove(redis, code, keep_users=still_open.get(code))
        except Exception:
            logger.warning("could not prune the open-order demand set")

    transaction.on_commit(prune)


def order_demand_sync() -> set[str]:
    """Make ORDERS_SET exactly the codes with open orders (from the database); return them."""
    from django.db.models import Min

    from apps.core.redis import get_redis
    from apps.marketdata.realtime.fillpath import order_demand_replace

    users: dict[tuple[int, str], float] = {}
    rows = (
        Order.objects.filter(status__in=OPEN_STATUSES)
        .values("account__user_id", "stock__code")
        .annotate(first=Min("created_at"))
    )
    for row in rows:
        users[(row["account__user_id"], row["stock__code"])] = row["first"].timestamp()
    codes = {code for _user, code in users}
    order_demand_replace(get_redis(), codes, users=users)
    return codes


def _norm_choice(value, choices, error, what: str) -> str:
    text = str(value).strip().upper() if isinstance(value, str) else ""
    if text not in choices.values:
        raise error(f"{what} must be one of {', '.join(choices.values)}.", fields={what: ["Invalid choice."]})
    return text


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _next_trading_day(after: date) -> date:
    from apps.marketdata.selectors import krx_calendar

    calendar = krx_calendar()
    day = after
    for _ in range(30):
        day += timedelta(days=1)
        if calendar.is_trading_day(day):
            return day
    raise MarketClosed(f"No trading day within 30 days after {after}.")


def _session_hours(market: MarketNow, calendar=None) -> str:
    """``"09:00-15:30 KST"`` for the market's trading day (or the next one), as the calendar has it."""
    from apps.marketdata.calendar import KST

    if calendar is None:
        from apps.marketdata.selectors import krx_calendar

        calendar = krx_calendar()
    day = market.trading_date or market.now.astimezone(KST).date()
    session = calendar.session(day)
    if session is None or (market.session == "closed" and market.trading_date is not None):
        try:
            session = calendar.session(_next_trading_day(day))
        except MarketClosed:
            session = None
    if session is None:
        return "09:00-15:30 KST"
    label = f"{session.open:%H:%M}-{session.close:%H:%M} KST"
    return label if session.day == day else f"{label} on {session.day.isoformat()}"


def _session_for(market: MarketNow, calendar=None) -> tuple[date, bool]:
    """(trading_date, queued) of an order placed at ``market``; ``MarketClosed`` in reject mode."""
    if market.is_open and market.trading_date is not None:
        return market.trading_date, False
    if settings.PAPER_MARKET_CLOSED != "queue":
        raise MarketClosed(
            f"The market is closed ({market.session}); orders are accepted {_session_hours(market, calendar)}."
        )
    if market.session == PRE_OPEN and market.trading_date is not None:
        return market.trading_date, True
    return _next_trading_day(market.trading_date or market.now.date()), True


def _same_terms(order: Order, *, code, side, order_type, quantity, limit_price) -> bool:
    return (
        order.stock.code == str(code).strip().upper()
        and order.side == str(side).strip().upper()
        and order.order_type == str(order_type).strip().upper()
        and order.quantity == quantity
        and order.limit_price == limit_price
    )


def _avg(amount: int, quantity: int) -> Decimal | None:
    if quantity <= 0:
        return None
    return (Decimal(amount) / Decimal(quantity)).quantize(AVG_PRICE_QUANT, rounding=ROUND_HALF_UP)


# --- placement -------------------------------------------------------------------------------------------


def order_place(
    *,
    account_id: int | None = None,
    account: PaperAccount | None = None,
    user=None,
    code: str,
    side: str,
    order_type: str,
    quantity: int,
    limit_price: int | None = None,
    client_order_id: str | None = None,
    market: MarketNow | None = None,
) -> Order:
    """Validate and accept a DAY order; reserve its cash (buys) or shares (sells).

    Any validation failure raises a coded ``ApplicationError`` and changes nothing. Resubmitting a
    ``client_order_id`` returns the existing order when the terms are the same, whatever its state now,
    and raises ``client_order_id_conflict`` (409) when they differ.

    Short locks: everything that only reads (the market clock, an HTTP call in demo mode; the stock, its
    reference price and band; the account's terms) happens first. Then one statement, its own transaction
    (``apps.core.db.insert_guarded``), reserves with a conditional ``UPDATE`` (cash: ``cash − reserved_cash
    >= needed``; shares: ``quantity − reserved_quantity >= quantity``) and inserts the order only if that
    changed a row; the ``(account, client_order_id)`` unique constraint settles a race between two
    resubmissions and undoes the reservation with it. The account or position row is locked only while
    PostgreSQL runs that statement, never while this process waits for its CPU, so fills of the account's
    other orders do not queue behind a busy web server.
    """
    from apps.marketdata.selectors import krx_calendar

    calendar = krx_calendar()
    if market is None:
        try:
            market = market_now(calendar)
        except MarketClockUnavailable as exc:
            raise MarketClockUnavailableError(f"The market clock is unavailable: {exc}") from exc
    if account is None:  # else the caller loaded it (the API resolves the request's account anyway)
        account = PaperAccount.objects.filter(pk=account_id).first()
    if account is None or (user is not None and account.user_id != user.pk):
        raise AccountNotFound(f"Paper account {account_id} not found.", fields={"account_id": ["Not found."]})

    if client_order_id is not None:
        if (
            not isinstance(client_order_id, str)
            or not 1 <= len(client_order_id.strip()) <= MAX_CLIENT_ORDER_ID
            or ANY_CONTROL_RE.search(client_order_id)
        ):
            raise InvalidClientOrderId(
                f"client_order_id must be 1-{MAX_CLIENT_ORDER_ID} characters.",
                fields={"client_order_id": ["Invalid."]},
            )
        client_order_id = client_order_id.strip()
        existing = _existing_order(account_id=account.pk, client_order_id=client_order_id)
        if existing is not None:
            return _resubmitted(existing, code=code, side=side, order_type=order_type, quantity=quantity,
                                limit_price=limit_price)  # fmt: skip

    side = _norm_choice(side, Side, InvalidSide, "side")
    order_type = _norm_choice(order_type, OrderType, InvalidOrderType, "order_type")
    if not _is_int(quantity) or quantity <= 0:
        raise InvalidQuantity("quantity must be a positive whole number of shares.", fields={"quantity": ["Invalid."]})
    if quantity > MAX_QUANTITY:
        raise InvalidQuantity(f"quantity must be at most {MAX_QUANTITY:,} shares.", fields={"quantity": ["Too large."]})

    code = str(code or "").strip().upper()
    stock = Stock.objects.filter(code=code).first() if valid_code(code) else None
    if stock is None:
        raise UnknownStock(f"Unknown stock {code!r}.", fields={"code": ["Unknown stock."]})
    if not stock.active:
        raise InactiveStock(f"{stock.code} is not active (delisted or suspended).", fields={"code": ["Inactive."]})

    if order_type == OrderType.LIMIT:
        if not _is_int(limit_price) or not 0 < limit_price <= MAX_PRICE:
            raise InvalidPrice(
                f"A LIMIT order needs a whole-won limit_price between 1 and {MAX_PRICE:,}.",
                fields={"limit_price": ["Invalid."]},
            )
    elif limit_price is not None:
        raise InvalidPrice("A MARKET order takes no limit_price.", fields={"limit_price": ["Must be empty."]})

    trading_date, queued = _session_for(market, calendar)

    from apps.marketdata.reference import reference_price_resolve

    current_session = trading_date == market.trading_date
    reference = reference_price_resolve(
        stock=stock, trading_date=trading_date, calendar=calendar, broker=current_session,
        provisional=queued and not current_session,
    )  # fmt: skip
    if reference is None:
        raise NoReferencePrice(
            f"No reference price (기준가) of {stock.code} for {trading_date}: no close of the previous trading day "
            "is stored, no live tick of the day has arrived and the broker gave no base price. Check that the "
            "start-up fill finished (/healthz, part market_data) and the broker is reachable, or load the history "
            f"with: python manage.py backfill_daily --codes {stock.code} --from <date> --to <date>.",
            fields={"code": ["No reference price."]},
        )
    base = reference.price
    upper, lower = DEFAULT_TICKS.price_limits(base, trading_date, stock.market)
    if limit_price is not None:
        if not DEFAULT_TICKS.on_grid(limit_price, trading_date, stock.market):
            tick = DEFAULT_TICKS.tick_size(limit_price, trading_date, stock.market)
            raise PriceOffTick(
                f"{limit_price:,} is not on the KRX tick grid (tick {tick:,} at this price).",
                fields={"limit_price": [f"Must be a multiple of {tick}."]},
            )
        if not lower <= limit_price <= upper:
            raise PriceOutOfBand(
                f"{limit_price:,} is outside today's limits {lower:,}-{upper:,} (base {base:,}).",
                fields={"limit_price": [f"Between {lower} and {upper}."]},
            )

    reserve_price, reserved = 0, 0
    if side == Side.BUY:
        reserve_price = limit_price if limit_price is not None else upper
        reserved = buy_reservation(reserve_price, quantity, account.commission_rate)

    order = Order(
        account=account,
        stock=stock,
        side=side,
        order_type=order_type,
        quantity=quantity,
        limit_price=limit_price,
        commission_rate=account.commission_rate,
        reserve_price=reserve_price,
        reserved_cash=reserved,
        client_order_id=client_order_id,
        trading_date=trading_date,
        queued=queued,
        band_checked=not queued,
        fill_after_id=_fill_stream_position(),
    )
    if side == Side.BUY:
        guard = _cash_reserve_guard(account_id=account.pk, amount=reserved)
    else:
        guard = position_reserve_guard(account_id=account.pk, stock_id=stock.pk, quantity=quantity)
    try:
        # every field was validated above; the constraints back it up. Nested in a caller's transaction, a
        # savepoint keeps a unique violation from breaking it.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            inserted = insert_guarded(order, guard_sql=guard[0], guard_params=guard[1])
    except IntegrityError:
        existing = client_order_id and _existing_order(account_id=account.pk, client_order_id=client_order_id)
        if not existing:
            raise
        return _resubmitted(existing, code=code, side=side, order_type=order_type, quantity=quantity,
                            limit_price=limit_price)  # fmt: skip
    if not inserted:
        if side == Side.BUY:
            raise _insufficient_cash(account_id=account.pk, amount=reserved)
        raise insufficient_holding(account_id=account.pk, stock_id=stock.pk, quantity=quantity)
    _demand_add_on_commit(stock.code, user_id=account.user_id)
    orders_push_snapshots_on_commit([order])  # the instance holds exactly the inserted row
    return order


def _existing_order(*, account_id: int, client_order_id: str) -> Order | None:
    return Order.objects.select_related("stock").filter(account_id=account_id, client_order_id=client_order_id).first()


def _resubmitted(existing: Order, *, code, side, order_type, quantity, limit_price) -> Order:
    if _same_terms(existing, code=code, side=side, order_type=order_type, quantity=quantity, limit_price=limit_price):
        return existing
    raise ClientOrderIdConflict(
        f"client_order_id {existing.client_order_id!r} was already used for a different order (#{existing.pk}).",
        fields={"client_order_id": ["Already used with different terms."]},
    )


def _cash_reserve_guard(*, account_id: int, amount: int) -> tuple[str, list[object]]:
    """The conditional update that holds ``amount`` of the account's free cash (``cash − reserved_cash >=
    amount``), for ``insert_guarded``."""
    table = connection.ops.quote_name(PaperAccount._meta.db_table)
    sql = (
        f"UPDATE {table} SET reserved_cash = reserved_cash + %s "
        "WHERE id = %s AND cash >= reserved_cash + %s RETURNING id"
    )
    return sql, [amount, account_id, amount]


def _insufficient_cash(*, account_id: int, amount: int) -> InsufficientCash:
    free = PaperAccount.objects.filter(pk=account_id).values_list("cash", "reserved_cash").first()
    free_cash = free[0] - free[1] if free else 0
    return InsufficientCash(
        f"Needs {amount:,} KRW (price x quantity + commission); {free_cash:,} free.",
        fields={"quantity": [f"Needs {amount} KRW, {free_cash} free."]},
    )


# --- release (cancel, expiry, reset) ---------------------------------------------------------------------


def _close_open_order(order: Order, *, status: str, reason: str = "") -> None:
    """Close a locked open order: release what it still holds, set its final status (account locked)."""
    if order.side == Side.BUY:
        if order.reserved_cash:
            PaperAccount.objects.filter(pk=order.account_id).update(
                reserved_cash=F("reserved_cash") - order.reserved_cash
            )
    else:
        position_release(account_id=order.account_id, stock_id=order.stock_id, quantity=order.remaining_quantity)
    order.status = status
    order.reserved_cash = 0
    order.closed_at = timezone.now()
    if reason:
        order.reject_reason = reason
    order.save(update_fields=["status", "reserved_cash", "closed_at", "reject_reason", "updated_at"])


@transaction.atomic
def order_cancel(*, order_id: int, user=None) -> Order:
    """Cancel the unfilled remainder of a pending or partially filled order, releasing exactly what it holds.

    The order row is locked before the account (the fill path's order), so a fill in flight completes first
    and the cancel releases only what is still reserved. ``order_not_cancellable`` (409) when it is closed.
    """
    order = lock_objects.order_lock(order_id=order_id) if parse_id(order_id) else None
    if order is None or (user is not None and order.account.user_id != user.pk):
        raise OrderNotFound(f"Order {order_id} not found.")
    if not order.is_open:
        raise OrderNotCancellable(f"Order {order_id} is {order.status} and cannot be cancelled.")
    lock_objects.accounts_lock(ids=[order.account_id])
    _close_open_order(order, status=OrderStatus.CANCELLED)
    _demand_prune_on_commit({order.stock.code})
    orders_push_on_commit([order.pk])
    return order


@transaction.atomic
def orders_cancel_for_account(*, account_id: int, reason: str = "") -> list[int]:
    """Cancel every open order of an account (used by the reset); return their ids."""
    orders = lock_objects.orders_lock_open(account_id=account_id)
    lock_objects.accounts_lock(ids=[account_id])
    for order in orders:
        _close_open_order(order, status=OrderStatus.CANCELLED, reason=reason)
    _demand_prune_on_commit({o.stock.code for o in orders})
    orders_push_on_commit([o.pk for o in orders])
    return [o.pk for o in orders]


@transaction.atomic
def orders_expire(*, trading_date: date) -> int:
    """Expire the open DAY orders of sessions up to ``trading_date`` (call after that session's close).

    Releases their reservations; returns how many expired. Also prunes applied-tick markers older than
    ``APPLIED_TICK_RETENTION``.
    """
    orders = lock_objects.orders_lock_open(trading_date_lte=trading_date)
    if orders:
        lock_objects.accounts_lock(ids={o.account_id for o in orders})
        for order in orders:
            _close_open_order(order, status=OrderStatus.EXPIRED)
        _demand_prune_on_commit({o.stock.code for o in orders})
        orders_push_on_commit([o.pk for o in orders])
    AppliedFillTick.objects.filter(applied_at__lt=timezone.now() - APPLIED_TICK_RETENTION).delete()
    return len(orders)


def orders_expire_due(*, market: MarketNow) -> int:
    """Expire what is due at ``market``: today's orders once its session closed, earlier sessions' always."""
    if market.trading_date is not None and market.session == "closed":
        return orders_expire(trading_date=market.trading_date)
    last_done = (market.trading_date or market.now.date()) - timedelta(days=1)
    return orders_expire(trading_date=last_done)


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

    def concerned_by(self, tick: FillTick, *, day: date, key: tuple[int, int]) -> bool:
        if self.trading_date > day or self.after >= key:
            return False
        if self.order_type == OrderType.MARKET or not self.band_checked:
            return True
        return self.limit_price >= tick.price if self.side == Side.BUY else self.limit_price <= tick.price


def _book_levels(code: str, at) -> dict[str, list[list[int]]] | None:
    """The stored order book of ``code`` when it is no older than PAPER_BOOK_MAX_AGE vs the tick."""
    import json
    from datetime import datetime

    from apps.core.redis import get_redis
    from apps.marketdata.realtime import keys

    try:
        raw = get_redis().hget(keys.BOOKS_HASH, code)
    except Exception:
        logger.warning("order book unavailable for %s; market orders fill at the trade price", code)
        return None
    if not raw:
        return None
    try:
        book = json.loads(raw)
        book_at = datetime.fromisoformat(book["time"])
        if abs((at - book_at).total_seconds()) > settings.PAPER_BOOK_MAX_AGE:
            return None
        asks = [[int(p), int(q)] for p, q in book.get("asks", []) if int(p) > 0 and int(q) > 0]
        bids = [[int(p), int(q)] for p, q in book.get("bids", []) if int(p) > 0 and int(q) > 0]
    except (KeyError, TypeError, ValueError):
        logger.warning("unreadable order book snapshot for %s", code)
        return None
    return {"asks": sorted(asks), "bids": sorted(bids, reverse=True)}


def _priority(order: Order) -> tuple:
    """Price-time priority: MARKET first, then the best limit (highest buy, lowest sell), then the oldest."""
    if order.order_type == OrderType.MARKET:
        price_rank = 0
    else:
        price_rank = -order.limit_price if order.side == Side.BUY else order.limit_price
    return (order.order_type != OrderType.MARKET, price_rank, order.pk)


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
            if order.order_type == OrderType.MARKET:
                crosses = order.side == Side.SELL or tick.price <= order.reserve_price
            elif order.side == Side.BUY:
                crosses = tick.price <= order.limit_price
            else:
                crosses = tick.price >= order.limit_price
            if crosses and volume_left > 0:
                take = min(remaining, volume_left)
                volume_left -= take
                plan.legs.append((tick.price, take))
        if plan.legs:
            plans.append(plan)
    return plans


_MAY_CROSS = (
    "(o.order_type = 'MARKET' OR NOT o.band_checked OR (o.side = 'BUY' AND o.limit_price >= %s) "
    "OR (o.side = 'SELL' AND o.limit_price <= %s))"
)  # with the lowest and the highest price of the ticks of a stock


def _fill_candidates(ticks: list[FillTick]) -> dict[str, list[_Candidate]]:
    """One read, no lock: per code, the open orders one of ``ticks`` may concern (``_MAY_CROSS``): MARKET
    orders (they may walk a stored book), LIMIT BUYs at or above the lowest trade, LIMIT SELLs at or below
    the highest, and queued orders not yet checked against their session's band. The others are left out
    before any lock: a tick that crosses none of them costs no transaction (limit prices never change, so
    such a tick, marker-less, is still a no-op if it is redelivered). Plain SQL: this runs for every batch
    the engine reads."""
    prices: dict[str, list[int]] = {}
    for tick in ticks:
        prices.setdefault(tick.code, []).append(tick.price)
    latest_day = max(tick.at.astimezone(KST).date() for tick in ticks)
    where, params = [], []
    for code, seen in sorted(prices.items()):
        where.append(f"(s.code = %s AND {_MAY_CROSS})")
        params += [code, min(seen), max(seen)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT o.id, o.account_id, o.stock_id, s.market, s.code, o.side, o.order_type, o.limit_price, "
            f"o.fill_after_id, o.trading_date, o.band_checked FROM {Order._meta.db_table} o "
            f"JOIN {Stock._meta.db_table} s ON s.id = o.stock_id "
            f"WHERE o.status = ANY(%s) AND o.trading_date <= %s AND ({' OR '.join(where)})",
            [list(OPEN_STATUSES), latest_day, *params],
        )
        rows = cursor.fetchall()
    candidates: dict[str, list[_Candidate]] = {}
    for pk, account_id, stock_id, market, code, side, kind, limit, after, trading_date, checked in rows:
        candidate = _Candidate(
            pk, account_id, stock_id, market, side, kind, limit, stream_id_key(after), trading_date, checked
        )
        candidates.setdefault(code, []).append(candidate)
    return candidates


def _mark_applied_send(ticks: list[FillTick]):
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
    "reserved_cash", "updated_at",
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

    def book(self, plans: list[_Plan], *, tick: FillTick, day: date, now) -> None:
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

    def write(self, positions: dict) -> None:
        """Queue the writes (the rows are locked already: orders, accounts, positions, in that order):
        positions (``position_fills_apply`` on the locked ``positions``, which also gives each sell's
        realized P&L), one ``UPDATE`` of every account's cash and reservation by delta
        (``apps.core.db.update_rows``), one of the orders and one ``INSERT`` of the executions. Nothing is
        read back, so in the fill's pipeline they travel with its ``COMMIT``. Values are computed from
        locked rows, so no per-row validation query is needed."""
        realized = position_fills_apply(fills=self.position_fills, locked=positions)
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
    date``, accepted before the tick entered the stream (``fill_after_id < stream_id``). Rules (see
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
    return _fills_apply_locked(work, list(concerned.values()))


def _queued_orders_check(orders: list[Order]) -> set[int]:
    """Re-check locked queued orders against the band of the session they are for, at its first tick.

    An order queued while the market was closed was checked against the reference price known then (e.g.
    the previous close, when the day's final close had not been collected yet). A LIMIT price outside the
    session's actual ±30 % band is REJECTED (``price_out_of_band``), releasing its reservation, as KRX
    would refuse it at the open; the others are marked checked. Returns the rejected order ids.

    The caller holds the locks of the orders' accounts and positions already (the fill transaction's
    first round trip), so releasing a rejected order's reservation takes no further lock.
    """
    rejected: list[Order] = []
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
            upper, lower = DEFAULT_TICKS.price_limits(base, order.trading_date, order.stock.market)
            reason = f"price_out_of_band: {order.limit_price:,} is outside {lower:,}-{upper:,} on {order.trading_date}"
            _close_open_order(order, status=OrderStatus.REJECTED, reason=reason)
            logger.info("queued order rejected at its session's open", extra={"order_id": order.pk, "reason": reason})
        _demand_prune_on_commit({o.stock.code for o in rejected})
        orders_push_on_commit([o.pk for o in rejected])
    return {o.pk for o in rejected}


def _fills_apply_locked(work: list[tuple[FillTick, date, list[int]]], candidates: list[_Candidate]) -> list[Execution]:
    """The fill transaction, in three round trips when every position exists: (1) the ticks' markers, the
    locks of the candidate orders, their accounts and positions (a superset of what fills), and the tax
    rates; (2) only when a buy opens a position: its insert and lock; (3) every write, with the ``COMMIT``:
    the writes are queued in a pipeline that stays open until the transaction has committed. Between (1) and
    (3) the connection is out of pipeline mode, so the rare statements whose row counts matter (a queued
    order's band check) see them."""
    with ExitStack() as until_committed, transaction.atomic():
        with pipeline():
            marker = _mark_applied_send([tick for tick, _, _ in work])
            read_orders = lock_objects.orders_lock_open_send(ids={c.id for c in candidates})
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
        return _fills_book_locked(work, applied, locked, positions, tax_rates, until_committed)


def _fills_book_locked(
    work, applied: set[str], locked: list[Order], positions: dict, tax_rates, until_committed: ExitStack
) -> list[Execution]:
    work = [entry for entry in work if entry[0].stream_id in applied]
    orders = {o.pk: o for o in locked}

    def concerned(tick: FillTick, day: date, ids: list[int]) -> list[Order]:
        key = stream_id_key(tick.stream_id)
        found = (orders.get(pk) for pk in ids)
        return [o for o in found if o and o.trading_date <= day and stream_id_key(o.fill_after_id) < key]

    unchecked = {o.pk: o for entry in work for o in concerned(*entry) if not o.band_checked}
    if unchecked:
        rejected = _queued_orders_check(list(unchecked.values()))
        for pk in rejected:
            del orders[pk]
        if rejected and positions:
            positions = positions_lock_send(set(positions))()  # a rejected sell gave its shares back
    fills = _Fills(tax_rates)
    now = timezone.now()
    for tick, day, ids in work:
        open_orders = [o for o in concerned(tick, day, ids) if o.remaining_quantity > 0]
        if not open_orders:
            continue
        walks = tick.source == "tick" and any(o.order_type == OrderType.MARKET for o in open_orders)
        book = _book_levels(tick.code, tick.at) if walks else None  # a polled snapshot walks no book
        plans = _plan_side([o for o in open_orders if o.side == Side.BUY], tick, book["asks"] if book else None)
        plans += _plan_side([o for o in open_orders if o.side == Side.SELL], tick, book["bids"] if book else None)
        fills.book(plans, tick=tick, day=day, now=now)
    if not fills.executions:
        return []
    until_committed.enter_context(pipeline())  # the writes leave with the COMMIT
    fills.write(positions)
    # A stock whose last open order filled stays in ORDERS_SET until the engine's next demand sync
    # (PAPER_FILL_DEMAND_SYNC): its ticks meanwhile cost one candidate read each, where pruning here would
    # cost a query and a Redis call after every fill that closes an order, before the next batch.
    orders_push_snapshots_on_commit([o for _, o in sorted(fills.orders.items())])
    return fills.executions
