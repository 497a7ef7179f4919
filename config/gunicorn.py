"""gunicorn settings of the web role (bin/hoga-process web): WEB_CONCURRENCY uvicorn workers on one socket.

SIGHUP reloads gracefully (new workers start, old ones finish their requests), SIGTERM stops gracefully
within GRACEFUL_TIMEOUT seconds, SIGTTIN / SIGTTOU add or remove a worker.
"""

import logging
import os
import socket
import time

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


def _balance_connections() -> bool:
    """WEB_BALANCE_CONNECTIONS (default on where SO_REUSEPORT exists): every worker also listens on a socket of
    its own in one SO_REUSEPORT group with the shared one, so the kernel spreads new connections over the workers
    by their address hash. On the shared socket alone, the worker whose loop is awake when a burst of browsers
    or API clients connects accepts nearly all of them and keeps them (keep-alive): bench/orders.py saw one of
    two workers take two thirds of the load."""
    wanted = os.environ.get("WEB_BALANCE_CONNECTIONS", "true").strip().lower() not in ("0", "false", "no", "off")
    return wanted and hasattr(socket, "SO_REUSEPORT")


reuse_port = _balance_connections()
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


def on_starting(server):
    """With SO_REUSEPORT a second server of the same user could bind a port in use without an error and take a
    share of its connections: refuse to start when something already answers on the address."""
    if not reuse_port:
        return
    for address in server.cfg.address:
        if not isinstance(address, tuple):
            continue
        host, port = address
        probe = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
        for attempt in range(6):  # a server still stopping gets the time gunicorn's own bind retries give it
            try:
                with socket.create_connection((probe, port), timeout=0.5):
                    pass
            except OSError:
                break
            if attempt == 5:
                raise SystemExit(f"hoga-web: {host}:{port} is in use by another server; stop it or set HOGA_PORT")
            server.log.warning("%s:%s answers already; waiting for it to stop", host, port)
            time.sleep(1)


def _own_listener(worker) -> None:
    """A listening socket of this worker's own in the shared socket's SO_REUSEPORT group (``_balance_connections``):
    the worker accepts on both."""
    if not reuse_port or worker.cfg.workers < 2:
        return
    for shared in list(worker.sockets):
        if shared.FAMILY not in (socket.AF_INET, socket.AF_INET6):
            continue
        own = socket.socket(shared.FAMILY, socket.SOCK_STREAM)
        try:
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            own.bind(shared.getsockname())
            own.listen(worker.cfg.backlog)
            own.setblocking(False)
        except OSError as exc:
            own.close()
            worker.log.warning("worker %s listens on the shared socket only: %s", worker.pid, exc)
            continue
        worker.sockets.append(own)


def post_worker_init(worker):
    """A listening socket of the worker's own (``_own_listener``); the garbage collector's settings
    (apps/core/gc_tuning.py, ``GC_GEN0_THRESHOLD``); HOGA_TRACEMALLOC_DIR: allocation growth
    reports of each web worker, for soak runs (apps/core/memtrace.py)."""
    _own_listener(worker)
    from django.urls import get_resolver

    from apps.core.gc_tuning import tune_after_startup
    from apps.core.memtrace import start_from_environment

    _ = get_resolver().url_patterns  # they load with the first request otherwise: loaded before the freeze
    tune_after_startup()
    start_from_environment()
