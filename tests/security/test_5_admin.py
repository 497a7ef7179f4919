"""Finding 5: the admin bypassed the rules. Attacks (as staff): "Delete selected" on open orders and on paper
accounts, deleting one from its page, changing an account's owner or commission rate. All must be refused;
cancelling and resetting go through the services and release what the orders held."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.trading.accounts.models import PaperAccount
from apps.trading.orders.models import Order

pytestmark = pytest.mark.django_db


@pytest.fixture
def resting(victim, samsung, open_clock):
    from apps.trading.accounts.services import paper_account_ensure
    from apps.trading.orders.placement import order_place

    account = paper_account_ensure(user=victim)
    return order_place(account=account, user=victim, code="005930", side="BUY", order_type="LIMIT", quantity=5,
                       limit_price=60_000)  # fmt: skip


@pytest.mark.parametrize("model", ["orders/order", "accounts/paperaccount"])
def test_bulk_delete_of_money_bearing_rows_is_refused(admin_client, resting, model):
    pk = resting.pk if model == "orders/order" else resting.account_id

    changelist = admin_client.get(f"/admin/{model}/").content.decode()
    bulk = admin_client.post(f"/admin/{model}/", {"action": "delete_selected", "_selected_action": [pk], "post": "yes"})
    single = admin_client.post(f"/admin/{model}/{pk}/delete/", {"post": "yes"})

    assert 'value="delete_selected"' not in changelist
    assert bulk.status_code in (200, 302) and single.status_code == 403
    resting.refresh_from_db()
    assert resting.status == "PENDING"
    assert PaperAccount.objects.get(pk=resting.account_id).reserved_cash == resting.reserved_cash > 0


def test_account_owner_and_commission_rate_cannot_be_edited(admin_client, resting, attacker):
    account = PaperAccount.objects.get(pk=resting.account_id)

    admin_client.post(
        f"/admin/accounts/paperaccount/{account.pk}/change/",
        {"user": attacker.pk, "name": "renamed", "commission_rate": "0", "cash": 10**12},
    )

    account.refresh_from_db()
    assert (account.user_id, account.commission_rate, account.cash) == (resting.account.user_id, Decimal("0.00015"),
                                                                        10_000_000)  # fmt: skip
    assert admin_client.get("/admin/accounts/paperaccount/add/").status_code == 403


def test_cancel_and_reset_actions_release_through_the_services(admin_client, resting):
    admin_client.post("/admin/orders/order/", {"action": "cancel_orders", "_selected_action": [resting.pk]})
    assert Order.objects.get(pk=resting.pk).status == "CANCELLED"
    assert PaperAccount.objects.get(pk=resting.account_id).reserved_cash == 0

    admin_client.post(
        "/admin/accounts/paperaccount/", {"action": "reset_accounts", "_selected_action": [resting.account_id]}
    )
    account = PaperAccount.objects.get(pk=resting.account_id)
    assert (account.cash, account.reserved_cash, account.resets.count()) == (account.initial_cash, 0, 1)
