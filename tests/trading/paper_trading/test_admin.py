"""Admin actions go through the services: cancel releases the reservation, reset keeps an audit row."""

import datetime as dt

import pytest

from tests.trading.orders.conftest import TRADING_DATE, open_market

pytestmark = pytest.mark.django_db


@pytest.fixture
def resting_order(user, clean_redis):
    from apps.marketdata.models import DailyBar, Stock
    from apps.trading.accounts.services import paper_account_create
    from apps.trading.orders.placement import order_place

    stock = Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    DailyBar.objects.create(
        stock=stock, date=TRADING_DATE - dt.timedelta(days=1), open=70_000, high=70_000, low=70_000, close=70_000,
        volume=1, source="kis",
    )  # fmt: skip
    account = paper_account_create(user=user, name="admin-test")
    return order_place(
        account_id=account.pk, code="005930", side="BUY", order_type="LIMIT", quantity=5, limit_price=60_000,
        market=open_market(),
    )  # fmt: skip


def test_cancel_action_uses_the_service(admin_client, resting_order):
    from apps.trading.accounts.models import PaperAccount

    response = admin_client.post(
        "/admin/orders/order/", {"action": "cancel_orders", "_selected_action": [resting_order.pk]}, follow=True
    )

    resting_order.refresh_from_db()
    assert response.status_code == 200
    assert resting_order.status == "CANCELLED"
    assert PaperAccount.objects.get(pk=resting_order.account_id).reserved_cash == 0
    assert "1 order(s) cancelled." in response.content.decode()


def test_reset_action_keeps_an_audit_row_naming_the_staff_user(admin_client, admin_user, resting_order):
    from apps.trading.accounts.models import PaperAccountReset

    admin_client.post(
        "/admin/accounts/paperaccount/",
        {"action": "reset_accounts", "_selected_action": [resting_order.account_id]},
        follow=True,
    )

    audit = PaperAccountReset.objects.get(account_id=resting_order.account_id)
    assert (audit.reset_by_id, audit.cancelled_orders, audit.reserved_cash_before) == (admin_user.pk, 1, 300_045)


@pytest.mark.parametrize(
    "url",
    ["/admin/orders/order/", "/admin/orders/execution/", "/admin/positions/position/",
     "/admin/accounts/paperaccount/", "/admin/accounts/paperaccountreset/", "/admin/orders/transactiontaxrate/"],
)  # fmt: skip
def test_admin_pages_render_with_search_and_filters(admin_client, resting_order, url):
    assert admin_client.get(url, {"q": "005930"}).status_code == 200


def test_executions_filter_by_venue_and_phase(admin_client, resting_order):
    from apps.live.realtime.fillpath import FillTick
    from apps.trading.orders.fills import order_fill_apply

    at = open_market().now + dt.timedelta(seconds=1)
    order_fill_apply(tick=FillTick(stream_id="9000-0", code="005930", price=60_000, volume=5, cum_volume=0, at=at,
                                   ask=60_000, bid=60_000))  # fmt: skip

    def listed(query: str) -> bool:
        page = admin_client.get(f"/admin/orders/execution/?{query}").content.decode()
        return "0 executions" not in page and "005930" in page

    assert listed("venue__exact=KRX&phase__exact=continuous")
    assert not listed("venue__exact=NXT")
    assert not listed("phase__exact=opening_auction")
    orders = admin_client.get("/admin/orders/order/?route__exact=KRX&phase__exact=continuous").content.decode()
    assert f"/admin/orders/order/{resting_order.pk}/change/" in orders


def test_the_order_list_shows_triggers_and_bracket_legs(admin_client, resting_order):
    from apps.trading.orders.placement import bracket_place

    bracket_place(
        account_id=resting_order.account_id, code="005930", side="BUY", order_type="LIMIT", quantity=1,
        limit_price=70_000, market=open_market(), take_profit_price=75_000, stop_loss_price=65_000,
    )  # fmt: skip
    page = admin_client.get("/admin/orders/order/?trigger_state__exact=WAITING").content.decode()
    assert "Take-profit leg" in page and "Stop-loss leg" in page and "75000" in page.replace(",", "")
    assert admin_client.get("/admin/orders/order/?bracket_leg__exact=ENTRY").status_code == 200
