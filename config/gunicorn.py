"""gunicorn settings of the web role (bin/hoga-process web): WEB_CONCURRENCY uvicorn workers on one socket.

SIGHUP reloads gracefully (new workers start, old ones finish their requests), SIGTERM stops gracefully
within GRACEFUL_TIMEOUT seconds, SIGTTIN / SIGTTOU add or remove a worker.
"""

import logging
import os

from apps.core.metrics_multiprocess import mark_worker_dead


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on (a container's cpuset)
    except AttributeError:
        return os.cpu_count() or 1


bind = f"{os.environ.get('HOGA_BIND', '127.0.0.1')}:{os.environ.get('HOGA_PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or _cores())
worker_class = "apps.core.web.HogaUvicornWorker"
timeout = int(os.environ.get("WEB_WORKER_TIMEOUT", "60"))  # a worker whose loop is stuck this long is replaced
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "15"))
keepalive = 5
backlog = 2048
# The default queue's worker and the pages start long-lived WebSockets: recycle workers only when asked.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
proxy_protocol = False
forwarded_allow_ips = ""  # X-Forwarded-* are handled by apps/core/proxy.py (HOGA_TRUSTED_PROXIES)
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "INFO").lower()
proc_name = "hoga-web"
control_socket_disable = True  # one shared $HOME/.gunicorn/gunicorn.ctl would clash between instances


def child_exit(server, worker):
    """A dead worker's live gauges leave /metrics (prometheus-client multiprocess mode)."""
    mark_worker_dead(worker.pid)


def when_ready(server):
    """Warn when the web workers' database pools cannot all fit PostgreSQL's max_connections."""
    pool = int(os.environ.get("DB_POOL_MAX_SIZE", "10"))
    url = os.environ.get("DATABASE_URL")
    if not pool or not url:
        return
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            limit = int(conn.execute("SHOW max_connections").fetchone()[0])
    except Exception as exc:  # noqa: BLE001 - a warning only; the workers report real database errors
        logging.getLogger("gunicorn.error").warning("could not read PostgreSQL's max_connections: %s", exc)
        return
    needed = server.cfg.workers * pool
    if needed > limit * 3 // 4:
        server.log.warning(
            "%d web workers x DB_POOL_MAX_SIZE %d = %d connections, more than 3/4 of PostgreSQL's "
            "max_connections %d (the Celery processes need the rest): lower DB_POOL_MAX_SIZE or WEB_CONCURRENCY, "
            "or raise max_connections",
            server.cfg.workers,
            pool,
            needed,
            limit,
        )
    else:
        server.log.info(
            "%d web workers, up to %d pooled connections each (max_connections %d)", server.cfg.workers, pool, limit
        )


def post_worker_init(worker):
    """HOGA_TRACEMALLOC_DIR: allocation growth reports of each web worker, for soak runs (apps/core/memtrace.py)."""
    from apps.core.memtrace import start_from_environment

    start_from_environment()
