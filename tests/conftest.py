"""Shared fixtures. Tests run against the real PostgreSQL and Redis named by DATABASE_URL / REDIS_URL
(set by `make test`: the CI services when reachable, else the embedded servers)."""

from __future__ import annotations

import pytest
import pytest_asyncio


@pytest.fixture(autouse=True)
def _rate_windows_held_still(monkeypatch):
    """The rate limits count in fixed windows (``apps.core.ratelimits``): a test that sends N requests and expects
    the (limit+1)-th refused must not see a window end between them, which a loaded machine can make happen. The
    limits' clock stands at the test's start for its whole run."""
    import time
    from types import SimpleNamespace

    import apps.core.ratelimits as ratelimits

    start = time.time()
    monkeypatch.setattr(ratelimits, "time", SimpleNamespace(time=lambda: start))


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Every test starts and ends without the per-process caches (calendar, API tokens, stocks): each test's
    database is rolled back, which sends no signal that would clear them."""
    from apps.core.process_cache import clear_process_caches

    clear_process_caches()
    yield
    clear_process_caches()


@pytest.fixture(scope="session")
def redis_client():
    from apps.core.redis import get_redis

    client = get_redis()
    client.ping()
    return client


@pytest.fixture
def clean_redis(redis_client):
    """An empty Redis database for one test (tests use their own database number, never the app's)."""
    redis_client.flushdb()
    yield redis_client
    redis_client.flushdb()


@pytest.fixture
def user(db, django_user_model):
    return django_user_model.objects.create_user(username="trader", password="s3cret-pass")


@pytest.fixture
def api_client(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest_asyncio.fixture
async def async_db_cleanup():
    """Close the database connection that async tests open in asgiref's worker thread, so the test
    database can be dropped at the end of the session."""
    yield
    from channels.db import database_sync_to_async
    from django.db import connections

    await database_sync_to_async(connections.close_all)()


#: Folders whose tests share one expensive session- or package-scoped stack (a sandbox box, the browser stack):
#: under ``pytest -n N --dist loadgroup`` each runs on one worker, so the stack starts once.
SHARED_STACK_FOLDERS = ("tests/browser/", "tests/brokers/", "tests/live/feed/")


def pytest_collection_modifyitems(config, items):
    """Group tests for pytest-xdist's ``loadgroup``: a shared-stack folder is one group, any other module is its
    own group (module-scoped fixtures start once). Without xdist the marker does nothing."""
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        group = next((folder for folder in SHARED_STACK_FOLDERS if path.startswith(folder)), path)
        item.add_marker(pytest.mark.xdist_group(group))
