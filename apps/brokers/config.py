"""What every broker config shares: the key hash and id, the scope of shared limits, the token environment,
the common validation and the sandbox defaults.

:class:`BrokerConfig` is a slot-less mixin of the frozen dataclasses
:class:`~apps.brokers.kis.config.KisConfig` and :class:`~apps.brokers.kiwoom.config.KiwoomConfig`; each
declares its own fields (the secrets excluded from ``repr``) and says how its key is hashed and its scope
named. Configs are built from Django settings in one place (``from_settings``); the clients never read
settings. Sandbox demo keys are passed in by the caller (``apps.core.demo_credentials``).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any, ClassVar, Self


class ImproperlyConfiguredBroker(ValueError):
    """The broker settings are inconsistent (unknown env, missing keys for a real broker, ...)."""


def app_key_hash(app_key: str, *, namespace: str = "") -> str:
    """sha256 hex of ``namespace + app key``: the only form of the key that is stored as an id or logged."""
    return hashlib.sha256(f"{namespace}{app_key}".encode()).hexdigest()


class BrokerConfig:
    """Mixin of a broker's frozen config dataclass (which provides the fields named below)."""

    __slots__ = ()

    #: ``<broker>`` as logged; the prefix of the key hash (empty for KIS: its keys hash plainly) and of the scope.
    broker: ClassVar[str]
    key_namespace: ClassVar[str] = ""
    scope_prefix: ClassVar[str] = ""
    #: The environment variable named in errors (``KIS_ENV``, ``KIWOOM_ENV``) and the environments it allows.
    env_setting: ClassVar[str]
    envs: ClassVar[tuple[str, ...]]

    env: str
    rest_url: str
    ws_url: str
    app_key: str
    rate_limit: float
    rate_burst: int
    rate_max_wait: float
    timeout: float
    max_retries: int
    backoff_base: float
    backoff_max: float
    breaker_threshold: int
    breaker_open_seconds: float
    token_refresh_margin: float
    token_lock_timeout: float
    redis_prefix: str

    def validate(self, secret: str) -> None:
        """The invariants every broker config keeps (called from ``__post_init__``)."""
        if self.env not in self.envs:
            raise ImproperlyConfiguredBroker(f"{self.env_setting} must be one of {self.envs}, got {self.env!r}")
        if not self.app_key or not secret:
            raise ImproperlyConfiguredBroker(f"{self.broker_name} app key and secret are required")
        if self.rate_limit <= 0 or self.rate_burst < 1 or self.rate_max_wait <= 0:
            raise ImproperlyConfiguredBroker("rate limit must be > 0, burst >= 1, max wait > 0")
        if not 0 <= self.max_retries <= 3:
            raise ImproperlyConfiguredBroker("max_retries must be between 0 and 3")
        if self.breaker_threshold < 1 or self.breaker_open_seconds <= 0:
            raise ImproperlyConfiguredBroker("breaker threshold must be >= 1 and open seconds > 0")
        if self.timeout <= 0 or self.token_lock_timeout <= 0:
            raise ImproperlyConfiguredBroker("timeouts must be > 0")

    @property
    def broker_name(self) -> str:
        return "KIS" if self.broker == "kis" else self.broker.capitalize()

    @property
    def key_hash(self) -> str:
        """sha256 hex of the app key (ids in Redis and the database)."""
        return app_key_hash(self.app_key, namespace=self.key_namespace)

    @property
    def key_id(self) -> str:
        """Short, loggable id of the app key (the first 12 hex digits of its hash)."""
        return self.key_hash[:12]

    @property
    def token_env(self) -> str:
        """The environment column of the token row: ``real`` or ``paper`` (Kiwoom's mock is stored as paper)."""
        return "real" if self.env == "real" else "paper"

    @property
    def scope(self) -> str:
        """``<prefix><env>:<key hash>``: the unit every shared limit, breaker, counter and feed lease applies to."""
        return f"{self.scope_prefix}{self.env}:{self.key_hash}"

    def with_overrides(self, **changes: Any) -> Self:
        return replace(self, **changes)  # type: ignore[type-var]


def sandbox_urls(host: str, rest_port: int, ws_port: int, ws_path: str = "") -> dict[str, str]:
    """The plain http/ws URLs of a local sandbox broker."""
    return {"rest_url": f"http://{host}:{rest_port}", "ws_url": f"ws://{host}:{ws_port}{ws_path}"}
