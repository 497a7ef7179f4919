"""Read side of broker-linked accounts: the link of a user, orders, positions (from the executions)."""

from __future__ import annotations

from datetime import date, datetime, time

from django.db.models import Q, Sum

from apps.core.krx.calendar import KST

from .models import BrokerBalance, BrokerDisagreement, BrokerLink, BrokerOrder


def broker_link_for_user(*, user) -> BrokerLink | None:
    return BrokerLink.objects.filter(account__user=user, active=True).select_related("account").first()


def broker_link_for_account(*, account) -> BrokerLink | None:
    return BrokerLink.objects.filter(account=account, active=True).select_related("account").first()


def broker_orders_for_user(*, user, limit: int = 100) -> list[BrokerOrder]:
    return list(BrokerOrder.objects.filter(link__account__user=user).order_by("-created_at", "-id")[:limit])


def broker_order_for_user(*, user, order_id: int) -> BrokerOrder | None:
    return BrokerOrder.objects.filter(link__account__user=user, pk=order_id).first()


def value_reserved_on(*, link: BrokerLink, day: date) -> int:
    """KRW of the link's orders created on ``day`` (KST) that the broker did not refuse."""
    start = datetime.combine(day, time.min, tzinfo=KST)
    end = datetime.combine(day, time.max, tzinfo=KST)
    total = (
        BrokerOrder.objects.filter(link=link, created_at__range=(start, end))
        .exclude(status=BrokerOrder.Status.REFUSED)
        .aggregate(v=Sum("value_reserved"))["v"]
    )
    return int(total or 0)


def hoga_net_fills(*, link: BrokerLink) -> tuple[dict[str, int], int]:
    """What Hoga counted of the link's orders: ``({code: bought - sold shares}, sold - bought KRW)``."""
    rows = (
        BrokerOrder.objects.filter(link=link, filled_qty__gt=0)
        .values("code")
        .annotate(
            bought=Sum("filled_qty", filter=Q(side=BrokerOrder.Side.BUY)),
            sold=Sum("filled_qty", filter=Q(side=BrokerOrder.Side.SELL)),
            bought_value=Sum("filled_value", filter=Q(side=BrokerOrder.Side.BUY)),
            sold_value=Sum("filled_value", filter=Q(side=BrokerOrder.Side.SELL)),
        )
        .order_by("code")
    )
    qty = {r["code"]: (r["bought"] or 0) - (r["sold"] or 0) for r in rows}
    value = sum((r["sold_value"] or 0) - (r["bought_value"] or 0) for r in rows)
    return qty, int(value)


def broker_expected_state(*, link: BrokerLink) -> tuple[dict[str, int], int | None]:
    """Holdings and cash as Hoga expects them at the broker: the broker's last balance (it wins) moved by the
    fills counted since; without a balance yet, the holdings the recorded fills make and no cash."""
    qty, value = hoga_net_fills(link=link)
    balance = BrokerBalance.objects.filter(link=link).first()
    if balance is None:
        return {code: n for code, n in qty.items() if n}, None
    held = {h["code"]: int(h["quantity"]) for h in balance.holdings}
    for code in set(qty) | set(balance.hoga_net_qty):
        held[code] = held.get(code, 0) + qty.get(code, 0) - int(balance.hoga_net_qty.get(code, 0))
    return {code: n for code, n in held.items() if n}, balance.cash + value - balance.hoga_net_value


def broker_positions(*, link: BrokerLink) -> list[dict]:
    """Shares held per stock at the broker: its last balance inquiry plus the fills counted since (without one,
    the recorded fills: buys minus sells)."""
    held, _cash = broker_expected_state(link=link)
    return [{"code": code, "quantity": held[code]} for code in sorted(held)]


def broker_balance(*, link: BrokerLink) -> BrokerBalance | None:
    return BrokerBalance.objects.filter(link=link).first()


def broker_disagreements(*, link: BrokerLink, limit: int = 50) -> list[BrokerDisagreement]:
    return list(BrokerDisagreement.objects.filter(link=link).order_by("-created_at")[:limit])
