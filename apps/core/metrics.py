"""Prometheus metrics of Hoga and the ``/metrics`` endpoint.

Metrics are defined here with prometheus-client at import (no Django needed, so broker clients and the fill
engine can record without touching settings). bin/hoga-process sets PROMETHEUS_MULTIPROC_DIR per role
(``var/prometheus/<role>@<host>/``): every process writes its samples to files there, and ``/metrics`` merges
every role's files (apps/core/metrics_multiprocess.py), so one scrape of any web worker covers the web
workers, the feed worker, the fill engines and the other Celery processes. Without it (tests, a shell) the
process's own registry is served.

``/metrics`` also carries, read at scrape time, the broker client's shared counters and circuit breaker from
Redis (what the staff JSON ``/api/marketdata/broker/metrics`` shows) as ``hoga_broker_shared_*``.

Access: ``Authorization: Bearer <METRICS_TOKEN>`` (for Prometheus) or a logged-in staff session.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from .metrics_multiprocess import AllRolesCollector, multiprocess_dir

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUEST_SECONDS = Histogram(
    "hoga_http_request_seconds",
    "Seconds a web worker spent on an HTTP request (its route pattern, method and status)",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
FILL_LATENCY_SECONDS = Histogram(
    "hoga_fill_latency_seconds",
    "Seconds from a crossing tick's arrival in the fill stream to the commit of its executions",
    buckets=LATENCY_BUCKETS,
)
FILL_STREAM_LAG_SECONDS = Gauge(
    "hoga_fill_stream_lag_seconds",
    "Age of the oldest tick of the fill engine's latest batch when the engine began applying it",
    multiprocess_mode="livemax",
)
FILL_TICKS = Counter("hoga_fill_ticks_applied", "Ticks applied by the fill engines")
FILL_EXECUTIONS = Counter("hoga_fill_executions", "Executions written by the fill engines")
FEED_TICKS = Counter("hoga_feed_ticks_received", "Trade ticks received by the feed worker from the broker", ["source"])
FEED_BOOKS = Counter("hoga_feed_books_received", "Order-book updates received by the feed worker", ["source"])
BROKER_REQUEST_SECONDS = Histogram(
    "hoga_broker_request_seconds",
    "Seconds of one broker REST call (HTTP round trip), by broker, TR id / API id and outcome",
    ["broker", "tr", "outcome"],
    buckets=LATENCY_BUCKETS,
)


def observe_broker_call(broker: str, tr: str | None, seconds: float, outcome: str) -> None:
    """The broker clients' hook: one REST call's latency (outcome ok, error, timeout or network)."""
    BROKER_REQUEST_SECONDS.labels(broker, tr or "-", outcome).observe(seconds)


def observe_fills(ticks, executions, *, began: float) -> None:
    """The fill engine's hook after a committed batch: the stream lag and each crossing tick's latency."""
    now = time.time()
    if ticks:
        oldest_ms = min(int(tick.stream_id.partition("-")[0]) for tick in ticks)
        FILL_STREAM_LAG_SECONDS.set(max(0.0, began - oldest_ms / 1000))
        FILL_TICKS.inc(len(ticks))
    if executions:
        FILL_EXECUTIONS.inc(len(executions))
        for stream_id in {e.tick_stream_id for e in executions}:
            FILL_LATENCY_SECONDS.observe(max(0.0, now - int(stream_id.partition("-")[0]) / 1000))


# --- the web side ---------------------------------------------------------------------------------------


class RequestMetricsMiddleware:
    """Times every request by its URL pattern (never the raw path: ids would make the label set unbounded)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        HTTP_REQUEST_SECONDS.labels(route, request.method, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response


#: Collectors other apps add to every scrape (the broker's shared counters: ``apps.marketdata.metrics``).
_SCRAPE_COLLECTORS: list[Any] = []


def register_scrape_collector(collector: Any) -> None:
    """Add a collector read at every /metrics scrape (from the owning app's ``AppConfig.ready``)."""
    if collector not in _SCRAPE_COLLECTORS:
        _SCRAPE_COLLECTORS.append(collector)


def _registry():
    from prometheus_client import REGISTRY, CollectorRegistry

    directory = multiprocess_dir()
    if directory is None:
        registry = CollectorRegistry()
        registry.register(_ProcessRegistry(REGISTRY))
    else:
        registry = CollectorRegistry()
        registry.register(AllRolesCollector(directory.parent))
    for collector in _SCRAPE_COLLECTORS:
        registry.register(collector)
    return registry


class _ProcessRegistry:
    """This process's default registry as one collector (to add the broker collector beside it per scrape)."""

    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()


def authorized(request) -> bool:
    from django.conf import settings

    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[7:].strip().encode(), token.encode())
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_staff)


def metrics_view(request):
    from django.http import HttpResponse, JsonResponse
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if request.method != "GET":
        return JsonResponse({"error": {"code": "method_not_allowed", "message": "GET only."}}, status=405)
    if not authorized(request):
        response = JsonResponse(
            {
                "error": {
                    "code": "not_authenticated",
                    "message": "Send Authorization: Bearer <METRICS_TOKEN>, or log in as staff.",
                }
            },
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
