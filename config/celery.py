"""Celery application: settings come from Django (CELERY_* names), tasks from every app."""

from celery import Celery
from celery.signals import setup_logging, worker_init, worker_process_init, worker_ready

from config.settings_module import ensure_settings_module

ensure_settings_module()

app = Celery("hoga")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The real-time feed holder runs inside the worker that consumes the `feed` queue (a bootstep, not a task:
# see apps/live/feed/bootstep.py). Other workers skip it.
from apps.live.feed.bootstep import FeedBootstep  # noqa: E402

app.steps["worker"].add(FeedBootstep)

# The paper-trading fill engine runs in every worker consuming the `default` queue (apps/trading/orders/bootstep.py).
from apps.trading.orders.bootstep import FillEngineBootstep  # noqa: E402

app.steps["worker"].add(FillEngineBootstep)

# The strategy host runs beside it, one lease holder at a time (apps/strategies/bootstep.py).
from apps.strategies.bootstep import StrategyHostBootstep  # noqa: E402

app.steps["worker"].add(StrategyHostBootstep)

# The execution-notice listeners of broker-linked accounts run in the same workers, one worker per link
# (apps/brokerage/bootstep.py).
from apps.brokerage.bootstep import BrokerNoticeBootstep  # noqa: E402

app.steps["worker"].add(BrokerNoticeBootstep)


@setup_logging.connect
def _use_django_logging(**_kwargs):
    """Use the project's one-line-per-event logging instead of Celery's own format."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@worker_init.connect
def _warm_calendar(**_kwargs):
    """Workers consult the KRX calendar in their first task (market clock, collection): load it now."""
    from apps.core.krx.calendar import calendar_warm_in_background

    calendar_warm_in_background()


@worker_init.connect
def _memory_trace(**_kwargs):
    """HOGA_TRACEMALLOC_DIR: allocation growth reports for soak runs (apps/core/memtrace.py)."""
    from apps.core.memtrace import start_from_environment

    start_from_environment()


@worker_ready.connect
@worker_process_init.connect
def _tune_garbage_collector(**_kwargs):
    """The garbage collector's settings (apps/core/gc_tuning.py, ``GC_GEN0_THRESHOLD``): in the worker's main
    process once it and its bootsteps (the fill engine, the feed holder) have started, and in each process of
    its pool as it starts."""
    from apps.core.gc_tuning import tune_after_startup

    tune_after_startup()


@worker_ready.connect
def _start_up_fill(sender=None, **_kwargs):
    """A worker consuming the `default` queue enqueues the start-up fill (apps/marketdata/bootstrap.py) when it
    is ready; workers starting together enqueue it once, and one fill runs at a time (a Redis lock)."""
    from apps.marketdata.tasks import bootstrap_enqueue_once
    from apps.trading.orders.bootstep import consumes_default_queue

    if sender is not None and consumes_default_queue(sender):
        try:
            bootstrap_enqueue_once()
        except Exception:  # Redis down at start: the next worker start (or `manage.py bootstrap_market_data`) fills
            import logging

            logging.getLogger(__name__).exception("start-up fill not enqueued")
