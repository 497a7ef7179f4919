"""Condition services: sync the broker's list, change a condition's toggles, record entries and exits.

Invariants (checked by the tests):
- A stock is a member of a condition iff its last event there is an IN. Every membership change writes
  exactly one event, under the condition's row lock (``_condition_lock``), so a real-time alert and a
  reconciliation search racing on the same stock record it once: whoever takes the lock second sees the
  first one's result and changes nothing.
- A reconciliation search is a snapshot taken before its transaction. A change recorded for a stock after
  the search started (an event id above the watermark read before the search) is newer than the snapshot
  and wins: the search leaves that stock alone until the next run.
- Syncing the broker's list creates and renames conditions and marks the ones that disappeared
  (``missing_since``); it never deletes a condition or its history. Only the owner of the deployment key's
  ``BrokerConnection`` can sync it; alerts and searches touch only conditions of the connection whose key
  the feed and the searches use (``current_key_id``).
- Notifications leave only after commit (``notifications.condition_events_notify``).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.brokers.base import BrokerError
from apps.brokers.kiwoom.conditions import condition_list_sync, condition_search_sync
from apps.core.exceptions import parse_id
from apps.core.groups import valid_code
from apps.core.schedules import schedules_sync
from apps.live import quotes as live_quotes
from apps.marketdata.broker_services import kiwoom_client_async
from apps.marketdata.models import Stock
from apps.trading.accounts.selectors import paper_account_list_for_user
from apps.trading.orders.placement import order_place

from .exceptions import (
    BrokerConditionsUnavailable,
    BrokerConnectionMismatch,
    BrokerConnectionTaken,
    ConditionNotFound,
    EventNotOrderable,
    InvalidAlertKind,
    InvalidConditionName,
    InvalidConditionSeq,
    InvalidEventTime,
    InvalidStockCode,
    InvalidToggle,
    NoBrokerConnection,
    NoPaperAccount,
    OperatorOnlySetting,
    SlackNotConfigured,
)
from .models import (
    Broker,
    BrokerConnection,
    Condition,
    ConditionEvent,
    ConditionMember,
    ConditionRun,
    EventKind,
    EventSource,
    RunStatus,
)
from .notifications import condition_events_notify
from .selectors import condition_list_for_user, condition_live_queryset, current_key_id

if TYPE_CHECKING:
    from apps.brokers.base import ConditionAlert, ConditionHit, ConditionInfo

logger = logging.getLogger(__name__)

SEQ_RE = re.compile(r"^[0-9A-Za-z]{1,8}$")  # Kiwoom sends small numbers ("0", "12"), space-padded
MAX_NAME = 100
TOGGLES = ("enabled", "realtime", "notify_browser", "notify_email", "notify_slack")
USER_TOGGLES = ("enabled", "realtime", "notify_browser", "notify_email")  # notify_slack: the operator's


# --- validation helpers ----------------------------------------------------------------------------------


def _clean_seq(seq) -> str:
    text = seq.strip() if isinstance(seq, str) else ""
    if not SEQ_RE.match(text):
        raise InvalidConditionSeq(
            f"A condition number must be 1-8 letters or digits, not {seq!r}.", fields={"seq": ["Invalid."]}
        )
    return text


def _clean_code(code) -> str:
    text = code.strip().upper() if isinstance(code, str) else ""
    if not valid_code(text):
        raise InvalidStockCode(f"Not a 6-character stock code: {code!r}.", fields={"code": ["Invalid."]})
    return text


def _clean_kind(kind) -> str:
    text = kind.strip().upper() if isinstance(kind, str) else ""
    if text not in EventKind.values:
        raise InvalidAlertKind(f"An alert kind is IN or OUT, not {kind!r}.", fields={"kind": ["Invalid."]})
    return text


def _clean_time(at) -> dt.datetime:
    if not isinstance(at, dt.datetime) or timezone.is_naive(at):
        raise InvalidEventTime(f"An event time must be an aware datetime, not {at!r}.", fields={"at": ["Invalid."]})
    return at


def quote_prices(codes: Iterable[str]) -> dict[str, int]:
    """Latest traded prices from the real-time quote store (codes without a quote are left out).

    Redis being unreachable is not an error here: the event is recorded without a price.
    """
    try:
        return live_quotes.quote_prices(codes)
    except Exception:
        logger.warning("latest quotes unavailable; condition events recorded without a price")
        return {}


def _stocks_by_code(codes: Iterable[str]) -> dict[str, object]:

    return {s.code: s for s in Stock.objects.filter(code__in=set(codes))}


def _condition_lock(condition_id: int) -> Condition | None:
    """Lock one condition row (inside a transaction). Every membership change of it holds this lock."""
    return Condition.objects.select_for_update().filter(pk=condition_id).first()


def _notify_on_commit(event_ids: list[int]) -> None:
    if not event_ids:
        return

    def send() -> None:

        try:
            condition_events_notify(event_ids=event_ids)
        except Exception:  # a notification failure never undoes a recorded event
            logger.exception("condition notifications failed", extra={"events": event_ids})

    transaction.on_commit(send)


def _membership_change(
    *,
    condition: Condition,
    code: str,
    kind: str,
    at: dt.datetime,
    price: int | None,
    source: str,
    stock=None,
    name: str = "",
    run: ConditionRun | None = None,
) -> ConditionEvent | None:
    """Apply one IN/OUT to a locked condition: an event and the member row, or nothing when it is no change."""
    member = ConditionMember.objects.filter(condition=condition, code=code).first()
    if (kind == EventKind.IN) == (member is not None):
        return None
    name = name or (stock.name if stock is not None else "") or (member.name if member is not None else "")
    event = ConditionEvent(
        condition=condition,
        code=code,
        stock=stock,
        name=name[:MAX_NAME],
        kind=kind,
        at=at,
        price=price,
        source=source,
        run=run,
    )
    event.full_clean()
    event.save()
    if kind == EventKind.IN:
        ConditionMember.objects.create(
            condition=condition, code=code, stock=stock, name=event.name, since=at, price_in=price, entered_event=event
        )
    else:
        member.delete()
    return event


# --- list sync and toggles -------------------------------------------------------------------------------


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    total: int = 0


def _fetch_condition_list() -> list[ConditionInfo]:
    try:
        return list(condition_list_sync(clients=kiwoom_client_async))
    except (BrokerError, TimeoutError, OSError) as exc:
        code = getattr(exc, "code", type(exc).__name__)
        raise BrokerConditionsUnavailable(f"Kiwoom's condition list could not be fetched ({code}): {exc}") from exc


def broker_connection_link(*, user, key_id: str | None = None, label: str = "") -> BrokerConnection:
    """Make ``user`` the owner of the Kiwoom app key ``key_id`` (default: this deployment's key): its saved
    conditions become theirs. Idempotent for the same user; ``broker_connection_taken`` (409) when the key
    already belongs to someone else, ``no_broker_connection`` when Kiwoom is not configured."""
    key_id = key_id or current_key_id()
    if not key_id:
        raise NoBrokerConnection("Kiwoom is not configured (KIWOOM_APP_KEY), so there is no key to link.")
    with transaction.atomic():
        existing = BrokerConnection.objects.select_for_update().filter(broker=Broker.KIWOOM, key_id=key_id).first()
        if existing is not None:
            if existing.owner_id != user.pk:
                raise BrokerConnectionTaken(f"The Kiwoom key {key_id} is already linked to another user.")
            return existing
        connection = BrokerConnection(owner=user, broker=Broker.KIWOOM, key_id=key_id, label=label[:100])
        connection.full_clean()
        try:
            with transaction.atomic():
                connection.save()
        except IntegrityError:
            raise BrokerConnectionTaken(f"{user} already has a Kiwoom connection.") from None
    return connection


def conditions_sync(
    *, owner, infos: Sequence[ConditionInfo] | None = None, now: dt.datetime | None = None
) -> SyncResult:
    """Make ``owner``'s Kiwoom conditions match the broker's list (CNSRLST).

    Only the owner of a ``BrokerConnection`` may sync (``no_broker_connection``, 403, otherwise): the list
    read from Kiwoom is the list of the deployment's key, so it is fetched only for the user that key belongs
    to (``broker_connection_mismatch`` when their connection is another key). New seqs are created (enabled,
    real-time on, browser toasts on); a changed name is renamed; a seq no longer listed gets
    ``missing_since`` (its events stay; it is no longer searched or registered) and is restored when it comes
    back. With ``infos`` omitted the list is fetched with ``condition_list_sync()`` first, outside the
    transaction. The whole list is validated before anything changes.
    """
    connection = BrokerConnection.objects.filter(owner=owner, broker=Broker.KIWOOM).first()
    if connection is None:
        raise NoBrokerConnection("Your account has no Kiwoom connection: the operator links one to you in the admin.")
    if infos is None:
        if connection.key_id != current_key_id():
            raise BrokerConnectionMismatch(
                "Your Kiwoom connection is not the key this deployment uses; ask the operator."
            )
        infos = _fetch_condition_list()
    now = now or timezone.now()
    listed: dict[str, str] = {}
    for info in infos:
        seq = _clean_seq(getattr(info, "seq", None))
        name = getattr(info, "name", None)
        name = name.strip() if isinstance(name, str) else ""
        if not name or len(name) > MAX_NAME:
            raise InvalidConditionName(
                f"Condition {seq} needs a name of 1-{MAX_NAME} characters.", fields={"name": ["Invalid."]}
            )
        if seq in listed:
            raise InvalidConditionSeq(f"Condition number {seq} is listed twice.", fields={"seq": ["Duplicate."]})
        listed[seq] = name

    result = SyncResult(total=len(listed))
    with transaction.atomic():
        existing = {
            c.seq: c
            for c in Condition.objects.select_for_update().filter(owner=owner, broker=Broker.KIWOOM).order_by("id")
        }
        for seq, name in listed.items():
            condition = existing.get(seq)
            if condition is None:
                condition = Condition(
                    owner=owner, connection=connection, broker=Broker.KIWOOM, seq=seq, name=name, last_synced_at=now
                )
                condition.full_clean()
                condition.save()
                result.created.append(seq)
                continue
            if condition.name != name:
                condition.name = name
                result.renamed.append(seq)
            if condition.missing_since is not None:
                condition.missing_since = None
                result.restored.append(seq)
            condition.connection = connection  # a detached condition of this owner is attached again
            condition.last_synced_at = now
            condition.full_clean()
            condition.save()
        for seq, condition in existing.items():
            if seq not in listed and condition.missing_since is None:
                condition.missing_since = now
                condition.save(update_fields=["missing_since", "updated_at"])
                result.missing.append(seq)
        if result.created:
            transaction.on_commit(_schedule_ensure)
    logger.info(
        "conditions synced",
        extra={"owner": owner.pk, "new": len(result.created), "renamed": len(result.renamed),
               "missing": len(result.missing), "total": result.total},
    )  # fmt: skip
    return result


def _schedule_ensure() -> None:
    """The reconciliation job is scheduled once conditions exist (:func:`.tasks.condition_schedules`)."""

    try:
        schedules_sync()
    except Exception:
        logger.exception("could not write the condition reconciliation schedule; run `manage.py sync_schedules`")


def condition_update(*, condition_id: int, user=None, operator: bool = False, **changes) -> Condition:
    """Change a condition's toggles; ``user`` (when given) must own it.

    A user may change ``enabled``, ``realtime``, ``notify_browser`` and ``notify_email`` (booleans; e-mail goes
    to their verified address only). ``notify_slack`` posts to the operator's webhook and is the operator's
    switch (``operator=True``: the admin); a user asking for it gets ``operator_only_setting`` (403). Turning
    Slack on needs ``CONDITIONS_SLACK_WEBHOOK_URL``. Anything invalid changes nothing.
    """
    allowed = TOGGLES if operator else USER_TOGGLES
    forbidden = sorted(k for k in changes if k in TOGGLES and k not in allowed)
    if forbidden:
        raise OperatorOnlySetting(
            f"{', '.join(forbidden)} is set by the operator in the admin.",
            fields={k: ["Operator only."] for k in forbidden},
        )
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise InvalidToggle(f"Unknown setting(s): {', '.join(unknown)}.", fields={k: ["Unknown."] for k in unknown})
    for key in TOGGLES:
        if key in changes and not isinstance(changes[key], bool):
            raise InvalidToggle(f"{key} must be true or false.", fields={key: ["Must be a boolean."]})
    if changes.get("notify_slack") and not settings.CONDITIONS_SLACK_WEBHOOK_URL:
        raise SlackNotConfigured(
            "Slack is not configured: set CONDITIONS_SLACK_WEBHOOK_URL first.", fields={"notify_slack": ["Off."]}
        )
    with transaction.atomic():
        condition = _condition_lock(condition_id) if parse_id(condition_id) and isinstance(condition_id, int) else None
        if condition is None or (user is not None and condition.owner_id != user.pk):
            raise ConditionNotFound(f"Condition {condition_id} not found.", fields={"condition": ["Not found."]})
        for key, value in changes.items():
            setattr(condition, key, value)
        condition.full_clean()
        condition.save()
    return condition


# --- real-time alerts ------------------------------------------------------------------------------------


def _live_conditions(seq: str):
    """Enabled conditions with ``seq`` of the connection whose key this deployment's feed and searches use:
    an alert or search result of that key's account belongs to that account's owner only."""

    return condition_live_queryset().filter(seq=seq).order_by("id")


def condition_alert_record(*, alert: ConditionAlert, price: int | None = None) -> list[ConditionEvent]:
    """Record one real-time alert (REAL type 02) for every enabled Kiwoom condition with its seq.

    Exactly once: an IN for a stock already a member, or an OUT for a non-member, changes nothing (a
    repeated push, or a change the reconciliation search recorded first). ``price`` defaults to the latest
    traded price in the Redis quote hash. Returns the events recorded (one per condition at most).
    """
    seq = _clean_seq(getattr(alert, "seq", None))
    code = _clean_code(getattr(alert, "code", None))
    kind = _clean_kind(getattr(alert, "kind", None))
    at = _clean_time(getattr(alert, "at", None))
    condition_ids = list(_live_conditions(seq).values_list("pk", flat=True))
    if not condition_ids:
        return []
    if price is None:
        price = quote_prices([code]).get(code)
    stock = _stocks_by_code([code]).get(code)
    events = []
    for condition_id in condition_ids:
        with transaction.atomic():
            condition = _condition_lock(condition_id)
            if condition is None or not condition.enabled:
                continue
            event = _membership_change(
                condition=condition, code=code, kind=kind, at=at, price=price, source=EventSource.REALTIME, stock=stock
            )
            if event is not None:
                events.append(event)
                _notify_on_commit([event.pk])
    return events


# --- reconciliation (normal search) ----------------------------------------------------------------------


def _search(seq: str) -> list[ConditionHit]:
    return list(condition_search_sync(seq, clients=kiwoom_client_async))


def condition_reconcile(
    *, seq: str, search: Callable[[str], Iterable[ConditionHit]] | None = None, at: dt.datetime | None = None
) -> list[ConditionRun]:
    """One normal search of ``seq`` (``condition_search_sync``), reconciled with every enabled condition
    having that seq: a stock found that is not a member enters (IN, source ``poll``), a member not found
    leaves (OUT, source ``poll``). So an entry or exit the real-time stream missed is recorded once, marked
    as found by polling. Each condition gets a ``ConditionRun`` (``failed`` with the error when the search
    fails; then nothing else changes).

    The search runs outside any transaction (no lock is held across the network). Then each condition is
    reconciled under its row lock, skipping stocks with an event recorded after the search started: the
    real-time alert for them is newer than this snapshot. ``at`` is the time given to poll events (default
    now; the job passes the market clock's time).
    """

    seq = _clean_seq(seq)
    condition_ids = list(_live_conditions(seq).values_list("pk", flat=True))
    if not condition_ids:
        return []
    started = timezone.now()
    with transaction.atomic():
        runs = {pk: ConditionRun.objects.create(condition_id=pk, started_at=started) for pk in condition_ids}
    # Read after the runs committed and before the search: any event with a higher id is newer than the search.
    watermarks = dict(
        ConditionEvent.objects.filter(condition_id__in=condition_ids)
        .values("condition_id")
        .annotate(top=Max("id"))
        .values_list("condition_id", "top")
    )

    try:
        raw_hits = list((search or _search)(seq))
    except (BrokerError, BrokerConditionsUnavailable, TimeoutError, OSError) as exc:
        code = getattr(exc, "code", type(exc).__name__)
        message = f"{code}: {exc}"[:2000]
        ConditionRun.objects.filter(pk__in=[r.pk for r in runs.values()]).update(
            status=RunStatus.FAILED, finished_at=timezone.now(), error=message
        )
        logger.warning("condition search failed; retried at the next run", extra={"seq": seq, "error": message})
        return list(ConditionRun.objects.filter(pk__in=[r.pk for r in runs.values()]).order_by("id"))

    hits: dict[str, ConditionHit] = {}
    invalid = []
    for hit in raw_hits:
        code = hit.code.strip().upper() if isinstance(getattr(hit, "code", None), str) else ""
        if valid_code(code):
            hits.setdefault(code, hit)
        else:
            invalid.append(repr(getattr(hit, "code", None)))
    if invalid:
        logger.warning("condition search returned malformed codes; skipped", extra={"seq": seq, "codes": invalid})
    at = _clean_time(at) if at is not None else timezone.now()

    member_codes = set(ConditionMember.objects.filter(condition_id__in=condition_ids).values_list("code", flat=True))
    leaving_prices = quote_prices(member_codes - set(hits))
    stocks = _stocks_by_code(set(hits) | member_codes)

    finished = []
    for condition_id in condition_ids:
        run = runs[condition_id]
        with transaction.atomic():
            condition = _condition_lock(condition_id)
            if condition is None:
                continue
            members = set(ConditionMember.objects.filter(condition=condition).values_list("code", flat=True))
            newer = set(
                ConditionEvent.objects.filter(
                    condition=condition, id__gt=watermarks.get(condition_id) or 0
                ).values_list("code", flat=True)
            )
            event_ids = []
            entered = exited = 0
            if condition.enabled:
                for code in sorted(set(hits) - members - newer):
                    hit = hits[code]
                    price = hit.price if isinstance(hit.price, int) and hit.price > 0 else None
                    event = _membership_change(
                        condition=condition, code=code, kind=EventKind.IN, at=at, price=price,
                        source=EventSource.POLL, stock=stocks.get(code), name=hit.name or "", run=run,
                    )  # fmt: skip
                    if event is not None:
                        event_ids.append(event.pk)
                        entered += 1
                for code in sorted(members - set(hits) - newer):
                    event = _membership_change(
                        condition=condition, code=code, kind=EventKind.OUT, at=at, price=leaving_prices.get(code),
                        source=EventSource.POLL, stock=stocks.get(code), run=run,
                    )  # fmt: skip
                    if event is not None:
                        event_ids.append(event.pk)
                        exited += 1
            run.status = RunStatus.OK
            run.finished_at = timezone.now()
            run.hits = len(hits)
            run.entered = entered
            run.exited = exited
            run.error = f"malformed codes skipped: {', '.join(invalid)}"[:2000] if invalid else ""
            run.save()
            _notify_on_commit(event_ids)
        finished.append(run)
        if entered or exited:
            logger.info(
                "condition reconciled: changes the stream missed were recorded",
                extra={"condition": condition_id, "seq": seq, "hits": len(hits), "entered": entered, "exited": exited},
            )
    return finished


# --- one-click paper order -------------------------------------------------------------------------------


def condition_event_order_place(*, user, event_id: int, quantity: int | None = None, market=None):
    """A MARKET buy of the stock of one of ``user``'s IN events, on the user's first paper account.

    The client order id is derived from the event, so a double click places one order; the order service's
    coded errors (market closed, insufficient cash, unknown stock, ...) pass through unchanged. ``market``
    (default: the market clock, read by ``order_place``) is the ``MarketNow`` the order is placed at.
    """

    visible = condition_list_for_user(user=user).values("pk")
    event = (
        ConditionEvent.objects.filter(pk=event_id, condition__in=visible).first()
        if isinstance(event_id, int) and parse_id(event_id)
        else None
    )
    if event is None:
        raise EventNotOrderable(f"Condition event {event_id} not found.", fields={"event": ["Not found."]})
    if event.kind != EventKind.IN:
        raise EventNotOrderable("Only a stock that entered a condition can be bought here.", fields={"event": ["OUT"]})
    account = paper_account_list_for_user(user=user).first()
    if account is None:
        raise NoPaperAccount("You have no paper account yet.", fields={"account": ["None."]})
    if quantity is None:
        quantity = settings.CONDITIONS_ORDER_QUANTITY
    return order_place(
        account=account,
        user=user,
        code=event.code,
        side="BUY",
        order_type="MARKET",
        quantity=quantity,
        client_order_id=f"cond-{event.pk}-{quantity}",
        market=market,
    )
