"""The ``account`` parameter every paper-trading API takes (query string, or the body of a POST)."""

from __future__ import annotations

from typing import Any

from apps.core.exceptions import ValidationFailed, parse_id

from .models import PaperAccount
from .selectors import paper_account_for_user
from .services import paper_account_ensure


def account_from_request(request: Any, annotations: dict[str, Any] | None = None) -> PaperAccount:
    """The account named by ``?account=`` (it must be the user's), else the user's first one; ``annotations``
    are read with it (``QuerySet.annotate``)."""
    raw = request.query_params.get("account")
    if raw in (None, "") and request.method == "POST" and isinstance(request.data, dict):
        raw = request.data.get("account")
    if raw in (None, ""):
        return paper_account_ensure(user=request.user, annotations=annotations)
    account_id = parse_id(raw)
    if account_id is None:
        raise ValidationFailed("Invalid account.", code="invalid_account", fields={"account": ["an account id"]})
    return paper_account_for_user(user=request.user, account_id=account_id, annotations=annotations)
