"""Reads of conditions, their events and live members (never any writes)."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from apps.core.exceptions import parse_id
from apps.marketdata.broker_services import kiwoom_config

from .exceptions import ConditionNotFound
from .models import Broker, BrokerConnection, Condition, ConditionEvent, ConditionMember


def condition_list_for_user(*, user) -> QuerySet[Condition]:
    """The conditions ``user`` may see: those of their own broker connection, and those the operator shared
    with one of their groups. Detached conditions (no connection) are shown to nobody."""
    if user is None or not getattr(user, "is_authenticated", False):
        return Condition.objects.none()
    mine = Q(owner=user, connection__owner=user)
    shared = Q(connection__isnull=False, shared_with__in=user.groups.all())
    ids = Condition.objects.filter(mine | shared).values("pk")
    return Condition.objects.filter(pk__in=ids).order_by("broker", "seq", "id")


def condition_live_queryset() -> QuerySet[Condition]:
    """Enabled, listed Kiwoom conditions of the connection whose key this deployment uses."""

    key_id = current_key_id()
    if not key_id:
        return Condition.objects.none()
    return Condition.objects.filter(
        broker=Broker.KIWOOM, enabled=True, missing_since__isnull=True, connection__key_id=key_id
    )


def condition_list_with_members(*, user) -> QuerySet[Condition]:
    members = ConditionMember.objects.order_by("-since", "code")
    return condition_list_for_user(user=user).prefetch_related(Prefetch("members", queryset=members))


def condition_get_for_user(*, user, condition_id: int) -> Condition:
    """The user's condition ``condition_id``; ``condition_not_found`` (404) when missing or someone else's."""
    condition = condition_list_for_user(user=user).filter(pk=condition_id).first() if _is_id(condition_id) else None
    if condition is None:
        raise ConditionNotFound(f"Condition {condition_id} not found.", fields={"condition": ["Not found."]})
    return condition


def condition_event_list_for_user(
    *, user, condition_id: int | None = None, code: str | None = None, kind: str | None = None
) -> QuerySet[ConditionEvent]:
    visible = condition_list_for_user(user=user).values("pk")
    qs = ConditionEvent.objects.filter(condition__in=visible).select_related("condition").order_by("-id")
    if condition_id is not None:
        qs = qs.filter(condition_id=condition_id)
    if code:
        qs = qs.filter(code=code.strip().upper())
    if kind:
        qs = qs.filter(kind=kind.strip().upper())
    return qs


def condition_member_list(*, condition_id: int) -> QuerySet[ConditionMember]:
    return ConditionMember.objects.filter(condition_id=condition_id).order_by("-since", "code")


def condition_realtime_seqs() -> list[str]:
    """Seqs of the live conditions (``condition_live_queryset``) with real-time alerts on, sorted, unique."""
    seqs = condition_live_queryset().filter(realtime=True).values_list("seq", flat=True).distinct()
    return sorted(set(seqs), key=_seq_key)


def condition_searchable_seqs() -> list[str]:
    """Seqs of the live conditions the reconciliation job searches, sorted, unique."""
    seqs = condition_live_queryset().values_list("seq", flat=True).distinct()
    return sorted(set(seqs), key=_seq_key)


def conditions_exist() -> bool:
    return Condition.objects.filter(broker=Broker.KIWOOM).exists()


def _seq_key(seq: str) -> tuple[int, str]:
    return (int(seq), seq) if seq.isdigit() else (1 << 30, seq)


def _is_id(value) -> bool:
    return parse_id(value) is not None


def broker_connection_for_user(*, user) -> BrokerConnection | None:
    return BrokerConnection.objects.filter(owner_id=getattr(user, "pk", None), broker=Broker.KIWOOM).first()


def current_key_id() -> str | None:
    """Id of the Kiwoom app key this deployment's feed and searches use (None: Kiwoom not configured)."""
    try:
        return kiwoom_config().key_id
    except Exception:  # improperly configured broker: nothing is anyone's
        return None
