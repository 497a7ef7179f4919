"""Celery beat scheduler: django-celery-beat's DatabaseScheduler plus a heartbeat of every tick.

/healthz reads the heartbeat to tell whether beat is alive and ticking (not merely whether the
process exists). Beat ticks at least every CELERY_BEAT_MAX_LOOP_INTERVAL seconds.
"""

from __future__ import annotations

import logging
import time

from django_celery_beat.schedulers import DatabaseScheduler

from .health import BEAT_HEARTBEAT_KEY, BEAT_HEARTBEAT_TTL
from .redis import get_redis

logger = logging.getLogger(__name__)


class HeartbeatDatabaseScheduler(DatabaseScheduler):
    _last_beat_error = 0.0

    def tick(self, *args, **kwargs):
        delay = super().tick(*args, **kwargs)
        try:
            get_redis().set(BEAT_HEARTBEAT_KEY, f"{time.time():.3f}", ex=BEAT_HEARTBEAT_TTL)
        except Exception as exc:  # noqa: BLE001 - a heartbeat failure must never stop beat
            now = time.monotonic()
            if now - self._last_beat_error > 60:
                self._last_beat_error = now
                logger.warning("beat heartbeat not written; check Redis", extra={"error": repr(exc)})
        return delay
