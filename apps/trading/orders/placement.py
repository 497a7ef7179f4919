"""Order placement: validation, the session an order belongs to, idempotency by ``client_order_id``, and the
reservation of cash (one conditional ``F()`` update) or holdings (under the position row lock)."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeGuard

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction

from apps.core.db import insert_guarded
from apps.core.exceptions import ApplicationError, ValidationFailed
from apps.core.groups import valid_code
from apps.core.jsonsafe import ANY_CONTROL_RE
from apps.core.krx import phases
from apps.core.krx.calendar import KST, KrxCalendar
from apps.core.krx.rules import DEFAULT_TICKS
from apps.core.redis import get_redis
from apps.core.typing import AnyUser
from apps.live.nxt import nxt_eligible
from apps.live.quotes import quote_and_state_send, snapshot_price, snapshot_time
from apps.live.reference import reference_price_resolve
from apps.marketdata.market_clock import PRE_OPEN, MarketClockUnavailable, MarketNow, market_now
from apps.marketdata.models import DailyBar, MinuteBar, Stock
from apps.marketdata.selectors import krx_calendar, stock_by_code
from apps.trading.accounts.models import PaperAccount
from apps.trading.positions.services import (
    insufficient_holding,
    position_reserve_guard,
)

from .demand import demand_add_on_commit, fill_stream_position_send, fill_stream_position_unknown
from .exceptions import (
    AccountNotFound,
    AfterHoursOutOfRange,
    ClientOrderIdConflict,
    InactiveStock,
    InsufficientCash,
    InvalidBracket,
    InvalidClientOrderId,
    InvalidOrderType,
    InvalidPrice,
    InvalidQuantity,
    InvalidRoute,
    InvalidSide,
    InvalidTrigger,
    MarketClockUnavailableError,
    MarketClosed,
    NoReferencePrice,
    NxtNotEligible,
    PhaseRejectsOrderType,
    PriceOffTick,
    PriceOutOfBand,
    StockHalted,
    TriggerOffTick,
    TriggerOutOfBand,
    UnknownStock,
    VenueNotOpen,
)
from .executors import ExternalOrder, executor_for
from .models import (
    CLOSE_PRICE_TYPES,
    PRICED_TYPES,
    BracketLeg,
    Order,
    OrderType,
    Route,
    Side,
    TriggerState,
    TriggerType,
)
from .pricing import (
    buy_reservation,
)
from .realtime import orders_push_snapshots_on_commit
from .sessions import acceptance, clock_text, next_acceptance, route_venues, venue_phase, when_text
from .triggers import direction_for, trailing_trigger

logger = logging.getLogger(__name__)


MAX_CLIENT_ORDER_ID = 64


# Bounds checked before anything reaches the database: price × quantity (+ commission) must fit PostgreSQL's
# bigint (9.2e18) for any KRX price. No KRX stock trades above 10^7 won, so 10^9 shares × 10^9 won stays
# three orders of magnitude inside it (and far beyond any account's cash or holding).
MAX_QUANTITY = 10**9


MAX_PRICE = 10**9


def _norm_choice(value: object, choices: type[models.TextChoices], error: type[ApplicationError], what: str) -> str:
    text = str(value).strip().upper() if isinstance(value, str) else ""
    if text not in choices.values:
        raise error(f"{what} must be one of {', '.join(choices.values)}.", fields={what: ["Invalid choice."]})
    return text


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _next_trading_day(after: date) -> date:

    calendar = krx_calendar()
    day = after
    for _ in range(30):
        day += timedelta(days=1)
        if calendar.is_trading_day(day):
            return day
    raise MarketClosed(f"No trading day within 30 days after {after}.")


def _session_hours(market: MarketNow, calendar: KrxCalendar | None = None) -> str:
    """``"09:00-15:30 KST"`` for the market's trading day (or the next one), as the calendar has it."""

    if calendar is None:
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


def _same_terms(
    order: Order,
    *,
    code: object,
    side: object,
    order_type: object,
    quantity: object,
    limit_price: object,
    route: object = None,
) -> bool:
    return (
        order.stock.code == str(code).strip().upper()
        and order.side == str(side).strip().upper()
        and order.order_type == str(order_type).strip().upper()
        and order.quantity == quantity
        and order.limit_price == limit_price
        and order.route == (str(route).strip().upper() if route is not None else Route.KRX)
    )


# --- phases ----------------------------------------------------------------------------------------------

#: After-hours single price: within ±10 % of today's close (and the daily band) (krx-rules §3.3).
AFTER_HOURS_RANGE_PERCENT = 10


def _quote_and_position(code: str) -> tuple[dict[str, Any] | None, str]:
    """In one Redis round trip: the stock's live quote snapshot (its last KRX price and time) with its market
    state over it (``halted``, ``vi``, ``phase``: the state is published before the day's first trade too; None
    when Redis has neither), and where the fill-tick stream stands (``fill_stream_position``: ticks up to there
    printed before the order existed). Redis down: no quote, and the wall clock as the position."""
    try:
        pipe = get_redis().pipeline(transaction=False)
        parse_quote = quote_and_state_send(pipe, code)
        parse_position = fill_stream_position_send(pipe)
        quote, state, newest = pipe.execute()
    except Exception:  # placement still works; the feed's per-stock state is then unknown
        logger.warning("quote snapshot and fill stream unavailable at order placement", extra={"code": code})
        return None, fill_stream_position_unknown()
    snapshot, market_state = parse_quote(quote, state)
    position = parse_position(newest)
    if snapshot is None and market_state is None:
        return None, position
    return {**(snapshot or {}), **(market_state or {})}, position


def _stock_phase(snapshot: dict[str, Any] | None) -> str | None:
    """The stock's own phase from the feed: halted, or under a volatility interruption (a call auction)."""
    if snapshot is None:
        return None
    if snapshot.get("halted"):
        return phases.HALTED
    if snapshot.get("vi") or snapshot.get("phase") == phases.VI_AUCTION:
        return phases.VI_AUCTION
    return None


def todays_close(*, stock: Stock, day: date, snapshot: dict[str, Any] | None = None) -> int | None:
    """Today's KRX close of ``stock`` once the closing call printed, else None. In order: the quote snapshot's
    ``close`` when a feed gives it; a stored daily bar of ``day``; the snapshot's KRX price when its print is the
    closing call's or a closing-price trade's (printed within 30 minutes of the session's close: both trade at the
    close); the minute bar of the closing print. Approximate after 16:10 when none of these is stored: the
    snapshot then holds an after-hours call's price, which is not the close."""
    if snapshot is not None and snapshot.get("close"):
        try:
            return int(snapshot["close"])
        except (TypeError, ValueError):
            pass
    bar = DailyBar.objects.filter(stock=stock, date=day).order_by("-fetched_at").values_list("close", flat=True).first()
    if bar:
        return int(bar)
    session = krx_calendar().session(day)
    if session is None:
        return None
    if snapshot is not None and snapshot.get("venue", phases.KRX) == phases.KRX:
        at, price = snapshot_time(snapshot), snapshot_price(snapshot)
        if at is not None and price is not None and session.close <= at < session.close + CLOSE_PRICE_WINDOW:
            return price
    minute = MinuteBar.objects.filter(stock=stock, ts=session.close).values_list("close", flat=True).first()
    return int(minute) if minute else None


#: After the closing call, prints at the close: the call itself (its random end within 30 s) and the closing-price
#: trades of 15:40-16:00 (krx-rules §3.3).
CLOSE_PRICE_WINDOW = timedelta(minutes=30)


def after_hours_range(close: int, day: date, market: str) -> tuple[int, int]:
    """The lowest and highest price on the tick grid within ±10 % of ``close``."""
    low = -(-close * (100 - AFTER_HOURS_RANGE_PERCENT) // 100)
    high = close * (100 + AFTER_HOURS_RANGE_PERCENT) // 100
    low_tick, high_tick = DEFAULT_TICKS.tick_size(low, day, market), DEFAULT_TICKS.tick_size(high, day, market)
    return -(-low // low_tick) * low_tick, high // high_tick * high_tick


def _phase_label(now: phases.PhaseNow) -> str:
    name = now.phase.replace("_", " ")
    if now.since is not None and now.until is not None:
        return f"{now.venue} {name} ({clock_text(now.since)}-{clock_text(now.until)} KST)"
    return f"{now.venue} {name}"


def _session_by_phase(
    market: MarketNow,
    calendar: KrxCalendar,
    *,
    order_type: str,
    route: str,
    nxt_eligible: bool,
    snapshot: dict[str, Any] | None,
) -> tuple[date, bool, str]:
    """(trading_date, queued, phase) of a new order: taken now by a phase of one of its venues, or (MARKET and
    LIMIT orders for KRX in queue mode) queued for the next session, or refused with a coded error naming the
    phase and when the order type is taken next. NXT orders and the closing-price and after-hours types are
    never queued."""
    venues = route_venues(route, nxt_eligible=nxt_eligible)
    now = {venue: venue_phase(market, venue, calendar) for venue in venues}
    if market.trading_date is not None:
        taken = acceptance(order_type=order_type, venues=venues, now=now, stock_phase=_stock_phase(snapshot))
        if taken is not None:
            return market.trading_date, False, taken.phase
    regular = order_type in (OrderType.MARKET, OrderType.LIMIT)
    all_closed = all(n.phase == phases.CLOSED for n in now.values())
    if regular and route != Route.NXT and settings.PAPER_MARKET_CLOSED == "queue":
        if market.session == PRE_OPEN and market.trading_date is not None:
            return market.trading_date, True, phases.CLOSED
        return _next_trading_day(market.trading_date or market.now.date()), True, phases.CLOSED
    today = market.now.astimezone(KST).date()
    when = min(
        (
            found
            for venue in venues
            if (found := next_acceptance(order_type=order_type, venue=venue, after=market.now, calendar=calendar))
        ),
        default=None,
    )
    accepted = when_text(when, today=today)
    if all_closed:
        if route == Route.NXT:
            raise VenueNotOpen(
                f"NXT takes no orders now ({_phase_label(now[phases.NXT])}); {order_type} orders are accepted "
                f"{accepted}.",
                fields={"route": ["Venue closed."]},
            )
        raise MarketClosed(
            f"The market is closed ({market.session}); {order_type} orders are accepted {accepted} "
            f"(regular session {_session_hours(market, calendar)}).",
            fields={"order_type": [f"Accepted {accepted}."]},
        )
    current = next(n for n in now.values() if n.phase != phases.CLOSED)
    takes = sorted(k.upper() for k in current.accepted) or ["no new"]
    raise PhaseRejectsOrderType(
        f"{_phase_label(current)} takes {', '.join(takes)} orders only; {order_type} orders "
        f"({'route ' + route}) are accepted {accepted}.",
        fields={"order_type": [f"Not taken in {current.phase}; accepted {accepted}."]},
    )


# --- placement -------------------------------------------------------------------------------------------


def order_place(
    *,
    account_id: int | None = None,
    account: PaperAccount | None = None,
    user: AnyUser = None,
    code: str,
    side: str,
    order_type: str,
    quantity: int,
    limit_price: int | None = None,
    client_order_id: str | None = None,
    market: MarketNow | None = None,
    route: str | None = None,
    trigger_type: str | None = None,
    trigger_price: object = None,
    trail_amount: object = None,
    trail_percent: object = None,
    bracket_leg: str = BracketLeg.NONE,
) -> Order:
    """Validate and accept a DAY order; reserve its cash (buys) or shares (sells).

    Conditional orders (``trigger_type``: ``TriggerType``) take a ``trigger_price`` (on the tick grid, within
    the day's band), or for a trailing stop exactly one of ``trail_amount`` (KRW) and ``trail_percent``; their
    ``order_type`` is what they become when fired: LIMIT for STOP_LIMIT (its limit checked like any limit, so
    beyond the band it is refused with ``price_out_of_band``), MARKET for the others. They reserve as that
    order would (a protective SELL holds its shares) and rest ARMED until a print fires them (``fills``).

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

    calendar = krx_calendar()
    if market is None:
        try:
            market = market_now(calendar)
        except MarketClockUnavailable as exc:
            raise MarketClockUnavailableError(f"The market clock is unavailable: {exc}") from exc
    if account is None:  # else the caller loaded it (the API resolves the request's account anyway)
        account = PaperAccount.objects.filter(pk=account_id).first() if account_id is not None else None
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
                                limit_price=limit_price, route=route)  # fmt: skip

    side = _norm_choice(side, Side, InvalidSide, "side")
    if trigger_type not in (None, ""):
        trigger_type = _norm_choice(trigger_type, TriggerType, InvalidTrigger, "trigger_type")
        wanted = OrderType.LIMIT if trigger_type == TriggerType.STOP_LIMIT else OrderType.MARKET
        if order_type in (None, ""):
            order_type = wanted
        elif str(order_type).strip().upper() != wanted:
            raise InvalidOrderType(
                f"A {trigger_type} order becomes a {wanted} order when it fires; order_type must be {wanted}.",
                fields={"order_type": [f"Must be {wanted}."]},
            )
    else:
        trigger_type = ""
        if trigger_price is not None or trail_amount is not None or trail_percent is not None:
            raise InvalidTrigger(
                "trigger_price and trailing distances need a trigger_type.", fields={"trigger_type": ["Required."]}
            )
    order_type = _norm_choice(order_type, OrderType, InvalidOrderType, "order_type")
    trail = _trail_terms(trigger_type, trigger_price, trail_amount, trail_percent)
    route = _norm_choice(route if route is not None else Route.KRX, Route, InvalidRoute, "route")
    if not _is_int(quantity) or quantity <= 0:
        raise InvalidQuantity("quantity must be a positive whole number of shares.", fields={"quantity": ["Invalid."]})
    if quantity > MAX_QUANTITY:
        raise InvalidQuantity(f"quantity must be at most {MAX_QUANTITY:,} shares.", fields={"quantity": ["Too large."]})

    code = str(code or "").strip().upper()
    stock = stock_by_code(code) if valid_code(code) else None
    if stock is None:
        raise UnknownStock(f"Unknown stock {code!r}.", fields={"code": ["Unknown stock."]})
    if not stock.active:
        raise InactiveStock(f"{stock.code} is not active (delisted or suspended).", fields={"code": ["Inactive."]})

    if order_type in PRICED_TYPES:
        if not _is_int(limit_price) or not 0 < limit_price <= MAX_PRICE:
            raise InvalidPrice(
                f"A {order_type} order needs a whole-won limit_price between 1 and {MAX_PRICE:,}.",
                fields={"limit_price": ["Invalid."]},
            )
    elif limit_price is not None:
        what = "its price is the close" if order_type in CLOSE_PRICE_TYPES else "it trades at the market"
        raise InvalidPrice(
            f"A {order_type} order takes no limit_price ({what}).", fields={"limit_price": ["Must be empty."]}
        )

    snapshot, stream_position = _quote_and_position(stock.code)
    if snapshot is not None and snapshot.get("halted"):
        raise StockHalted(
            f"{stock.code} is halted (거래정지): it takes cancels only until trading resumes.",
            fields={"code": ["Halted."]},
        )
    on_nxt = nxt_eligible(stock.code)
    if route == Route.NXT and not on_nxt:
        raise NxtNotEligible(
            f"{stock.code} is not traded on NXT today; route the order to KRX (or SOR, which then uses KRX).",
            fields={"route": ["Not NXT-eligible."]},
        )
    trading_date, queued, accepted_phase = _session_by_phase(
        market, calendar, order_type=order_type, route=route, nxt_eligible=on_nxt, snapshot=snapshot
    )

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
    direction, trail_anchor, trigger = "", None, None
    if trigger_type:
        direction = direction_for(trigger_type, side)
        if trigger_type == TriggerType.TRAILING_STOP:
            trail_anchor = (snapshot_price(snapshot) if snapshot else None) or base
            trigger = trailing_trigger(direction, trail_anchor, amount=trail[0], percent=trail[1])
        else:
            trigger = _trigger_checked(trigger_price, trading_date, stock.market, lower=lower, upper=upper)
    close = None
    if order_type in (OrderType.POST_CLOSE_PRICE, OrderType.AFTER_HOURS_SINGLE):
        close = todays_close(stock=stock, day=trading_date, snapshot=snapshot)
    if order_type == OrderType.AFTER_HOURS_SINGLE:
        if close is None:
            raise NoReferencePrice(
                f"Today's close of {stock.code} is not known yet: after-hours single-price orders are checked "
                "against it (±10 %).",
                fields={"code": ["No close."]},
            )
        assert limit_price is not None  # PRICED_TYPES
        if abs(limit_price - close) * 100 > close * AFTER_HOURS_RANGE_PERCENT:
            low, high = after_hours_range(close, trading_date, stock.market)
            raise AfterHoursOutOfRange(
                f"{limit_price:,} is outside the after-hours single-price range {low:,}-{high:,} "
                f"(±{AFTER_HOURS_RANGE_PERCENT} % of today's close {close:,}).",
                fields={"limit_price": [f"Between {low} and {high}."]},
            )

    reserve_price, reserved = 0, 0
    if side == Side.BUY:
        if limit_price is not None:
            reserve_price = limit_price
        elif order_type == OrderType.PRE_CLOSE_PRICE:
            reserve_price = base  # the previous close: the only price it trades at
        elif order_type == OrderType.POST_CLOSE_PRICE and close is not None:
            reserve_price = min(close, upper)
        else:
            reserve_price = upper  # a market order, or today's close not yet known
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
        fill_after_id=stream_position,
        route=route,
        phase=accepted_phase,
        accepted_at=market.now,
        trigger_type=trigger_type,
        trigger_state=TriggerState.ARMED if trigger_type else TriggerState.NONE,
        trigger_direction=direction,
        trigger_price=trigger,
        trail_amount=trail[0],
        trail_percent=trail[1],
        trail_anchor=trail_anchor,
        bracket_leg=bracket_leg,
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
        existing = _existing_order(account_id=account.pk, client_order_id=client_order_id) if client_order_id else None
        if not existing:
            raise
        return _resubmitted(existing, code=code, side=side, order_type=order_type, quantity=quantity,
                            limit_price=limit_price, route=route)  # fmt: skip
    if not inserted:
        if side == Side.BUY:
            raise _insufficient_cash(account_id=account.pk, amount=reserved)
        raise insufficient_holding(account_id=account.pk, stock_id=stock.pk, quantity=quantity)
    demand_add_on_commit(stock.code, user_id=account.user_id)
    orders_push_snapshots_on_commit([order])  # the instance holds exactly the inserted row
    return order


MAX_TRAIL_PERCENT = Decimal("50")


def _trail_terms(
    trigger_type: str, trigger_price: object, trail_amount: object, trail_percent: object
) -> tuple[int | None, Decimal | None]:
    """(trail_amount, trail_percent) of a trailing stop, validated: exactly one of them, a whole number of won
    or a percent in (0, 50] with at most two decimals. Other orders take neither (``invalid_trigger``)."""
    if not trigger_type:
        return None, None
    if trigger_type != TriggerType.TRAILING_STOP:
        if trail_amount is not None or trail_percent is not None:
            raise InvalidTrigger(
                "Only a TRAILING_STOP takes trail_amount or trail_percent.", fields={"trail_amount": ["Must be empty."]}
            )
        if trigger_price is None:
            raise InvalidTrigger(
                f"A {trigger_type} order needs a trigger_price.", fields={"trigger_price": ["Required."]}
            )
        return None, None
    if trigger_price is not None:
        raise InvalidTrigger(
            "A TRAILING_STOP sets its own trigger from the tape: give trail_amount or trail_percent, no trigger_price.",
            fields={"trigger_price": ["Must be empty."]},
        )
    if (trail_amount is None) == (trail_percent is None):
        raise InvalidTrigger(
            "A TRAILING_STOP needs exactly one of trail_amount (KRW) and trail_percent.",
            fields={"trail_amount": ["Give this or trail_percent."]},
        )
    if trail_amount is not None:
        if not _is_int(trail_amount) or not 0 < trail_amount <= MAX_PRICE:
            raise InvalidTrigger(
                f"trail_amount must be a whole number of won between 1 and {MAX_PRICE:,}.",
                fields={"trail_amount": ["Invalid."]},
            )
        return trail_amount, None
    try:
        if isinstance(trail_percent, bool) or not isinstance(trail_percent, int | str | float | Decimal):
            raise InvalidOperation
        percent = Decimal(str(trail_percent).strip())
    except (InvalidOperation, ValueError):
        percent = Decimal("NaN")
    if not percent.is_finite() or not 0 < percent <= MAX_TRAIL_PERCENT or percent != percent.quantize(Decimal("0.01")):
        raise InvalidTrigger(
            f"trail_percent must be a number above 0 and at most {MAX_TRAIL_PERCENT} with at most two decimals.",
            fields={"trail_percent": ["Invalid."]},
        )
    return None, percent.quantize(Decimal("0.01"))


def _trigger_checked(
    value: object, day: date, market: str, *, lower: int, upper: int, what: str = "trigger_price"
) -> int:
    """A trigger price: a whole number of won on the tick grid, within the day's band (else no print reaches it)."""
    if not _is_int(value) or not 0 < value <= MAX_PRICE:
        raise InvalidTrigger(
            f"{what} must be a whole number of won between 1 and {MAX_PRICE:,}.", fields={what: ["Invalid."]}
        )
    if not DEFAULT_TICKS.on_grid(value, day, market):
        tick = DEFAULT_TICKS.tick_size(value, day, market)
        raise TriggerOffTick(
            f"{what} {value:,} is not on the KRX tick grid (tick {tick:,} at this price).",
            fields={what: [f"Must be a multiple of {tick}."]},
        )
    if not lower <= value <= upper:
        raise TriggerOutOfBand(
            f"{what} {value:,} is outside today's limits {lower:,}-{upper:,}: no print can reach it.",
            fields={what: [f"Between {lower} and {upper}."]},
        )
    return value


def bracket_place(
    *,
    take_profit_price: object,
    stop_loss_price: object,
    **entry: Any,
) -> Order:
    """Place a bracket: a BUY entry (MARKET or LIMIT, ``order_place``'s terms) with a take-profit and a stop-loss
    SELL leg for the same quantity, each the other's ``oco_peer``. The legs wait (hold nothing) until the entry
    has filled; then both are armed with ONE reservation of the bought shares, the first leg to fill cancels
    the other, and an entry closed unfilled (cancel, expiry) cancels them. Returns the entry (``legs``).

    Refused with ``invalid_bracket`` unless the entry is a plain BUY and ``stop_loss < take_profit`` (and the
    entry's limit lies between them); each leg price as a trigger (``trigger_off_tick``, ``trigger_out_of_band``).
    """
    if str(entry.get("side", "")).strip().upper() != Side.BUY or entry.get("trigger_type"):
        raise InvalidBracket("A bracket's entry is a plain BUY (MARKET or LIMIT).", fields={"side": ["Must be BUY."]})
    if str(entry.get("order_type", "")).strip().upper() not in (OrderType.MARKET, OrderType.LIMIT):
        raise InvalidBracket(
            "A bracket's entry is a MARKET or LIMIT order.", fields={"order_type": ["MARKET or LIMIT."]}
        )
    for name, value in (("take_profit_price", take_profit_price), ("stop_loss_price", stop_loss_price)):
        if not _is_int(value) or not 0 < value <= MAX_PRICE:
            raise InvalidTrigger(
                f"{name} must be a whole number of won between 1 and {MAX_PRICE:,}.", fields={name: ["Invalid."]}
            )
    assert _is_int(take_profit_price) and _is_int(stop_loss_price)
    limit = entry.get("limit_price")
    if not stop_loss_price < take_profit_price or (_is_int(limit) and not stop_loss_price < limit < take_profit_price):
        raise InvalidBracket(
            "A bracket needs stop_loss_price < take_profit_price, with the entry's limit between them.",
            fields={"stop_loss_price": ["Below the take-profit (and the entry's limit)."]},
        )
    with transaction.atomic():
        order = order_place(**entry, bracket_leg=BracketLeg.ENTRY)
        if order.bracket_leg != BracketLeg.ENTRY:  # a resubmitted client_order_id of a plain order
            raise InvalidBracket(
                f"client_order_id {order.client_order_id!r} names order #{order.pk}, which is no bracket.",
                fields={"client_order_id": ["Already used for a plain order."]},
            )
        if Order.objects.filter(parent=order).exists():  # a resubmission: the legs exist already
            return order
        base = reference_price_resolve(
            stock=order.stock, trading_date=order.trading_date, calendar=krx_calendar(), broker=False,
            provisional=order.queued,
        )  # fmt: skip
        if base is None:  # the entry was just priced against it
            raise NoReferencePrice(f"No reference price of {order.stock.code}.", fields={"code": ["No reference."]})
        upper, lower = DEFAULT_TICKS.price_limits(base.price, order.trading_date, order.stock.market)
        legs = []
        for leg, trigger_type, price in (
            (BracketLeg.TAKE_PROFIT, TriggerType.TAKE_PROFIT, take_profit_price),
            (BracketLeg.STOP_LOSS, TriggerType.STOP, stop_loss_price),
        ):
            what = "take_profit_price" if leg == BracketLeg.TAKE_PROFIT else "stop_loss_price"
            checked = _trigger_checked(price, order.trading_date, order.stock.market, lower=lower, upper=upper,
                                       what=what)  # fmt: skip
            legs.append(
                Order(
                    account_id=order.account_id, stock=order.stock, side=Side.SELL, order_type=OrderType.MARKET,
                    quantity=order.quantity, commission_rate=order.commission_rate, trading_date=order.trading_date,
                    queued=order.queued, band_checked=order.band_checked, fill_after_id=order.fill_after_id,
                    route=order.route, phase=order.phase, accepted_at=order.accepted_at, trigger_type=trigger_type,
                    trigger_state=TriggerState.WAITING, trigger_direction=direction_for(trigger_type, Side.SELL),
                    trigger_price=checked, bracket_leg=leg, parent=order,
                )
            )  # fmt: skip
        take_profit, stop_loss = Order.objects.bulk_create(legs)
        take_profit.oco_peer, stop_loss.oco_peer = stop_loss, take_profit
        Order.objects.bulk_update([take_profit, stop_loss], ["oco_peer"])
        orders_push_snapshots_on_commit([take_profit, stop_loss])
    return order


def _existing_order(*, account_id: int, client_order_id: str) -> Order | None:
    return Order.objects.select_related("stock").filter(account_id=account_id, client_order_id=client_order_id).first()


def _resubmitted(
    existing: Order,
    *,
    code: object,
    side: object,
    order_type: object,
    quantity: object,
    limit_price: object,
    route: object = None,
) -> Order:
    if _same_terms(
        existing, code=code, side=side, order_type=order_type, quantity=quantity, limit_price=limit_price, route=route
    ):
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


#: The terms of a conditional or bracket order: the paper engine evaluates them on the tape, a broker never sees them.
CONDITIONAL_TERMS = ("trigger_type", "trigger_price", "trail_amount", "trail_percent", "take_profit_price",
                     "stop_loss_price")  # fmt: skip


def order_submit(*, account: Any, confirm: bool = False, **terms: Any) -> Order | ExternalOrder:
    """A new order of ``account``, from the API or a page: to the executor that takes the account (a plain order
    only: ``conditional_not_at_broker`` otherwise), else to the paper engine, as a bracket when either exit price
    is given, else as a plain or conditional order. ``terms``: ``order_place``'s, the trigger terms and the
    bracket's exit prices."""
    executor = executor_for(account)
    if executor is not None:
        conditional = [name for name in CONDITIONAL_TERMS if terms.get(name) not in (None, "")]
        if conditional:
            raise ValidationFailed(
                "Conditional and bracket orders are evaluated by the paper engine only.",
                code="conditional_not_at_broker",
                fields={name: ["Not for a broker-linked account."] for name in conditional},
            )
        plain = {name: value for name, value in terms.items() if name not in CONDITIONAL_TERMS}
        return executor.place(account=account, confirm=confirm, **plain)
    take_profit_price, stop_loss_price = terms.pop("take_profit_price", None), terms.pop("stop_loss_price", None)
    if take_profit_price is not None or stop_loss_price is not None:
        entry = {name: value for name, value in terms.items() if name not in CONDITIONAL_TERMS}
        return bracket_place(account=account, take_profit_price=take_profit_price, stop_loss_price=stop_loss_price,
                             **entry)  # fmt: skip
    return order_place(account=account, **terms)
