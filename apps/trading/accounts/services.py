"""Account services: every change to a user or paper account goes through here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import ValidationFailed
from apps.core.ratelimits import over_limit
from apps.core.typing import AnyUser

from .models import DEFAULT_INITIAL_CASH, PaperAccount, VerifiedEmail


@transaction.atomic
def paper_account_create(
    *, user: AnyUser, name: str = "모의투자", initial_cash: int = DEFAULT_INITIAL_CASH
) -> PaperAccount:
    account = PaperAccount(user=user, name=name, initial_cash=initial_cash, cash=initial_cash)
    account.full_clean()
    account.save()
    return account


#: The SQL of "the user's first account, with these annotations", compiled once per process per set of annotation
#: names (the executors that give them are registered at start-up and never change). Every order asks: building
#: the query through the ORM cost more CPU than PostgreSQL spends answering it (profiled with py-spy).
_FIRST_ACCOUNT_SQL: dict[tuple[str, ...], str] = {}
_NO_USER = -1  # the placeholder the SQL is compiled with: it must come back as the only parameter


def _first_account(user_id: int, annotations: dict[str, Any]) -> PaperAccount | None:
    key = tuple(sorted(annotations))
    sql = _FIRST_ACCOUNT_SQL.get(key)
    if sql is None:
        query = PaperAccount.objects.filter(user_id=_NO_USER).annotate(**annotations).order_by("id")[:1].query
        sql, params = query.sql_with_params()
        if tuple(params) != (_NO_USER,):  # an annotation with parameters of its own: the ORM every time
            return PaperAccount.objects.filter(user_id=user_id).annotate(**annotations).order_by("id").first()
        _FIRST_ACCOUNT_SQL[key] = sql
    return next(iter(PaperAccount.objects.raw(sql, [user_id])), None)


def paper_account_ensure(*, user: AnyUser, annotations: dict[str, Any] | None = None) -> PaperAccount:
    """The user's first paper account, created on first use (idempotent). Every API request asks: the read
    needs no transaction; only the creation takes one. ``annotations`` are read with an existing account."""
    account = _first_account(user.pk, annotations or {})
    if account is not None:
        return account
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()  # two first requests: one creates
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


class EmailVerificationError(ValidationFailed):
    default_code = "invalid_verification_link"


class TooManyVerificationEmails(ValidationFailed):
    status_code = 429
    default_code = "too_many_verification_emails"


# --- e-mail verification -------------------------------------------------------------------------------------

EMAIL_VERIFY_SALT = "hoga.accounts.email-verify"


def email_verification_send(*, user: AnyUser, email: str, verify_url: Callable[[str], str]) -> str:
    """E-mail ``email`` a signed link that proves the address belongs to ``user`` (valid
    ``AUTH_EMAIL_VERIFY_MAX_AGE`` seconds); ``verify_url(token)`` builds the absolute link. At most
    ``AUTH_EMAIL_VERIFY_RATE_PER_HOUR`` per user. Returns the token. Nothing changes until the link is opened."""
    from django.conf import settings
    from django.core import signing
    from django.core.exceptions import ValidationError
    from django.core.mail import send_mail
    from django.core.validators import validate_email

    email = email.strip() if isinstance(email, str) else ""
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationFailed("Not an e-mail address.", code="invalid_email", fields={"email": ["Invalid."]}) from None
    if over_limit("email-verify", str(user.pk), limit=settings.AUTH_EMAIL_VERIFY_RATE_PER_HOUR, window=3600):
        raise TooManyVerificationEmails("Too many verification e-mails; try again in an hour.")
    token = signing.dumps({"u": user.pk, "e": email}, salt=EMAIL_VERIFY_SALT)
    send_mail(
        "[Hoga] 이메일 주소 확인 (Confirm your e-mail address)",
        f"Hoga 알림을 이 주소로 받으려면 아래 링크를 여세요 (open the link to receive Hoga alerts here):\n\n"
        f"{verify_url(token)}\n\n이 요청을 하지 않았다면 무시하세요 (ignore it if you did not ask).",
        settings.DEFAULT_FROM_EMAIL,
        [email],
    )
    return token


@transaction.atomic
def email_verify(*, user: AnyUser, token: str) -> VerifiedEmail:
    """Mark the address in ``token`` as ``user``'s verified address (and their account e-mail)."""
    from django.conf import settings
    from django.core import signing

    try:
        data = signing.loads(token, salt=EMAIL_VERIFY_SALT, max_age=settings.AUTH_EMAIL_VERIFY_MAX_AGE)
    except signing.SignatureExpired:
        raise EmailVerificationError("The verification link has expired; ask for a new one.") from None
    except signing.BadSignature:
        raise EmailVerificationError("The verification link is not valid.") from None
    if not isinstance(data, dict) or data.get("u") != user.pk or not isinstance(data.get("e"), str):
        raise EmailVerificationError("The verification link belongs to another account.")
    row, _ = VerifiedEmail.objects.update_or_create(
        user=user, defaults={"email": data["e"], "verified_at": timezone.now()}
    )
    get_user_model().objects.filter(pk=user.pk).update(email=data["e"])
    return row
