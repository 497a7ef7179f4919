"""The Kiwoom REST client (kiwoom-api.md §A2–§A5): httpx (async core) + a synchronous facade.

Every TR is ``POST`` + JSON body with the TR code in the ``api-id`` header (§A3). Each call goes through,
in this order: the shared circuit breaker (:mod:`..breaker`), the shared access token (in-process cache →
TokenStore, issued under the store's cross-process lock), the shared Redis rate limiter (:mod:`..ratelimit`),
the HTTP request, and its classification (:func:`classify`) into a result or a typed BrokerError.

Retries: only :class:`BrokerTransientError` (network, timeout, 5xx, rate limit code 1700 whether the HTTP
status is 200 or 429), at most ``max_retries`` more attempts with exponential back-off and jitter. HTTP 401
or codes 8005 / 8031 / 8103 drop the token, re-issue it once and retry at once (as the official client does).
Everything else (unknown stock 1901/1902, bad input, credentials) is raised at once.

Tokens (au10001): ``token`` + ``expires_dt`` (KST), renewed ``token_refresh_margin`` (10 min) before expiry.
The client never touches the ORM and never logs the app key, secret key or token (only ``key_id``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from redis.asyncio import Redis as AsyncRedis

from ..base import (
    KST,
    AccessToken,
    BrokerAuthError,
    BrokerBusinessError,
    BrokerError,
    BrokerProtocolError,
    BrokerRateLimited,
    BrokerTokenRejected,
    BrokerTransientError,
    BrokerUnavailable,
    CircuitOpen,
    DailyBar,
    LimiterTimeout,
    MinuteBar,
    Quote,
    UnknownSymbol,
)
from ..breaker import Permit, Rejection
from ..guards import broker_guards
from ..kis.client import backoff_delay
from ..tokens import TokenStore
from . import parsing
from .config import KiwoomConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")

PATH_CHART = "/api/dostk/chart"
PATH_STKINFO = "/api/dostk/stkinfo"
TR_QUOTE = "ka10001"
TR_DAILY = "ka10081"
TR_MINUTE = "ka10080"
MINUTE_SCOPES = (1, 3, 5, 10, 15, 30, 45, 60)

RATE_LIMIT_CODES = frozenset({"1700"})
#: Re-issue the token once on these (the official client's list, §A5).
TOKEN_REJECTED_CODES = frozenset({"8005", "8031", "8103"})
UNKNOWN_SYMBOL_CODES = frozenset({"1901", "1902"})


@dataclass(frozen=True, slots=True)
class KiwoomResponse:
    """A successful response: body, headers (lower-case), HTTP status and latency."""

    body: Mapping[str, Any]
    headers: httpx.Headers
    status: int
    latency: float

    @property
    def cont_yn(self) -> str:
        return self.headers.get("cont-yn", "").strip().upper()

    @property
    def next_key(self) -> str:
        return self.headers.get("next-key", "").strip()

    @property
    def has_more(self) -> bool:
        """``cont-yn: Y`` with a ``next-key``: another page follows (§A3)."""
        return self.cont_yn == "Y" and bool(self.next_key)


def classify(status: int, body: Any) -> BrokerError | None:
    """The typed error of an HTTP status and decoded body, or None for a success.

    The specific code in ``return_msg`` (``[NNNN:...]``) wins over the status: 1700 is a rate limit on HTTP 200
    as on 429 (UNCONFIRMED which one Kiwoom uses, §A5).
    """
    data = body if isinstance(body, Mapping) else {}
    message = str(data.get("return_msg") or "").strip()
    code = parsing.error_code(message)
    detail = f"{code or data.get('return_code', '')} {message}".strip() or f"HTTP {status}"
    kw: dict[str, Any] = {"msg_cd": code, "msg1": message, "http_status": status}
    if code in RATE_LIMIT_CODES or (status == 429 and not code):
        return BrokerRateLimited(f"rate limited by the broker: {detail}", **kw)
    if code in TOKEN_REJECTED_CODES or status == 401:
        return BrokerTokenRejected(f"token rejected: {detail}", **kw)
    if code.startswith("80") or code.startswith("81"):
        return BrokerAuthError(f"credentials refused: {detail}", **kw)
    if code in UNKNOWN_SYMBOL_CODES:
        return UnknownSymbol(f"unknown stock code: {detail}", **kw)
    if status >= 500:
        return BrokerTransientError(f"broker error: {detail}", **kw)
    if status in (401, 403):
        return BrokerAuthError(f"refused: {detail}", **kw)
    if status >= 400:
        return BrokerBusinessError(f"request refused: {detail}", **kw)
    if not isinstance(body, Mapping):
        return BrokerProtocolError(f"HTTP {status} without a JSON object body", http_status=status)
    if parsing.return_code(data) != 0:
        return BrokerBusinessError(f"broker refused: {detail}", **kw)
    return None


class AsyncKiwoomClient:
    """Asynchronous Kiwoom REST client for one app key. One instance per event loop; ``async with`` or aclose."""

    def __init__(
        self,
        config: KiwoomConfig,
        *,
        token_store: TokenStore,
        redis: AsyncRedis | None = None,
        redis_url: str | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if redis is None:
            if not redis_url:
                raise ValueError("AsyncKiwoomClient needs a Redis client or redis_url (shared limiter and breaker)")
            redis = AsyncRedis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
            self._owns_redis = True
        else:
            self._owns_redis = False
        self.config = config
        self._store = token_store
        self._redis = redis
        self._rng = rng
        self._http = httpx.AsyncClient(
            base_url=config.rest_url,
            timeout=httpx.Timeout(config.timeout),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            trust_env=False,
        )
        guards = broker_guards(redis, config)
        self.limiter, self.breaker, self.metrics = guards.limiter, guards.breaker, guards.metrics
        self._token: AccessToken | None = None
        self._token_lock = asyncio.Lock()
        self._log = {"broker": "kiwoom", "env": config.env, "key_id": config.key_id}

    async def __aenter__(self) -> AsyncKiwoomClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._owns_redis:
            await self._redis.aclose()

    # --- public API -----------------------------------------------------------------------------------------

    async def quote(self, code: str) -> Quote:
        """ka10001 주식기본정보요청. :class:`UnknownSymbol` for an unknown code (not retried)."""
        code = parsing.normalize_code(code)
        resp = await self.request(TR_QUOTE, PATH_STKINFO, {"stk_cd": code})
        return parsing.parse_quote(code, resp.body, fetched_at=dt.datetime.now(KST))

    async def daily_bars(self, code: str, start: dt.date, end: dt.date, *, adjusted: bool = True) -> list[DailyBar]:
        """ka10081 daily bars from ``start`` to ``end`` inclusive, oldest first.

        ``base_dt`` = ``end``; pages backwards (newest first) with the ``cont-yn`` / ``next-key`` response headers
        until a page reaches ``start``, the broker says no more, or ``max_pages``. ``upd_stkpc_tp`` 1 = 수정주가.
        """
        code = parsing.normalize_code(code)
        if start > end:
            raise ValueError("start must not be after end")
        body = {"stk_cd": code, "base_dt": end.strftime("%Y%m%d"), "upd_stkpc_tp": "1" if adjusted else "0"}
        collected: dict[dt.date, DailyBar] = {}
        async for resp in self.pages(TR_DAILY, PATH_CHART, body):
            bars = parsing.parse_daily_rows(code, parsing.rows_of(resp.body, "stk_dt_pole_chart_qry"))
            for bar in bars:
                if start <= bar.date <= end:
                    collected.setdefault(bar.date, bar)
            if not bars or min(b.date for b in bars) <= start:
                break
        return sorted(collected.values(), key=lambda b: b.date)

    async def minute_bars(
        self,
        code: str,
        *,
        scope: int = 1,
        since: dt.datetime | None = None,
        base_date: dt.date | None = None,
        adjusted: bool = True,
    ) -> list[MinuteBar]:
        """ka10080 minute bars (``tic_scope`` minutes), oldest first, paged back to ``since`` (or ``max_pages``)."""
        code = parsing.normalize_code(code)
        if scope not in MINUTE_SCOPES:
            raise ValueError(f"scope must be one of {MINUTE_SCOPES}")
        body = {"stk_cd": code, "tic_scope": str(scope), "upd_stkpc_tp": "1" if adjusted else "0"}
        if base_date is not None:
            body["base_dt"] = base_date.strftime("%Y%m%d")
        collected: dict[dt.datetime, MinuteBar] = {}
        async for resp in self.pages(TR_MINUTE, PATH_CHART, body):
            bars = parsing.parse_minute_rows(code, parsing.rows_of(resp.body, "stk_min_pole_chart_qry"))
            for bar in bars:
                if since is None or bar.at >= since:
                    collected.setdefault(bar.at, bar)
            if not bars or (since is not None and min(b.at for b in bars) <= since):
                break
        return sorted(collected.values(), key=lambda b: b.at)

    async def pages(self, api_id: str, path: str, body: Mapping[str, Any]):
        """Yield every page of a paged TR: the identical body with ``cont-yn: Y`` + ``next-key`` (§A3)."""
        next_key = ""
        for page in range(self.config.max_pages):
            resp = await self.request(api_id, path, body, cont_yn="Y" if page else "", next_key=next_key)
            yield resp
            if not resp.has_more:
                return
            next_key = resp.next_key
        logger.warning("broker paging stopped at max_pages", extra={**self._log, "api_id": api_id,
                       "max_pages": self.config.max_pages})  # fmt: skip

    async def ws_token(self, rejected: str | None = None) -> str:
        """The access token for the WebSocket LOGIN; ``rejected`` = a token the server refused (get another)."""
        if rejected is not None:
            await self._renew_token(rejected, code="ws_login")
        token = await self._access_token()
        return token.token

    async def request(
        self,
        api_id: str,
        path: str,
        body: Mapping[str, Any],
        *,
        cont_yn: str = "",
        next_key: str = "",
    ) -> KiwoomResponse:
        """One TR with the full breaker / token / limiter / retry treatment."""
        verdict = await self.breaker.before_call()
        if isinstance(verdict, Rejection):
            await self.metrics.incr({"breaker_rejected": 1})
            raise CircuitOpen(
                f"circuit open for {self.config.key_id}; retry in {verdict.retry_after:.1f}s",
                retry_after=verdict.retry_after,
            )
        permit = verdict
        max_retries = 0 if permit is Permit.PROBE else self.config.max_retries
        retries = 0
        token_renewed = False
        while True:
            try:
                resp = await self._attempt(api_id, path, body, cont_yn, next_key)
            except BrokerTokenRejected as exc:
                if token_renewed:
                    await self._finish(permit, ok=True, error=exc, api_id=api_id)
                    raise
                token_renewed = True
                await self._renew_token(exc.rejected_token, code=exc.code)
                continue
            except LimiterTimeout as exc:
                await self._finish(permit, ok=None, error=exc, api_id=api_id)
                raise
            except BrokerTransientError as exc:
                if retries >= max_retries:
                    # A rate-limited answer proves the broker alive: it does not count against the breaker.
                    await self._finish(permit, ok=isinstance(exc, BrokerRateLimited), error=exc, api_id=api_id)
                    raise
                retries += 1
                delay = backoff_delay(
                    retries, base=self.config.backoff_base, cap=self.config.backoff_max, rng=self._rng
                )
                if isinstance(exc, BrokerRateLimited):
                    delay = max(delay, 1.0 / self.config.rate_limit)
                await self.metrics.incr({"retries": 1})
                logger.warning(
                    "broker call retry",
                    extra={**self._log, "api_id": api_id, "retry": retries, "error_code": exc.code,
                           "delay_s": round(delay, 3)},
                )  # fmt: skip
                await asyncio.sleep(delay)
                continue
            except BrokerUnavailable as exc:
                await self._finish(permit, ok=None, error=exc, api_id=api_id)
                raise
            except BrokerError as exc:
                await self._finish(permit, ok=True, error=exc, api_id=api_id)
                raise
            except BaseException:
                await asyncio.shield(self.breaker.after_call(ok=None, permit=permit))
                raise
            await self._finish(permit, ok=True, error=None, api_id=api_id)
            return resp

    # --- internals ----------------------------------------------------------------------------------------------

    async def _attempt(
        self, api_id: str, path: str, body: Mapping[str, Any], cont_yn: str, next_key: str
    ) -> KiwoomResponse:
        token = await self._access_token()
        headers = {
            "content-type": "application/json;charset=UTF-8",
            "authorization": f"Bearer {token.token}",
            "api-id": api_id,
        }
        if cont_yn:
            headers["cont-yn"] = cont_yn
            headers["next-key"] = next_key
        reservation = await self.limiter.acquire()
        counts = {"calls": 1, f"calls:{api_id}": 1}
        if reservation.waited > 0:
            counts["limiter_waits"] = 1
            counts["limiter_wait_ms"] = round(reservation.waited * 1000)
        started = time.perf_counter()
        try:
            response = await self._http.post(path, json=dict(body), headers=headers)
        except httpx.TimeoutException as exc:
            await self._count_error(counts, "timeout", started)
            raise BrokerTransientError(f"timeout calling {api_id}", kind="timeout") from exc
        except httpx.TransportError as exc:
            await self._count_error(counts, "network", started)
            raise BrokerTransientError(f"network error calling {api_id}: {type(exc).__name__}", kind="network") from exc
        latency = time.perf_counter() - started
        counts["latency_ms"] = round(latency * 1000)
        try:
            data: Any = response.json()
        except ValueError:
            data = None
        error = classify(response.status_code, data)
        if error is not None:
            counts["errors"] = 1
            counts[f"errors:{error.code}"] = 1
            await self.metrics.incr(counts)
            if isinstance(error, BrokerTokenRejected):
                error.rejected_token = token.token
            raise error
        counts["ok"] = 1
        await self.metrics.incr(counts)
        return KiwoomResponse(body=data, headers=response.headers, status=response.status_code, latency=latency)

    async def _count_error(self, counts: dict[str, int], code: str, started: float) -> None:
        counts["errors"] = 1
        counts[f"errors:{code}"] = 1
        counts["latency_ms"] = round((time.perf_counter() - started) * 1000)
        await self.metrics.incr(counts)

    async def _finish(self, permit: Permit, *, ok: bool | None, error: BrokerError | None, api_id: str) -> None:
        try:
            transition = await self.breaker.after_call(ok=ok, permit=permit)
        except Exception as exc:  # noqa: BLE001 - the call's own outcome matters more than the bookkeeping
            logger.warning("broker breaker update failed", extra={**self._log, "error": type(exc).__name__})
            transition = ""
        if error is not None and ok is False:
            logger.warning("broker call failed", extra={**self._log, "api_id": api_id, "error_code": error.code})
        if transition in ("opened", "reopened"):
            await self.metrics.incr({"breaker_opened": 1})
            logger.error("broker circuit opened", extra={**self._log, "transition": transition,
                         "open_s": self.config.breaker_open_seconds})  # fmt: skip
        elif transition == "closed":
            logger.info("broker circuit closed", extra=self._log)

    # --- tokens -----------------------------------------------------------------------------------------------

    def _token_usable(self, token: AccessToken) -> bool:
        """Usable until ``token_refresh_margin`` before expiry (short-lived tokens: until half-life)."""
        lifetime = (token.expires_at - token.issued_at).total_seconds()
        margin = min(self.config.token_refresh_margin, max(0.0, lifetime) / 2)
        return dt.datetime.now(KST) < token.expires_at - dt.timedelta(seconds=margin)

    async def _access_token(self) -> AccessToken:
        token = self._token
        if token is not None and self._token_usable(token):
            return token
        async with self._token_lock:
            token = self._token
            if token is not None and self._token_usable(token):
                return token
            stored = await asyncio.to_thread(self._store.load, self.config.key_hash, self.config.token_env)
            if stored is not None and self._token_usable(stored):
                self._token = stored
                return stored
            return await self._obtain(rejected=None)

    async def _renew_token(self, rejected: str | None, *, code: str) -> None:
        """Drop the rejected token and obtain another (idempotent per rejected token, across processes)."""
        async with self._token_lock:
            if self._token is not None and rejected is not None and self._token.token != rejected:
                return
            self._token = None
            logger.info("broker token rejected", extra={**self._log, "error_code": code})
            await self.metrics.incr({"tokens_refreshed": 1})
            await self._obtain(rejected=rejected)

    async def _obtain(self, *, rejected: str | None) -> AccessToken:
        """Called with ``_token_lock`` held."""
        try:
            token, issued = await asyncio.to_thread(
                self._store.obtain,
                self.config.key_hash,
                self.config.token_env,
                issue=self._issue_token,
                usable=self._token_usable,
                rejected=rejected,
                lock_timeout=self.config.token_lock_timeout,
            )
        except TimeoutError as exc:
            raise BrokerUnavailable(
                f"token lock not acquired within {self.config.token_lock_timeout:.0f}s", kind="token_lock"
            ) from exc
        if issued:
            await self.metrics.incr({"tokens_issued": 1})
        self._token = token
        return token

    def _issue_token(self, last_issued_at: dt.datetime | None) -> AccessToken:
        """au10001 ``POST /oauth2/token`` (synchronous: it runs in the token store's thread, under its lock).

        The body field is ``secretkey`` (§A2). Rate-limited answers are retried after a bounded wait.
        """
        cfg = self.config
        payload = {"grant_type": "client_credentials", "appkey": cfg.app_key, "secretkey": cfg.secret_key}
        headers = {"content-type": "application/json;charset=UTF-8", "api-id": "au10001"}
        with httpx.Client(base_url=cfg.rest_url, timeout=httpx.Timeout(cfg.timeout), trust_env=False) as http:
            for attempt in range(1, cfg.max_retries + 2):
                requested_at = dt.datetime.now(KST)
                try:
                    response = http.post("/oauth2/token", json=payload, headers=headers)
                except httpx.TimeoutException as exc:
                    raise BrokerTransientError("timeout issuing a token", kind="timeout") from exc
                except httpx.TransportError as exc:
                    raise BrokerTransientError(f"network error issuing a token: {type(exc).__name__}",
                                               kind="network") from exc  # fmt: skip
                try:
                    body: Any = response.json()
                except ValueError:
                    body = None
                error = classify(response.status_code, body)
                if isinstance(error, BrokerRateLimited) and attempt <= cfg.max_retries:
                    time.sleep(max(1.0 / cfg.rate_limit, backoff_delay(attempt, base=cfg.backoff_base,
                                                                       cap=cfg.backoff_max)))  # fmt: skip
                    continue
                if isinstance(error, BrokerTokenRejected):
                    # A refusal of the issuance itself is a credentials problem, not a stale token.
                    raise BrokerAuthError(str(error), msg_cd=error.msg_cd, msg1=error.msg1,
                                          http_status=error.http_status)  # fmt: skip
                if error is not None:
                    raise error
                token = parsing.parse_token(body, now=requested_at)
                logger.info("broker token issued", extra={**self._log, "expires_at": token.expires_at.isoformat()})
                return token
        raise BrokerRateLimited("token issuance rate limited", kind="token_rate")  # pragma: no cover


class SyncKiwoomClient:
    """Blocking facade for Celery tasks and scripts: an :class:`AsyncKiwoomClient` on a private loop.

    Not thread-safe (one per thread) and not usable inside a running event loop.
    """

    def __init__(self, config: KiwoomConfig, *, token_store: TokenStore, redis_url: str, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = self._run(self._make(config, token_store, redis_url, kwargs))

    @staticmethod
    async def _make(
        config: KiwoomConfig, store: TokenStore, redis_url: str, kwargs: dict[str, Any]
    ) -> AsyncKiwoomClient:
        return AsyncKiwoomClient(config, token_store=store, redis_url=redis_url, **kwargs)

    def _run(self, coro: Coroutine[Any, Any, T] | Awaitable[T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._loop.run_until_complete(coro)
        if asyncio.iscoroutine(coro):
            coro.close()
        raise RuntimeError("SyncKiwoomClient cannot be used inside a running event loop; use AsyncKiwoomClient")

    @property
    def config(self) -> KiwoomConfig:
        return self._client.config

    def __enter__(self) -> SyncKiwoomClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._client.aclose())
        self._loop.close()

    def quote(self, code: str) -> Quote:
        return self._run(self._client.quote(code))

    def daily_bars(self, code: str, start: dt.date, end: dt.date, **kwargs: Any) -> list[DailyBar]:
        return self._run(self._client.daily_bars(code, start, end, **kwargs))

    def minute_bars(self, code: str, **kwargs: Any) -> list[MinuteBar]:
        return self._run(self._client.minute_bars(code, **kwargs))


__all__ = ["AsyncKiwoomClient", "KiwoomResponse", "SyncKiwoomClient", "classify"]
