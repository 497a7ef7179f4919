"""The fundamentals jobs of the beat schedule (registered with :func:`apps.core.schedules.register_schedules`)."""

from __future__ import annotations

from typing import Any


def fundamentals_schedules(market_broker: str) -> list[dict[str, Any]]:
    """Crontabs in Asia/Seoul; every task asks the market clock and the calendar itself (a holiday does nothing).
    With the sandbox the replayed session can be open at any wall-clock time, so the jobs run around the clock."""
    sandbox = market_broker == "sandbox"
    return [
        {
            "name": "collect investor flows",
            "task": "fundamentals.collect_flows",
            # every 10 minutes 15:40-17:50 KST Mon-Fri (https://crontab.guru/#*/10_15-17_*_*_1-5); the task runs once
            # per trading day after the session closed (today's row is filled only after the close, kis-api.md §5.6)
            "crontab": {
                "minute": "*/10" if not sandbox else "*/5",
                "hour": "*" if sandbox else "15-17",
                "day_of_week": "*" if sandbox else "1-5",
            },
            "expires": 540,
        },
        {
            "name": "collect intraday investor estimates",
            "task": "fundamentals.collect_flow_estimates",
            # 09:35, 11:35, 13:35, 14:35 KST Mon-Fri (https://crontab.guru/#35_9,11,13,14_*_*_1-5): after the
            # broker's inputs of 09:30/10:00, 11:20, 13:20 and 14:30 (HHPTJ04160200); sandbox: every 30 minutes
            "crontab": {
                "minute": "35" if not sandbox else "*/30",
                "hour": "9,11,13,14" if not sandbox else "*",
                "day_of_week": "1-5" if not sandbox else "*",
            },
            "expires": 900,
        },
        {
            "name": "refresh financial statements",
            "task": "fundamentals.collect_statements",
            # 19:10 KST every day (https://crontab.guru/#10_19_*_*_*): the task refreshes daily in the earnings
            # seasons (FUNDAMENTALS_STATEMENT_SEASONS) and weekly outside them
            "crontab": {"minute": "10", "hour": "19", "day_of_week": "*"},
            "expires": 3600,
        },
    ]
