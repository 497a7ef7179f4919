"""Broker services: the database-backed token store and the factories for configured KIS and Kiwoom clients.

The broker clients (``apps.brokers``) never touch the ORM; this module is where the ORM
meets them. Tokens are encrypted at rest with AES-256-GCM (``cryptography``) under a key derived
from SECRET_KEY with HKDF-SHA256; the (app key hash, env) pair is bound as associated data, so a
ciphertext copied to another row does not decrypt. Changing SECRET_KEY makes stored tokens
unreadable, which only costs one re-issuance.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import logging
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction

from apps.brokers.base import AccessToken
from apps.brokers.kis.client import AsyncKisClient, SyncKisClient
from apps.brokers.kis.config import DEFAULT_RATE_LIMITS, KisConfig
from apps.brokers.kiwoom.client import AsyncKiwoomClient, SyncKiwoomClient
from apps.brokers.kiwoom.config import KiwoomConfig
from apps.brokers.metrics import read_metrics
from apps.brokers.tokens import Issuer, Usable
from apps.core.demo_credentials import demo_credentials
from apps.core.redis import get_redis

from .models import BrokerToken

logger = logging.getLogger(__name__)

_CIPHER_VERSION = "v1"
_LOCK_NOT_AVAILABLE = "55P03"


@functools.cache
def _cipher(secret_key: str) -> AESGCM:
    if not secret_key:
        raise RuntimeError("SECRET_KEY is empty: broker tokens cannot be encrypted")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"hoga.marketdata.BrokerToken.v1").derive(
        secret_key.encode()
    )
    return AESGCM(key)


def encrypt_token(token: str, *, key_hash: str, env: str) -> str:
    """``v1:<base64(nonce || ciphertext+tag)>``; a fresh 96-bit nonce per encryption."""
    nonce = os.urandom(12)
    sealed = _cipher(settings.SECRET_KEY).encrypt(nonce, token.encode(), f"{key_hash}:{env}".encode())
    return f"{_CIPHER_VERSION}:{base64.b64encode(nonce + sealed).decode()}"


def decrypt_token(blob: str, *, key_hash: str, env: str) -> str | None:
    """The token, or None when ``blob`` is empty or cannot be decrypted (e.g. SECRET_KEY changed)."""
    if not blob:
        return None
    version, _, payload = blob.partition(":")
    if version != _CIPHER_VERSION:
        return None
    try:
        raw = base64.b64decode(payload)
        return _cipher(settings.SECRET_KEY).decrypt(raw[:12], raw[12:], f"{key_hash}:{env}".encode()).decode()
    except (InvalidTag, ValueError):
        return None


class DatabaseTokenStore:
    """TokenStore on the ``BrokerToken`` table (see ``apps.brokers.tokens`` for the contract).

    Cross-process lock: ``SELECT ... FOR UPDATE`` on the (app key hash, env) row, inside a transaction
    whose ``lock_timeout`` bounds the wait. The tokenP request runs while the row is locked, so every
    other process (on any machine using this database) waits and then reads the new token.
    """

    def load(self, key_hash: str, env: str) -> AccessToken | None:
        try:
            row = BrokerToken.objects.filter(app_key_hash=key_hash, env=env).first()
            return self._decode(row) if row is not None else None
        finally:
            _release_connection()

    def obtain(
        self,
        key_hash: str,
        env: str,
        *,
        issue: Issuer,
        usable: Usable,
        rejected: str | None,
        lock_timeout: float,
    ) -> tuple[AccessToken, bool]:
        self._ensure_row(key_hash, env)
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT set_config('lock_timeout', %s, true)", [f"{max(1, round(lock_timeout * 1000))}ms"]
                    )
                row = BrokerToken.objects.select_for_update().get(app_key_hash=key_hash, env=env)
                current = self._decode(row)
                if current is not None and current.token != rejected and usable(current):
                    return current, False
                fresh = issue(row.last_issued_at)
                row.token_encrypted = encrypt_token(fresh.token, key_hash=key_hash, env=env)
                row.expires_at = fresh.expires_at
                row.issued_at = fresh.issued_at
                row.last_issued_at = fresh.issued_at
                row.issue_count += 1
                row.save(
                    update_fields=[
                        "token_encrypted",
                        "expires_at",
                        "issued_at",
                        "last_issued_at",
                        "issue_count",
                        "updated_at",
                    ]
                )
                return fresh, True
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                raise TimeoutError(f"broker token lock not acquired within {lock_timeout:.0f}s") from exc
            raise
        finally:
            _release_connection()

    @staticmethod
    def _ensure_row(key_hash: str, env: str) -> None:
        if BrokerToken.objects.filter(app_key_hash=key_hash, env=env).exists():
            return
        try:
            with transaction.atomic():
                BrokerToken.objects.create(app_key_hash=key_hash, env=env)
        except IntegrityError:
            pass  # another process created it first

    @staticmethod
    def _decode(row: BrokerToken) -> AccessToken | None:
        if not row.token_encrypted or row.expires_at is None or row.issued_at is None:
            return None
        token = decrypt_token(row.token_encrypted, key_hash=row.app_key_hash, env=row.env)
        if token is None:
            logger.warning("broker token undecryptable", extra={"key_id": row.app_key_hash[:12], "env": row.env})
            return None
        return AccessToken(token=token, expires_at=row.expires_at, issued_at=row.issued_at)


def _release_connection() -> None:
    """Close this thread's connection unless a transaction is open.

    The async client calls the store from short-lived worker threads (``asyncio.to_thread``); their
    connections would otherwise stay open until the thread dies. Store calls are rare (process start,
    token renewal), so reconnecting is cheap.
    """
    if not connection.in_atomic_block:
        connection.close()


def kis_config() -> KisConfig:
    """The KIS configuration from settings (MARKET_BROKER, KIS_*, SANDBOX_*)."""
    return KisConfig.from_settings()


def kis_bulk_config() -> KisConfig:
    """The configuration of the start-up fill and the daily holiday query.

    With ``MARKET_BROKER=kis`` it is :func:`kis_config` (your keys, at your key's limit). With the sandbox it
    is the sandbox listener named by ``SANDBOX_BULK_ENV`` (default ``real``: its demo real key, 20 req/s
    instead of paper's 2, and KIS offers the holiday query to real accounts only); both listeners replay the
    same market, so only the speed differs.
    """
    config = kis_config()
    env = str(getattr(settings, "SANDBOX_BULK_ENV", "") or config.env).strip().lower()
    if settings.MARKET_BROKER != "sandbox" or env == config.env:
        return config

    key, secret = demo_credentials(env)
    port_env = env.upper()
    host = settings.SANDBOX_CONNECT_HOST
    return config.with_overrides(
        env=env,
        rest_url=f"http://{host}:{getattr(settings, f'SANDBOX_{port_env}_REST_PORT')}",
        ws_url=f"ws://{host}:{getattr(settings, f'SANDBOX_{port_env}_WS_PORT')}",
        app_key=key,
        app_secret=secret,
        rate_limit=float(getattr(settings, f"KIS_{port_env}_RATE_LIMIT", 0) or DEFAULT_RATE_LIMITS[env]),
    )


def kis_client_async(config: KisConfig | None = None, **kwargs: Any) -> AsyncKisClient:
    """An AsyncKisClient wired to the database token store and REDIS_URL (one per event loop)."""
    return AsyncKisClient(
        config or kis_config(), token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL, **kwargs
    )


def kis_client_sync(config: KisConfig | None = None, **kwargs: Any) -> SyncKisClient:
    """A SyncKisClient (Celery tasks) wired like :func:`kis_client_async` (one per thread)."""
    return SyncKisClient(
        config or kis_config(), token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL, **kwargs
    )


def kiwoom_config() -> KiwoomConfig:
    """The Kiwoom configuration from settings (MARKET_BROKER, KIWOOM_*, SANDBOX_KIWOOM_*)."""
    return KiwoomConfig.from_settings()


def kiwoom_client_async(config: KiwoomConfig | None = None, **kwargs: Any) -> AsyncKiwoomClient:
    """An AsyncKiwoomClient on the database token store (rows keyed as ``KiwoomConfig`` documents) and REDIS_URL."""
    return AsyncKiwoomClient(
        config or kiwoom_config(), token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL, **kwargs
    )


def kiwoom_client_sync(config: KiwoomConfig | None = None, **kwargs: Any) -> SyncKiwoomClient:
    """A SyncKiwoomClient (Celery tasks) wired like :func:`kiwoom_client_async` (one per thread)."""
    return SyncKiwoomClient(
        config or kiwoom_config(), token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL, **kwargs
    )


def broker_metrics(config: KisConfig | None = None) -> dict[str, Any]:
    """Counters and breaker state of the configured app key (read from Redis)."""

    cfg = config or kis_config()
    return {
        "broker": "kis",
        "env": cfg.env,
        "key_id": cfg.key_id,
        "rate_limit_per_s": cfg.rate_limit,
        "read_at": dt.datetime.now(dt.UTC).isoformat(),
        **read_metrics(get_redis(), prefix=cfg.redis_prefix, scope=cfg.scope),
    }
