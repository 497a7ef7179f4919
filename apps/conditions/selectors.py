"""Reads of conditions, their events and live members (never any writes)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.core.exceptions import parse_id

from .exceptions import ConditionNotFound
from .models import Broker, Condition, ConditionEvent, ConditionMember


def condition_list_for_user(*, user) -> QuerySet[Condition]:
    return Condition.objects.filter(owner=user).order_by("broker", "seq")


def condition_list_with_members(*, user) -> QuerySet[Condition]:
    members = ConditionMember.objects.order_by("-since", "code")
    return condition_list_for_user(user=user).prefetch_related(Prefetch("members", queryset=members))


def condition_get_for_user(*, user, condition_id: int) -> Condition:
    """The user's condition ``condition_id``; ``condition_not_found`` (404) when missing or someone else's."""
    condition = Condition.objects.filter(pk=condition_id, owner=user).first() if _is_id(condition_id) else None
    if condition is None:
        raise ConditionNotFound(f"Condition {condition_id} not found.", fields={"condition": ["Not found."]})
    return condition


def condition_event_list_for_user(
    *, user, condition_id: int | None = None, code: str | None = None, kind: str | None = None
) -> QuerySet[ConditionEvent]:
    qs = ConditionEvent.objects.filter(condition__owner=user).select_related("condition").order_by("-id")
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
    """Seqs of the enabled Kiwoom conditions with real-time alerts on (any owner), sorted, unique."""
    seqs = (
        Condition.objects.filter(broker=Broker.KIWOOM, enabled=True, realtime=True, missing_since__isnull=True)
        .values_list("seq", flat=True)
        .distinct()
    )
    return sorted(set(seqs), key=_seq_key)


def condition_searchable_seqs() -> list[str]:
    """Seqs of the enabled Kiwoom conditions the reconciliation job searches, sorted, unique."""
    seqs = (
        Condition.objects.filter(broker=Broker.KIWOOM, enabled=True, missing_since__isnull=True)
        .values_list("seq", flat=True)
        .distinct()
    )
    return sorted(set(seqs), key=_seq_key)


def conditions_exist() -> bool:
    return Condition.objects.filter(broker=Broker.KIWOOM).exists()


def _seq_key(seq: str) -> tuple[int, str]:
    return (int(seq), seq) if seq.isdigit() else (1 << 30, seq)


def _is_id(value) -> bool:
    return parse_id(value) is not None
