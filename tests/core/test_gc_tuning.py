"""The garbage collector's settings of the long-running processes (apps/core/gc_tuning.py)."""

from __future__ import annotations

import gc

import pytest

from apps.core.gc_tuning import tune_after_startup


@pytest.fixture
def collector_restored():
    """The test process's collector as it was: thresholds back, the frozen objects scanned again."""
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_after_start_up_the_process_freezes_what_it_holds_and_collects_less_often(collector_restored, settings):
    settings.GC_GEN0_THRESHOLD = 40_000
    gc.unfreeze()
    held = [{"kept": i} for i in range(1_000)]  # containers the process holds for its life
    _, gen1, gen2 = gc.get_threshold()

    assert tune_after_startup() is True

    assert gc.get_threshold() == (40_000, gen1, gen2)
    assert gc.get_freeze_count() >= len(held)
    scanned = {id(o) for o in gc.get_objects()}  # every generation the collector walks
    assert not any(id(x) in scanned for x in held)


def test_cyclic_garbage_made_after_the_freeze_is_still_collected(collector_restored):
    tune_after_startup(threshold=50_000)

    class Node:
        pass

    node = Node()
    node.itself = node  # a reference cycle made after the freeze: only the collector frees it
    marker = id(node)
    assert marker in {id(o) for o in gc.get_objects()}  # young, not frozen
    del node
    assert gc.collect() >= 1
    assert marker not in {id(o) for o in gc.get_objects()}


def test_zero_keeps_cpython_defaults(collector_restored, settings):
    settings.GC_GEN0_THRESHOLD = 0
    gc.unfreeze()
    before = gc.get_threshold()
    assert tune_after_startup() is False
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_web_and_celery_workers_tune_it_once_started():
    """gunicorn's post_worker_init (after the app and its URL patterns have loaded) and Celery's worker_ready."""
    from celery.signals import worker_process_init, worker_ready

    import config.celery as celery_config
    from config import gunicorn

    for signal in (worker_ready, worker_process_init):
        assert any(receiver() is celery_config._tune_garbage_collector for _, receiver in signal.receivers)
    source = gunicorn.post_worker_init.__code__.co_names
    assert "tune_after_startup" in source and "get_resolver" in source


def test_the_foreground_feed_and_fill_commands_tune_it_as_the_workers_do():
    from apps.live.management.commands.runfeed import Command as RunFeed
    from apps.trading.orders.management.commands.runfills import Command as RunFills

    for command in (RunFeed, RunFills):
        assert "tune_after_startup" in command.handle.__code__.co_names
