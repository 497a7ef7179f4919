"""Kiwoom client configuration: a frozen dataclass, built from Django settings in one place.

The client never reads settings itself: :meth:`KiwoomConfig.from_settings` is the only bridge, so tests
build configs directly (:meth:`KiwoomConfig.for_sandbox`).

Token storage: Kiwoom tokens share the broker token table with KIS. Rows are keyed by
``sha256("kiwoom:" + app key)`` (never equal to a KIS key's plain sha256) and the environment ``real`` or
``paper`` (Kiwoom's 모의투자 "mock" is stored as ``paper``), so no schema change is needed and a KIS and a
Kiwoom key can never share a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from apps.core.demo_credentials import kiwoom_demo_credentials

from ..config import BrokerConfig, ImproperlyConfiguredBroker, app_key_hash, sandbox_urls

ENVS: tuple[str, str] = ("real", "mock")

#: Documented hosts (kiwoom-api.md §A1).
KIWOOM_REST_URLS: dict[str, str] = {"real": "https://api.kiwoom.com", "mock": "https://mockapi.kiwoom.com"}
KIWOOM_WS_URLS: dict[str, str] = {
    "real": "wss://api.kiwoom.com:10000/api/dostk/websocket",
    "mock": "wss://mockapi.kiwoom.com:10000/api/dostk/websocket",
}
WS_PATH = "/api/dostk/websocket"
#: "조회 초당 5건" (§A5, UNCONFIRMED): the default stays 10% below.
DEFAULT_RATE_LIMIT = 4.5
#: Stocks per WebSocket connection: UNCONFIRMED (§A6 "max count UNCONFIRMED"), hence a setting.
DEFAULT_WS_MAX_STOCKS = 100
KEY_NAMESPACE = "kiwoom:"


def kiwoom_key_hash(app_key: str) -> str:
    """The id of a Kiwoom app key in Redis and the token table: sha256 of ``"kiwoom:" + app key``."""
    return app_key_hash(app_key, namespace=KEY_NAMESPACE)


@dataclass(frozen=True, slots=True)
class KiwoomConfig(BrokerConfig):
    """Everything a Kiwoom client needs; immutable.

    Invariants: ``env`` is "real" or "mock"; ``rate_limit`` > 0; ``0 <= max_retries <= 3``;
    ``app_key`` / ``secret_key`` are secrets and excluded from ``repr``.
    """

    broker: ClassVar[str] = "kiwoom"
    key_namespace: ClassVar[str] = KEY_NAMESPACE
    scope_prefix: ClassVar[str] = "kiwoom-"
    env_setting: ClassVar[str] = "KIWOOM_ENV"
    envs: ClassVar[tuple[str, ...]] = ENVS

    env: str
    rest_url: str
    ws_url: str
    app_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    #: Queries per second for this app key, shared by every process (Redis limiter).
    rate_limit: float = DEFAULT_RATE_LIMIT
    rate_burst: int = 1
    rate_max_wait: float = 30.0
    timeout: float = 10.0
    max_retries: int = 3
    backoff_base: float = 0.25
    backoff_max: float = 8.0
    breaker_threshold: int = 5
    breaker_open_seconds: float = 60.0
    #: Tokens are renewed this long before ``expires_dt`` (the official client: 10 minutes).
    token_refresh_margin: float = 600.0
    token_lock_timeout: float = 90.0
    #: Pages a paged TR may take (the official samples stop at 10; long ranges need more).
    max_pages: int = 50
    #: Stocks registered on one WebSocket connection (UNCONFIRMED at Kiwoom).
    ws_max_stocks: int = DEFAULT_WS_MAX_STOCKS
    #: ``stex_tp`` of real-time condition searches: K = KRX, N = NXT, A = 통합.
    condition_exchange: str = "K"
    redis_prefix: str = "hoga:broker"

    def __post_init__(self) -> None:
        self.validate(self.secret_key)
        if self.max_pages < 1 or self.ws_max_stocks < 1:
            raise ImproperlyConfiguredBroker("max_pages and ws_max_stocks must be > 0")

    @classmethod
    def for_sandbox(
        cls,
        *,
        env: str = "mock",
        host: str = "127.0.0.1",
        rest_port: int,
        ws_port: int = 0,
        app_key: str = "",
        secret_key: str = "",
        **overrides: Any,
    ) -> KiwoomConfig:
        """A config for the local sandbox (plain http/ws) with its Kiwoom demo pair of ``env`` by default."""
        if not app_key:
            app_key, secret_key = kiwoom_demo_credentials(env)
        values: dict[str, Any] = {
            "env": env,
            **sandbox_urls(host, rest_port, ws_port, WS_PATH),
            "app_key": app_key,
            "secret_key": secret_key,
        }
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_settings(cls, settings: Any = None) -> KiwoomConfig:
        """Build from Django settings (the only place they are read).

        ``MARKET_BROKER=sandbox``: the sandbox at SANDBOX_CONNECT_HOST, SANDBOX_KIWOOM_REST_PORT and
        SANDBOX_KIWOOM_WS_PORT, with KIWOOM_APP_KEY/SECRET_KEY when set, else the demo pair of KIWOOM_ENV.
        ``MARKET_BROKER=kis`` (real brokers): the documented hosts (or KIWOOM_REST_URL/KIWOOM_WS_URL), keys required.
        """
        if settings is None:
            from django.conf import settings as django_settings

            settings = django_settings
        env = str(settings.KIWOOM_ENV).strip().lower()
        if env not in ENVS:
            raise ImproperlyConfiguredBroker(f"KIWOOM_ENV must be one of {ENVS}, got {env!r}")
        broker = str(settings.MARKET_BROKER).strip().lower()
        common: dict[str, Any] = {
            "rate_limit": float(settings.KIWOOM_RATE_LIMIT),
            "timeout": float(getattr(settings, "KIS_TIMEOUT", 10.0)),
            "max_retries": int(getattr(settings, "KIS_MAX_RETRIES", 3)),
            "backoff_base": float(getattr(settings, "KIS_BACKOFF_BASE", 0.25)),
            "backoff_max": float(getattr(settings, "KIS_BACKOFF_MAX", 8.0)),
            "breaker_threshold": int(getattr(settings, "KIS_BREAKER_THRESHOLD", 5)),
            "breaker_open_seconds": float(getattr(settings, "KIS_BREAKER_OPEN_SECONDS", 60.0)),
            "ws_max_stocks": int(settings.KIWOOM_WS_MAX_STOCKS),
        }
        app_key, secret_key = str(settings.KIWOOM_APP_KEY), str(settings.KIWOOM_SECRET_KEY)
        if broker == "sandbox":
            return cls.for_sandbox(
                env=env,
                host=str(settings.SANDBOX_CONNECT_HOST),
                rest_port=int(settings.SANDBOX_KIWOOM_REST_PORT),
                ws_port=int(settings.SANDBOX_KIWOOM_WS_PORT),
                app_key=app_key,
                secret_key=secret_key if app_key else "",
                **common,
            )
        if broker != "kis":
            raise ImproperlyConfiguredBroker(f"MARKET_BROKER must be 'sandbox' or 'kis', got {broker!r}")
        if not app_key or not secret_key:
            raise ImproperlyConfiguredBroker("real brokers need KIWOOM_APP_KEY and KIWOOM_SECRET_KEY")
        return cls(
            env=env,
            rest_url=str(settings.KIWOOM_REST_URL or KIWOOM_REST_URLS[env]).rstrip("/"),
            ws_url=str(settings.KIWOOM_WS_URL or KIWOOM_WS_URLS[env]),
            app_key=app_key,
            secret_key=secret_key,
            **common,
        )
