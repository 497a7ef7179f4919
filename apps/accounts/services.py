"""Account services: every change to a user or paper account goes through here."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import ValidationFailed, parse_id

from .models import DEFAULT_INITIAL_CASH, PaperAccount


@transaction.atomic
def paper_account_create(*, user, name: str = "모의투자", initial_cash: int = DEFAULT_INITIAL_CASH) -> PaperAccount:
    account = PaperAccount(user=user, name=name, initial_cash=initial_cash, cash=initial_cash)
    account.full_clean()
    account.save()
    return account


def paper_account_ensure(*, user) -> PaperAccount:
    """The user's first paper account, created on first use (idempotent). Every API request asks: the read
    needs no transaction; only the creation takes one."""
    account = PaperAccount.objects.filter(user=user).order_by("id").first()
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


@transaction.atomic
def paper_account_reset(*, account_id: int, user=None, reset_by=None) -> PaperAccount:
    """Return an account to its initial state: cancel its open orders, clear its positions, restore cash.

    Writes a ``PaperAccountReset`` audit row with what the account held just before. Lock order follows
    the orders domain (open orders, then the account, then positions) so a reset racing a fill or a cancel
    waits for it instead of deadlocking. Executions and closed orders stay as history. ``user`` given: the
    account must be theirs (``account_not_found`` otherwise). ``reset_by`` (default ``user``) is recorded in
    the audit row: staff resetting someone else's account from the admin.
    """
    from apps.orders import lock_objects
    from apps.orders.services import orders_cancel_for_account
    from apps.positions.models import Position

    from .models import PaperAccountReset
    from .selectors import AccountNotFound, paper_account_for_user

    if user is not None:
        paper_account_for_user(user=user, account_id=account_id)
    if parse_id(account_id) is None or not PaperAccount.objects.filter(pk=account_id).exists():
        raise AccountNotFound(f"Paper account {account_id} not found.")
    lock_objects.orders_lock_open(account_id=account_id)  # lock order: open orders, then the account
    account = PaperAccount.objects.select_for_update(no_key=True).get(pk=account_id)
    cash_before, reserved_before = account.cash, account.reserved_cash
    cancelled = orders_cancel_for_account(account_id=account_id, reason="account reset")
    positions = list(
        Position.objects.select_for_update(no_key=True).filter(account_id=account_id).select_related("stock")
    )
    audit = PaperAccountReset(
        account=account,
        reset_by=reset_by or user,
        initial_cash=account.initial_cash,
        cash_before=cash_before,
        reserved_cash_before=reserved_before,
        positions_cost_before=sum(p.cost_basis for p in positions),
        realized_pnl_before=sum(p.realized_pnl for p in positions),
        fees_paid_before=sum(p.fees_paid for p in positions),
        taxes_paid_before=sum(p.taxes_paid for p in positions),
        cancelled_orders=len(cancelled),
        positions=[
            {
                "code": p.stock.code,
                "quantity": p.quantity,
                "avg_price": str(p.avg_price),
                "cost_basis": p.cost_basis,
                "realized_pnl": p.realized_pnl,
                "fees_paid": p.fees_paid,
                "taxes_paid": p.taxes_paid,
            }
            for p in positions
        ],
    )
    audit.full_clean()
    audit.save()
    Position.objects.filter(account_id=account_id).delete()
    account.refresh_from_db()
    account.cash = account.initial_cash
    account.reserved_cash = 0
    account.reset_at = timezone.now()
    account.full_clean()
    account.save(update_fields=["cash", "reserved_cash", "reset_at", "updated_at"])
    return account


# --- e-mail verification -------------------------------------------------------------------------------------

EMAIL_VERIFY_SALT = "hoga.accounts.email-verify"


class EmailVerificationError(ValidationFailed):
    default_code = "invalid_verification_link"


class TooManyVerificationEmails(ValidationFailed):
    status_code = 429
    default_code = "too_many_verification_emails"


def email_verification_send(*, user, email: str, verify_url) -> str:
    """E-mail ``email`` a signed link that proves the address belongs to ``user`` (valid
    ``AUTH_EMAIL_VERIFY_MAX_AGE`` seconds); ``verify_url(token)`` builds the absolute link. At most
    ``AUTH_EMAIL_VERIFY_RATE_PER_HOUR`` per user. Returns the token. Nothing changes until the link is opened."""
    from django.conf import settings
    from django.core import signing
    from django.core.exceptions import ValidationError
    from django.core.mail import send_mail
    from django.core.validators import validate_email

    from apps.core.ratelimits import over_limit

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
def email_verify(*, user, token: str):
    """Mark the address in ``token`` as ``user``'s verified address (and their account e-mail)."""
    from django.conf import settings
    from django.core import signing

    from .models import VerifiedEmail

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
