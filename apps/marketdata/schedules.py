"""The beat schedule, defined in code and written to django-celery-beat's tables (visible in the admin).

Crontabs are in Asia/Seoul. With the sandbox broker the replayed session can be open at any wall-clock
time, so the market jobs run around the clock and consult the sandbox clock; with a real broker they run
around KRX session hours only. Each task also checks the market clock itself.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.db import transaction

TZ = "Asia/Seoul"


def schedule_definitions(market_broker: str, *, conditions: bool = False) -> list[dict]:
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
    ]
    if conditions:  # MARKET_FEED=kiwoom, or Kiwoom conditions exist (apps/conditions)
        definitions.append(
            {
                "name": "reconcile condition searches",
                "task": "conditions.reconcile",
                # every CONDITIONS_RECONCILE_INTERVAL (30) s; the task itself checks the market clock
                "interval": {"every": settings.CONDITIONS_RECONCILE_INTERVAL, "period": "seconds"},
                "expires": max(1, settings.CONDITIONS_RECONCILE_INTERVAL - 5),
            }
        )
    return definitions


@transaction.atomic
def schedules_sync() -> list[str]:
    """Create or update every defined periodic task; return their names."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    from apps.conditions.selectors import conditions_exist

    wants_conditions = getattr(settings, "MARKET_FEED", "kis") == "kiwoom" or conditions_exist()
    names = []
    for item in schedule_definitions(settings.MARKET_BROKER, conditions=wants_conditions):
        if "interval" in item:
            interval, _ = IntervalSchedule.objects.get_or_create(**item["interval"])
            PeriodicTask.objects.update_or_create(
                name=item["name"],
                defaults={"task": item["task"], "interval": interval, "crontab": None,
                          "expire_seconds": item["expires"], "kwargs": json.dumps({}), "enabled": True},
            )  # fmt: skip
            names.append(item["name"])
            continue
        cron = item["crontab"]
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=cron["minute"],
            hour=cron["hour"],
            day_of_week=cron["day_of_week"],
            day_of_month="*",
            month_of_year="*",
            timezone=TZ,
        )
        PeriodicTask.objects.update_or_create(
            name=item["name"],
            defaults={
                "task": item["task"],
                "crontab": schedule,
                "interval": None,
                "expire_seconds": item["expires"],
                "kwargs": json.dumps({}),
                "enabled": True,
            },
        )
        names.append(item["name"])
    return names
