"""The 30-second reconciliation job: its beat entry and the task's gating."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from apps.brokers.base import ConditionInfo
from apps.conditions.tasks import conditions_reconcile


@pytest.mark.django_db
def test_interval_entry_exists_once_kiwoom_is_the_feed_or_conditions_exist(settings, owner, committed):
    settings.MARKET_BROKER = "kis"
    settings.MARKET_FEED = "kis"
    call_command("sync_schedules")
    assert not PeriodicTask.objects.filter(task="conditions.reconcile").exists()

    settings.MARKET_FEED = "kiwoom"
    call_command("sync_schedules")
    call_command("sync_schedules")  # idempotent
    entry = PeriodicTask.objects.get(task="conditions.reconcile")
    assert (entry.interval.every, entry.interval.period, entry.expire_seconds, entry.crontab) == (
        30, "seconds", 25, None,
    )  # fmt: skip

    entry.delete()
    settings.MARKET_FEED = "kis"
    from apps.conditions.services import conditions_sync

    with committed():  # the first synced conditions write the schedule after commit
        conditions_sync(owner=owner, infos=[ConditionInfo("0", "조건")])
    assert PeriodicTask.objects.filter(task="conditions.reconcile", interval__every=30).count() == 1


@pytest.mark.django_db
def test_task_does_nothing_without_conditions(settings):
    settings.MARKET_BROKER = "sandbox"
    settings.SANDBOX_PAPER_REST_PORT = settings.SANDBOX_REAL_REST_PORT = 9  # would fail if the clock were read

    assert conditions_reconcile.apply().result == {"summaries": 0, "searched": 0}


def test_task_skips_searches_when_the_market_clock_is_unavailable(settings, conditions):
    from apps.conditions.models import ConditionRun

    settings.MARKET_BROKER = "sandbox"
    settings.SANDBOX_PAPER_REST_PORT = settings.SANDBOX_REAL_REST_PORT = 9

    assert conditions_reconcile.apply().result is None
    assert ConditionRun.objects.count() == 0
