"""The bootstep holds a feed only in a worker consuming the ``feed`` queue; the recorder writes daily files."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

from apps.brokers.base import KST, PriceSign, Tick
from apps.live.feed.bootstep import FeedBootstep, consumes_feed_queue
from apps.live.feed.recorder import FrameRecorder


def worker(consume_from):
    return SimpleNamespace(app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=consume_from))))


def test_only_the_feed_worker_holds_the_feed() -> None:
    assert consumes_feed_queue(worker({"feed": object()})) is True
    assert consumes_feed_queue(worker({"default": object()})) is False
    assert consumes_feed_queue(worker(None)) is False  # no -Q: never guess
    step = FeedBootstep.__new__(FeedBootstep)
    FeedBootstep.__init__(step, worker({"default": object()}))
    step.start(worker({"default": object()}))
    assert step._thread is None
    step.stop(worker({"default": object()}))


def test_recorder_appends_daily_files_per_tr(tmp_path) -> None:
    at = dt.datetime(2026, 2, 20, 9, 0, 1, tzinfo=KST)
    tick = Tick(
        code="005930", at=at, price=100, change=1, sign=PriceSign.UP, change_rate=Decimal("1.01"), volume=3,
        cum_volume=3, cum_value=300, open=100, high=100, low=100, ask1=101, bid1=100, side=None, session="0",
        received_at=at,
    )  # fmt: skip
    recorder = FrameRecorder(tmp_path, max_buffer=2)
    for _ in range(3):
        recorder.record(tick)
    assert recorder.flush() == 2 and recorder.dropped == 1
    recorder.record(tick)
    recorder.close()
    lines = (tmp_path / "2026-02-20" / "H0STCNT0.log").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("2026-02-20T09:00:01.000+09:00\t{")
    assert '"code": "005930"' in lines[0] and '"price": 100' in lines[0]
