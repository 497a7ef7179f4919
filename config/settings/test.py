"""Tests: real PostgreSQL and real Redis (see tests/conftest.py), fast hashing, no debug."""

import os

# ``pytest -n N`` (pytest-xdist): pytest-django gives each worker its own test database (``test_<name>_gwN``);
# each worker gets its own Redis database too, N below REDIS_URL's (modulo 16), before any setting derives from
# it. Child processes a test starts inherit the worker's REDIS_URL and the marker, so they are not moved again.
_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _xdist_worker.startswith("gw") and not os.environ.get("HOGA_TEST_REDIS_PER_WORKER"):
    _head, _, _db = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15").rpartition("/")
    os.environ["REDIS_URL"] = f"{_head}/{(int(_db or 0) - int(_xdist_worker[2:])) % 16}"
    os.environ["HOGA_TEST_REDIS_PER_WORKER"] = "1"

from .base import *  # noqa: E402, F403
from .base import env  # noqa: E402

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY", default="hoga-test-secret-key")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Unit tests run tasks eagerly; integration tests start a real worker and switch this off.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
# Serve static files straight from the source folders (no collectstatic needed).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Channels' PubSub channels are server-wide (not per Redis database): give each test database its own
# prefix so test runs sharing one Redis server never hear each other's group messages.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": CHANNEL_REDIS_URLS, "prefix": "hogatest" + REDIS_URL.rsplit("/", 1)[-1]},  # noqa: F405
    }
}
