"""The beat schedule, defined in code by each app and written to django-celery-beat's tables (visible in the admin).

Apps register a provider of their periodic tasks (:func:`register_schedules`, in ``AppConfig.ready``);
:func:`schedules_sync` (``manage.py sync_schedules``) writes all of them.

Crontabs are in Asia/Seoul. With the sandbox broker the replayed session can be open at any wall-clock
time, so the market jobs run around the clock and consult the sandbox clock; with a real broker they run
around KRX session hours only. Each task also checks the market clock itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

TZ = "Asia/Seoul"


#: ``provider(market_broker)`` → the periodic tasks an app wants (see :func:`schedules_sync` for the keys).
ScheduleProvider = Callable[[str], list[dict[str, Any]]]
_PROVIDERS: list[ScheduleProvider] = []


def register_schedules(provider: ScheduleProvider) -> None:
    """Add an app's schedule provider (from its ``AppConfig.ready``); idempotent."""
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)


def schedule_definitions(market_broker: str) -> list[dict[str, Any]]:
    """Every registered app's periodic tasks for ``market_broker``, in registration order."""
    return [item for provider in _PROVIDERS for item in provider(market_broker)]


@transaction.atomic
def schedules_sync() -> list[str]:
    """Create or update every defined periodic task; return their names."""
    names = []
    for item in schedule_definitions(settings.MARKET_BROKER):
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
