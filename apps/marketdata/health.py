"""The broker's and the start-up fill's parts of /healthz (registered in ``MarketDataConfig.ready``)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from apps.brokers.breaker import read_breaker
from apps.brokers.kis.config import ImproperlyConfiguredBroker, KisConfig
from apps.core.health import short_error
from apps.core.redis import get_redis

from .bootstrap import bootstrap_ready
from .tasks import BOOTSTRAP_STATE_KEY


def check_broker() -> dict[str, Any]:
    """The KIS client's shared circuit breaker for the configured app key ("ok" = closed).

    Informational unless "broker" is listed in HEALTH_REQUIRED.
    """
    try:
        config = KisConfig.from_settings()
    except ImproperlyConfiguredBroker as exc:
        return {"status": "unknown", "error": short_error(exc)}
    try:
        breaker = read_breaker(get_redis(), prefix=config.redis_prefix, scope=config.scope)
    except Exception as exc:  # noqa: BLE001
        return {"status": "unknown", "error": short_error(exc)}
    status = "ok" if breaker["state"] == "closed" else "down"
    return {"status": status, "env": config.env, "key_id": config.key_id, **breaker}


def check_market_data() -> dict[str, Any]:
    """The start-up fill (apps/marketdata/bootstrap.py): "ok" once one has completed on this database; its
    progress (phase, done/total) while one runs."""
    if not settings.MARKETDATA_BOOTSTRAP:
        return {"status": "ok", "detail": "no start-up fill (MARKETDATA_BOOTSTRAP=false)"}
    try:
        raw = get_redis().get(BOOTSTRAP_STATE_KEY)
        progress = json.loads(raw) if raw else {}
    except Exception:  # noqa: BLE001 - progress is informational
        progress = {}
    try:
        ready = bootstrap_ready()
    except Exception as exc:  # noqa: BLE001
        return {"status": "unknown", "error": short_error(exc)}
    if ready:
        return {"status": "ok", **({"fill": progress} if progress else {})}
    detail = (
        "the start-up fill has not finished" if progress else "waiting for a default-queue worker to start the fill"
    )
    return {"status": "down", "detail": detail, **({"fill": progress} if progress else {})}
