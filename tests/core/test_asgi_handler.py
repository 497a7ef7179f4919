"""The web workers' HTTP handler: each request's middleware chain and view in one thread of a fixed pool."""

import threading

import pytest
from channels.testing import HttpCommunicator
from django.db import connection, connections
from django.http import HttpResponse, JsonResponse
from django.urls import path

SEEN: dict[str, object] = {}
BOTH_INSIDE = threading.Barrier(2, timeout=10)


def where(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        (one,) = cursor.fetchone()
    SEEN["thread"] = threading.current_thread().name
    return JsonResponse({"thread": threading.current_thread().name, "one": one, "user": str(request.user)})


def meet(request):
    BOTH_INSIDE.wait()  # returns only when another request is inside a view at the same time
    return HttpResponse(threading.current_thread().name)


def broken(request):
    raise RuntimeError("boom")


urlpatterns = [path("where", where), path("meet", meet), path("broken", broken)]


@pytest.fixture
def handler(settings):
    from apps.core.asgi_handler import PooledASGIHandler

    settings.ROOT_URLCONF = __name__
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.SECURE_SSL_REDIRECT = False
    app = PooledASGIHandler(threads=2)
    yield app
    done = threading.Barrier(2, timeout=10)

    def close() -> None:  # once in each of the two threads: the test database can then be dropped
        done.wait()
        connections.close_all()

    futures = [app.executor.submit(close) for _ in range(2)]
    for future in futures:
        future.result()
    app.executor.shutdown()


def _get(app, url: str) -> HttpCommunicator:
    return HttpCommunicator(app, "GET", url, headers=[(b"host", b"testserver")])


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_request_runs_its_middleware_and_view_in_a_pool_thread_with_a_database(handler):
    response = await _get(handler, "/where").get_response(timeout=10)

    assert response["status"] == 200
    assert b'"one": 1' in response["body"] and b"AnonymousUser" in response["body"]  # the whole chain ran
    assert str(SEEN["thread"]).startswith("hoga-http")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_two_requests_are_served_at_the_same_time():
    import asyncio

    from django.test import override_settings

    from apps.core.asgi_handler import PooledASGIHandler

    BOTH_INSIDE.reset()
    with override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"], SECURE_SSL_REDIRECT=False):
        app = PooledASGIHandler(threads=2)
        try:
            first, second = await asyncio.gather(
                _get(app, "/meet").get_response(timeout=10), _get(app, "/meet").get_response(timeout=10)
            )
        finally:
            app.executor.shutdown()

    assert first["status"] == second["status"] == 200
    assert first["body"] != second["body"]  # two threads of the pool


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_failing_view_answers_500_and_the_thread_serves_the_next_request(handler, settings):
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False

    failed = await _get(handler, "/broken").get_response(timeout=10)
    missing = await _get(handler, "/nowhere").get_response(timeout=10)
    fine = await _get(handler, "/where").get_response(timeout=10)

    assert failed["status"] == 500
    assert missing["status"] == 404
    assert fine["status"] == 200


def test_the_thread_count_follows_web_threads_within_the_database_pool(monkeypatch):
    from apps.core.asgi_handler import web_threads

    monkeypatch.setenv("WEB_THREADS", "6")
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "10")
    assert web_threads() == 6
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "3")
    assert web_threads() == 3  # never more threads than pooled connections
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "0")
    assert web_threads() == 6
    monkeypatch.delenv("WEB_THREADS")
    assert web_threads() == 10
    monkeypatch.setenv("WEB_THREADS", "many")
    assert web_threads() == 10
    monkeypatch.setenv("WEB_THREADS", "0")
    assert web_threads() == 0  # Django's own handler
