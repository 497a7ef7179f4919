"""The market-data jobs of the beat schedule (registered with :func:`apps.core.schedules.register_schedules`)."""

from __future__ import annotations

from typing import Any


def marketdata_schedules(market_broker: str) -> list[dict[str, Any]]:
    """Collection and calendar jobs. Crontabs are in Asia/Seoul (the sandbox's replayed session can be open at
    any wall-clock time, so with the sandbox they run around the clock and consult its clock)."""
    sandbox = market_broker == "sandbox"
    definitions = [
        {
            "name": "collect minute bars",
            "task": "marketdata.collect_minute_bars",
            # every minute, 09:00-16:59 KST Mon-Fri (https://crontab.guru/#*_9-16_*_*_1-5); sandbox: always. Until 16:59
            # because on CSAT day the session runs 10:00-16:30; the task asks the calendar whether a session is on.
            "crontab": {"minute": "*", "hour": "*" if sandbox else "9-16", "day_of_week": "*" if sandbox else "1-5"},
            "expires": 55,
        },
        {
            "name": "collect daily bars",
            "task": "marketdata.collect_daily_bars",
            # every 10 minutes 15:00-17:50 KST Mon-Fri (https://crontab.guru/#*/10_15-17_*_*_1-5); the task runs once
            # per day after the session closed (15:30, or 16:30 on CSAT day)
            "crontab": {
                "minute": "*/10" if not sandbox else "*/5",
                "hour": "*" if sandbox else "15-17",
                "day_of_week": "*" if sandbox else "1-5",
            },
            "expires": 540,
        },
        {
            "name": "sync the KRX calendar from the broker",
            "task": "marketdata.sync_calendar",
            # 07:30 KST every day (https://crontab.guru/#30_7_*_*_*): KIS asks for about one holiday query a day
            "crontab": {"minute": "30", "hour": "7", "day_of_week": "*"},
            "expires": 3600,
        },
        {
            "name": "refresh the listing from the broker's stock master",
            "task": "marketdata.sync_listing",
            # 07:40 KST Mon-Fri (https://crontab.guru/#40_7_*_*_1-5), after the calendar sync: KIS rebuilds the master
            # files before the session; the task skips a day KRX is closed (the calendar) and a day it already
            # succeeded. Sandbox: every hour at :15, so a replayed day gets one refresh.
            "crontab": {
                "minute": "40" if not sandbox else "15",
                "hour": "7" if not sandbox else "*",
                "day_of_week": "1-5" if not sandbox else "*",
            },
            "expires": 1800,
        },
        {
            "name": "retry the listing refresh",
            "task": "marketdata.sync_listing",
            # 08:20 KST Mon-Fri (https://crontab.guru/#20_8_*_*_1-5): a no-op when 07:40 succeeded
            "crontab": {"minute": "20", "hour": "8", "day_of_week": "1-5"},
            "expires": 1800,
        },
    ]
    return definitions
