"""Per-process fan-out of live quotes and books to the browser connections of ``/ws/market/``.

One :class:`FanoutHub` per event loop of a web process joins every bucket group (``apps.core.groups.bucket_group``) and
the feed-status group ONCE on its own channel, however many browsers are connected; connections register the
stocks they want with it. A bucket message (``quote.batch`` from ``QuotePublisher.publish``) carries each
snapshot already JSON-encoded: the hub hands those strings to the :class:`Outbox` of every connection that
wants the stock, and an outbox splices them into its frame, so a snapshot is encoded once, by the feed, and
never decoded or re-encoded per connection.

:class:`Outbox` (one per connection) conflates: it holds at most one pending snapshot per stock and kind. Once
the hub has dispatched every message it has at hand, it flushes the outboxes it gave snapshots to: an idle
connection gets its frame at once, written by the hub itself (:meth:`Outbox.flush`: the server's ``send``
normally completes without waiting, so no task wakes per frame). Whatever arrives while a write is in flight
(a send that had to wait is finished by a task) or within the frame interval of ``MARKET_WS_MAX_FPS`` goes out
as ONE frame, written by the connection's sender task, with the latest snapshot of every changed stock::

    {"type": "batch", "seq": <1, 2, ...>, "quotes": {code: {...}}, "books": {code: {...}}}

A slow browser therefore costs one dict entry per stock, never a growing queue, and never delays the hub or
any other connection (for a busy connection the hub only writes into dicts and sets an event).

The hub leaves its groups when the last connection of its loop unregisters.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from apps.core import groups

from . import metrics

logger = logging.getLogger(__name__)

RECEIVE_BACKOFF_MAX = 5.0  # seconds between attempts while the channel layer cannot be read
METRICS_FLUSH = 1.0  # seconds between two flushes of the process's frame tally to the metrics


def member(code: str, payload: str) -> str:
    """A snapshot as a member of a frame's ``quotes`` or ``books`` object: ``"<code>":<its JSON text>``."""
    return f'"{code}":{payload}'


class Outbox:
    """The pending snapshots of one connection and the only task that writes them out."""

    def __init__(
        self,
        send_text: Callable[[str], Coroutine[Any, Any, None]],  # an async function (see flush)
        *,
        max_fps: float,
        wait_writable: Callable[[], Awaitable[None]] | None = None,
        name: str = "",
    ) -> None:
        self._send_text = send_text
        self._wait_writable = wait_writable
        self._interval = 1.0 / max_fps if max_fps and max_fps > 0 else 0.0
        self.name = name
        self.codes: set[str] = set()
        # pending snapshots by code, each as its member of the frame's object: '"<code>":<snapshot json>'
        self.quotes: dict[str, str] = {}
        self.books: dict[str, str] = {}
        self.status: str | None = None
        self.oldest_at: float | None = None  # publish time of the oldest batch with a pending snapshot
        self.seq = 0
        self.frames = 0
        self.snapshots = 0
        self.conflated = 0
        self._last_frame = float("-inf")
        self._wakeup = asyncio.Event()
        self._busy = False  # the sender task is writing (or waiting to)
        self._resuming: asyncio.Task[None] | None = None  # a send started by flush() that had to wait
        self._failed: BaseException | None = None  # a send started by flush() failed: the sender raises it
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None  # flush() at the end of the frame interval

    # --- producers (never block, never send) ---------------------------------------------------------

    def offer(self, field: str, code: str, payload: str, at: float | None, *, replace: bool = True) -> None:
        """``field``: ``quotes`` or ``books``; ``payload``: the snapshot's JSON text."""
        self.offer_member(field, code, member(code, payload), at, replace=replace)

    def offer_member(
        self, field: str, code: str, text: str, at: float | None, *, replace: bool = True, wake: bool = True
    ) -> None:
        """As :meth:`offer`, with the frame's member for the snapshot already spliced (:func:`member`): the hub
        builds it once per snapshot for all the connections that want it. ``wake=False``: the caller sends
        the pending frame itself (:meth:`flush`) once it has offered everything it has."""
        pending = self.quotes if field == "quotes" else self.books
        if code in pending:
            if not replace:
                return
            self.conflated += 1
            metrics.TALLY.conflated += 1
        pending[code] = text
        if at is not None and (self.oldest_at is None or at < self.oldest_at):
            self.oldest_at = at
        if wake:
            self._wakeup.set()

    def offer_status(self, status: str) -> None:
        self.status = status
        self._wakeup.set()

    def forget(self, codes: list[str]) -> None:
        for code in codes:
            self.quotes.pop(code, None)
            self.books.pop(code, None)

    # --- the sender --------------------------------------------------------------------------------------

    def take_frame(self) -> str | None:
        """The pending snapshots as one batch frame (and clears them); None when nothing is pending."""
        quotes, books = self.quotes, self.books
        if not quotes and not books:
            return None
        self.quotes, self.books, self.oldest_at = {}, {}, None
        self.seq += 1
        self.snapshots = len(quotes) + len(books)
        return "".join(
            (
                '{"type":"batch","seq":',
                str(self.seq),
                ',"quotes":{',
                ",".join(quotes.values()),
                '},"books":{',
                ",".join(books.values()),
                "}}",
            )
        )

    def flush(self) -> None:
        """Writes the pending frame now, from the caller (the hub, once it has dispatched every message it had),
        when nothing else is being written to this connection and its frame interval has elapsed; else the
        sender task writes it when it can.

        The server's ``send`` normally completes without waiting (uvicorn writes to the socket at once), so the
        frame goes out without waking the connection's task: per frame, that wake-up was most of a web
        process's CPU after the write itself (bench/fanout.py). Within the frame interval a timer calls
        this again at its end. A send that has to wait (a full write buffer) is finished by a task, and until
        then snapshots are conflated as usual."""
        if self._closed or self._resuming is not None or self._failed is not None:
            return  # closing, or the end of the waiting send wakes the sender task
        if self._busy:  # the sender task writes these once its current write is done
            self._wakeup.set()
            return
        if self._wait_writable is not None:
            self._wakeup.set()
            return
        if self._interval:
            now = time.monotonic()
            if now < self._last_frame + self._interval:  # the FPS cap: a timer flushes at the interval's end
                if self._timer is None:
                    loop = asyncio.get_running_loop()
                    self._timer = loop.call_later(self._last_frame + self._interval - now, self._flush_later)
                return
        at = self.oldest_at
        frame = self.take_frame()
        if frame is None:
            return
        if self._interval:
            self._last_frame = now
        try:
            waiting = start(self._send_text(frame))
        except Exception as exc:  # the browser left: the sender task raises it, the consumer closes
            self._failed = exc
            self._wakeup.set()
            return
        if waiting is not None:
            self._resuming = waiting
            waiting.add_done_callback(self._resumed)
        self.frames += 1
        metrics.TALLY.frame(self.snapshots, at)

    def _flush_later(self) -> None:
        self._timer = None
        self.flush()

    def _resumed(self, task: asyncio.Task[None]) -> None:
        self._resuming = None
        if not task.cancelled() and task.exception() is not None:
            self._failed = task.exception()
        self._wakeup.set()  # the sender writes what arrived meanwhile (or raises the failure)

    async def run(self) -> None:
        # Per frame: one wake-up, one send, no timer unless the frame interval has not elapsed yet.
        wakeup, send_text, monotonic, tally = self._wakeup, self._send_text, time.monotonic, metrics.TALLY
        interval, wait_writable = self._interval, self._wait_writable
        while True:
            await wakeup.wait()
            wakeup.clear()
            if self._failed is not None:
                raise self._failed
            if self._resuming is not None:  # a send started by flush() is waiting: its end wakes this task
                continue
            self._busy = True
            try:
                if self.status is not None:
                    status, self.status = self.status, None
                    await send_text(json.dumps({"type": "status", "status": status}))
                if not self.quotes and not self.books:
                    continue
                if interval:
                    delay = self._last_frame + interval - monotonic()
                    if delay > 0:  # the FPS cap: what arrives meanwhile joins this frame
                        await asyncio.sleep(delay)
                if wait_writable is not None:
                    await wait_writable()
                at = self.oldest_at
                frame = self.take_frame()
                if frame is None:  # an unsubscribe emptied it meanwhile
                    continue
                if interval:
                    self._last_frame = monotonic()
                await send_text(frame)
                self.frames += 1
                tally.frame(self.snapshots, at)
            finally:
                self._busy = False

    async def close(self) -> None:
        """No more frames from :meth:`flush`; ends a send of it that is still waiting (the connection closes)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._resuming is not None:
            self._resuming.cancel()
            await asyncio.gather(self._resuming, return_exceptions=True)


def start(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Runs ``coro`` now, in the caller, up to its first real wait: None when it completed without one (its
    exception, if any, is raised here), else the task that finishes it (as ``asyncio.eager_task_factory`` of
    Python 3.12 does)."""
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    except BaseException:
        coro.close()
        raise
    task = asyncio.ensure_future(_finish(coro, waiting))
    task.add_done_callback(lambda _: coro.close())  # cancelled before its first step: the coroutine unwinds too
    return task


async def _finish(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Steps ``coro``, suspended on the future ``waiting`` (None: a bare yield), to its end as its task would:
    the coroutine reads the future's outcome itself; a cancellation of this task is thrown into it."""
    while True:
        cancelled: asyncio.CancelledError | None = None
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                await asyncio.wait((waiting,))  # done, whatever its outcome (never raised here)
        except asyncio.CancelledError as exc:
            cancelled = exc
        try:
            waiting = coro.send(None) if cancelled is None else coro.throw(cancelled)
        except StopIteration:
            return


class FanoutHub:
    """The bucket groups' single reader of one event loop; routes snapshots to the interested outboxes."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.groups: list[str] = [groups.bucket_group(b) for b in range(groups.QUOTE_BUCKETS)] + [groups.MARKET_STATUS]
        self.outboxes: set[Outbox] = set()
        self.interest: dict[str, set[Outbox]] = {}
        self.joins = 0  # group_add calls made (one per group per start)
        self.batches = 0
        self._task: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # outboxes given snapshots since the last flush; the flush runs once the messages at hand are dispatched
        self._dirty: set[Outbox] = set()
        self._flush_soon: asyncio.Handle | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def register(self, outbox: Outbox) -> None:
        """Adds a connection; the first one makes the hub join its groups (returns once they are joined)."""
        async with self._lock:
            self.outboxes.add(outbox)
            if self.running:
                return
            self.channel = await self.layer.new_channel("hub.")
            for group in self.groups:
                await self.layer.group_add(group, self.channel)
                self.joins += 1
            self._task = asyncio.create_task(self._receive_loop(self.channel), name="market-fanout-hub")
            self._flusher = asyncio.create_task(self._flush_loop(), name="market-fanout-metrics")

    async def unregister(self, outbox: Outbox) -> None:
        """Removes a connection; the last one makes the hub leave its groups."""
        self.unwatch(outbox, list(outbox.codes))
        self._dirty.discard(outbox)
        async with self._lock:
            self.outboxes.discard(outbox)
            if self.outboxes or not self.running:
                return
            task, channel, self._task = self._task, self.channel, None
            flusher, self._flusher = self._flusher, None
            assert task is not None and channel is not None
            for running in (task, flusher):
                if running is not None:
                    running.cancel()
            await asyncio.gather(*(t for t in (task, flusher) if t is not None), return_exceptions=True)
            metrics.TALLY.flush()
            for group in self.groups:
                try:
                    await self.layer.group_discard(group, channel)
                except Exception as exc:  # the layer forgets the channel with its process anyway
                    logger.warning("fan-out hub: leaving %s failed: %s", group, exc)

    def watch(self, outbox: Outbox, codes: list[str]) -> None:
        for code in codes:
            self.interest.setdefault(code, set()).add(outbox)
        outbox.codes.update(codes)

    def unwatch(self, outbox: Outbox, codes: list[str]) -> None:
        for code in codes:
            watchers = self.interest.get(code)
            if watchers is not None:
                watchers.discard(outbox)
                if not watchers:
                    del self.interest[code]
        outbox.codes.difference_update(codes)
        outbox.forget(codes)

    def dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "quote.batch":
            self.batches += 1
            at = message.get("at")
            at = float(at) if isinstance(at, int | float) else None
            for field in ("quotes", "books"):
                for code, payload in (message.get(field) or {}).items():
                    watchers = self.interest.get(code)
                    if not watchers:
                        continue
                    text = member(code, payload)  # once per snapshot, whatever the number of connections
                    for outbox in watchers:
                        outbox.offer_member(field, code, text, at, wake=False)
                    self._dirty.update(watchers)
            if self._dirty and self._flush_soon is None:
                # after every message already received: the layer hands them over without yielding in between
                self._flush_soon = asyncio.get_running_loop().call_soon(self.flush)
        elif kind == "feed.status":
            status = str(message.get("status") or "unknown")
            for outbox in self.outboxes:
                outbox.offer_status(status)

    def flush(self) -> None:
        """Sends every connection given snapshots since the last flush its frame (:meth:`Outbox.flush`)."""
        self._flush_soon = None
        dirty, self._dirty = self._dirty, set()
        for outbox in dirty:
            try:
                outbox.flush()
            except Exception:  # one connection never stops the others' frames
                logger.exception("fan-out hub: frame not sent to %s", outbox.name)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(METRICS_FLUSH)
            try:
                metrics.TALLY.flush()
            except Exception:  # metrics never stop the fan-out
                logger.exception("fan-out hub: metrics not flushed")

    async def _receive_loop(self, channel: str) -> None:
        failures = 0
        while True:
            try:
                message = await self.layer.receive(channel)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the layer reconnects on its own; keep reading after a pause
                failures += 1
                delay = min(RECEIVE_BACKOFF_MAX, 0.1 * 2**failures)
                logger.warning("fan-out hub: channel layer receive failed, retrying in %.1fs: %r", delay, exc)
                await asyncio.sleep(delay)
                continue
            try:
                self.dispatch(message)
            except Exception:  # a malformed message never stops the hub
                logger.exception("fan-out hub: message not dispatched")


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FanoutHub] = weakref.WeakKeyDictionary()


def get_hub(layer: Any) -> FanoutHub:
    """The hub of the running event loop (a web process serves every connection from one loop)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None or hub.layer is not layer:
        hub = _hubs[loop] = FanoutHub(layer)
    return hub
