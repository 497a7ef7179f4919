"""Health of every part of the stack, as served by /healthz.

Each check returns a dict with at least ``status`` ("ok", "down" or "unknown"). A part listed in
HEALTH_REQUIRED that is not "ok" makes the whole report unhealthy (HTTP 503).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

BEAT_HEARTBEAT_KEY = "hoga:beat:heartbeat"
BEAT_HEARTBEAT_TTL = 3600
CELERY_QUEUES = ("default", "feed")


def check_postgres() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the reason is reported
        connections["default"].close_if_unusable_or_obsolete()
        return {"status": "down", "error": _short(exc)}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def check_redis() -> dict[str, Any]:
    from .redis import get_redis

    started = time.perf_counter()
    try:
        get_redis().ping()
    except Exception as exc:  # noqa: BLE001
        return {"status": "down", "error": _short(exc)}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def check_celery_queues(timeout: float = 1.0) -> dict[str, dict[str, Any]]:
    """Ask live workers which queues they consume (a broadcast answered within ``timeout``)."""
    from config.celery import app

    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception as exc:  # noqa: BLE001
        return {q: {"status": "unknown", "error": _short(exc)} for q in CELERY_QUEUES}
    workers_by_queue: dict[str, list[str]] = {q: [] for q in CELERY_QUEUES}
    for worker, queues in replies.items():
        for queue in queues or []:
            workers_by_queue.setdefault(queue["name"], []).append(worker)
    return {
        queue: {"status": "ok" if workers else "down", "workers": sorted(workers)}
        for queue, workers in workers_by_queue.items()
    }


def check_beat() -> dict[str, Any]:
    from .redis import get_redis

    try:
        raw = get_redis().get(BEAT_HEARTBEAT_KEY)
    except Exception as exc:  # noqa: BLE001
        return {"status": "unknown", "error": _short(exc)}
    if raw is None:
        return {"status": "down", "error": "beat has never ticked"}
    age = time.time() - float(raw)
    status = "ok" if age <= settings.HEALTH_BEAT_MAX_AGE else "down"
    return {"status": status, "last_tick_age_s": round(age, 1)}


def check_feed() -> dict[str, Any]:
    from apps.marketdata.realtime.keys import FEED_STATUS_KEY

    from .redis import get_redis

    try:
        raw = get_redis().get(FEED_STATUS_KEY)
    except Exception as exc:  # noqa: BLE001
        return {"status": "unknown", "error": _short(exc)}
    if raw is None:
        return {"status": "unknown", "detail": "no feed holder has reported"}
    state = raw.decode()
    # "closed" is healthy: the holder is alive and the market is simply not trading.
    return {"status": "ok" if state in ("connected", "closed") else "down", "feed": state}


def check_broker() -> dict[str, Any]:
    """The KIS client's shared circuit breaker for the configured app key ("ok" = closed).

    Informational unless "broker" is listed in HEALTH_REQUIRED.
    """
    from apps.marketdata.brokers.breaker import read_breaker
    from apps.marketdata.brokers.kis.config import ImproperlyConfiguredBroker, KisConfig

    from .redis import get_redis

    try:
        config = KisConfig.from_settings()
    except ImproperlyConfiguredBroker as exc:
        return {"status": "unknown", "error": _short(exc)}
    try:
        breaker = read_breaker(get_redis(), prefix=config.redis_prefix, scope=config.scope)
    except Exception as exc:  # noqa: BLE001
        return {"status": "unknown", "error": _short(exc)}
    status = "ok" if breaker["state"] == "closed" else "down"
    return {"status": status, "env": config.env, "key_id": config.key_id, **breaker}


def check_market_data() -> dict[str, Any]:
    """The start-up fill (apps/marketdata/bootstrap.py): "ok" once one has completed on this database; its
    progress (phase, done/total) while one runs."""
    import json

    from apps.marketdata.bootstrap import bootstrap_ready
    from apps.marketdata.tasks import BOOTSTRAP_STATE_KEY

    from .redis import get_redis

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
        return {"status": "unknown", "error": _short(exc)}
    if ready:
        return {"status": "ok", **({"fill": progress} if progress else {})}
    detail = (
        "the start-up fill has not finished" if progress else "waiting for a default-queue worker to start the fill"
    )
    return {"status": "down", "detail": detail, **({"fill": progress} if progress else {})}


def health_report() -> tuple[bool, dict[str, Any]]:
    """Run every check; return (healthy, report)."""
    components: dict[str, Any] = {"postgres": check_postgres(), "redis": check_redis()}
    if components["redis"]["status"] == "ok":
        queues = check_celery_queues()
        components["beat"] = check_beat()
        components["feed"] = check_feed()
        components["broker"] = check_broker()
        components["market_data"] = check_market_data()
    else:
        reason = {"status": "unknown", "error": "redis is down"}
        queues = {q: dict(reason) for q in CELERY_QUEUES}
        components["beat"] = dict(reason)
        components["feed"] = dict(reason)
        components["broker"] = dict(reason)
        components["market_data"] = dict(reason)
    for queue, state in queues.items():
        components[f"queue:{queue}"] = state
    failing = [name for name in settings.HEALTH_REQUIRED if components.get(name, {}).get("status") != "ok"]
    healthy = not failing
    return healthy, {"status": "ok" if healthy else "unhealthy", "failing": failing, "components": components}


def _short(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
