from typing import Any

from django.db.models import QuerySet

from apps.core.exceptions import NotFound, parse_id
from apps.core.typing import AnyUser

from .models import PaperAccount, VerifiedEmail


class AccountNotFound(NotFound):
    default_code = "account_not_found"


def paper_account_list_for_user(*, user: AnyUser) -> QuerySet[PaperAccount]:
    return PaperAccount.objects.filter(user=user).order_by("id")


def paper_account_for_user(
    *, user: AnyUser, account_id: int, annotations: dict[str, Any] | None = None
) -> PaperAccount:
    """The user's account ``account_id``; ``AccountNotFound`` (404) when it is missing or someone else's.
    ``annotations`` are read with it."""
    found = PaperAccount.objects.filter(pk=account_id, user=user).annotate(**(annotations or {}))
    account = found.first() if parse_id(account_id) else None
    if account is None:
        raise AccountNotFound(f"Paper account {account_id} not found.", fields={"account_id": ["Not found."]})
    return account


def verified_email_for_user(*, user: AnyUser) -> str:
    """The user's verified e-mail address, or an empty string."""

    user_id = getattr(user, "pk", None)
    if user_id is None:
        return ""
    row = VerifiedEmail.objects.filter(user_id=user_id).values_list("email", flat=True).first()
    return row or ""
