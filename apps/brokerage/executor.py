"""The order executor of broker-linked accounts, registered with the trading domain (``apps.trading.orders.executors``)
at ``AppConfig.ready``: the paper-trading order API, the pages and the admin send a linked account's orders here,
and list the orders and executions kept here next to the paper engine's. Every one says where it was executed:
``kis_paper`` (KIS 모의투자 server) or ``kis_real`` (a real account), with its venue (``EXCG_ID_DVSN_CD``)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.db.models import F, QuerySet

from apps.core.exceptions import parse_id
from apps.core.krx.calendar import KST
from apps.marketdata.models import Stock
from apps.trading.orders.executors import ExternalExecution, ExternalHolding, ExternalHoldings, ExternalOrder

from .models import BrokerEnv, BrokerExecution, BrokerOrder
from .selectors import broker_balance, broker_link_for_account
from .services import broker_order_cancel, broker_order_place

LINK_ENV_ANNOTATION = "broker_link_env"
LINK_ACTIVE_ANNOTATION = "broker_link_active"

OPEN = (
    BrokerOrder.Status.PENDING,
    BrokerOrder.Status.ACKNOWLEDGED,
    BrokerOrder.Status.PARTIALLY_FILLED,
    BrokerOrder.Status.UNKNOWN,
)
CLOSED_REASONS = {BrokerOrder.Status.REFUSED, BrokerOrder.Status.UNKNOWN}
CANCELLABLE = (BrokerOrder.Status.ACKNOWLEDGED, BrokerOrder.Status.PARTIALLY_FILLED)


def executed_by(env: str) -> str:
    return "kis_real" if env == BrokerEnv.REAL else "kis_paper"


def _names(codes) -> dict[str, str]:
    return dict(Stock.objects.filter(code__in=set(codes)).values_list("code", "name"))


def to_external(order: BrokerOrder, name: str = "", *, created: bool = False) -> ExternalOrder:
    return ExternalOrder(
        id=order.pk,
        ref=f"broker:{order.pk}",
        account_id=order.link.account_id,
        code=order.code,
        name=name,
        side=order.side,
        order_type=order.order_type,
        quantity=order.quantity,
        limit_price=order.limit_price,
        status=order.status,
        open=order.status in OPEN,
        filled_quantity=order.filled_qty,
        avg_fill_price=order.filled_value // order.filled_qty if order.filled_qty else None,
        reject_reason=order.message if order.status in CLOSED_REASONS else "",
        client_order_id=order.client_order_id,
        trading_date=order.created_at.astimezone(KST).date(),
        route=order.venue,
        created_at=order.created_at,
        updated_at=order.updated_at,
        executed_by=executed_by(order.env),
        executed_where=order.executed_at,
        broker_order_no=order.broker_order_no,
        created=created,
        extra={
            "env": order.env,
            "cancelled_quantity": order.cancelled_qty,
            "cancel_pending": order.cancel_requested_at is not None and order.status in CANCELLABLE,
            "cancellable": order.status in CANCELLABLE and bool(order.broker_order_no),
        },
    )


class BrokerOrderExecutor:
    name = "broker"
    statuses = tuple(BrokerOrder.Status.values)

    def account_annotations(self) -> dict[str, Any]:
        """The account's link (one at most: a one-to-one) and whether it is active, read with the account by the
        order API (``handles``): a LEFT JOIN, far cheaper for the ORM to build than a subquery."""
        return {LINK_ENV_ANNOTATION: F("broker_link__env"), LINK_ACTIVE_ANNOTATION: F("broker_link__active")}

    def handles(self, account: Any) -> str | None:
        if LINK_ENV_ANNOTATION in vars(account):  # read with the account (account_annotations)
            env, active = vars(account)[LINK_ENV_ANNOTATION], vars(account).get(LINK_ACTIVE_ANNOTATION)
            return executed_by(env) if env and active else None
        link = broker_link_for_account(account=account)
        return executed_by(link.env) if link is not None else None

    def place(
        self,
        *,
        account: Any,
        user: Any,
        code: str,
        side: str,
        order_type: str,
        quantity: Any,
        limit_price: Any,
        route: str,
        client_order_id: str | None,
        confirm: bool,
    ) -> ExternalOrder:
        started = dt.datetime.now(dt.UTC)
        order = broker_order_place(
            user=user, account=account, code=code, side=side, order_type=order_type, quantity=quantity,
            limit_price=limit_price, venue=route, client_order_id=client_order_id or uuid.uuid4().hex,
            confirm=confirm,
        )  # fmt: skip
        return to_external(order, _names([order.code]).get(order.code, ""), created=order.created_at >= started)

    def _orders(self, user: Any) -> QuerySet[BrokerOrder]:
        return BrokerOrder.objects.filter(link__account__user=user).select_related("link")

    def orders(
        self,
        *,
        user: Any,
        account_id: int | None,
        status: str | None,
        code: str | None,
        date: dt.date | None,
        limit: int,
    ) -> list[ExternalOrder]:
        qs = self._orders(user)
        if account_id is not None:
            qs = qs.filter(link__account_id=account_id)
        if status:
            status = status.upper()
            qs = qs.filter(status__in=OPEN) if status == "OPEN" else qs.filter(status=status)
        if code:
            qs = qs.filter(code=code.strip().upper())
        if date is not None:
            start = dt.datetime.combine(date, dt.time.min, tzinfo=KST)
            qs = qs.filter(created_at__gte=start, created_at__lt=start + dt.timedelta(days=1))
        rows = list(qs.order_by("-created_at", "-id")[:limit])
        names = _names(o.code for o in rows)
        return [to_external(o, names.get(o.code, "")) for o in rows]

    def order(self, *, user: Any, order_id: int) -> ExternalOrder | None:
        pk = parse_id(order_id)
        found = self._orders(user).filter(pk=pk).first() if pk else None
        return to_external(found, _names([found.code]).get(found.code, "")) if found else None

    def cancel(self, *, user: Any, order_id: str) -> ExternalOrder:
        order = broker_order_cancel(user=user, order_id=order_id)
        return to_external(order, _names([order.code]).get(order.code, ""))

    def holdings(self, account: Any) -> ExternalHoldings | None:
        link = broker_link_for_account(account=account)
        if link is None:
            return None
        label = f"{'KIS 실전 계좌 (real account)' if link.env == BrokerEnv.REAL else 'KIS 모의투자 (paper server)'}"
        balance = broker_balance(link=link)
        if balance is None:
            return ExternalHoldings(executed_by(link.env), label, None, None, None, None)
        return ExternalHoldings(
            executed_by=executed_by(link.env),
            label=label,
            as_of=balance.fetched_at,
            cash=balance.cash,
            securities_value=balance.securities_value,
            total_value=balance.total_value,
            positions=tuple(
                ExternalHolding(
                    code=str(h["code"]),
                    name=str(h.get("name") or ""),
                    quantity=int(h["quantity"]),
                    avg_price=str(h.get("avg_price") or "0"),
                    price=int(h.get("price") or int(h["value"]) // int(h["quantity"])),
                    value=int(h["value"]),
                )  # fmt: skip
                for h in balance.holdings
                if int(h.get("quantity") or 0) > 0
            ),
        )

    def executions(self, *, user: Any, account_id: int | None, code: str | None, limit: int) -> list[ExternalExecution]:
        qs = (
            BrokerExecution.objects.filter(order__link__account__user=user)
            .exclude(quantity=0)  # a notice of a fill the reconciliation had counted: kept for the record only
            .select_related("order__link")
        )
        if account_id is not None:
            qs = qs.filter(order__link__account_id=account_id)
        if code:
            qs = qs.filter(order__code=code.strip().upper())
        rows = list(qs.order_by("-created_at", "-id")[:limit])
        names = _names(e.order.code for e in rows)
        return [
            ExternalExecution(
                id=e.pk,
                ref=f"broker:{e.pk}",
                order_id=e.order_id,
                order_ref=f"broker:{e.order_id}",
                account_id=e.order.link.account_id,
                code=e.order.code,
                name=names.get(e.order.code, ""),
                side=e.order.side,
                price=e.price,
                quantity=e.quantity,
                venue=e.venue or e.order.venue,
                source=e.source,
                executed_at=e.created_at,
                executed_by=executed_by(e.order.env),
                executed_where=f"{e.order.executed_at.rsplit(' · ', 1)[0]} · {e.venue or e.order.venue}",
            )  # fmt: skip
            for e in rows
        ]

    def account_info(self, account: Any) -> dict[str, Any] | None:
        link = broker_link_for_account(account=account)
        if link is None:
            return None
        real = link.env == BrokerEnv.REAL
        return {
            "executed_by": executed_by(link.env),
            "label": "KIS 실전 계좌 (real account)" if real else "KIS 모의투자 (paper server)",
            "account": f"{link.cano[:4]}****-{link.product_code}",
            "real": real,
            "real_opt_in": link.real_opt_in,
            "confirmation_required": real,
            "daily_value_limit": link.daily_value_limit,
            "venues": ["KRX", "NXT", "SOR"] if real else ["KRX"],
            "order_types": ["LIMIT", "MARKET"],
        }
