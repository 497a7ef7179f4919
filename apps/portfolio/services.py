"""Writing equity snapshots: after the close (the beat job) and rebuilt from executions on demand.

Both compute the day with :func:`~apps.portfolio.selectors.equity_rebuild` (executions up to the day's
close, positions marked at the stored daily close), so a recorded day and a rebuilt day agree by
construction; the after-close job also checks the rebuilt cash against the account's live cash and logs a
disagreement (an execution written outside the services would show up there).
"""

from __future__ import annotations

import logging
from datetime import date

from django.db import transaction

from apps.core.exceptions import ValidationFailed
from apps.trading.accounts.models import PaperAccount

from .models import EquitySnapshot, SnapshotSource
from .selectors import DayState, equity_rebuild

logger = logging.getLogger(__name__)

FIELDS = ("cash", "positions_value", "equity", "net_flow", "bought", "sold", "fees", "taxes", "realized_pnl")


def _values(state: DayState) -> dict[str, int]:
    return {name: getattr(state, name) for name in FIELDS}


@transaction.atomic
def equity_snapshot_record(*, account_id: int, day: date) -> EquitySnapshot | None:
    """Record the account's close of ``day`` (a session); None when ``day`` is outside its life."""
    account = PaperAccount.objects.get(pk=account_id)
    states = equity_rebuild(account=account, start=day, end=day)
    if not states or states[-1].day != day:
        return None
    state = states[-1]
    live_cash = account.cash
    if state.cash != live_cash:
        logger.warning(
            "rebuilt cash differs from the account's cash at the close",
            extra={"account": account.pk, "day": day.isoformat(), "rebuilt": state.cash, "live": live_cash},
        )
    snapshot, _ = EquitySnapshot.objects.update_or_create(
        account=account, date=day, defaults={**_values(state), "source": SnapshotSource.CLOSE}
    )
    return snapshot


@transaction.atomic
def equity_snapshots_rebuild(*, account_id: int, start: date | None = None, end: date | None = None) -> int:
    """Write rebuilt snapshots for ``[start, end]`` (days recorded after the close are kept); return the count."""
    if start and end and end < start:
        raise ValidationFailed("end is before start", code="invalid_period")
    account = PaperAccount.objects.get(pk=account_id)
    states = equity_rebuild(account=account, start=start, end=end)
    kept = set(
        EquitySnapshot.objects.filter(account=account, source=SnapshotSource.CLOSE).values_list("date", flat=True)
    )
    written = 0
    for state in states:
        if state.day in kept:
            continue
        EquitySnapshot.objects.update_or_create(
            account=account, date=state.day, defaults={**_values(state), "source": SnapshotSource.REBUILD}
        )
        written += 1
    return written


def equity_snapshots_record_all(*, day: date) -> int:
    """The after-close job: one snapshot per account (each in its own transaction)."""
    count = 0
    for account_id in PaperAccount.objects.order_by("id").values_list("id", flat=True):
        if equity_snapshot_record(account_id=account_id, day=day) is not None:
            count += 1
    return count
