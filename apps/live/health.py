"""The feed's part of /healthz (registered in :class:`apps.live.apps.LiveConfig`)."""

from __future__ import annotations

from typing import Any

from apps.core.health import short_error

from .quotes import feed_status


def check_feed() -> dict[str, Any]:
    try:
        state = feed_status()
    except Exception as exc:  # noqa: BLE001
        return {"status": "unknown", "error": short_error(exc)}
    if state is None:
        return {"status": "unknown", "detail": "no feed holder has reported"}
    # "closed" is healthy: the holder is alive and the market is simply not trading.
    return {"status": "ok" if state in ("connected", "closed") else "down", "feed": state}
