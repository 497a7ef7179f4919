"""The one path from a strategy's signal to a paper order: ``order_place`` (the service the API uses), or
``bracket_place`` when the signal carries a bracket (``bracket_attach``: its percentages become take-profit and
stop-loss prices on the KRX tick grid)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db.models import Q

from apps.core.exceptions import ApplicationError
from apps.core.krx.rules import DEFAULT_TICKS
from apps.marketdata.market_clock import calendar_now
from apps.marketdata.selectors import krx_calendar, stock_by_code
from apps.trading.accounts.models import PaperAccount
from apps.trading.orders.exceptions import OrderNotCancellable
from apps.trading.orders.executors import executor_for
from apps.trading.orders.models import OPEN_STATUSES, Order
from apps.trading.orders.placement import bracket_place, order_place
from apps.trading.orders.release import order_cancel

from .engine import OrderRequest, Submitted


def bracket_prices(price: int, bracket: dict[str, Any], day: date, market: str) -> tuple[int, int]:
    """(take-profit, stop-loss) ``take_profit_pct`` above and ``stop_loss_pct`` below ``price``, on the tick grid
    (the target rounded down, the stop up: never further than asked), each at least one tick from ``price``."""
    raw_take = price * (100 + bracket["take_profit_pct"]) / 100
    tick = DEFAULT_TICKS.tick_size(int(raw_take), day, market)
    take = max(int(raw_take) // tick * tick, price + DEFAULT_TICKS.tick_size(price, day, market))
    raw_stop = price * (100 - bracket["stop_loss_pct"]) / 100
    tick = DEFAULT_TICKS.tick_size(int(raw_stop), day, market)
    stop = min(-(-int(raw_stop) // tick) * tick, price - tick)
    return take, stop


def bracket_attach(entry: dict[str, Any], request: OrderRequest) -> Order:
    """The entry of ``entry`` (``order_place``'s terms) with its take-profit and stop-loss legs."""
    assert request.bracket is not None
    stock = stock_by_code(request.code)
    market = stock.market if stock is not None else "KOSPI"
    take, stop = bracket_prices(request.price, request.bracket, entry["market"].now.date(), market)
    return bracket_place(take_profit_price=take, stop_loss_price=stop, **entry)


def strategy_legs(*, account_id: int, prefix: str, code: str | None = None) -> list[int]:
    """Open bracket legs of the strategy's entries (client order ids ``<prefix>-…``), of ``code`` when given."""
    legs = Order.objects.filter(
        Q(account_id=account_id, parent__client_order_id__startswith=f"{prefix}-", status__in=OPEN_STATUSES)
    )
    if code is not None:
        legs = legs.filter(stock__code=code)
    return list(legs.values_list("pk", flat=True))


def signal_order_place(*, account: PaperAccount, request: OrderRequest) -> Submitted:
    """A MARKET order for ``request`` at the market time of its signal (a bracket when it carries one); a SELL
    first cancels the strategy's open bracket legs of the stock (they hold its shares). Coded refusals come back
    as such."""
    if executor_for(account) is not None:  # linked to a broker since the strategy was made
        return Submitted(False, code="broker_linked_account", reason="the account's orders go to a broker")
    entry = {
        "account": account, "code": request.code, "side": request.side, "order_type": "MARKET",
        "quantity": request.quantity, "client_order_id": request.client_order_id,
        "market": calendar_now(krx_calendar(), request.at),
    }  # fmt: skip
    try:
        if request.side == "BUY" and request.bracket:
            order = bracket_attach(entry, request)
            legs = Order.objects.filter(parent=order).order_by("pk").values_list("trigger_price", flat=True)
            return Submitted(True, order.pk, bracket="bracket: take-profit {} / stop-loss {}".format(*legs))
        if request.side == "SELL":
            prefix = request.client_order_id.partition("-")[0]
            for leg in strategy_legs(account_id=account.pk, prefix=prefix, code=request.code):
                try:
                    order_cancel(order_id=leg)
                except OrderNotCancellable:
                    continue  # fired or cancelled with its peer meanwhile
        order = order_place(**entry)
    except ApplicationError as exc:
        return Submitted(False, code=exc.code, reason=exc.message[:250])
    return Submitted(True, order.pk)
