"""App keys, access tokens, WS approval keys and per-app-key rate limits (kis-api.md §2, §4).

Token rules (times are REAL wall-clock time, not sim time, because clients compare the expiry with
their own clock):
- A token is valid for ``token_lifetime_s`` (86400 s); ``access_token_token_expired`` is its
  expiry in KST.
- Asking again while the app key's current token was issued less than ``token_reuse_s`` (6 h) ago
  and is still valid returns that SAME token with the same expiry. This is not an issuance, so it
  never counts against, nor is refused by, the 1-per-minute rule.
- Otherwise (no token, token older than 6 h, revoked or expired) a NEW token is issued, and a new
  issuance less than ``token_issue_interval_s`` (60 s) after the previous issuance for that app key
  is refused with EGW00133. E.g. revoke (or the expire-tokens fault) followed by a request within a
  minute gets EGW00133; the client must wait out the minute.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from apps.sandbox.clock import KST
from apps.sandbox.config import AppCredential, SandboxConfig


@dataclass(slots=True)
class IssuedToken:
    """One access token."""

    token: str
    appkey: str
    mode: str
    issued_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class AuthError(Exception):
    """A KIS gateway error: msg_cd, msg1 and the HTTP status to answer with."""

    msg_cd: str
    msg1: str
    status: int


MSG_EXPIRED = "기간이 만료된 token 입니다."
MSG_INVALID = "유효하지 않은 token 입니다."
MSG_BAD_APPKEY = "유효하지 않은 AppKey입니다."
MSG_BAD_SECRET = "유효하지 않은 AppSecret입니다."  # noqa: S105 - a message, not a secret
MSG_RATE = "초당 거래건수를 초과하였습니다."
#: msg1 exactly as in kis-api.md §2.1.
MSG_TOKEN_RATE = "접근토큰발급 잠시후 다시 시도하세요(1분당 1회)"  # noqa: S105 - a message, not a secret
#: error_description as captured from the real gateway in several public client tests.
DESC_TOKEN_RATE = "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)"  # noqa: S105 - a message, not a secret


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def format_kst(epoch: float) -> str:
    """'YYYY-MM-DD HH:MM:SS' in KST."""
    return dt.datetime.fromtimestamp(epoch, KST).strftime("%Y-%m-%d %H:%M:%S")


class RateBuckets:
    """Token buckets keyed by any hashable (app key, or app key and category): capacity max(1, rate),
    refilled at ``rate``/s. Shared by the KIS and Kiwoom listeners."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._buckets: dict[object, tuple[float, float]] = {}

    def take(self, key: object, rate: float) -> bool:
        """Consume one request for ``key``; False when the bucket is empty (over the limit)."""
        capacity = max(1.0, rate)
        now = self._monotonic()
        level, stamp = self._buckets.get(key, (capacity, now))
        level = min(capacity, level + (now - stamp) * rate)
        if level < 1.0:
            self._buckets[key] = (level, now)
            return False
        self._buckets[key] = (level - 1.0, now)
        return True


class Authority:
    """Credentials, tokens and approval keys for both modes; single event-loop thread only."""

    def __init__(self, config: SandboxConfig, wall: Callable[[], float] = time.time) -> None:
        self.config = config
        self._wall = wall
        self.credentials: dict[str, AppCredential] = {c.appkey: c for c in config.all_credentials()}
        self._tokens: dict[str, IssuedToken] = {}
        self._current: dict[str, IssuedToken] = {}
        self._last_issue: dict[str, float] = {}
        self._approval: dict[str, AppCredential] = {}
        self._rates = RateBuckets()
        self._signing_key = hashlib.sha256(f"hoga-sandbox-jwt:{config.seed}".encode()).digest()

    # --- credentials -------------------------------------------------------------------------------
    def check_app(self, appkey: str, appsecret: str, mode: str) -> AppCredential:
        """The credential for (appkey, appsecret) in ``mode``; AuthError EGW00103/EGW00105 otherwise."""
        cred = self.credentials.get(appkey)
        if cred is None or cred.mode != mode:
            raise AuthError("EGW00103", MSG_BAD_APPKEY, self.config.token_error_status)
        if not hmac.compare_digest(cred.appsecret, appsecret):
            raise AuthError("EGW00105", MSG_BAD_SECRET, self.config.token_error_status)
        return cred

    # --- tokens ------------------------------------------------------------------------------------
    def issue_token(self, appkey: str, appsecret: str, mode: str) -> tuple[IssuedToken, bool]:
        """(token, newly_issued) per the module's token rules; AuthError on refusal."""
        cred = self.check_app(appkey, appsecret, mode)
        now = self._wall()
        current = self._current.get(cred.appkey)
        if (
            current is not None
            and current.token in self._tokens
            and now < current.expires_at
            and now - current.issued_at < self.config.token_reuse_s
        ):
            return current, False
        last = self._last_issue.get(cred.appkey)
        if last is not None and now - last < self.config.token_issue_interval_s:
            raise AuthError("EGW00133", MSG_TOKEN_RATE, self.config.token_rate_status)
        token = IssuedToken(self._make_jwt(cred, now), cred.appkey, mode, now, now + self.config.token_lifetime_s)
        self._tokens[token.token] = token
        self._current[cred.appkey] = token
        self._last_issue[cred.appkey] = now
        return token, True

    def _make_jwt(self, cred: AppCredential, now: float) -> str:
        header = _b64url(json.dumps({"typ": "JWT", "alg": "HS512"}, separators=(",", ":")).encode())
        claims = {
            "sub": "tokenP",
            "iss": "unogw",
            "aud": str(uuid.uuid4()),
            "prdt_cd": "",
            "iat": int(now),
            "exp": int(now + self.config.token_lifetime_s),
            "jti": cred.appkey,
        }
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        sig = _b64url(hmac.new(self._signing_key, f"{header}.{payload}".encode(), hashlib.sha512).digest())
        return f"{header}.{payload}.{sig}"

    def revoke(self, appkey: str, appsecret: str, token: str, mode: str) -> bool:
        """Revoke ``token`` if it belongs to ``appkey``; True when something was revoked."""
        cred = self.check_app(appkey, appsecret, mode)
        held = self._tokens.get(token)
        if held is None or held.appkey != cred.appkey:
            return False
        del self._tokens[token]
        if self._current.get(cred.appkey) is held:
            del self._current[cred.appkey]
        return True

    def expire_all(self) -> int:
        """Fault: every live token expires now; returns how many were live."""
        now = self._wall()
        live = 0
        for tok in self._tokens.values():
            if tok.expires_at > now:
                live += 1
                tok.expires_at = now
        return live

    def check_request(self, authorization: str, appkey: str, appsecret: str, mode: str) -> AppCredential:
        """Validate a data call's auth headers (order: app key, secret, token, expiry)."""
        cred = self.check_app(appkey, appsecret, mode)
        scheme, _, raw = authorization.strip().partition(" ")
        held = self._tokens.get(raw.strip()) if scheme.lower() == "bearer" else None
        if held is None or held.appkey != cred.appkey:
            raise AuthError("EGW00121", MSG_INVALID, self.config.token_error_status)
        if self._wall() >= held.expires_at:
            raise AuthError("EGW00123", MSG_EXPIRED, self.config.token_error_status)
        return cred

    # --- rate limit --------------------------------------------------------------------------------
    def take_rate(self, appkey: str, mode: str) -> bool:
        """Token bucket per app key: capacity max(1, rate), refilled at ``rate``/s. False = over."""
        return self._rates.take(appkey, self.config.rate_limit(mode))

    # --- websocket approval keys -------------------------------------------------------------------
    def approval_key(self, appkey: str, secretkey: str, mode: str) -> str:
        """A new 36-character approval key bound to the app key and mode."""
        cred = self.check_app(appkey, secretkey, mode)
        key = str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
        self._approval[key] = cred
        return key

    def approval_owner(self, approval_key: str, mode: str) -> AppCredential | None:
        """The credential that owns ``approval_key`` in ``mode`` (None if unknown there)."""
        cred = self._approval.get(approval_key)
        return cred if cred is not None and cred.mode == mode else None
