import pytest

from apps.core import health
from apps.core.redis import get_redis


@pytest.fixture
def fresh_redis_client():
    get_redis.cache_clear()
    yield
    get_redis.cache_clear()


def test_healthz_reports_every_component_and_503_without_workers(client, db, clean_redis, settings):
    settings.HEALTH_REQUIRED = ["postgres", "redis", "queue:default", "queue:feed", "beat"]

    response = client.get("/healthz")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unhealthy"
    assert body["components"]["postgres"]["status"] == "ok"
    assert body["components"]["redis"]["status"] == "ok"
    # No worker and no beat run in this unit test: they are named as failing.
    assert body["failing"] == ["queue:default", "queue:feed", "beat"]
    assert body["components"]["queue:default"] == {"status": "down", "workers": []}
    assert body["components"]["beat"] == {"status": "down", "error": "beat has never ticked"}
    assert body["components"]["feed"]["status"] == "unknown"


def test_healthz_200_when_required_parts_are_up(client, db, clean_redis, settings):
    settings.HEALTH_REQUIRED = ["postgres", "redis", "beat"]
    import time

    clean_redis.set(health.BEAT_HEARTBEAT_KEY, f"{time.time():.3f}")

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["failing"] == []


def test_stale_beat_heartbeat_is_down(db, clean_redis, settings):
    settings.HEALTH_BEAT_MAX_AGE = 30
    import time

    clean_redis.set(health.BEAT_HEARTBEAT_KEY, f"{time.time() - 31:.3f}")

    state = health.check_beat()

    assert state["status"] == "down"
    assert state["last_tick_age_s"] >= 31


def test_healthz_names_redis_when_it_is_unreachable(client, db, settings, fresh_redis_client):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    settings.HEALTH_REQUIRED = ["postgres", "redis"]

    response = client.get("/healthz")

    body = response.json()
    assert response.status_code == 503
    assert body["failing"] == ["redis"]
    assert body["components"]["redis"]["status"] == "down"
    assert "ConnectionError" in body["components"]["redis"]["error"]
    assert body["components"]["queue:feed"] == {"status": "unknown", "error": "redis is down"}


def test_healthz_rejects_other_methods(client, db):
    assert client.post("/healthz").status_code == 405
