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


def test_market_data_part_waits_for_the_start_up_fill(client, db, clean_redis, settings):
    import json

    from apps.marketdata.models import CollectionRun
    from apps.marketdata.tasks import BOOTSTRAP_STATE_KEY

    settings.HEALTH_REQUIRED = ["postgres", "redis", "market_data"]
    settings.MARKETDATA_BOOTSTRAP = True

    waiting = client.get("/healthz")
    assert waiting.status_code == 503 and waiting.json()["failing"] == ["market_data"]
    assert waiting.json()["components"]["market_data"] == {
        "status": "down", "detail": "waiting for a default-queue worker to start the fill",
    }  # fmt: skip

    progress = {"state": "running", "phase": "daily", "done": 20, "total": 50, "elapsed_s": 1.5}
    clean_redis.set(BOOTSTRAP_STATE_KEY, json.dumps(progress))
    running = client.get("/healthz").json()["components"]["market_data"]
    assert running == {"status": "down", "detail": "the start-up fill has not finished", "fill": progress}

    # A failed fill does not count; a partial one (some stocks failed, base prices cover them) does.
    CollectionRun.objects.create(job="bootstrap", status=CollectionRun.Status.FAILED)
    assert client.get("/healthz").status_code == 503
    CollectionRun.objects.create(job="bootstrap", status=CollectionRun.Status.PARTIAL)
    done = client.get("/healthz")
    assert done.status_code == 200 and done.json()["components"]["market_data"]["status"] == "ok"


def test_market_data_part_is_ok_when_the_fill_is_off(client, db, clean_redis, settings):
    settings.HEALTH_REQUIRED = ["postgres", "redis", "market_data"]
    settings.MARKETDATA_BOOTSTRAP = False

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["components"]["market_data"]["detail"] == "no start-up fill (MARKETDATA_BOOTSTRAP=false)"
