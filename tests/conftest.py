"""Shared fixtures. Tests run against the real PostgreSQL and Redis named by DATABASE_URL / REDIS_URL
(set by `make test`: the CI services when reachable, else the embedded servers)."""

from __future__ import annotations

import pytest
import pytest_asyncio


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
