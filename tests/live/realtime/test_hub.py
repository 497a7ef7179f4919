"""The fan-out hub's send path without a server: frames written by the hub's flush, sends that have to wait,
and the server's own ``send`` under Channels' session middleware. Counts only, no timings."""

from __future__ import annotations

import asyncio
import json

import pytest

from apps.live.consumers import server_send
from apps.live.realtime.hub import FanoutHub, Outbox, member, start

pytestmark = pytest.mark.asyncio

SAMSUNG, HYNIX = "005930", "000660"


class Browser:
    """A connection's ``send_text``: records frames; while ``gate`` is set, each send waits for it to open."""

    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.gate: asyncio.Event | None = None

    async def send_text(self, text: str) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.frames.append(json.loads(text))


def outbox_of(browser: Browser) -> Outbox:
    return Outbox(browser.send_text, max_fps=0)


async def test_one_flush_after_several_messages_sends_one_frame_per_connection_without_its_task():
    """Two bucket messages dispatched back to back: each connection gets ONE frame with both stocks, written
    by the hub's flush (no sender task runs here)."""
    hub = FanoutHub(layer=None)
    browsers = [Browser() for _ in range(3)]
    outboxes = [outbox_of(b) for b in browsers]
    for outbox in outboxes:
        hub.watch(outbox, [SAMSUNG, HYNIX])
    hub.dispatch({"type": "quote.batch", "at": 1.0, "quotes": {SAMSUNG: '{"p":1}'}, "books": {}})
    hub.dispatch({"type": "quote.batch", "at": 1.0, "quotes": {HYNIX: '{"p":2}'}, "books": {SAMSUNG: '{"b":3}'}})
    assert all(b.frames == [] for b in browsers)  # nothing before the messages at hand are dispatched
    await asyncio.sleep(0)
    for browser, outbox in zip(browsers, outboxes, strict=True):
        assert browser.frames == [
            {"type": "batch", "seq": 1, "quotes": {SAMSUNG: {"p": 1}, HYNIX: {"p": 2}}, "books": {SAMSUNG: {"b": 3}}}
        ]
        assert outbox.frames == 1


async def test_a_send_that_waits_is_finished_by_a_task_and_what_arrives_meanwhile_is_conflated():
    browser = Browser()
    outbox = outbox_of(browser)
    sender = asyncio.create_task(outbox.run())
    browser.gate = asyncio.Event()  # the connection's write buffer is full
    outbox.offer_member("quotes", SAMSUNG, member(SAMSUNG, '{"v":1}'), None, wake=False)
    outbox.flush()
    for v in (2, 3, 4):  # arrive while frame 1 waits: only the last is kept, and flush sends nothing more
        outbox.offer_member("quotes", SAMSUNG, member(SAMSUNG, f'{{"v":{v}}}'), None, wake=False)
        outbox.flush()
    await asyncio.sleep(0)
    assert browser.frames == [] and outbox.conflated == 2
    browser.gate.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert [(f["seq"], f["quotes"]) for f in browser.frames] == [(1, {SAMSUNG: {"v": 1}}), (2, {SAMSUNG: {"v": 4}})]
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)


async def test_a_failed_send_is_raised_by_the_sender_task():
    class Gone(Exception):
        pass

    async def send_text(text: str) -> None:
        raise Gone

    outbox = Outbox(send_text, max_fps=0)
    sender = asyncio.create_task(outbox.run())
    outbox.offer_member("quotes", SAMSUNG, member(SAMSUNG, "{}"), None, wake=False)
    outbox.flush()  # never raises to the hub
    with pytest.raises(Gone):
        await asyncio.wait_for(sender, 5)


async def test_start_runs_a_coroutine_up_to_its_first_wait():
    done: list[str] = []

    async def at_once() -> None:
        done.append("at once")

    assert start(at_once()) is None and done == ["at once"]

    gate = asyncio.Event()

    async def waits() -> None:
        done.append("before")
        await gate.wait()
        done.append("after")

    task = start(waits())
    assert task is not None and done[-1] == "before"
    gate.set()
    await asyncio.wait_for(task, 5)
    assert done[-1] == "after"

    async def fails() -> None:
        raise ValueError("gone")

    with pytest.raises(ValueError):
        start(fails())

    cancelled: list[bool] = []

    async def cancellable() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    task = start(cancellable())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and cancelled == [True]

    unwound: list[bool] = []

    async def unwinds() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            unwound.append(True)

    task = start(unwinds())
    assert task is not None
    task.cancel()  # before the task's first step
    await asyncio.gather(task, return_exceptions=True)
    assert unwound == [True]


async def test_frames_bypass_only_the_session_middleware_wrapper():
    from channels.sessions import InstanceSessionWrapper

    async def server(message: dict) -> None:
        pass

    scope = {"type": "websocket", "cookies": {}}
    wrapper = InstanceSessionWrapper(scope, server)
    outer = InstanceSessionWrapper({**scope, "session": wrapper.scope["session"]}, wrapper.send)
    assert server_send(outer.send) is server
    assert server_send(wrapper.send) is server
    assert server_send(server) is server

    async def other(message: dict) -> None:
        await server(message)

    assert server_send(other) is other


async def test_within_the_frame_interval_a_timer_sends_the_latest_once():
    browser = Browser()
    outbox = Outbox(browser.send_text, max_fps=50)
    outbox.offer_member("quotes", SAMSUNG, member(SAMSUNG, '{"v":1}'), None, wake=False)
    outbox.flush()
    for v in (2, 3):  # within 20 ms of frame 1: held for the timer, conflated
        outbox.offer_member("quotes", SAMSUNG, member(SAMSUNG, f'{{"v":{v}}}'), None, wake=False)
        outbox.flush()
    assert [f["seq"] for f in browser.frames] == [1]
    for _ in range(500):  # the timer fires after 20 ms
        if outbox.frames == 2:
            break
        await asyncio.sleep(0.01)
    assert [(f["seq"], f["quotes"]) for f in browser.frames] == [(1, {SAMSUNG: {"v": 1}}), (2, {SAMSUNG: {"v": 3}})]
    await outbox.close()
    outbox.offer_member("quotes", SAMSUNG, member(SAMSUNG, '{"v":4}'), None, wake=False)
    outbox.flush()  # closed: nothing more
    await asyncio.sleep(0.05)
    assert outbox.frames == 2
