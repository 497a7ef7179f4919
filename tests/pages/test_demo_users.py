import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from apps.trading.accounts.models import PaperAccount


@pytest.mark.django_db
def test_demo_users_created_once_with_paper_accounts(settings, capsys):
    settings.HOGA_DEMO_PASSWORD = ""
    settings.HOGA_ADMIN_PASSWORD = "admin-pass-123"

    call_command("ensure_demo_users")
    first = capsys.readouterr().out
    call_command("ensure_demo_users")
    second = capsys.readouterr().out

    users = get_user_model().objects.order_by("username")
    assert [(u.username, u.is_staff, u.is_superuser) for u in users] == [("admin", True, True), ("demo", False, False)]
    assert "created staff admin: username=admin password=admin-pass-123" in first
    assert "created demo trader: username=demo password=" in first
    assert "password=" not in second  # printed once only
    assert "exists (password unchanged)" in second
    demo_account = PaperAccount.objects.get(user__username="demo")
    assert (demo_account.cash, demo_account.reserved_cash, demo_account.initial_cash) == (10_000_000, 0, 10_000_000)
    assert PaperAccount.objects.count() == 2


@pytest.mark.django_db
def test_paper_account_api_lists_only_own_accounts(api_client, user, django_user_model):
    from apps.trading.accounts.services import paper_account_create

    paper_account_create(user=user, name="전략A", initial_cash=5_000_000)
    other = django_user_model.objects.create_user(username="other", password="x-12345678")
    paper_account_create(user=other)

    response = api_client.get("/api/paper-trading/accounts")

    assert response.status_code == 200
    assert [(a["name"], a["cash"], a["free_cash"]) for a in response.json()] == [("전략A", 5_000_000, 5_000_000)]


@pytest.mark.django_db
def test_negative_cash_is_rejected_by_the_database(user):
    from django.db import IntegrityError, transaction

    from apps.trading.accounts.services import paper_account_create

    account = paper_account_create(user=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        PaperAccount.objects.filter(pk=account.pk).update(reserved_cash=account.cash + 1)
    account.refresh_from_db()
    assert account.reserved_cash == 0
