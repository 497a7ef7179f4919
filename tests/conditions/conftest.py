"""Fixtures of the condition tests: a user with conditions, contract dataclasses, a clean Redis DB."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from apps.brokers.base import KST, ConditionAlert, ConditionHit, ConditionInfo
from apps.live.realtime.keys import QUOTES_HASH

T0 = dt.datetime(2026, 2, 20, 10, 0, 0, tzinfo=KST)


@pytest.fixture(autouse=True)
def _empty_redis(clean_redis):
    return clean_redis


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """``with committed():`` runs the after-commit callbacks (notifications) registered inside the block
    when it ends, as a real commit would (the test itself runs in one rolled-back transaction)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def owner(db, django_user_model):
    """The user this deployment's Kiwoom key is linked to, with a verified e-mail address."""
    from django.utils import timezone

    from apps.conditions.services import broker_connection_link
    from apps.trading.accounts.models import VerifiedEmail

    user = django_user_model.objects.create_user(username="trader", password="s3cret-pass", email="trader@example.com")
    broker_connection_link(user=user)
    VerifiedEmail.objects.create(user=user, email="trader@example.com", verified_at=timezone.now())
    return user


def other_user(django_user_model, username: str = "other", *, key_id: str = "0ther0key000"):
    """Another user with their own Kiwoom connection (another key: another broker account)."""
    from apps.conditions.services import broker_connection_link

    user = django_user_model.objects.create_user(username=username, password="pw-12345678")
    broker_connection_link(user=user, key_id=key_id)
    return user


@pytest.fixture
def conditions(owner):
    from apps.conditions.services import conditions_sync

    conditions_sync(owner=owner, infos=[ConditionInfo("0", "등락률 2% 이상"), ConditionInfo("1", "거래량 급증")])
    from apps.conditions.models import Condition

    return {c.seq: c for c in Condition.objects.filter(owner=owner)}


def alert(seq: str, code: str, kind: str, second: int = 0) -> ConditionAlert:
    at = T0 + dt.timedelta(seconds=second)
    return ConditionAlert(seq=seq, code=code, kind=kind, at=at, received_at=at + dt.timedelta(milliseconds=30))


def hit(code: str, price: int = 70_000, name: str = "") -> ConditionHit:
    return ConditionHit(code=code, name=name or f"Stock {code}", price=price, change_rate=Decimal("2.10"), volume=1000)


def set_quote(redis, code: str, price: int) -> None:
    redis.hset(QUOTES_HASH, code, json.dumps({"code": code, "price": price}))
