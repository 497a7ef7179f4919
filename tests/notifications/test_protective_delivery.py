"""A bracket from the tape to the user's channels: its entry fills, its take-profit fires and fills from later
prints, its stop-loss is cancelled, and each event reaches e-mail and the local Slack/Telegram stand-in once."""

from __future__ import annotations

import pytest
from django.core import mail

from apps.notifications.models import Notification
from apps.trading.orders.fills import order_fills_apply
from apps.trading.orders.models import Order
from apps.trading.orders.placement import bracket_place
from apps.trading.orders.realtime import orders_push

pytestmark = pytest.mark.django_db


def test_a_bracket_take_profit_fill_is_told_once_and_its_stop_is_cancelled(
    account, stock, market, tick, channels, standin, committed
):
    with committed():
        entry = bracket_place(
            account_id=account.pk, code=stock.code, side="BUY", order_type="LIMIT", quantity=10, limit_price=70_000,
            market=market, take_profit_price=75_000, stop_loss_price=65_000,
        )  # fmt: skip
    legs = {o.bracket_leg: o for o in Order.objects.filter(parent=entry)}
    tp, sl = legs["TAKE_PROFIT"], legs["STOP_LOSS"]
    # the entry fills; prints below the take-profit change nothing; then it fires and fills within one batch
    for batch in ([tick(70_000, 100)], [tick(72_000, 5), tick(74_900, 5)], [tick(75_000, 4), tick(75_100, 100)]):
        with committed():
            order_fills_apply(ticks=batch)

    tp.refresh_from_db()
    sl.refresh_from_db()
    assert (tp.status, tp.filled_quantity, sl.status) == ("FILLED", 10, "CANCELLED")
    keys = sorted(Notification.objects.values_list("key", flat=True))
    assert keys == sorted(
        [
            f"order.{entry.pk}.filled",
            f"order.{tp.pk}.triggered",
            f"order.{tp.pk}.filled",
            f"order.{sl.pk}.cancelled",
        ]
    )
    told = [m.subject for m in mail.outbox]
    assert told.count("[Hoga] [체결] Stock 005930 (005930) 매도 10주") == 1
    assert told.count("[Hoga] [발동] Stock 005930 (005930) 매도 10주") == 1
    assert len(standin.slack) == len(standin.telegram) == len(told) == 4

    # announced again (a re-push, a redelivered batch): nothing new is recorded or sent
    with committed():
        orders_push([entry.pk, tp.pk, sl.pk]).result(5)
        order_fills_apply(ticks=[tick(75_000, 100)])
    assert Notification.objects.count() == 4
    assert (len(mail.outbox), len(standin.slack), len(standin.telegram)) == (4, 4, 4)
