"""Broker-linked accounts: linking (encrypted keys), the real-account opt-in, placing an order at the broker, applying
execution notices exactly once, and reconciling with the broker's order inquiry (the broker's state wins).

Rules of an order (checked before anything is sent):
- the user's paper account must be linked (``not_linked``);
- a real account needs the per-account opt-in (``real_account_not_opted_in``), an explicit ``confirm`` on every
  order (``confirmation_required``) and stays within its daily value limit (``daily_limit_exceeded``; checked and
  reserved under the link's row lock, so two orders cannot both squeeze under it);
- the paper server trades KRX only (kis-api.md §5.7: ``EXCG_ID_DVSN_CD`` paper KRX only).
A cancel (:func:`broker_order_cancel`) asks the broker to cancel the open remainder and reads its inquiry back: the
cancel is recorded once, by that read-back, the cancel's confirm notice or the reconciliation, whichever is first.
Placement is idempotent on ``(link, client_order_id)``. The order row is committed before the request is sent, and
the request is never retried (a cash order is not idempotent at the broker): without an answer the order is
``UNKNOWN`` until the reconciliation finds it in the broker's inquiry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.brokers.base import BrokerBusinessError, BrokerError
from apps.brokers.kis.client import AsyncKisClient
from apps.brokers.kis.config import KIS_REST_URLS, KIS_WS_URLS, KisConfig
from apps.brokers.kis.orders import (
    BUY,
    SELL,
    VENUES,
    AccountBalance,
    BrokerOrderRow,
    OrderNotice,
    RevisionAck,
)
from apps.core.exceptions import parse_id
from apps.core.groups import valid_code
from apps.core.krx.calendar import now_kst
from apps.marketdata.broker_services import DatabaseTokenStore, kis_config
from apps.marketdata.market_clock import MarketClockUnavailable, market_now
from apps.marketdata.models import DailyBar, Stock
from apps.marketdata.selectors import krx_calendar
from apps.trading.orders.exceptions import OrderNotCancellable, OrderNotFound

from . import vault
from .exceptions import (
    BrokerRefusedOrder,
    CancelPending,
    ConfirmationRequired,
    DailyLimitExceeded,
    InvalidBrokerOrder,
    NotLinked,
    RealNotOptedIn,
)
from .models import BrokerBalance, BrokerDisagreement, BrokerEnv, BrokerExecution, BrokerLink, BrokerOrder
from .selectors import (
    broker_expected_state,
    broker_link_for_account,
    broker_link_for_user,
    hoga_net_fills,
    value_reserved_on,
)

logger = logging.getLogger(__name__)

MAX_QUANTITY = 10_000_000
CANCEL_PENDING_SECONDS = 30.0  # a second cancel of an order within this is refused (cancel_pending)
RECONCILE_SETTLE_SECONDS = 10.0  # the scheduled reconciliation leaves orders changed this recently to their notices
MARKET_ORDER_PRICE_FACTOR = 1.3  # a market order is counted at the day's upper limit (+30 %, krx-rules.md) of the close

ClientFactory = Callable[[BrokerLink], AsyncKisClient]


def normalize_order_no(value: str) -> str:
    """KIS order numbers are zero-padded (``0000117057``) in some answers and not in others: compare unpadded."""
    return value.strip().lstrip("0") or "0"


# --- linking ------------------------------------------------------------------------------------------------


def _context(account_id: int, name: str) -> str:
    return f"brokerage.link:{account_id}:{name}"


@transaction.atomic
def broker_link_save(
    *,
    account,
    env: str,
    cano: str,
    product_code: str,
    hts_id: str,
    app_key: str,
    app_secret: str,
    daily_value_limit: int,
) -> BrokerLink:
    """Link ``account`` to a broker account (or replace its link); the key and secret are sealed at once."""
    if env not in BrokerEnv.values:
        raise InvalidBrokerOrder(f"env must be one of {BrokerEnv.values}", fields={"env": ["paper or real"]})
    if not app_key.strip() or not app_secret.strip() or not hts_id.strip():
        raise InvalidBrokerOrder("app key, secret and HTS ID are required", fields={"app_key": ["required"]})
    link = BrokerLink.objects.filter(account=account).first() or BrokerLink(account=account)
    link.env = env
    link.cano = cano
    link.product_code = product_code
    link.hts_id = hts_id.strip()
    link.app_key_encrypted = vault.seal(app_key.strip(), context=_context(account.pk, "app_key"))
    link.app_secret_encrypted = vault.seal(app_secret.strip(), context=_context(account.pk, "app_secret"))
    link.app_key_hint = app_key.strip()[:4]
    link.daily_value_limit = daily_value_limit
    if env == BrokerEnv.PAPER:
        link.real_opt_in, link.real_opt_in_at = False, None
    link.active = True
    link.full_clean()
    link.save()
    logger.info("broker link saved", extra={"account": account.pk, "env": env, "key_hint": link.app_key_hint})
    return link


def broker_link_credentials(link: BrokerLink) -> tuple[str, str]:
    return (
        vault.unseal(link.app_key_encrypted, context=_context(link.account_id, "app_key")),
        vault.unseal(link.app_secret_encrypted, context=_context(link.account_id, "app_secret")),
    )


@transaction.atomic
def broker_link_opt_in_real(*, user, confirm_cano: str) -> BrokerLink:
    """The explicit opt-in of a real account: the user types the account number (CANO) it is for."""
    link = broker_link_for_user(user=user)
    if link is None:
        raise NotLinked("This paper account is not linked to a broker account.")
    if link.env != BrokerEnv.REAL:
        raise InvalidBrokerOrder("Only a real account needs the opt-in.", code="not_a_real_account")
    if confirm_cano != link.cano:
        raise InvalidBrokerOrder(
            "Type the real account's number to opt in.", code="opt_in_mismatch", fields={"confirm_cano": ["mismatch"]}
        )
    BrokerLink.objects.filter(pk=link.pk).update(real_opt_in=True, real_opt_in_at=timezone.now())
    link.refresh_from_db()
    logger.warning("real-account orders enabled", extra={"account": link.account_id})
    return link


def broker_keys_rotate() -> int:
    """Re-seal every link's key and secret under the first of ``BROKERAGE_SECRET_KEYS``; the number re-sealed."""
    count = 0
    for link in BrokerLink.objects.select_for_update().iterator():
        if vault.sealed_with_current_key(link.app_key_encrypted) and vault.sealed_with_current_key(
            link.app_secret_encrypted
        ):
            continue
        key, secret = broker_link_credentials(link)
        BrokerLink.objects.filter(pk=link.pk).update(
            app_key_encrypted=vault.seal(key, context=_context(link.account_id, "app_key")),
            app_secret_encrypted=vault.seal(secret, context=_context(link.account_id, "app_secret")),
        )
        count += 1
    return count


# --- the broker client of a link -------------------------------------------------------------------------------


def link_kis_config(link: BrokerLink) -> KisConfig:
    """The settings' KIS configuration with the link's environment and keys; orders are never retried."""
    base = kis_config()
    key, secret = broker_link_credentials(link)
    overrides: dict = {"app_key": key, "app_secret": secret, "max_retries": 0}
    if link.env != base.env:
        if settings.MARKET_BROKER == "sandbox":
            host = settings.SANDBOX_CONNECT_HOST
            overrides["rest_url"] = f"http://{host}:{getattr(settings, f'SANDBOX_{link.env.upper()}_REST_PORT')}"
            overrides["ws_url"] = f"ws://{host}:{getattr(settings, f'SANDBOX_{link.env.upper()}_WS_PORT')}"
        else:
            overrides["rest_url"], overrides["ws_url"] = KIS_REST_URLS[link.env], KIS_WS_URLS[link.env]
        overrides["env"] = link.env
    return replace(base, **overrides)


def link_client(link: BrokerLink) -> AsyncKisClient:
    return AsyncKisClient(link_kis_config(link), token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL)


# --- placing ------------------------------------------------------------------------------------------------------


def _worst_price(code: str) -> int:
    close = DailyBar.objects.filter(stock__code=code).order_by("-date").values_list("close", flat=True).first()
    if close is None:
        raise InvalidBrokerOrder(
            "A market order needs the stock's last close (none stored).", code="no_reference_price"
        )
    return int(close * MARKET_ORDER_PRICE_FACTOR)


def _validate(*, code: str, side: str, order_type: str, quantity, limit_price, venue: str) -> dict:
    errors: dict[str, list[str]] = {}
    if not valid_code(code) or not Stock.objects.filter(code=code).exists():
        errors["code"] = ["an known 6-character stock code"]
    if side not in BrokerOrder.Side.values:
        errors["side"] = [f"one of {BrokerOrder.Side.values}"]
    if order_type not in BrokerOrder.Type.values:
        errors["order_type"] = [f"one of {BrokerOrder.Type.values}"]
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 0 < quantity <= MAX_QUANTITY:
        errors["quantity"] = [f"an integer 1..{MAX_QUANTITY}"]
    if order_type == BrokerOrder.Type.LIMIT:
        if not isinstance(limit_price, int) or isinstance(limit_price, bool) or not 0 < limit_price < 10**9:
            errors["price"] = ["a positive integer KRW price for a limit order"]
    elif limit_price is not None:
        errors["price"] = ["a market order has no price"]
    if venue not in VENUES:
        errors["venue"] = [f"one of {list(VENUES)}"]
    if errors:
        raise InvalidBrokerOrder("Invalid order.", fields=errors)
    return {}


def broker_order_place(
    *,
    user,
    code: str,
    side: str,
    order_type: str,
    quantity: int,
    limit_price: int | None,
    venue: str = "KRX",
    client_order_id: str,
    confirm: bool = False,
    client_factory: ClientFactory | None = None,
    account=None,
) -> BrokerOrder:
    """Send an order of the user's broker-linked account (``account``, one of the user's; default: the user's linked
    one) to the broker (see the module docstring for the rules)."""
    _validate(code=code, side=side, order_type=order_type, quantity=quantity, limit_price=limit_price, venue=venue)
    if not client_order_id or len(client_order_id) > 64:
        raise InvalidBrokerOrder("Invalid order.", fields={"client_order_id": ["1..64 characters"]})
    if account is not None:
        link = broker_link_for_account(account=account) if account.user_id == user.pk else None
    else:
        link = broker_link_for_user(user=user)
    if link is None:
        raise NotLinked("This paper account is not linked to a broker account.")
    if link.env == BrokerEnv.REAL:
        if not link.real_opt_in:
            raise RealNotOptedIn("Orders to a real account need the account's opt-in first.")
        if not confirm:
            raise ConfirmationRequired("Confirm this real-account order (confirm=true) to send it.")
    elif venue != "KRX":
        raise InvalidBrokerOrder("The paper server trades KRX only.", fields={"venue": ["KRX on a paper account"]})
    with transaction.atomic():
        locked = BrokerLink.objects.select_for_update().get(pk=link.pk)
        existing = BrokerOrder.objects.filter(link=locked, client_order_id=client_order_id).first()
        if existing is not None:
            return existing
        value = quantity * (limit_price if limit_price is not None else _worst_price(code))
        if locked.env == BrokerEnv.REAL:
            used = value_reserved_on(link=locked, day=now_kst().date())
            if used + value > locked.daily_value_limit:
                raise DailyLimitExceeded(
                    f"This order ({value:,} KRW) would take the day's orders to {used + value:,} KRW, over the "
                    f"account's limit of {locked.daily_value_limit:,} KRW."
                )
        order = BrokerOrder(
            link=locked, client_order_id=client_order_id, code=code, side=side, order_type=order_type,
            quantity=quantity, limit_price=limit_price, venue=venue, env=locked.env, value_reserved=value,
        )  # fmt: skip
        order.full_clean()
        order.save()

    factory = client_factory or link_client

    async def send():
        async with factory(link) as client:
            return await client.order_cash(
                account=link.cano, product=link.product_code, side=BUY if side == BrokerOrder.Side.BUY else SELL,
                code=code, quantity=quantity, price=limit_price, venue=venue,
            )  # fmt: skip

    try:
        ack = asyncio.run(send())
    except BrokerBusinessError as exc:
        BrokerOrder.objects.filter(pk=order.pk).update(status=BrokerOrder.Status.REFUSED, message=str(exc)[:300])
        order.refresh_from_db()
        raise BrokerRefusedOrder(f"The broker refused the order: {exc}", fields={"order_id": [str(order.pk)]}) from exc
    except BrokerError as exc:
        BrokerOrder.objects.filter(pk=order.pk).update(status=BrokerOrder.Status.UNKNOWN, message=str(exc)[:300])
        order.refresh_from_db()
        logger.warning("broker order without an answer", extra={"order": order.pk, "error": type(exc).__name__})
        return order
    BrokerOrder.objects.filter(pk=order.pk).update(
        broker_order_no=normalize_order_no(ack.order_no), broker_branch=ack.branch
    )
    BrokerOrder.objects.filter(pk=order.pk, status__in=[BrokerOrder.Status.PENDING, BrokerOrder.Status.UNKNOWN]).update(
        status=BrokerOrder.Status.ACKNOWLEDGED
    )
    order.refresh_from_db()
    logger.info("broker order acknowledged", extra={"order": order.pk, "env": order.env, "venue": venue})
    return order


# --- notices and reconciliation ----------------------------------------------------------------------------------


def _status_for(order: BrokerOrder, filled: int) -> str:
    if filled >= order.quantity:
        return BrokerOrder.Status.FILLED
    if order.cancelled_qty and filled + order.cancelled_qty >= order.quantity:
        return BrokerOrder.Status.CANCELLED
    if filled > 0:
        return BrokerOrder.Status.PARTIALLY_FILLED
    if order.status in (BrokerOrder.Status.PENDING, BrokerOrder.Status.UNKNOWN):
        return BrokerOrder.Status.ACKNOWLEDGED
    return order.status


@transaction.atomic
def broker_notice_apply(*, link_id: int, notice: OrderNotice, dedupe_key: str) -> str:
    """Apply one execution notice: ``applied`` (a fill recorded), ``ack`` (receipt), ``duplicate`` (this notice was
    applied before), ``counted`` (the reconciliation already counted this fill), ``unmatched`` (no order with that
    number yet) or ``ignored`` (it would overfill: recorded as a disagreement; the reconciliation decides).

    Exactly once on the broker's identifiers: a fill is placed in its order's cumulative quantity (order number +
    ``noticed_qty`` + this fill's ``CNTG_QTY``); only the part beyond ``filled_qty`` (what the notices and the
    reconciliation have counted) is added. So a notice arriving after the reconciliation counted its fill adds
    nothing, and a reconciliation after the notice finds nothing to add."""
    number = notice.original_order_no if notice.is_cancel and not notice.is_fill else notice.order_no
    order = (
        BrokerOrder.objects.select_for_update()
        .filter(link_id=link_id, broker_order_no=normalize_order_no(number))
        .first()
    )
    if order is None:
        return "unmatched"
    if notice.is_cancel and not notice.is_fill:
        return _cancel_confirmed(order, notice)
    if not notice.is_fill:
        if notice.refused:
            order.status, order.message = BrokerOrder.Status.REFUSED, "refused (RFUS_YN=1)"
        else:
            order.status = _status_for(order, order.filled_qty)
        order.save(update_fields=["status", "message", "updated_at"])
        return "ack"
    if BrokerExecution.objects.filter(order=order, dedupe_key=dedupe_key).exists():
        return "duplicate"
    cumulative = order.noticed_qty + notice.quantity
    if cumulative > order.quantity:
        BrokerDisagreement.objects.create(
            link_id=link_id, order=order, kind="overfill_notice",
            ours={"filled_qty": order.filled_qty, "noticed_qty": order.noticed_qty},
            broker={"notice_qty": notice.quantity, "raw_time": str(notice.at)},
        )  # fmt: skip
        return "ignored"
    new = max(0, cumulative - order.filled_qty)  # under the row lock taken above
    BrokerExecution.objects.create(
        order=order, quantity=new, price=notice.price, venue=notice.venue or "",
        source=BrokerExecution.Source.NOTICE, dedupe_key=dedupe_key, broker_cumulative_qty=cumulative,
    )  # fmt: skip
    order.noticed_qty = cumulative
    order.filled_qty += new
    order.filled_value += new * notice.price
    order.cancelled_qty = min(order.cancelled_qty, order.quantity - order.filled_qty)  # a fill the broker made wins
    order.status = _status_for(order, order.filled_qty)
    order.save(update_fields=["noticed_qty", "filled_qty", "filled_value", "cancelled_qty", "status", "updated_at"])
    return "applied" if new else "counted"


def _cancel_apply(order: BrokerOrder, cancelled: int, *, cancel_order_no: str = "") -> bool:
    """Record the broker's confirmed cancel of ``cancelled`` shares (the order row locked by the caller): once, the
    part still open at the broker (a fill that came first stays); the reserved value beyond what filled is released.
    False when it was recorded before."""
    if cancelled <= 0 or order.cancelled_qty >= cancelled:
        return False
    open_qty = order.quantity - order.filled_qty
    if cancelled > open_qty:  # the broker counts fills Hoga has not been told of yet: its inquiry brings them
        BrokerDisagreement.objects.create(
            link_id=order.link_id, order=order, kind="cancel_beyond_open",
            ours={"filled_qty": order.filled_qty}, broker={"cancelled_qty": cancelled},
        )  # fmt: skip
        cancelled = open_qty
    order.cancelled_qty = cancelled
    if cancel_order_no and not order.cancel_order_no:
        order.cancel_order_no = cancel_order_no
    order.status = _status_for(order, order.filled_qty)
    if order.status == BrokerOrder.Status.CANCELLED:  # the daily limit counts what filled only
        order.value_reserved = min(order.value_reserved, order.filled_value)
    order.save(update_fields=["cancelled_qty", "cancel_order_no", "status", "value_reserved", "updated_at"])
    logger.info("broker order cancelled", extra={"order": order.pk, "cancelled": cancelled})
    return True


def _cancel_confirmed(order: BrokerOrder, notice: OrderNotice) -> str:
    """A cancel's receipt notice: ``cancelled`` once confirmed (``ACPT_YN`` 2) with the cancelled quantity in
    ``CNTG_QTY``; ``ack`` for its acceptance; ``duplicate`` when it was recorded before (by a notice or the
    inquiry); a refused cancel leaves the order open."""
    if notice.refused:
        BrokerOrder.objects.filter(pk=order.pk).update(
            cancel_requested_at=None, message="cancel refused (RFUS_YN=1)"[:300]
        )
        return "ack"
    if notice.accept_state != "2":
        return "ack"
    applied = _cancel_apply(order, notice.quantity, cancel_order_no=normalize_order_no(notice.order_no))
    return "cancelled" if applied else "duplicate"


def broker_order_cancel(*, user, order_id, client_factory: ClientFactory | None = None) -> BrokerOrder:
    """Cancel the open remainder of one of the user's broker orders (``order-rvsecncl``, all of the remainder).

    The order row is locked while the request is marked (one cancel at a time: ``cancel_pending``), the request is
    sent once (never retried), then the broker's own inquiry of the order is read back and applied: what filled
    before the cancel stays, the cancelled remainder is recorded once (the confirm notice finds it recorded, or
    records it first: either way once). ``order_not_found`` (404) for an order that is not the user's,
    ``order_not_cancellable`` (409) for a closed one or one the broker has not numbered, ``broker_refused`` (409)."""
    pk = parse_id(order_id)
    with transaction.atomic():
        order = BrokerOrder.objects.select_for_update().filter(pk=pk, link__account__user=user).first() if pk else None
        if order is None:
            raise OrderNotFound(f"Order broker:{str(order_id)[:20]} not found.")
        if order.status not in (BrokerOrder.Status.ACKNOWLEDGED, BrokerOrder.Status.PARTIALLY_FILLED):
            raise OrderNotCancellable(f"Order broker:{order.pk} is {order.status} and cannot be cancelled.")
        if not order.broker_order_no:
            raise OrderNotCancellable(f"Order broker:{order.pk} has no broker order number yet.")
        if order.cancel_requested_at is not None and order.cancel_requested_at > timezone.now() - timedelta(
            seconds=CANCEL_PENDING_SECONDS
        ):
            raise CancelPending(f"A cancel of order broker:{order.pk} is on its way.")
        order.cancel_requested_at = timezone.now()
        order.save(update_fields=["cancel_requested_at", "updated_at"])
    link = order.link
    factory = client_factory or link_client

    async def send() -> tuple[RevisionAck | BrokerBusinessError, list[BrokerOrderRow]]:
        async with factory(link) as client:
            answer: RevisionAck | BrokerBusinessError
            try:
                answer = await client.order_revise_cancel(
                    account=link.cano, product=link.product_code, branch=order.broker_branch,
                    original_order_no=order.broker_order_no.zfill(10), venue=order.venue,
                )  # fmt: skip
            except BrokerBusinessError as exc:  # e.g. nothing open any more: it filled in the meantime
                answer = exc
            try:  # the broker's own state of the order, read back at once (the broker wins)
                rows = await client.daily_orders(account=link.cano, product=link.product_code, day=market_day())
            except BrokerError:
                rows = []  # the confirm notice or the next reconciliation brings it
            return answer, rows

    try:
        answer, rows = asyncio.run(send())
    except BrokerError as exc:
        logger.warning("broker cancel without an answer", extra={"order": order.pk, "error": type(exc).__name__})
        order.refresh_from_db()
        return order  # the notice or the reconciliation tells whether it was cancelled
    mine = {normalize_order_no(order.broker_order_no)}
    if isinstance(answer, RevisionAck):
        mine.add(normalize_order_no(answer.order_no))
        with transaction.atomic():
            locked = BrokerOrder.objects.select_for_update().get(pk=order.pk)
            if not locked.cancel_order_no:
                locked.cancel_order_no = normalize_order_no(answer.order_no)
                locked.save(update_fields=["cancel_order_no", "updated_at"])
    related = [
        r for r in rows if normalize_order_no(r.order_no) in mine or normalize_order_no(r.original_order_no) in mine
    ]
    if related:
        broker_reconcile_apply(link=link, rows=related)
    if isinstance(answer, BrokerBusinessError):
        BrokerOrder.objects.filter(pk=order.pk).update(cancel_requested_at=None, message=str(answer)[:300])
        raise BrokerRefusedOrder(
            f"The broker refused the cancel: {answer}", fields={"order_id": [str(order.pk)]}
        ) from answer
    order.refresh_from_db()
    logger.info("broker cancel sent", extra={"order": order.pk, "status": order.status})
    return order


def broker_reconcile_apply(
    *,
    link: BrokerLink,
    rows: Sequence[BrokerOrderRow],
    settle_seconds: float = 0.0,
    notices_restart: bool = False,
) -> dict[str, int]:
    """Make every order the broker lists agree with it (the broker wins): a fill the notices did not bring is added
    as one ``reconcile`` execution (keyed by the broker's cumulative quantity, so a repeat adds nothing), every
    difference is recorded as a disagreement. An order without an answer (``UNKNOWN``) is matched by stock, side
    and quantity; a broker order Hoga never sent is recorded only. ``settle_seconds``: an order changed more recently
    is left for the next run (a notice of it may still be on its way; the scheduled run uses
    ``RECONCILE_SETTLE_SECONDS``, the listener none: it reconciles before subscribing).

    A notice arriving after this run counted its fill adds nothing (:func:`broker_notice_apply` places it in the
    cumulative quantity). ``notices_restart`` (the listener, before it subscribes again): KIS sends only new notices
    on a new subscription, so the notices of every fill counted so far will never come: each order's notice count
    starts again from its filled quantity.

    A cancel order (``orgn_odno`` set, ``cncl_yn`` Y) is applied to its original: an original with nothing left open
    (``rmn_qty`` 0) that did not fill completely is ``CANCELLED`` once, for its cancel orders' quantity or its own
    ``cnc_cfrm_qty`` (whichever is larger)."""
    counts = {"checked": 0, "adjusted": 0, "matched_unknown": 0, "foreign": 0, "settling": 0, "cancelled": 0}
    settled_before = timezone.now() - timedelta(seconds=settle_seconds)
    cancelled_by: dict[str, int] = {}  # original order number -> shares its cancel orders took off the book
    revisions: set[str] = set()
    for row in rows:
        if row.original_order_no.strip("0 ") and row.cancelled:
            revisions.add(normalize_order_no(row.order_no))
            original = normalize_order_no(row.original_order_no)
            cancelled_by[original] = cancelled_by.get(original, 0) + row.quantity
    for row in rows:
        number = normalize_order_no(row.order_no)
        if number in revisions:  # a cancel order: applied to its original below (a modify order is an order)
            continue
        with transaction.atomic():
            order = BrokerOrder.objects.select_for_update().filter(link=link, broker_order_no=number).first()
            if order is None:
                side = BrokerOrder.Side.BUY if row.side == BUY else BrokerOrder.Side.SELL
                order = (
                    BrokerOrder.objects.select_for_update()
                    .filter(
                        link=link,
                        status=BrokerOrder.Status.UNKNOWN,
                        code=row.code,
                        side=side,
                        quantity=row.quantity,
                        broker_order_no="",
                    )  # fmt: skip
                    .order_by("created_at")
                    .first()
                )
                if order is None:
                    counts["foreign"] += 1
                    if not BrokerDisagreement.objects.filter(
                        link=link, kind="unknown_at_hoga", broker__order_no=number
                    ).exists():
                        BrokerDisagreement.objects.create(
                            link=link, kind="unknown_at_hoga", ours={},
                            broker={"order_no": number, "code": row.code, "quantity": row.quantity},
                        )  # fmt: skip
                    continue
                order.broker_order_no = number
                counts["matched_unknown"] += 1
            if settle_seconds and order.updated_at > settled_before:
                counts["settling"] += 1
                continue
            counts["checked"] += 1
            diff = row.filled_qty - order.filled_qty
            if diff:
                value_diff = row.filled_value - order.filled_value
                BrokerExecution.objects.create(
                    order=order, quantity=diff, price=abs(value_diff // diff), venue="",
                    source=BrokerExecution.Source.RECONCILE,
                    dedupe_key=f"reconcile:{order.filled_qty}->{row.filled_qty}",
                    broker_cumulative_qty=row.filled_qty,
                )  # fmt: skip
                BrokerDisagreement.objects.create(
                    link=link, order=order, kind="missed_notices" if diff > 0 else "broker_filled_less",
                    ours={"filled_qty": order.filled_qty, "filled_value": order.filled_value},
                    broker={"filled_qty": row.filled_qty, "filled_value": row.filled_value},
                )  # fmt: skip
                order.filled_qty, order.filled_value = row.filled_qty, row.filled_value
                order.noticed_qty = min(order.noticed_qty, order.filled_qty)
                order.cancelled_qty = min(order.cancelled_qty, order.quantity - order.filled_qty)
                counts["adjusted"] += 1
            order.status = _status_for(order, order.filled_qty)
            order.save()
            cancelled = max(row.cancelled_qty, cancelled_by.get(number, 0))
            if row.remaining == 0 and order.filled_qty < order.quantity and _cancel_apply(order, cancelled):
                counts["cancelled"] += 1
    if notices_restart:
        BrokerOrder.objects.filter(link=link).exclude(noticed_qty=F("filled_qty")).update(noticed_qty=F("filled_qty"))
    return counts


@transaction.atomic
def broker_balance_apply(*, link: BrokerLink, balance: AccountBalance, fetched_at=None) -> dict[str, int]:
    """Make the link's cash and holdings the broker's (its balance inquiry wins): every stock whose quantity
    differs from what Hoga expected (the previous balance moved by the fills counted since) and a cash difference
    are recorded as disagreements (``position_mismatch``, ``cash_mismatch``); the first balance of a link is
    compared for holdings only (Hoga knows no cash of it before)."""
    BrokerLink.objects.select_for_update().get(pk=link.pk)  # one balance reconciliation of a link at a time
    expected, expected_cash = broker_expected_state(link=link)
    broker = {h.code: h.quantity for h in balance.holdings}
    counts = {"positions_differ": 0, "cash_differs": 0}
    for code in sorted(set(expected) | set(broker)):
        if expected.get(code, 0) != broker.get(code, 0):
            counts["positions_differ"] += 1
            BrokerDisagreement.objects.create(
                link=link, kind="position_mismatch",
                ours={"code": code, "quantity": expected.get(code, 0)},
                broker={"code": code, "quantity": broker.get(code, 0)},
            )  # fmt: skip
    if expected_cash is not None and expected_cash != balance.cash:
        counts["cash_differs"] = 1
        BrokerDisagreement.objects.create(
            link=link, kind="cash_mismatch", ours={"cash": expected_cash}, broker={"cash": balance.cash}
        )
    net_qty, net_value = hoga_net_fills(link=link)
    BrokerBalance.objects.update_or_create(
        link=link,
        defaults={
            "cash": balance.cash,
            "securities_value": balance.securities_value,
            "total_value": balance.total_value,
            "holdings": [
                {
                    "code": h.code,
                    "name": h.name,
                    "quantity": h.quantity,
                    "avg_price": h.avg_price,
                    "price": h.price,
                    "value": h.value,
                }  # fmt: skip
                for h in balance.holdings
            ],
            "hoga_net_value": net_value,
            "hoga_net_qty": net_qty,
            "fetched_at": fetched_at or timezone.now(),
        },
    )
    return counts


def broker_balance_reconcile(*, link: BrokerLink, client_factory: ClientFactory | None = None) -> dict[str, int]:
    """Read the broker's balance (``inquire-balance``) and apply it (:func:`broker_balance_apply`)."""
    factory = client_factory or link_client

    async def fetch():
        async with factory(link) as client:
            return await client.balance(account=link.cano, product=link.product_code)

    return broker_balance_apply(link=link, balance=asyncio.run(fetch()))


def market_day():
    """The market's today: the sandbox's replay date with the sandbox broker, else the KST date."""
    try:
        market = market_now(krx_calendar())
    except MarketClockUnavailable:
        return now_kst().date()
    return market.trading_date or market.now.date()


def broker_reconcile(
    *, link: BrokerLink, client_factory: ClientFactory | None = None, day=None, settle_seconds: float = 0.0
) -> dict[str, int]:
    """Read the broker's orders of ``day`` (default: the market's today) and apply them
    (:func:`broker_reconcile_apply`)."""
    day = day or market_day()

    factory = client_factory or link_client

    async def fetch():
        async with factory(link) as client:
            return await client.daily_orders(account=link.cano, product=link.product_code, day=day)

    return broker_reconcile_apply(link=link, rows=asyncio.run(fetch()), settle_seconds=settle_seconds)
