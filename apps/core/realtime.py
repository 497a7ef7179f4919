"""The one way messages leave through the Channels layer: every group send of the project goes through here.

- :func:`group_send` from a coroutine that already runs on a loop (the feed's publisher), with its layer;
- :func:`group_send_many` from synchronous code that must not wait (requests, fills): see below;
- :func:`group_send_now` from synchronous code that wants the outcome (notifications count their pushes).

Group names come from :mod:`apps.core.groups`.

From synchronous code, without a new event loop per call:

``async_to_sync(layer.group_send)`` from a thread with no event loop starts a loop for the call, and the
Redis layers open their connections per loop: about 30 ms per call here, paid by the request or the fill
that triggered it. ``group_send_many`` instead hands the messages to one long-lived loop in a daemon
thread of this process (started on first use, again after a fork) and returns at once; the sends run
concurrently there over the layer's kept connections. Delivery stays best-effort, as with any channel
layer send: a failure is logged, never raised to the caller, and clients re-fetch state on reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

SEND_TIMEOUT = 5.0  # seconds one batch of sends may take before it is abandoned (and logged)


class _LoopThread:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="channel-layer-sender", daemon=True)
                thread.start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


_sender = _LoopThread()
_in_flight: set[Future] = set()
_in_flight_lock = threading.Lock()


async def group_send(layer: Any, group: str, message: dict[str, Any]) -> None:
    """Send on the caller's loop through ``layer`` (raises what the layer raises)."""
    await layer.group_send(group, message)


def layer_configured() -> bool:
    return get_channel_layer() is not None


def group_send_now(group: str, message: dict[str, Any], *, what: str = "group send") -> bool:
    """Send and wait (blocking); False (logged) when there is no layer or the send failed. Never raises."""
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception as exc:
        logger.warning("%s failed", what, extra={"group": group, "error": repr(exc)})
        return False
    return True


def group_send_many(messages: Sequence[tuple[str, dict]], *, what: str = "group send") -> Future | None:
    """Queue ``(group, message)`` sends on the process's sender loop; return the batch's future (None when
    there is nothing to send or no channel layer). Never blocks on Redis, never raises."""
    layer = get_channel_layer()
    if not messages or layer is None:
        return None

    async def send_all() -> None:
        results = await asyncio.wait_for(
            asyncio.gather(*(layer.group_send(group, message) for group, message in messages), return_exceptions=True),
            SEND_TIMEOUT,
        )
        for (group, _), result in zip(messages, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("%s failed", what, extra={"group": group, "error": repr(result)})

    future = asyncio.run_coroutine_threadsafe(send_all(), _sender.loop())
    with _in_flight_lock:
        _in_flight.add(future)
    future.add_done_callback(_log_failure(what))
    return future


def group_sends_wait(timeout: float = SEND_TIMEOUT) -> bool:
    """Wait until every send queued so far has finished (a worker's shutdown, a test reading a layer);
    False when some are still in flight after ``timeout`` seconds."""
    from concurrent.futures import wait

    with _in_flight_lock:
        pending = set(_in_flight)
    if not pending:
        return True
    _, not_done = wait(pending, timeout=timeout)
    return not not_done


def _log_failure(what: str):
    def done(future: Future) -> None:
        with _in_flight_lock:
            _in_flight.discard(future)
        exc = future.exception()
        if exc is not None:
            logger.error("%s failed", what, extra={"error": repr(exc)})

    return done
