"""The thread-hosting bootstep of the fill engine and the strategy host: a thread only in a worker consuming the
``default`` queue with its setting on; warm shutdown stops the loop and joins it; an error in the loop is logged
and the thread's exit hook still runs."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from apps.strategies.bootstep import StrategyHostBootstep
from apps.trading.orders.bootstep import DefaultQueueThreadStep, FillEngineBootstep


def worker(consume_from):
    return SimpleNamespace(app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=consume_from))))


class Loop(DefaultQueueThreadStep):
    thread_name = "test-loop"
    enabled_setting = "PAPER_FILL_ENGINE_ENABLED"
    ended_message = "test loop failed"

    def __init__(self, w, *, fail: bool = False) -> None:
        super().__init__(w)
        self.fail = fail
        self.running = threading.Event()
        self.exited = threading.Event()

    def run(self, stop: threading.Event) -> None:
        self.running.set()
        if self.fail:
            raise RuntimeError("boom")
        stop.wait(30)

    def on_exit(self) -> None:
        self.exited.set()


def test_no_thread_outside_the_default_queue_or_with_the_setting_off(settings) -> None:
    feed_only = worker({"feed": object()})
    for step_class in (FillEngineBootstep, StrategyHostBootstep):
        step = step_class(feed_only)
        step.start(feed_only)
        assert step._thread is None
        step.stop(feed_only)
    settings.PAPER_FILL_ENGINE_ENABLED = False
    step = Loop(worker(None))
    step.start(worker(None))
    assert step._thread is None


def test_the_loop_runs_in_a_thread_and_stops_on_shutdown(settings) -> None:
    settings.PAPER_FILL_ENGINE_ENABLED = True
    step = Loop(worker({"default": object()}))
    step.start(worker({"default": object()}))
    assert step.running.wait(5)
    assert step._thread is not None and step._thread.name == "test-loop"

    step.shutdown(worker(None))

    assert not step._thread.is_alive() and step.exited.is_set()


def test_an_error_in_the_loop_is_logged_and_the_exit_hook_runs(settings, caplog) -> None:
    settings.PAPER_FILL_ENGINE_ENABLED = True
    step = Loop(worker(None), fail=True)
    step.start(worker(None))
    assert step.exited.wait(5)
    step._thread.join(5)

    assert "test loop failed" in caplog.text
