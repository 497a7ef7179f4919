"""Where an account's orders are executed: Hoga's paper engine, or an executor that a higher layer registers.

The trading domain knows only this protocol; an app above it (``apps.brokerage``: orders of an account linked to a
KIS account, executed on KIS's paper server or a real account) registers its executor in its ``AppConfig.ready``.
The order API, the pages and the admin ask :func:`executor_for` which executor an account's orders go to, and
merge the orders every registered executor holds for a user with the paper engine's. Each order and execution says
where it was executed (``executed_by`` and a label with its venue).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Protocol

PAPER_ENGINE = "paper_engine"
PAPER_ENGINE_LABEL = "Hoga 모의 엔진 (paper engine)"


def paper_engine_where(route: str | None) -> str:
    """The label of where a paper-engine order or execution was executed (its route or venue)."""
    return f"{PAPER_ENGINE_LABEL} · {route or 'KRX'}"


@dataclass(frozen=True)
class ExternalOrder:
    """An order executed outside the paper engine, in the shape of a paper order (``ref`` tells them apart)."""

    id: int
    ref: str
    account_id: int
    code: str
    name: str
    side: str
    order_type: str
    quantity: int
    limit_price: int | None
    status: str
    open: bool
    filled_quantity: int
    avg_fill_price: int | None
    reject_reason: str
    client_order_id: str
    trading_date: dt.date
    route: str
    created_at: dt.datetime
    updated_at: dt.datetime
    executed_by: str
    executed_where: str
    broker_order_no: str
    created: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    closed_at: None = None

    @property
    def pk(self) -> int:
        return self.id

    @property
    def executor(self) -> str:
        """The name of the executor that holds it (the ``ref``'s prefix)."""
        return self.ref.split(":", 1)[0]

    @property
    def stock(self) -> SimpleNamespace:  # the pages' templates read order.stock.code / .name
        return SimpleNamespace(code=self.code, name=self.name)


@dataclass(frozen=True)
class ExternalExecution:
    id: int
    ref: str
    order_id: int
    order_ref: str
    account_id: int
    code: str
    name: str
    side: str
    price: int
    quantity: int
    venue: str
    source: str
    executed_at: dt.datetime
    executed_by: str
    executed_where: str
    commission: None = None  # the broker's fees are not told per fill
    tax: None = None
    realized_pnl: None = None
    phase: str = ""

    @property
    def amount(self) -> int:
        return self.price * self.quantity

    @property
    def stock(self) -> SimpleNamespace:
        return SimpleNamespace(code=self.code, name=self.name)


@dataclass(frozen=True)
class ExternalHolding:
    """One stock held at the broker, as its last balance inquiry told it."""

    code: str
    name: str
    quantity: int
    avg_price: str  # the broker's purchase average (a decimal string)
    price: int  # the broker's current price when the balance was read
    value: int


@dataclass(frozen=True)
class ExternalHoldings:
    """An account's cash and holdings at the broker from its last reconciled balance (``as_of``: when it was read;
    None: never read yet, nothing known)."""

    executed_by: str
    label: str
    as_of: dt.datetime | None
    cash: int | None
    securities_value: int | None
    total_value: int | None
    positions: tuple[ExternalHolding, ...] = ()


class OrderExecutor(Protocol):
    """What an executor of orders outside the paper engine provides (every method scoped to its user)."""

    name: str  # the ``ref`` prefix and URL segment of its orders ("broker")
    statuses: tuple[str, ...]  # its order statuses, beyond the paper engine's

    def handles(self, account: Any) -> str | None:
        """``executed_by`` of the account's new orders when this executor takes them, else None."""

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
    ) -> ExternalOrder: ...

    def orders(
        self,
        *,
        user: Any,
        account_id: int | None,
        status: str | None,
        code: str | None,
        date: dt.date | None,
        limit: int,
    ) -> list[ExternalOrder]: ...

    def order(self, *, user: Any, order_id: int) -> ExternalOrder | None: ...

    def cancel(self, *, user: Any, order_id: str) -> ExternalOrder:
        """Cancel the open remainder of one of the user's orders; raises the trading domain's ``OrderNotFound``
        (404), ``OrderNotCancellable`` (409) or a coded error of its own."""

    def holdings(self, account: Any) -> ExternalHoldings | None:
        """The account's cash and holdings where this executor keeps them, or None when it does not take it."""

    def executions(
        self, *, user: Any, account_id: int | None, code: str | None, limit: int
    ) -> list[ExternalExecution]: ...

    def account_info(self, account: Any) -> dict[str, Any] | None:
        """What the order ticket shows of an account this executor takes (label, confirmation needed…)."""


_EXECUTORS: dict[str, OrderExecutor] = {}


def register_order_executor(executor: OrderExecutor) -> None:
    """Called by an app's ``AppConfig.ready`` (idempotent: the name is the key)."""
    _EXECUTORS[executor.name] = executor


def order_executors() -> list[OrderExecutor]:
    return list(_EXECUTORS.values())


def order_executor(name: str) -> OrderExecutor | None:
    return _EXECUTORS.get(name)


def executor_account_annotations() -> dict[str, Any]:
    """The annotations the registered executors read in ``handles`` (an executor may define
    ``account_annotations()``): the order API reads them with the account, so deciding where a new order goes
    costs no query of its own."""
    found: dict[str, Any] = {}
    for executor in _EXECUTORS.values():
        hook = getattr(executor, "account_annotations", None)
        if hook is not None:
            found.update(hook())
    return found


def executor_for(account: Any) -> OrderExecutor | None:
    """The executor that takes ``account``'s new orders, or None: the paper engine."""
    for executor in _EXECUTORS.values():
        if executor.handles(account):
            return executor
    return None


def external_holdings_for(account: Any) -> ExternalHoldings | None:
    """The cash and holdings at the executor that takes ``account``'s orders, or None (the paper engine's)."""
    executor = executor_for(account)
    return executor.holdings(account) if executor is not None else None


def external_statuses() -> list[str]:
    return sorted({s for executor in _EXECUTORS.values() for s in executor.statuses})


def external_orders_for_user(
    *,
    user: Any,
    account_id: int | None = None,
    status: str | None = None,
    code: str | None = None,
    date: dt.date | None = None,
    limit: int = 1000,
) -> list[ExternalOrder]:
    found: list[ExternalOrder] = []
    for executor in _EXECUTORS.values():
        found += executor.orders(user=user, account_id=account_id, status=status, code=code, date=date, limit=limit)
    return sorted(found, key=lambda o: (o.created_at, o.id), reverse=True)


def external_executions_for_user(
    *, user: Any, account_id: int | None = None, code: str | None = None, limit: int = 500
) -> list[ExternalExecution]:
    found: list[ExternalExecution] = []
    for executor in _EXECUTORS.values():
        found += executor.executions(user=user, account_id=account_id, code=code, limit=limit)
    return sorted(found, key=lambda e: (e.executed_at, e.id), reverse=True)
