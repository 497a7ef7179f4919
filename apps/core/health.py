"""Health of every part of the stack, as served by /healthz.

Each check returns a dict with at least ``status`` ("ok", "down" or "unknown"). A part listed in
HEALTH_REQUIRED that is not "ok" makes the whole report unhealthy (HTTP 503).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connections

from .redis import get_redis

logger = logging.getLogger(__name__)

BEAT_HEARTBEAT_KEY = "hoga:beat:heartbeat"
BEAT_HEARTBEAT_TTL = 3600
CELERY_QUEUES = ("default", "feed")

HealthCheck = Callable[[], dict[str, Any]]
#: Checks of the parts other apps own (the feed, the broker, the start-up fill), in registration order.
#: Each app registers its own in ``AppConfig.ready``; they run only while Redis answers.
_CHECKS: dict[str, HealthCheck] = {}


def register_check(name: str, check: HealthCheck) -> None:
    """Add (or replace) the check reported as component ``name``."""
    _CHECKS[name] = check


def check_postgres() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the reason is reported
        connections["default"].close_if_unusable_or_obsolete()
        return {"status": "down", "error": short_error(exc)}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def check_redis() -> dict[str, Any]:

    started = time.perf_counter()
    try:
        get_redis().ping()
    except Exception as exc:  # noqa: BLE001
        return {"status": "down", "error": short_error(exc)}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def check_celery_queues(timeout: float = 1.0) -> dict[str, dict[str, Any]]:
    """Ask live workers which queues they consume (a broadcast answered within ``timeout``)."""
    from config.celery import app

    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception as exc:  # noqa: BLE001
        return {q: {"status": "unknown", "error": short_error(exc)} for q in CELERY_QUEUES}
    workers_by_queue: dict[str, list[str]] = {q: [] for q in CELERY_QUEUES}
    for worker, queues in replies.items():
        for queue in queues or []:
            workers_by_queue.setdefault(queue["name"], []).append(worker)
    return {
        queue: {"status": "ok" if workers else "down", "workers": sorted(workers)}
        for queue, workers in workers_by_queue.items()
    }


def check_beat() -> dict[str, Any]:

    try:
        raw = get_redis().get(BEAT_HEARTBEAT_KEY)
    except Exception as exc:  # noqa: BLE001
        return {"status": "unknown", "error": short_error(exc)}
    if raw is None:
        return {"status": "down", "error": "beat has never ticked"}
    age = time.time() - float(raw)
    status = "ok" if age <= settings.HEALTH_BEAT_MAX_AGE else "down"
    return {"status": status, "last_tick_age_s": round(age, 1)}


def health_report() -> tuple[bool, dict[str, Any]]:
    """Run every check; return (healthy, report)."""
    components: dict[str, Any] = {"postgres": check_postgres(), "redis": check_redis()}
    if components["redis"]["status"] == "ok":
        queues = check_celery_queues()
        components["beat"] = check_beat()
        for name, check in _CHECKS.items():
            components[name] = check()
    else:
        reason = {"status": "unknown", "error": "redis is down"}
        queues = {q: dict(reason) for q in CELERY_QUEUES}
        components["beat"] = dict(reason)
        for name in _CHECKS:
            components[name] = dict(reason)
    for queue, state in queues.items():
        components[f"queue:{queue}"] = state
    failing = [name for name in settings.HEALTH_REQUIRED if components.get(name, {}).get("status") != "ok"]
    healthy = not failing
    return healthy, {"status": "ok" if healthy else "unhealthy", "failing": failing, "components": components}


def short_error(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
