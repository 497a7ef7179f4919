"""Positions and balances valued at the latest price.

Price source, per stock: the live quote snapshot (``apps.live.quotes``) (``price_source: "quote"``), else
the last stored DailyBar close of any source, kis preferred on the same date (``"daily_close"``), else the
position's own average price (``"cost"``, unrealized P&L 0).
"""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Case, IntegerField, Value, When

from apps.core.typing import JSONDict
from apps.live.quotes import quote_prices
from apps.marketdata.models import DailyBar
from apps.trading.accounts.models import PaperAccount
from apps.trading.accounts.selectors import AccountNotFound

from .models import Position

logger = logging.getLogger(__name__)


def _latest_prices(codes: list[str]) -> dict[str, tuple[int, str]]:
    prices: dict[str, tuple[int, str]] = {}
    if not codes:
        return prices
    try:
        prices.update((code, (price, "quote")) for code, price in quote_prices(codes).items())
    except Exception:  # Redis down or a bad snapshot: value at the last close instead
        logger.warning("latest quotes unavailable; positions valued at the last daily close")
    rest = [c for c in codes if c not in prices]
    if rest:
        bars = (
            DailyBar.objects.filter(stock__code__in=rest)
            .annotate(pref=Case(When(source="kis", then=Value(0)), default=Value(1), output_field=IntegerField()))
            .order_by("stock__code", "-date", "pref", "source")
            .distinct("stock__code")
            .values_list("stock__code", "close")
        )
        for code, close in bars:
            prices[code] = (int(close), "daily_close")
    return prices


def position_list_for_account(*, account_id: int, include_closed: bool = False) -> list[JSONDict]:
    """The account's positions as dicts with market value and unrealized P&L (see the module docstring)."""
    qs = Position.objects.filter(account_id=account_id).select_related("stock").order_by("stock__code")
    if not include_closed:
        qs = qs.filter(quantity__gt=0)
    positions = list(qs)
    prices = _latest_prices([p.stock.code for p in positions])
    rows = []
    for p in positions:
        price, source = prices.get(p.stock.code, (None, "cost"))
        market_value = price * p.quantity if price is not None else p.cost_basis
        unrealized = market_value - p.cost_basis
        pct = (
            (Decimal(unrealized) * 100 / Decimal(p.cost_basis)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            if p.cost_basis
            else Decimal("0")
        )
        rows.append(
            {
                "id": p.pk,
                "account_id": p.account_id,
                "code": p.stock.code,
                "name": p.stock.name,
                "market": p.stock.market,
                "quantity": p.quantity,
                "reserved_quantity": p.reserved_quantity,
                "free_quantity": p.free_quantity,
                "avg_price": p.avg_price,
                "cost_basis": p.cost_basis,
                "last_price": price,
                "price_source": source,
                "market_value": market_value,
                "unrealized_pnl": unrealized,
                "unrealized_pnl_pct": pct,
                "realized_pnl": p.realized_pnl,
                "fees_paid": p.fees_paid,
                "taxes_paid": p.taxes_paid,
                "updated_at": p.updated_at,
            }
        )
    return rows


def account_balance(*, account_id: int) -> JSONDict:
    """Cash, holdings value and P&L of an account (integer KRW; ``return_pct`` a Decimal percent).

    ``equity = cash + positions_value`` (reserved cash is still the account's cash);
    ``realized_pnl`` is gross (fees and taxes separate, see ``Position``);
    ``net_pnl = equity − initial_cash`` and ``return_pct = net_pnl / initial_cash × 100``.
    """
    account = PaperAccount.objects.filter(pk=account_id).first()
    if account is None:
        raise AccountNotFound(f"Paper account {account_id} not found.")
    positions = position_list_for_account(account_id=account_id, include_closed=True)
    positions_value = sum(p["market_value"] for p in positions)
    positions_cost = sum(p["cost_basis"] for p in positions)
    equity = account.cash + positions_value
    net = equity - account.initial_cash
    return_pct = (
        (Decimal(net) * 100 / Decimal(account.initial_cash)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        if account.initial_cash
        else Decimal("0")
    )
    return {
        "account_id": account.pk,
        "initial_cash": account.initial_cash,
        "cash": account.cash,
        "reserved_cash": account.reserved_cash,
        "free_cash": account.free_cash,
        "positions_value": positions_value,
        "positions_cost": positions_cost,
        "equity": equity,
        "realized_pnl": sum(p["realized_pnl"] for p in positions),
        "unrealized_pnl": positions_value - positions_cost,
        "fees_paid": sum(p["fees_paid"] for p in positions),
        "taxes_paid": sum(p["taxes_paid"] for p in positions),
        "net_pnl": net,
        "return_pct": return_pct,
        "commission_rate": account.commission_rate,
        "reset_at": account.reset_at,
    }
