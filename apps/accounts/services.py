"""Account services: every change to a user or paper account goes through here."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from .models import DEFAULT_INITIAL_CASH, PaperAccount


@transaction.atomic
def paper_account_create(*, user, name: str = "모의투자", initial_cash: int = DEFAULT_INITIAL_CASH) -> PaperAccount:
    account = PaperAccount(user=user, name=name, initial_cash=initial_cash, cash=initial_cash)
    account.full_clean()
    account.save()
    return account


@transaction.atomic
def paper_account_ensure(*, user) -> PaperAccount:
    """The user's first paper account, created on first use (idempotent)."""
    account = PaperAccount.objects.filter(user=user).order_by("id").first()
    return account or paper_account_create(user=user)


@transaction.atomic
def user_ensure(*, username: str, password: str, email: str = "", staff: bool = False) -> tuple[object, bool]:
    """Create the user if missing; return (user, created). An existing user's password is not changed."""
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    if user is not None:
        return user, False
    if staff:
        user = user_model.objects.create_superuser(username=username, email=email, password=password)
    else:
        user = user_model.objects.create_user(username=username, email=email, password=password)
    return user, True
