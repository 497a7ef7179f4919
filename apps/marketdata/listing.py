"""The listing: every stock of the broker's stock master (KIS ``{kospi,kosdaq,konex}_code.mst``), refreshed daily.

The master gives each listed security's code, name, market, 증권그룹 (only the groups of
``LISTING_SECURITY_GROUPS`` count as stocks), KOSPI200 sector, and the status flags a trader must see: 거래정지
(halt), 관리종목 (administrative issue), 정리매매 (liquidation) and 시장경고 (investment caution / warning / risk).
:func:`listing_refresh` upserts them all in one statement (new stocks join outside the collection universe) and
marks a stock that left the master as delisted (``active`` false; orders refuse it). A master that would delist
more than ``LISTING_MAX_DELIST_FRACTION`` of the listed stocks at once is taken as truncated: nobody is delisted.

The download (``apps.brokers.kis.master``) never touches the ORM; this module does. Runs are recorded as
``CollectionRun(job="listing")``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import date

from channels.db import database_sync_to_async as sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.brokers.base import BrokerError
from apps.brokers.kis.master import MasterRow, fetch_masters, stocks_only
from apps.core.krx.calendar import KST

from .broker_services import kis_config
from .collection import _run_finish, _run_start
from .models import CollectionRun, Stock
from .selectors import stocks_cache_clear

logger = logging.getLogger(__name__)

JOB = "listing"
UPDATED_FIELDS = [
    "name", "market", "active", "isin", "security_group", "sector", "industry_code", "halted", "administrative",
    "liquidation", "warning", "listing_date", "updated_at",
]  # fmt: skip


def master_base_url() -> str:
    """Where the master files are: the sandbox's REST listener with the sandbox, else ``KIS_MASTER_URL``."""
    if str(settings.MARKET_BROKER).lower() == "sandbox":
        return f"{kis_config().rest_url}/common/master"
    return str(settings.KIS_MASTER_URL)


@transaction.atomic
def listing_refresh(*, rows: Sequence[MasterRow], as_of: date, max_delist_fraction: float = 0.05) -> dict[str, int]:
    """Make ``rows`` (the master's stocks) the listing: upsert every one, delist the stocks missing from it.

    Stocks are never deleted (orders and bars refer to them). New ones are not in the collection universe; the
    universe flag and rank of existing ones are kept. Returns counts (``created``, ``updated``, ``delisted``,
    ``delist_skipped``: stocks not delisted because the master looked truncated).
    """
    by_code: dict[str, MasterRow] = {}
    for row in rows:
        by_code.setdefault(row.code, row)  # a code listed twice: the first market's line wins
    if not by_code:
        raise ValueError("refusing to replace the listing with an empty master")
    existing = set(Stock.objects.filter(code__in=list(by_code)).values_list("code", flat=True))
    now = timezone.now()
    Stock.objects.bulk_create(
        [
            Stock(
                code=row.code,
                name=row.name[:100],
                market=row.market,
                active=True,
                in_universe=False,
                isin=row.isin[:12],
                security_group=row.security_group[:2],
                sector=row.sector[:40],
                industry_code="" if set(row.industry_code) <= {"0"} else row.industry_code[:4],
                halted=row.halted,
                administrative=row.administrative,
                liquidation=row.liquidation,
                warning=row.warning,
                listing_date=as_of,
                created_at=now,
                updated_at=now,
            )
            for row in by_code.values()
        ],
        update_conflicts=True,
        unique_fields=["code"],
        update_fields=UPDATED_FIELDS,
        batch_size=1000,
    )
    gone = Stock.objects.filter(active=True).exclude(code__in=list(by_code))
    listed_before = Stock.objects.filter(active=True).count()
    missing = gone.count()
    delisted = skipped = 0
    if missing and missing > max_delist_fraction * max(listed_before, 1):
        skipped = missing
        logger.warning(
            "stock master looks truncated: nobody delisted",
            extra={"missing": missing, "listed": listed_before, "master_rows": len(by_code)},
        )
    elif missing:
        delisted = gone.update(active=False, in_universe=False, rank=None)
    transaction.on_commit(stocks_cache_clear)  # bulk writes send no post_save
    result = {
        "created": len(by_code) - len(existing),
        "updated": len(existing),
        "delisted": delisted,
        "delist_skipped": skipped,
    }
    logger.info("listing refreshed", extra={f"stocks_{key}": value for key, value in result.items()})
    return result


Fetch = Callable[[str], Awaitable[dict[str, list[MasterRow]]]]


async def listing_sync(*, as_of: date, fetch: Fetch | None = None) -> CollectionRun:
    """Download the master files and refresh the listing; the ``listing`` CollectionRun (failed: a master could
    not be read, and nothing was changed)."""
    run = await sync_to_async(_run_start)(JOB)
    fetch = fetch or (lambda url: fetch_masters(url))
    url = await sync_to_async(master_base_url)()
    try:
        masters = await fetch(url)
    except BrokerError as exc:
        return await sync_to_async(_run_finish)(
            run, requested=1, stored=0, failed=1, backfilled=0, errors={"master": f"{type(exc).__name__}: {exc}"[:300]}
        )
    every_row = (row for market_rows in masters.values() for row in market_rows)
    rows = stocks_only(every_row, settings.LISTING_SECURITY_GROUPS)
    try:
        result = await sync_to_async(listing_refresh)(
            rows=rows, as_of=as_of, max_delist_fraction=float(settings.LISTING_MAX_DELIST_FRACTION)
        )
    except ValueError as exc:
        return await sync_to_async(_run_finish)(
            run, requested=1, stored=0, failed=1, backfilled=0, errors={"master": str(exc)[:300]}
        )
    per_market = ", ".join(f"{market} {len(market_rows)}" for market, market_rows in masters.items())
    note = (
        f"{len(rows)} stocks from {url} ({per_market} securities); created {result['created']}, "
        f"updated {result['updated']}, delisted {result['delisted']}"
    )
    errors = {}
    if result["delist_skipped"]:
        errors["delist"] = f"{result['delist_skipped']} stocks missing from the master were not delisted (truncated?)"
    run = await sync_to_async(_run_finish)(
        run,
        requested=1,
        stored=result["created"] + result["updated"],
        failed=0,
        backfilled=0,
        errors=errors,
        note=note,
    )
    if errors:  # stored, but not the whole refresh: the next run tries again
        await sync_to_async(CollectionRun.objects.filter(pk=run.pk).update)(status=CollectionRun.Status.PARTIAL)
        await sync_to_async(run.refresh_from_db)()
    return run


def listing_synced_on(day: date) -> bool:
    """True when a listing refresh succeeded on ``day`` (KST date of its start)."""
    return any(
        started.astimezone(KST).date() == day
        for started in CollectionRun.objects.filter(job=JOB, status=CollectionRun.Status.SUCCEEDED)
        .order_by("-started_at")
        .values_list("started_at", flat=True)[:5]
    )
