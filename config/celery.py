"""Celery application: settings come from Django (CELERY_* names), tasks from every app."""

from celery import Celery
from celery.signals import setup_logging, worker_init, worker_ready

from config.settings_module import ensure_settings_module

ensure_settings_module()

app = Celery("hoga")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The real-time feed holder runs inside the worker that consumes the `feed` queue (a bootstep, not a task:
# see apps/marketdata/feed/bootstep.py). Other workers skip it.
from apps.marketdata.feed.bootstep import FeedBootstep  # noqa: E402

app.steps["worker"].add(FeedBootstep)

# The paper-trading fill engine runs in every worker consuming the `default` queue (apps/orders/bootstep.py).
from apps.orders.bootstep import FillEngineBootstep  # noqa: E402

app.steps["worker"].add(FillEngineBootstep)


@setup_logging.connect
def _use_django_logging(**_kwargs):
    """Use the project's one-line-per-event logging instead of Celery's own format."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@worker_init.connect
def _warm_calendar(**_kwargs):
    """Workers consult the KRX calendar in their first task (market clock, collection): load it now."""
    from apps.marketdata.calendar import calendar_warm_in_background

    calendar_warm_in_background()


@worker_ready.connect
def _start_up_fill(sender=None, **_kwargs):
    """A worker consuming the `default` queue enqueues the start-up fill (apps/marketdata/bootstrap.py) when it
    is ready; workers starting together enqueue it once, and one fill runs at a time (a Redis lock)."""
    from apps.marketdata.tasks import bootstrap_enqueue_once
    from apps.orders.bootstep import consumes_default_queue

    if sender is not None and consumes_default_queue(sender):
        try:
            bootstrap_enqueue_once()
        except Exception:  # Redis down at start: the next worker start (or `manage.py bootstrap_market_data`) fills
            import logging

            logging.getLogger(__name__).exception("start-up fill not enqueued")
