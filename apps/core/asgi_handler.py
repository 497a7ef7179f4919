"""The web workers' HTTP handler: Django's ASGI handler with the request served start to end in a thread pool.

Django's own ``ASGIHandler`` runs a sync view and each sync-capable middleware through ``sync_to_async``: a
request makes a dozen hops between the event loop and a thread started for it (asgiref's per-request
``ThreadSensitiveContext``), and the loop blocks while that thread is joined at the end. Every Hoga view and
middleware is synchronous, so this handler builds the middleware chain in sync mode (as under WSGI) and runs
``request_started``, the chain and the view, and ``response.close()`` (``request_finished``; a streaming
response's after it was sent) in one thread of a fixed pool, one hop there and back per request. The loop only
reads the body and writes the response.

``WEB_THREADS`` threads per process (default 10; at most ``DB_POOL_MAX_SIZE`` when the database pool is on, so
no thread waits for a connection; 0 serves HTTP with Django's own ASGI handler instead) serve requests
concurrently: one request's wait for PostgreSQL or Redis is another's CPU time. Database connections are per
thread, opened on demand and handed back (to the pool, or closed) by ``request_finished`` in the same thread,
as under a threaded WSGI server. A view that calls ``async_to_sync`` (a Channels group send) runs that
coroutine on the worker's event loop, as before.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.core import signals
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.db import close_old_connections
from django.http import FileResponse
from django.urls import set_script_prefix

DEFAULT_THREADS = 10  # DB_POOL_MAX_SIZE's default: as many requests at once as Django's handler had


def web_threads() -> int:
    """Threads per web process: ``WEB_THREADS``, capped by the database pool's size when it is on; 0: Django's
    own handler."""
    raw = os.environ.get("WEB_THREADS", "").strip()
    wanted = int(raw) if raw.isdigit() else DEFAULT_THREADS
    if wanted == 0:
        return 0
    pool = int(os.environ.get("DB_POOL_MAX_SIZE") or 10)
    return max(1, min(wanted, pool) if pool > 0 else wanted)


class PooledASGIHandler(ASGIHandler):
    """HTTP through Django with the sync middleware chain and view in a fixed thread pool (see the module)."""

    def __init__(self, threads: int | None = None) -> None:
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self.threads = threads or web_threads() or DEFAULT_THREADS
        self.executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="hoga-http")

    def _in_pool(self, func: Any) -> Any:
        return sync_to_async(func, thread_sensitive=False, executor=self.executor)

    def _respond(self, scope: dict[str, Any], body_file: Any) -> Any:
        """In a pool thread: the request's signals, its middleware chain and view; (response, closed)."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        response = error_response if request is None else self.get_response(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        if response.streaming:  # iterated on the loop's side: this thread's connections go back now
            close_old_connections()
        else:  # its content is bytes already: request_finished here saves a second hop to the pool
            response.close()
        return response

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from django.core.handlers.asgi import RequestAborted

        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        try:
            response = await self._in_pool(self._respond)(scope, body_file)
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:  # its iterator may have used a thread of its own: close there
                    await sync_to_async(response.close)()
        finally:
            body_file.close()


def pooled_asgi_application() -> ASGIHandler:
    """What ``django.core.asgi.get_asgi_application`` does, with :class:`PooledASGIHandler` (Django's own handler
    when ``WEB_THREADS`` is 0)."""
    import django

    django.setup(set_prefix=False)
    threads = web_threads()
    return PooledASGIHandler(threads) if threads else ASGIHandler()
