"""KIS client configuration: a frozen dataclass, built from Django settings in one place.

The client never reads settings itself: :func:`KisConfig.from_settings` is the only bridge, so
tests and benchmarks build configs directly (``KisConfig.for_sandbox(...)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from apps.core.demo_credentials import demo_credentials

from ..config import BrokerConfig, ImproperlyConfiguredBroker, app_key_hash, sandbox_urls

__all__ = ["ImproperlyConfiguredBroker", "KisConfig", "app_key_hash", "tr_id_for"]

ENVS: tuple[str, str] = ("real", "paper")

#: Documented KIS hosts (kis-api.md §1).
KIS_REST_URLS: dict[str, str] = {
    "real": "https://openapi.koreainvestment.com:9443",
    "paper": "https://openapivts.koreainvestment.com:29443",
}
KIS_WS_URLS: dict[str, str] = {
    "real": "ws://ops.koreainvestment.com:21000",
    "paper": "ws://ops.koreainvestment.com:31000",
}
#: Documented limits are 20/s real and 2/s paper (kis-api.md §4); the defaults stay 10% below.
DEFAULT_RATE_LIMITS: dict[str, float] = {"real": 18.0, "paper": 1.8}


@dataclass(frozen=True, slots=True)
class KisConfig(BrokerConfig):
    """Everything a KIS client needs; immutable.

    Invariants: ``env`` is "real" or "paper"; ``rate_limit`` > 0; ``0 <= max_retries <= 3``;
    ``app_key``/``app_secret`` are secrets and are excluded from ``repr``.
    """

    broker: ClassVar[str] = "kis"
    env_setting: ClassVar[str] = "KIS_ENV"
    envs: ClassVar[tuple[str, ...]] = ENVS

    env: str
    rest_url: str
    ws_url: str
    app_key: str = field(repr=False)
    app_secret: str = field(repr=False)
    #: Requests per second for this app key, shared by every process (Redis limiter).
    rate_limit: float = 1.8
    #: Calls that may go out back-to-back before spacing applies (1 = strictly spaced).
    rate_burst: int = 1
    #: Longest a caller waits for a limiter slot before BrokerRateLimited.
    rate_max_wait: float = 30.0
    #: Per-request HTTP timeout (connect/read/write/pool), seconds.
    timeout: float = 10.0
    max_retries: int = 3
    backoff_base: float = 0.25
    backoff_max: float = 8.0
    #: Consecutive failed calls that open the breaker, and how long it stays open.
    breaker_threshold: int = 5
    breaker_open_seconds: float = 60.0
    #: Tokens are reused until this long before ``access_token_token_expired``.
    token_refresh_margin: float = 3600.0
    #: KIS issues at most one token per minute per app key (EGW00133 otherwise).
    token_issue_interval: float = 60.0
    #: Longest a process waits for another process's issuance (the DB lock), seconds.
    token_lock_timeout: float = 90.0
    custtype: str = "P"
    #: Prefix of every Redis key (limiter, breaker, metrics).
    redis_prefix: str = "hoga:broker"

    def __post_init__(self) -> None:
        self.validate(self.app_secret)

    @classmethod
    def for_sandbox(
        cls,
        *,
        env: str = "paper",
        host: str = "127.0.0.1",
        rest_port: int,
        ws_port: int = 0,
        app_key: str = "",
        app_secret: str = "",
        **overrides: Any,
    ) -> KisConfig:
        """A config pointing at a local sandbox broker (plain http/ws) with its demo keys by default."""
        if not app_key:
            app_key, app_secret = demo_credentials(env)
        values: dict[str, Any] = {
            "env": env,
            **sandbox_urls(host, rest_port, ws_port),
            "app_key": app_key,
            "app_secret": app_secret,
            "rate_limit": DEFAULT_RATE_LIMITS.get(env, 1.8),
        }
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_settings(cls, settings: Any = None) -> KisConfig:
        """Build from Django settings (the only place they are read).

        ``MARKET_BROKER=sandbox``: the local sandbox at SANDBOX_CONNECT_HOST and the SANDBOX_<ENV>_{REST,WS}_PORT,
        with KIS_APP_KEY/SECRET when set (the sandbox accepts SANDBOX_APP_CREDENTIALS), else its demo keys.
        ``MARKET_BROKER=kis``: the documented KIS hosts (or KIS_REST_URL/KIS_WS_URL), keys required.
        """
        if settings is None:
            from django.conf import settings as django_settings

            settings = django_settings
        env = str(settings.KIS_ENV).strip().lower()
        if env not in ENVS:
            raise ImproperlyConfiguredBroker(f"KIS_ENV must be one of {ENVS}, got {env!r}")
        broker = str(settings.MARKET_BROKER).strip().lower()
        rate = float(getattr(settings, f"KIS_{env.upper()}_RATE_LIMIT", 0) or DEFAULT_RATE_LIMITS[env])
        common: dict[str, Any] = {
            "rate_limit": rate,
            "rate_burst": int(settings.KIS_RATE_BURST),
            "rate_max_wait": float(settings.KIS_RATE_MAX_WAIT),
            "timeout": float(settings.KIS_TIMEOUT),
            "max_retries": int(settings.KIS_MAX_RETRIES),
            "backoff_base": float(settings.KIS_BACKOFF_BASE),
            "backoff_max": float(settings.KIS_BACKOFF_MAX),
            "breaker_threshold": int(settings.KIS_BREAKER_THRESHOLD),
            "breaker_open_seconds": float(settings.KIS_BREAKER_OPEN_SECONDS),
            "token_refresh_margin": float(settings.KIS_TOKEN_REFRESH_MARGIN),
            "token_issue_interval": float(settings.KIS_TOKEN_ISSUE_INTERVAL),
            "token_lock_timeout": float(settings.KIS_TOKEN_LOCK_TIMEOUT),
            "custtype": str(settings.KIS_CUSTTYPE),
        }
        app_key, app_secret = str(settings.KIS_APP_KEY), str(settings.KIS_APP_SECRET)
        if broker == "sandbox":
            port_env = env.upper()
            return cls.for_sandbox(
                env=env,
                host=str(settings.SANDBOX_CONNECT_HOST),
                rest_port=int(getattr(settings, f"SANDBOX_{port_env}_REST_PORT")),
                ws_port=int(getattr(settings, f"SANDBOX_{port_env}_WS_PORT")),
                app_key=app_key,
                app_secret=app_secret if app_key else "",
                **common,
            )
        if broker != "kis":
            raise ImproperlyConfiguredBroker(f"MARKET_BROKER must be 'sandbox' or 'kis', got {broker!r}")
        if not app_key or not app_secret:
            raise ImproperlyConfiguredBroker("MARKET_BROKER=kis needs KIS_APP_KEY and KIS_APP_SECRET")
        return cls(
            env=env,
            rest_url=str(settings.KIS_REST_URL or KIS_REST_URLS[env]).rstrip("/"),
            ws_url=str(settings.KIS_WS_URL or KIS_WS_URLS[env]).rstrip("/"),
            app_key=app_key,
            app_secret=app_secret,
            **common,
        )


def tr_id_for(env: str, tr_id: str) -> str:
    """The tr_id to send in ``env`` (kis-api.md §3.1): in paper, a leading T/J/C becomes V.

    Quote tr_ids (``FHK…``, ``FHP…``) and anything else are unchanged in both environments.
    """
    if env == "paper" and tr_id[:1] in ("T", "J", "C"):
        return "V" + tr_id[1:]
    return tr_id
