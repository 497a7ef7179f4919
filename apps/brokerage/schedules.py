"""The brokerage jobs of the beat schedule."""

from __future__ import annotations

from typing import Any


def brokerage_schedules(market_broker: str) -> list[dict[str, Any]]:
    sandbox = market_broker == "sandbox"
    return [
        {
            "name": "reconcile broker-linked accounts",
            "task": "brokerage.reconcile_links",
            # every 5 minutes 08:00-18:55 KST Mon-Fri (https://crontab.guru/#*/5_8-18_*_*_1-5); sandbox: always
            "crontab": {
                "minute": "*/5",
                "hour": "*" if sandbox else "8-18",
                "day_of_week": "*" if sandbox else "1-5",
            },
            "expires": 240,
        },
    ]
