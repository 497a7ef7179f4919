"""Paper account services: creation defaults, ownership lookup, and reset with its audit record."""

# ruff: noqa: F811  (pytest fixtures shared from tests/trading/orders/conftest.py are imported by name)

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.core.exceptions import ApplicationError
from apps.trading.accounts.models import PaperAccount, PaperAccountReset
from apps.trading.accounts.selectors import paper_account_for_user
from apps.trading.accounts.services import paper_account_create, paper_account_ensure
from apps.trading.orders.fills import order_fill_apply
from apps.trading.orders.models import Execution, OrderStatus
from apps.trading.orders.release import paper_account_reset
from apps.trading.positions.models import Position
from tests.trading.orders.conftest import (  # noqa: F401
    _empty_redis,
    account,
    make_stock,
    market,
    place,
    stock,
    tick,
)

pytestmark = pytest.mark.django_db


def test_create_defaults(user):
    account = paper_account_create(user=user)
    assert (account.initial_cash, account.cash, account.reserved_cash, account.commission_rate) == (
        10_000_000, 10_000_000, 0, Decimal("0.00015"),
    )  # fmt: skip
    assert paper_account_ensure(user=user).pk == account.pk


def test_account_for_user_is_not_found_for_others(user, django_user_model):
    account = paper_account_create(user=user)
    other = django_user_model.objects.create_user(username="other", password="x-pass-123")
    assert paper_account_for_user(user=user, account_id=account.pk).pk == account.pk
    with pytest.raises(ApplicationError) as err:
        paper_account_for_user(user=other, account_id=account.pk)
    assert (err.value.code, err.value.status_code) == ("account_not_found", 404)


def test_reset_cancels_orders_clears_positions_restores_cash_and_audits(place, tick, account, user):
    place("BUY", 10, 70_000)
    order_fill_apply(tick=tick(70_000, 10))
    place("SELL", 4, 75_000)
    order_fill_apply(tick=tick(75_000, 4))
    open_buy = place("BUY", 5, 69_000)
    open_sell = place("SELL", 2, 80_000)
    before = PaperAccount.objects.get(pk=account.pk)

    reset = paper_account_reset(account_id=account.pk, user=user)

    assert (reset.cash, reset.reserved_cash, reset.reset_at is not None) == (10_000_000, 0, True)
    assert not Position.objects.filter(account=account).exists()
    for order in (open_buy, open_sell):
        order.refresh_from_db()
        assert (order.status, order.reserved_cash, order.reject_reason) == (
            OrderStatus.CANCELLED, 0, "account reset",
        )  # fmt: skip
    assert Execution.objects.filter(account=account).count() == 2  # history is kept
    audit = PaperAccountReset.objects.get(account=account)
    assert (audit.reset_by, audit.cash_before, audit.reserved_cash_before, audit.cancelled_orders) == (
        user, before.cash, before.reserved_cash, 2,
    )  # fmt: skip
    before_totals = (audit.positions_cost_before, audit.realized_pnl_before, audit.fees_paid_before)
    assert (*before_totals, audit.taxes_paid_before) == (420_000, 20_000, 150, 600)
    assert audit.positions == [
        {"code": "005930", "quantity": 6, "avg_price": "70000.0000", "cost_basis": 420_000, "realized_pnl": 20_000,
         "fees_paid": 150, "taxes_paid": 600},
    ]  # fmt: skip


def test_reset_of_someone_elses_account_changes_nothing(place, account, django_user_model):
    place("BUY", 5, 69_000)
    other = django_user_model.objects.create_user(username="other", password="x-pass-123")
    with pytest.raises(ApplicationError) as err:
        paper_account_reset(account_id=account.pk, user=other)
    assert err.value.code == "account_not_found"
    account.refresh_from_db()
    assert account.reserved_cash == 345_051
    assert not PaperAccountReset.objects.exists()


def test_reset_twice_writes_two_audit_rows(account):
    paper_account_reset(account_id=account.pk)
    paper_account_reset(account_id=account.pk)
    assert PaperAccountReset.objects.filter(account=account).count() == 2


def test_the_first_account_read_is_the_same_with_compiled_sql_and_with_parameters_of_its_own(user, django_user_model):
    """``paper_account_ensure`` reads through SQL compiled once per set of annotations: the same account, its
    annotations, and another user's account never; an annotation with parameters of its own takes the ORM."""
    from django.db.models import F, Value

    first = paper_account_create(user=user, initial_cash=1_000_000)
    paper_account_create(user=user, name="second", initial_cash=2_000_000)
    other = django_user_model.objects.create_user(username="other-first", password="pw-other-12345")
    theirs = paper_account_create(user=other, initial_cash=3_000_000)
    for extra in ({}, {"doubled": F("cash") * 2}, {"seven": Value(7)}):
        for _ in range(2):  # compiled, then reused
            mine = paper_account_ensure(user=user, annotations=extra)
            its = paper_account_ensure(user=other, annotations=extra)
            assert (mine.pk, mine.cash, its.pk) == (first.pk, 1_000_000, theirs.pk)
            for name in extra:
                assert vars(mine)[name] == {"doubled": 2_000_000, "seven": 7}[name]
