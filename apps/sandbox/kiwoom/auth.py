"""Kiwoom app keys, access tokens and rate limits (kiwoom-api.md A2, A5).

- ``POST /oauth2/token`` issues an 86-character token valid ``kiwoom_token_lifetime_s`` (≈24 h) of REAL
  time; ``expires_dt`` is its expiry in KST ``YYYYMMDDHHMMSS``. Whether Kiwoom returns the same token on
  re-issue is UNCONFIRMED: the sandbox issues a new one each time and earlier ones stay valid until they
  expire or are revoked.
- One listener serves both modes; the key pair's mode decides. A client "says" a mode through the host it
  calls, as with Kiwoom's two hosts: a ``Host`` starting with ``mockapi`` means mock, one starting with
  ``api`` means real, any other host (``127.0.0.1``) declares nothing. A key of the other mode gets 8030 at
  token issue; a token of the other mode gets 8031 on data calls and WS LOGIN (texts UNCONFIRMED).
- Errors arrive as a generic ``return_code`` with the specific code in brackets:
  ``{"return_code":3,"return_msg":"인증에 실패했습니다[8005:Token이 유효하지 않습니다]"}`` (HTTP 200).
"""

from __future__ import annotations

import hmac
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass

from apps.sandbox.auth import RateBuckets
from apps.sandbox.config import AppCredential, SandboxConfig

TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"
TOKEN_LENGTH = 86
#: Generic return codes (the specific code rides in the message): 3 authentication, 5 rate limit,
#: 2 request/input errors (the generic code of input errors is UNCONFIRMED).
AUTH_FAILED = 3
RATE_LIMITED = 5
INPUT_ERROR = 2
AUTH_PREFIX = "인증에 실패했습니다"
RATE_TEXT = "허용된 요청 개수를 초과하였습니다"

MESSAGES: dict[int, str] = {
    1501: "API ID가 존재하지 않습니다",
    1504: "해당 URI에서는 지원하지 않는 API ID입니다",
    1505: "지원하지 않는 API ID입니다",
    1511: "필수 입력 값에 값이 존재하지 않습니다",
    1517: "입력 값 형식이 올바르지 않습니다",
    1700: RATE_TEXT,
    1901: "시장 코드값이 존재하지 않습니다",
    1902: "종목 정보가 없습니다",
    8001: "App Key와 Secret Key 검증에 실패했습니다",
    8002: "App Key와 Secret Key 검증에 실패했습니다",
    8005: "Token이 유효하지 않습니다",
    8011: "grant_type이 입력되지 않았습니다",
    8012: "grant_type이 올바르지 않습니다",
    8015: "Token 폐기에 실패했습니다",
    8016: "폐기할 Token이 존재하지 않습니다",
    8020: "App Key 또는 Secret Key가 입력되지 않았습니다",
    8030: "투자구분(실전/모의)이 달라서 Appkey를 사용할수가 없습니다",
    8031: "투자구분(실전/모의)이 달라서 토큰을 사용할수가 없습니다",
}


@dataclass(frozen=True, slots=True)
class KiwoomError(Exception):
    """A Kiwoom error: generic ``return_code`` plus the specific code and detail."""

    return_code: int
    code: int
    detail: str = ""

    @property
    def message(self) -> str:
        base = MESSAGES.get(self.code, "")
        text = f"{base}. {self.detail}" if self.detail else base
        generic = {AUTH_FAILED: AUTH_PREFIX, RATE_LIMITED: RATE_TEXT}.get(self.return_code, base)
        return f"{generic}[{self.code}:{text}]"

    def body(self) -> dict[str, object]:
        return {"return_code": self.return_code, "return_msg": self.message}


def auth_error(code: int) -> KiwoomError:
    return KiwoomError(AUTH_FAILED, code)


def input_error(code: int, detail: str = "") -> KiwoomError:
    return KiwoomError(INPUT_ERROR, code, detail)


def declared_mode(host: str | None) -> str | None:
    """The mode a client declares through the host it calls (see the module docstring)."""
    name = (host or "").split(":", 1)[0].lower()
    if name.startswith("mockapi"):
        return "mock"
    if name.startswith("api"):
        return "real"
    return None


@dataclass(slots=True)
class KiwoomToken:
    token: str
    appkey: str
    mode: str
    issued_at: float
    expires_at: float


class KiwoomAuthority:
    """Kiwoom credentials, tokens and per-(app key, category) rate buckets; event-loop thread only."""

    def __init__(self, config: SandboxConfig, wall: Callable[[], float] = time.time) -> None:
        self.config = config
        self._wall = wall
        self.credentials: dict[str, AppCredential] = {c.appkey: c for c in config.kiwoom_credentials()}
        self._tokens: dict[str, KiwoomToken] = {}
        self._rates = RateBuckets()

    def issue(self, body: dict[str, object], declared: str | None) -> KiwoomToken:
        """au10001: validate the body and issue a token; KiwoomError otherwise."""
        grant = body.get("grant_type")
        if not grant:
            raise auth_error(8011)
        if grant != "client_credentials":
            raise auth_error(8012)
        appkey, secretkey = str(body.get("appkey") or ""), str(body.get("secretkey") or "")
        if not appkey or not secretkey:
            raise auth_error(8020)
        cred = self._check_pair(appkey, secretkey)
        if declared is not None and declared != cred.mode:
            raise auth_error(8030)
        now = self._wall()
        token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))
        issued = KiwoomToken(token, cred.appkey, cred.mode, now, now + self.config.kiwoom_token_lifetime_s)
        self._tokens[token] = issued
        return issued

    def _check_pair(self, appkey: str, secretkey: str) -> AppCredential:
        cred = self.credentials.get(appkey)
        if cred is None:
            raise auth_error(8001)
        if not hmac.compare_digest(cred.appsecret, secretkey):
            raise auth_error(8002)
        return cred

    def revoke(self, body: dict[str, object]) -> None:
        """au10002: revoke a token of this key pair; KiwoomError otherwise."""
        appkey, secretkey = str(body.get("appkey") or ""), str(body.get("secretkey") or "")
        if not appkey or not secretkey:
            raise auth_error(8020)
        cred = self._check_pair(appkey, secretkey)
        token = str(body.get("token") or "")
        if not token:
            raise auth_error(8015)
        held = self._tokens.get(token)
        if held is None or held.appkey != cred.appkey:
            raise auth_error(8016)
        del self._tokens[token]

    def check(self, token: str, declared: str | None) -> KiwoomToken:
        """A live token (8005 when unknown, revoked or expired; 8031 when of the other mode)."""
        held = self._tokens.get(token)
        if held is None or self._wall() >= held.expires_at:
            raise auth_error(8005)
        if declared is not None and declared != held.mode:
            raise auth_error(8031)
        return held

    def check_header(self, authorization: str, declared: str | None) -> KiwoomToken:
        scheme, _, raw = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise auth_error(8005)
        return self.check(raw.strip(), declared)

    def expire_all(self) -> int:
        """Fault: every live token expires now; returns how many were live."""
        now = self._wall()
        live = 0
        for tok in self._tokens.values():
            if tok.expires_at > now:
                live += 1
                tok.expires_at = now
        return live

    def take_rate(self, appkey: str, category: str) -> bool:
        """False when ``appkey`` is over ``kiwoom_rate_limit`` in ``category`` ("query" / "order")."""
        return self._rates.take((appkey, category), self.config.kiwoom_rate_limit)
