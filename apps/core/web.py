"""The web role's server: gunicorn supervises one uvicorn worker per core (config/gunicorn.py).

Every worker is a separate process with its own event loop, sync-view thread and database pool, so the
REST API and the pages use every core while WebSockets (Channels, groups in Redis) work across workers
unchanged. The worker class fixes the settings that matter for Hoga instead of uvicorn's defaults:

- no lifespan protocol: Django's ASGI handler does not implement it;
- no proxy headers: X-Forwarded-* are believed only from HOGA_TRUSTED_PROXIES (apps/core/proxy.py), which
  a server-level ``--forwarded-allow-ips`` would bypass;
- WebSocket keep-alive as Daphne had it (a ping every 20 s, a peer silent for 30 s more is dropped),
  frames up to WS_MAX_FRAME_BYTES, and no permessage-deflate unless WS_PER_MESSAGE_DEFLATE=true.
"""

from __future__ import annotations

import os
import warnings

with warnings.catch_warnings():  # uvicorn points at the separate uvicorn-worker package; this class is enough
    warnings.simplefilter("ignore", DeprecationWarning)
    from uvicorn.workers import UvicornWorker


class HogaUvicornWorker(UvicornWorker):
    CONFIG_KWARGS = {
        "loop": "auto",  # uvloop when installed
        "http": "auto",  # httptools when installed
        "ws": "websockets-sansio",
        "lifespan": "off",
        "proxy_headers": False,
        "server_header": False,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 30.0,
        "ws_max_size": int(os.environ.get("WS_MAX_FRAME_BYTES", str(1024 * 1024))),
        # permessage-deflate compresses every frame once per connection: with live quotes fanned out to
        # hundreds of browsers it was half of a web process's CPU (bench/fanout.py). Off, as with Daphne.
        "ws_per_message_deflate": os.environ.get("WS_PER_MESSAGE_DEFLATE", "false").strip().lower() in ("1", "true"),
        "timeout_graceful_shutdown": 10,  # Daphne's --application-close-timeout
    }
