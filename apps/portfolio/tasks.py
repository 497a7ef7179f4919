"""Portfolio tasks (queue ``default``): the after-close equity snapshots. Thin: the calendar decides the day."""

from __future__ import annotations

import datetime as dt
from typing import Any

from celery import shared_task

from apps.core.krx.calendar import now_kst
from apps.marketdata.selectors import krx_calendar

from .services import equity_snapshots_record_all


def portfolio_schedules(market_broker: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "portfolio: equity snapshots after the close",
            "task": "portfolio.snapshots_record",
            # 16:45 KST Mon-Fri (https://crontab.guru/#45_16_*_*_1-5): after the close (15:30; 16:30 on CSAT day)
            # and after the daily bars are collected; the task skips days that are not sessions
            "crontab": {"minute": "45", "hour": "16", "day_of_week": "1-5"},
            "expires": 3600,
        }
    ]


@shared_task(bind=True, name="portfolio.snapshots_record", ignore_result=True)
def portfolio_snapshots_record(self, day: str | None = None) -> int:
    """Snapshot every account at the close of ``day`` (ISO; default today), on KRX sessions only."""
    target = dt.date.fromisoformat(day) if day else now_kst().date()
    calendar = krx_calendar()
    if not calendar.is_trading_day(target):
        return 0
    session = calendar.session(target)
    if day is None and session is not None and now_kst() < session.close:
        return 0  # not closed yet (the schedule is fixed; the calendar knows late closes)
    return equity_snapshots_record_all(day=target)
