"""The broker client's shared counters (Redis) as Prometheus metrics, read at every /metrics scrape
(registered with :func:`apps.core.metrics.register_scrape_collector`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .broker_services import broker_metrics

logger = logging.getLogger(__name__)


class BrokerSharedCollector:
    """The broker client's Redis counters (every process's calls, errors, limiter waits, breaker) at scrape."""

    def collect(self) -> Iterator[Any]:
        try:
            data = broker_metrics()
        except Exception as exc:  # noqa: BLE001 - a misconfigured broker or Redis down: the rest still scrapes
            logger.warning("broker metrics not readable for /metrics", extra={"error": type(exc).__name__})
            return
        labels = ["broker", "env", "key_id"]
        values = [str(data.get("broker", "")), str(data.get("env", "")), str(data.get("key_id", ""))]
        for name in ("calls", "ok", "errors", "retries", "limiter_waits", "tokens_issued", "tokens_refreshed",
                     "breaker_rejected", "breaker_opened"):  # fmt: skip
            family = CounterMetricFamily(
                f"hoga_broker_shared_{name}", f"Broker client {name} (shared, Redis)", labels=labels
            )
            family.add_metric(values, float(data.get(name) or 0))
            yield family
        wait = CounterMetricFamily(
            "hoga_broker_shared_limiter_wait_seconds", "Seconds calls waited for the rate limiter", labels=labels
        )
        wait.add_metric(values, float(data.get("limiter_wait_ms") or 0) / 1000)
        yield wait
        by_tr = CounterMetricFamily(
            "hoga_broker_shared_calls_by_tr", "Broker calls by TR id (shared, Redis)", labels=[*labels, "tr"]
        )
        for tr, count in sorted((data.get("calls_by_tr_id") or {}).items()):
            by_tr.add_metric([*values, tr], float(count))
        yield by_tr
        by_code = CounterMetricFamily(
            "hoga_broker_shared_errors_by_code", "Broker errors by code (shared, Redis)", labels=[*labels, "code"]
        )
        for code, count in sorted((data.get("errors_by_code") or {}).items()):
            by_code.add_metric([*values, code], float(count))
        yield by_code
        breaker = data.get("breaker") or {}
        state = str(breaker.get("state", "unknown")) if isinstance(breaker, dict) else "unknown"
        open_ = GaugeMetricFamily(
            "hoga_broker_shared_breaker_open", "1 while the broker circuit breaker is open", labels=[*labels, "state"]
        )
        open_.add_metric([*values, state], 1.0 if state == "open" else 0.0)
        yield open_
        rate = GaugeMetricFamily(
            "hoga_broker_shared_rate_limit_per_second", "The app key's configured request rate", labels=labels
        )
        rate.add_metric(values, float(data.get("rate_limit_per_s") or 0))
        yield rate
