"""Reconciliation and notice rules on stored orders (no broker needed), and the secrets vault with key rotation."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.brokerage import vault
from apps.brokerage.models import BrokerDisagreement, BrokerExecution, BrokerLink, BrokerOrder
from apps.brokerage.services import (
    broker_keys_rotate,
    broker_link_credentials,
    broker_link_save,
    broker_notice_apply,
    broker_reconcile_apply,
)
from apps.brokers.kis.orders import BrokerOrderRow, OrderNotice

pytestmark = pytest.mark.django_db


@pytest.fixture
def link(user) -> BrokerLink:
    from apps.trading.accounts.services import paper_account_ensure

    return broker_link_save(
        account=paper_account_ensure(user=user), env="paper", cano="12345678", product_code="01", hts_id="hts",
        app_key="PSKEY" + "k" * 31, app_secret="s" * 180, daily_value_limit=0,
    )  # fmt: skip


def _order(link, number="17", qty=10, status="ACKNOWLEDGED") -> BrokerOrder:
    return BrokerOrder.objects.create(
        link=link, client_order_id=f"c{number}{status}", code="005930", side="BUY", order_type="LIMIT",
        quantity=qty, limit_price=70_000, env="paper", value_reserved=qty * 70_000, status=status,
        broker_order_no=number if status != "UNKNOWN" else "",
    )  # fmt: skip


def _row(number="0000000017", filled=0, value=None, qty=10) -> BrokerOrderRow:
    return BrokerOrderRow(number, "005930", "02", qty, 70_000, filled, filled * 70_000 if value is None else value,
                          70_000 if filled else 0, qty - filled, False)  # fmt: skip


def _fill(number="0000000017", qty=4, price=70_000) -> OrderNotice:
    return OrderNotice("hts", "1234567801", number, "", "02", "005930", qty, price, dt.time(10, 0, 1), False, True,
                       "2", 10, "KRX", f"raw-{qty}")  # fmt: skip


def test_a_fill_notice_is_recorded_once_and_never_overfills(link):
    order = _order(link)
    assert broker_notice_apply(link_id=link.pk, notice=_fill(qty=4), dedupe_key="k1") == "applied"
    assert broker_notice_apply(link_id=link.pk, notice=_fill(qty=4), dedupe_key="k1") == "duplicate"
    assert broker_notice_apply(link_id=link.pk, notice=_fill(qty=7), dedupe_key="k2") == "ignored"
    assert broker_notice_apply(link_id=link.pk, notice=_fill(number="99"), dedupe_key="k3") == "unmatched"
    order.refresh_from_db()
    assert (order.filled_qty, order.filled_value, order.status) == (4, 280_000, "PARTIALLY_FILLED")
    assert BrokerDisagreement.objects.get().kind == "overfill_notice"


def test_the_broker_wins_both_ways_and_a_repeat_adds_nothing(link):
    order = _order(link)
    broker_notice_apply(link_id=link.pk, notice=_fill(qty=4), dedupe_key="k1")

    assert broker_reconcile_apply(link=link, rows=[_row(filled=10)])["adjusted"] == 1
    assert broker_reconcile_apply(link=link, rows=[_row(filled=10)])["adjusted"] == 0
    assert broker_reconcile_apply(link=link, rows=[_row(filled=8)])["adjusted"] == 1  # the broker filled less

    order.refresh_from_db()
    assert (order.filled_qty, order.filled_value, order.status) == (8, 560_000, "PARTIALLY_FILLED")
    assert list(order.executions.values_list("source", "quantity")) == [
        ("notice", 4), ("reconcile", 6), ("reconcile", -2)]  # fmt: skip
    assert sum(order.executions.values_list("quantity", flat=True)) == order.filled_qty
    assert list(BrokerDisagreement.objects.order_by("id").values_list("kind", flat=True)) == [
        "missed_notices", "broker_filled_less"]  # fmt: skip


def test_unknown_orders_are_matched_foreign_ones_recorded_once_and_recent_ones_left_to_settle(link):
    unknown = _order(link, status="UNKNOWN", qty=5)
    counts = broker_reconcile_apply(link=link, rows=[_row("0000000044", filled=5, qty=5), _row("0000000077", qty=3)])
    assert (counts["matched_unknown"], counts["foreign"]) == (1, 1)
    unknown.refresh_from_db()
    assert (unknown.broker_order_no, unknown.status, unknown.filled_qty) == ("44", "FILLED", 5)
    broker_reconcile_apply(link=link, rows=[_row("0000000077", qty=3)])
    assert BrokerDisagreement.objects.filter(kind="unknown_at_hoga").count() == 1

    fresh = _order(link, number="18")
    counts = broker_reconcile_apply(link=link, rows=[_row("18", filled=2)], settle_seconds=60)
    assert counts["settling"] == 1
    fresh.refresh_from_db()
    assert fresh.filled_qty == 0 and not BrokerExecution.objects.filter(order=fresh).exists()


def test_secrets_are_sealed_bound_to_their_row_and_survive_a_key_rotation(link, settings):
    assert "PSKEY" not in link.app_key_encrypted and "sss" not in link.app_secret_encrypted
    assert broker_link_credentials(link) == ("PSKEY" + "k" * 31, "s" * 180)
    with pytest.raises(vault.VaultError):  # another row's context does not decrypt
        vault.unseal(link.app_key_encrypted, context="brokerage.link:999:app_key")

    settings.BROKERAGE_SECRET_KEYS = f"new-passphrase,{settings.SECRET_KEY}"
    assert broker_link_credentials(link)[0] == "PSKEY" + "k" * 31  # old ciphertext, old key still listed
    assert broker_keys_rotate() == 1
    assert broker_keys_rotate() == 0
    settings.BROKERAGE_SECRET_KEYS = "new-passphrase"
    link.refresh_from_db()
    assert broker_link_credentials(link) == ("PSKEY" + "k" * 31, "s" * 180)
    settings.BROKERAGE_SECRET_KEYS = "another"
    with pytest.raises(vault.VaultError, match="rotated away"):
        broker_link_credentials(link)


def test_a_notice_arriving_after_the_reconciliation_counted_its_fill_is_not_counted_again(link):
    order = _order(link)
    # The scheduled run counts a fill whose notice is late (older than the settle window: its notice lagged).
    assert broker_reconcile_apply(link=link, rows=[_row(filled=4)], settle_seconds=0)["adjusted"] == 1
    assert broker_notice_apply(link_id=link.pk, notice=_fill(qty=4), dedupe_key="late") == "counted"
    order.refresh_from_db()
    assert (order.filled_qty, order.filled_value, order.noticed_qty) == (4, 280_000, 4)
    # A later fill counts; the next run finds nothing to add.
    assert broker_notice_apply(link_id=link.pk, notice=_fill(qty=3), dedupe_key="next") == "applied"
    assert broker_reconcile_apply(link=link, rows=[_row(filled=7)])["adjusted"] == 0
    # Partly counted: the run saw 9, a late notice of 1 (cumulative 8) adds nothing, one of 2 (cumulative 10) adds 1.
    assert broker_reconcile_apply(link=link, rows=[_row(filled=9)])["adjusted"] == 1
    assert broker_notice_apply(link_id=link.pk, notice=_fill(qty=1), dedupe_key="a") == "counted"
    assert broker_notice_apply(link_id=link.pk, notice=_fill(qty=2), dedupe_key="b") == "applied"
    order.refresh_from_db()
    assert (order.filled_qty, order.noticed_qty, order.status) == (10, 10, "FILLED")
    assert list(order.executions.values_list("source", "quantity", "broker_cumulative_qty")) == [
        ("reconcile", 4, 4), ("notice", 0, 4), ("notice", 3, 7), ("reconcile", 2, 9), ("notice", 0, 8),
        ("notice", 1, 10)]  # fmt: skip
    assert sum(order.executions.values_list("quantity", flat=True)) == order.filled_qty


def test_a_reconciliation_after_the_notice_finds_nothing_to_add(link):
    order = _order(link)
    assert broker_notice_apply(link_id=link.pk, notice=_fill(qty=4), dedupe_key="k1") == "applied"
    assert broker_reconcile_apply(link=link, rows=[_row(filled=4)], settle_seconds=0)["adjusted"] == 0
    order.refresh_from_db()
    assert (order.filled_qty, order.executions.count()) == (4, 1)
    assert not BrokerDisagreement.objects.exists()


def test_after_a_reconnect_the_notices_count_again_from_the_brokers_quantity(link):
    """KIS sends only new notices on a new subscription: those of fills missed while down never come, so the
    reconnect's reconciliation restarts the notice count at the broker's quantity."""
    order = _order(link)
    broker_notice_apply(link_id=link.pk, notice=_fill(qty=2), dedupe_key="k1")
    broker_reconcile_apply(link=link, rows=[_row(filled=5)], notices_restart=True)  # 3 missed while down
    assert broker_notice_apply(link_id=link.pk, notice=_fill(qty=2), dedupe_key="k2") == "applied"
    order.refresh_from_db()
    assert (order.filled_qty, order.noticed_qty) == (7, 7)


def test_the_admin_shows_where_each_order_was_executed_and_the_brokers_balance(link, admin_client):
    from apps.brokerage.services import broker_balance_apply
    from apps.brokers.kis.orders import AccountBalance, BrokerHolding

    order = _order(link)
    broker_balance_apply(
        link=link,
        balance=AccountBalance(
            5_000_000, 71_000, 5_071_000, (BrokerHolding("005930", "삼성전자", 1, 1, "70000", 70_000, 71_000, 71_000),)
        ),
    )
    assert BrokerDisagreement.objects.get().kind == "position_mismatch"  # Hoga counted no fill of 005930
    orders = admin_client.get("/admin/brokerage/brokerorder/").content.decode()
    assert "KIS 모의투자 (paper) · KRX" in orders and f"{order.pk}" in orders
    balances = admin_client.get("/admin/brokerage/brokerbalance/").content.decode()
    assert "5000000" in balances.replace(",", "")
    assert "position_mismatch" in admin_client.get("/admin/brokerage/brokerdisagreement/").content.decode()
