"""The KIS REST client: httpx (async core) + a synchronous facade for Celery tasks.

Every request goes through, in this order:

1. the shared circuit breaker (fail fast with :class:`CircuitOpen` when open; a single-attempt probe
   when half-open),
2. the shared access token (in-process cache → TokenStore; issued under the store's cross-process lock),
3. the shared Redis rate limiter (a reserved slot; bounded wait),
4. the HTTP request, classified into a result or a typed :class:`BrokerError`,
5. retries: at most ``max_retries`` more attempts, exponential back-off with jitter, only for
   :class:`BrokerTransientError` (network, timeout, 5xx, EGW00201); EGW00123/EGW00121 drop the token,
   re-issue it once and retry at once; everything else is raised immediately.

Invariants: the client never touches the ORM (the token store is injected); it never logs the app
key, secret or token (only ``key_id``, the first 12 hex digits of the key's sha256); every wait is
bounded (HTTP timeout, limiter ``rate_max_wait``, token ``token_lock_timeout``, back-off ``backoff_max``).
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
    BrokerTokenRateLimited,
    BrokerTokenRejected,
    BrokerTransientError,
    BrokerUnavailable,
    CircuitOpen,
    DailyBar,
    LimiterTimeout,
    MarketDay,
    MinuteBar,
    Quote,
    UnknownSymbol,
)
from ..breaker import Permit, Rejection
from ..guards import broker_guards
from ..tokens import TokenStore
from . import parsing
from .config import KisConfig, tr_id_for

logger = logging.getLogger(__name__)

T = TypeVar("T")

QUOTE_BASE = "/uapi/domestic-stock/v1/quotations"
TR_PRICE = "FHKST01010100"
TR_DAILY_PRICE = "FHKST01010400"
TR_DAILY_CHART = "FHKST03010100"
TR_MINUTE_CHART = "FHKST03010200"
TR_HOLIDAY = "CTCA0903R"  # 국내휴장일조회; paper sends VTCA0903R (§3.1), which KIS may refuse (EGW02006)
HOLIDAY_MAX_PAGES = 20  # a page holds about 24 dates (observed): 20 pages are more than a year
DAILY_CHART_MAX_ROWS = 100
MINUTE_CHART_MAX_ROWS = 30
SESSION_OPEN = dt.time(9, 0)
SESSION_CLOSE = dt.time(15, 30)

RATE_LIMIT_CODES = frozenset({"EGW00201"})
TOKEN_REJECTED_CODES = frozenset({"EGW00121", "EGW00123"})
TOKEN_RATE_CODES = frozenset({"EGW00133"})
#: Invalid app key / secret, no permission, and the OAuth "invalid client" family.
AUTH_CODES = frozenset({"EGW00102", "EGW00103", "EGW00104", "EGW00105", "EGW00106", "EGW00206"})
#: A TR the environment does not offer ("모의투자 TR 이 아닙니다."; seen with HTTP 500, UNCONFIRMED): a business
#: answer, never retried and never counted against the breaker.
UNSUPPORTED_CODES = frozenset({"EGW02006"})


@dataclass(frozen=True, slots=True)
class KisResponse:
    """A successful response: the JSON body, the response headers (lower-case) and the latency."""

    body: Mapping[str, Any]
    headers: httpx.Headers
    status: int
    latency: float

    @property
    def tr_cont(self) -> str:
        return self.headers.get("tr_cont", "")


def classify(status: int, body: Any) -> BrokerError | None:
    """The typed error for an HTTP status and decoded body, or None when the response is a success.

    Codes win over statuses: a 500 carrying EGW00201 is a rate limit, a 500 carrying EGW00123 a
    token problem, a 500 carrying EGW00103 bad credentials (none of which a retry alone would fix,
    except the rate limit).
    """
    data = body if isinstance(body, Mapping) else {}
    msg_cd = str(data.get("msg_cd") or data.get("error_code") or "").strip()
    msg1 = str(data.get("msg1") or data.get("error_description") or "").strip()
    detail = f"{msg_cd} {msg1}".strip() or f"HTTP {status}"
    if msg_cd in RATE_LIMIT_CODES:
        return BrokerRateLimited(f"rate limited by the broker: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if msg_cd in TOKEN_REJECTED_CODES:
        return BrokerTokenRejected(f"token rejected: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if msg_cd in TOKEN_RATE_CODES:
        return BrokerTokenRateLimited(f"token issuance refused: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if msg_cd in AUTH_CODES:
        return BrokerAuthError(f"credentials refused: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if msg_cd in UNSUPPORTED_CODES:
        return BrokerBusinessError(f"not offered here: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if status >= 500:
        return BrokerTransientError(f"broker error: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if status == 429:
        return BrokerRateLimited(f"rate limited: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if status in (401, 403):
        return BrokerAuthError(f"refused: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if status >= 400:
        return BrokerBusinessError(f"request refused: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if not isinstance(body, Mapping):
        return BrokerProtocolError(f"HTTP {status} without a JSON object body", http_status=status)
    rt_cd = data.get("rt_cd")
    if rt_cd is not None and str(rt_cd).strip() != "0":
        return BrokerBusinessError(f"broker refused: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    return None


def backoff_delay(attempt: int, *, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Exponential back-off with "equal jitter": half of ``min(cap, base * 2**(attempt-1))`` plus a
    uniformly random share of the other half. ``attempt`` counts retries from 1."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return ceiling / 2 + rng() * ceiling / 2


class AsyncKisClient:
    """Asynchronous KIS REST client for one app key. Use ``async with`` or call :meth:`aclose`.

    One instance per event loop (its httpx and Redis connections belong to the loop that created them).
    """

    def __init__(
        self,
        config: KisConfig,
        *,
        token_store: TokenStore,
        redis: AsyncRedis | None = None,
        redis_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if redis is None:
            if not redis_url:
                raise ValueError("AsyncKisClient needs a Redis client or redis_url (shared limiter and breaker)")
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
            transport=transport,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
            trust_env=False,
        )
        self._sync_transport = transport  # only used to detect test transports for token issuance
        guards = broker_guards(redis, config)
        self.limiter, self.breaker, self.metrics = guards.limiter, guards.breaker, guards.metrics
        self._token: AccessToken | None = None
        self._token_lock = asyncio.Lock()
        self._log = {"broker": "kis", "env": config.env, "key_id": config.key_id}

    async def __aenter__(self) -> AsyncKisClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._owns_redis:
            await self._redis.aclose()

    # --- public API ---------------------------------------------------------------------------------

    async def current_price(self, code: str, *, market: str = "J") -> Quote:
        """Current price (FHKST01010100). Raises :class:`UnknownSymbol` for an unknown code."""
        code = parsing.normalize_code(code)
        resp = await self.get(
            f"{QUOTE_BASE}/inquire-price",
            TR_PRICE,
            {"FID_COND_MRKT_DIV_CODE": market, "FID_INPUT_ISCD": code},
        )
        return parsing.parse_quote(code, resp.body.get("output"), fetched_at=dt.datetime.now(KST))

    async def daily_prices(
        self, code: str, *, period: str = "D", adjusted: bool = False, market: str = "J"
    ) -> list[DailyBar]:
        """The last 30 days/weeks/months (FHKST01010400), oldest first. ``FID_ORG_ADJ_PRC``: 1 = adjusted here."""
        code = parsing.normalize_code(code)
        resp = await self.get(
            f"{QUOTE_BASE}/inquire-daily-price",
            TR_DAILY_PRICE,
            {
                "FID_COND_MRKT_DIV_CODE": market,
                "FID_INPUT_ISCD": code,
                "FID_PERIOD_DIV_CODE": period,
                "FID_ORG_ADJ_PRC": "1" if adjusted else "0",
            },
        )
        bars = parsing.parse_daily_price_rows(code, parsing.rows_of(resp.body, "output"))
        return sorted({b.date: b for b in bars}.values(), key=lambda b: b.date)

    async def daily_bars(
        self,
        code: str,
        start: dt.date,
        end: dt.date,
        *,
        period: str = "D",
        adjusted: bool = True,
        market: str = "J",
    ) -> list[DailyBar]:
        """Bars from ``start`` to ``end`` inclusive (FHKST03010100), oldest first, any range length.

        Pages backwards (≤100 rows per call, newest first) with ``FID_INPUT_DATE_2`` = oldest date
        returned − 1 day until the range is covered or a page is short (fewer than 100 rows in the range: the
        broker has nothing older, e.g. a recently listed stock). ``FID_ORG_ADJ_PRC``: 0 = adjusted
        in this TR (the opposite of FHKST01010400). Duplicate dates are dropped.
        """
        code = parsing.normalize_code(code)
        if start > end:
            raise ValueError("start must not be after end")
        collected: dict[dt.date, DailyBar] = {}
        cursor = end
        max_pages = (end - start).days + 2  # every page moves the cursor back by at least one day
        for _ in range(max_pages):
            resp = await self.get(
                f"{QUOTE_BASE}/inquire-daily-itemchartprice",
                TR_DAILY_CHART,
                {
                    "FID_COND_MRKT_DIV_CODE": market,
                    "FID_INPUT_ISCD": code,
                    "FID_INPUT_DATE_1": start.strftime("%Y%m%d"),
                    "FID_INPUT_DATE_2": cursor.strftime("%Y%m%d"),
                    "FID_PERIOD_DIV_CODE": period,
                    "FID_ORG_ADJ_PRC": "0" if adjusted else "1",
                },
            )
            page = [
                b
                for b in parsing.parse_chart_daily_rows(code, parsing.rows_of(resp.body, "output2"))
                if start <= b.date <= cursor
            ]
            if not page:
                if not collected:
                    self._raise_if_unknown(code, resp.body.get("output1"))
                break
            for bar in page:
                collected.setdefault(bar.date, bar)
            oldest = min(b.date for b in page)
            if oldest <= start or len(page) < DAILY_CHART_MAX_ROWS:  # a short page: nothing older in the range
                break
            cursor = oldest - dt.timedelta(days=1)
        return sorted(collected.values(), key=lambda b: b.date)

    async def minute_bars_today(
        self,
        code: str,
        *,
        until: dt.time | None = None,
        since: dt.time = SESSION_OPEN,
        market: str = "J",
    ) -> list[MinuteBar]:
        """Today's 1-minute bars from ``since`` up to ``until`` (FHKST03010200), oldest first.

        Pages back through the day (≤30 rows per call, newest first): the next ``FID_INPUT_HOUR_1`` is
        the oldest bar's time − 1 minute; stops at ``since`` (09:00 by default), on an empty page or when
        a page makes no progress. ``until=None`` asks for "now": the later of the KST wall time and
        15:30 (KIS treats a future time as now). Duplicate minutes are dropped.
        """
        code = parsing.normalize_code(code)
        if until is None:
            now = dt.datetime.now(KST).time().replace(microsecond=0)
            until = max(now, SESSION_CLOSE)
        collected: dict[dt.datetime, MinuteBar] = {}
        cursor = until
        previous_oldest: dt.datetime | None = None
        for _ in range(24 * 60 // MINUTE_CHART_MAX_ROWS + 2):
            resp = await self.get(
                f"{QUOTE_BASE}/inquire-time-itemchartprice",
                TR_MINUTE_CHART,
                {
                    "FID_COND_MRKT_DIV_CODE": market,
                    "FID_INPUT_ISCD": code,
                    "FID_INPUT_HOUR_1": cursor.strftime("%H%M%S"),
                    "FID_PW_DATA_INCU_YN": "Y",
                    "FID_ETC_CLS_CODE": "",
                },
            )
            page = [
                b
                for b in parsing.parse_minute_rows(code, parsing.rows_of(resp.body, "output2"))
                if since <= b.at.time() <= cursor
            ]
            if not page:
                if not collected:
                    self._raise_if_unknown(code, resp.body.get("output1"))
                break
            for bar in page:
                collected.setdefault(bar.at, bar)
            oldest = min(b.at for b in page)
            if oldest.time() <= since or (previous_oldest is not None and oldest >= previous_oldest):
                break
            previous_oldest = oldest
            cursor = (oldest - dt.timedelta(minutes=1)).time()
        return sorted(collected.values(), key=lambda b: b.at)

    async def market_days(self, since: dt.date, *, days: int = 90) -> list[MarketDay]:
        """KIS 국내휴장일조회 (CTCA0903R) from ``since`` for at least ``days`` days, oldest first.

        KIS asks callers to query it about once a day (its ledger service answers it). Pages follow the
        official sample: header ``tr_cont: N`` and ``CTX_AREA_FK``/``CTX_AREA_NK`` copied from the body's
        ``ctx_area_fk``/``ctx_area_nk``, while the response's ``tr_cont`` is F/M. Stops once the horizon is
        covered, on the last page, when a page adds no new date, or after ``HOLIDAY_MAX_PAGES``.
        """
        horizon = since + dt.timedelta(days=max(days, 1) - 1)
        collected: dict[dt.date, MarketDay] = {}
        fk = nk = ""
        tr_cont = ""
        for _ in range(HOLIDAY_MAX_PAGES):
            resp = await self.get(
                f"{QUOTE_BASE}/chk-holiday",
                TR_HOLIDAY,
                {"BASS_DT": since.strftime("%Y%m%d"), "CTX_AREA_FK": fk, "CTX_AREA_NK": nk},
                tr_cont=tr_cont,
            )
            page = parsing.parse_market_days(parsing.rows_of(resp.body, "output"))
            fresh = [d for d in page if d.date >= since and d.date not in collected]
            for day in fresh:
                collected[day.date] = day
            if not fresh or not parsing.is_more(resp.tr_cont) or max(collected) >= horizon:
                break
            fk = str(resp.body.get("ctx_area_fk") or "")
            nk = str(resp.body.get("ctx_area_nk") or "")
            tr_cont = "N"
        return sorted(collected.values(), key=lambda d: d.date)

    async def approval_key(self) -> str:
        """A WebSocket approval key (POST /oauth2/Approval; note the body field ``secretkey``)."""
        resp = await self.request(
            "POST",
            "/oauth2/Approval",
            None,
            json={
                "grant_type": "client_credentials",
                "appkey": self.config.app_key,
                "secretkey": self.config.app_secret,
            },
            auth=False,
        )
        key = str(resp.body.get("approval_key") or "").strip()
        if not key:
            raise BrokerProtocolError("approval response without approval_key")
        return key

    async def get(self, path: str, tr_id: str, params: Mapping[str, str], *, tr_cont: str = "") -> KisResponse:
        """A GET data call with the full retry/limit/breaker treatment."""
        return await self.request("GET", path, tr_id, params=params, tr_cont=tr_cont)

    async def request(
        self,
        method: str,
        path: str,
        tr_id: str | None,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        tr_cont: str = "",
        auth: bool = True,
    ) -> KisResponse:
        """Any KIS call. ``tr_id`` is given in its real form; the paper rule (§3.1) is applied here."""
        permit = await self.breaker.before_call()
        if isinstance(permit, Rejection):
            await self.metrics.incr({"breaker_rejected": 1})
            raise CircuitOpen(
                f"circuit breaker open for app key {self.config.key_id} ({self.config.env}); "
                f"retry in {permit.retry_after:.1f}s",
                retry_after=permit.retry_after,
            )
        sent_tr_id = tr_id_for(self.config.env, tr_id) if tr_id else None
        max_retries = 0 if permit is Permit.PROBE else self.config.max_retries
        retries = 0
        token_renewed = False
        while True:
            try:
                resp = await self._attempt(method, path, sent_tr_id, params, json, tr_cont, auth)
            except BrokerTokenRejected as exc:
                if not auth or token_renewed:
                    await self._finish(permit, ok=True, error=exc, tr_id=sent_tr_id)
                    raise
                token_renewed = True
                await self._renew_token(exc)
                continue
            except LimiterTimeout as exc:
                await self._finish(permit, ok=None, error=exc, tr_id=sent_tr_id)
                raise
            except BrokerTransientError as exc:
                if retries >= max_retries:
                    await self._finish(permit, ok=False, error=exc, tr_id=sent_tr_id)
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
                    extra={
                        **self._log,
                        "tr_id": sent_tr_id or path,
                        "retry": retries,
                        "error_code": exc.code,
                        "delay_s": round(delay, 3),
                    },
                )
                await asyncio.sleep(delay)
                continue
            except BrokerUnavailable as exc:
                await self._finish(permit, ok=None, error=exc, tr_id=sent_tr_id)
                raise
            except BrokerError as exc:
                await self._finish(permit, ok=True, error=exc, tr_id=sent_tr_id)
                raise
            except BaseException:
                await asyncio.shield(self.breaker.after_call(ok=None, permit=permit))
                raise
            await self._finish(permit, ok=True, error=None, tr_id=sent_tr_id)
            return resp

    # --- internals ----------------------------------------------------------------------------------

    async def _attempt(
        self,
        method: str,
        path: str,
        tr_id: str | None,
        params: Mapping[str, str] | None,
        json: Mapping[str, Any] | None,
        tr_cont: str,
        auth: bool,
    ) -> KisResponse:
        headers = {"content-type": "application/json; charset=utf-8"}
        token: AccessToken | None = None
        if auth:
            token = await self._access_token()
            headers.update(
                {
                    "authorization": f"Bearer {token.token}",
                    "appkey": self.config.app_key,
                    "appsecret": self.config.app_secret,
                    "custtype": self.config.custtype,
                    "tr_cont": tr_cont,
                }
            )
            if tr_id:
                headers["tr_id"] = tr_id
        reservation = await self.limiter.acquire()
        counts = {"calls": 1}
        if tr_id:
            counts[f"calls:{tr_id}"] = 1
        if reservation.waited > 0:
            counts["limiter_waits"] = 1
            counts["limiter_wait_ms"] = round(reservation.waited * 1000)
        started = time.perf_counter()
        try:
            response = await self._http.request(method, path, params=params, json=json, headers=headers)
        except httpx.TimeoutException as exc:
            await self._count_error(counts, "timeout", started)
            raise BrokerTransientError(f"timeout calling {path}: {type(exc).__name__}", kind="timeout") from exc
        except httpx.TransportError as exc:
            await self._count_error(counts, "network", started)
            raise BrokerTransientError(f"network error calling {path}: {type(exc).__name__}", kind="network") from exc
        latency = time.perf_counter() - started
        counts["latency_ms"] = round(latency * 1000)
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        error = classify(response.status_code, body)
        if error is not None:
            counts["errors"] = 1
            counts[f"errors:{error.code}"] = 1
            await self.metrics.incr(counts)
            if isinstance(error, BrokerTokenRejected) and token is not None:
                error.rejected_token = token.token
            raise error
        counts["ok"] = 1
        await self.metrics.incr(counts)
        return KisResponse(body=body, headers=response.headers, status=response.status_code, latency=latency)

    async def _count_error(self, counts: dict[str, int], code: str, started: float) -> None:
        counts["errors"] = 1
        counts[f"errors:{code}"] = 1
        counts["latency_ms"] = round((time.perf_counter() - started) * 1000)
        await self.metrics.incr(counts)

    async def _finish(self, permit: Permit, *, ok: bool | None, error: BrokerError | None, tr_id: str | None) -> None:
        """Report the call's outcome to the breaker; log the failure and any transition (one line each)."""
        try:
            transition = await self.breaker.after_call(ok=ok, permit=permit)
        except Exception as exc:  # noqa: BLE001 - the call's own outcome matters more than the bookkeeping
            logger.warning("broker breaker update failed", extra={**self._log, "error": type(exc).__name__})
            transition = ""
        if error is not None and ok is False:
            logger.warning("broker call failed", extra={**self._log, "tr_id": tr_id or "-", "error_code": error.code})
        if transition in ("opened", "reopened"):
            await self.metrics.incr({"breaker_opened": 1})
            logger.error(
                "broker circuit opened",
                extra={
                    **self._log,
                    "transition": transition,
                    "open_s": self.config.breaker_open_seconds,
                    "error_code": error.code if error else "-",
                },
            )
        elif transition == "closed":
            logger.info("broker circuit closed", extra=self._log)

    # --- tokens ---------------------------------------------------------------------------------------

    def _token_usable(self, token: AccessToken) -> bool:
        """Usable until ``refresh_margin`` (1 h) before its expiry; for short-lived tokens, until half-life."""
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
            stored = await asyncio.to_thread(self._store.load, self.config.key_hash, self.config.env)
            if stored is not None and self._token_usable(stored):
                self._token = stored
                return stored
            return await self._obtain(rejected=None)

    async def _renew_token(self, exc: BrokerTokenRejected) -> None:
        """Drop the rejected token and get another one.

        Idempotent per rejected token: when another coroutine of this process already replaced it,
        nothing happens; when another process already replaced it, the store returns that one.
        """
        rejected = exc.rejected_token
        async with self._token_lock:
            if self._token is not None and self._token.token != rejected:
                return
            self._token = None
            logger.info("broker token rejected", extra={**self._log, "error_code": exc.code})
            await self.metrics.incr({"tokens_refreshed": 1})
            await self._obtain(rejected=rejected)

    async def _obtain(self, *, rejected: str | None) -> AccessToken:
        """Called with ``_token_lock`` held."""
        try:
            token, issued = await asyncio.to_thread(
                self._store.obtain,
                self.config.key_hash,
                self.config.env,
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
        """POST /oauth2/tokenP (synchronous: it runs in the token store's thread, under its lock).

        EGW00133 (issued less than a minute ago) is answered by waiting out the interval since the
        last issuance we know of, then asking again; the total wait is bounded by
        ``token_issue_interval + 15 s``. Never hammers: at most one request per computed wait.
        """
        cfg = self.config
        deadline = time.monotonic() + cfg.token_issue_interval + 15.0
        payload = {"grant_type": "client_credentials", "appkey": cfg.app_key, "appsecret": cfg.app_secret}
        transport = _sync_twin(self._sync_transport)
        with httpx.Client(
            base_url=cfg.rest_url, timeout=httpx.Timeout(cfg.timeout), transport=transport, trust_env=False
        ) as http:
            while True:
                requested_at = dt.datetime.now(KST)
                try:
                    response = http.post("/oauth2/tokenP", json=payload, headers={"content-type": "application/json"})
                except httpx.TimeoutException as exc:
                    raise BrokerTransientError("timeout issuing a token", kind="timeout") from exc
                except httpx.TransportError as exc:
                    raise BrokerTransientError(
                        f"network error issuing a token: {type(exc).__name__}", kind="network"
                    ) from exc
                try:
                    body: Any = response.json()
                except ValueError:
                    body = None
                error = classify(response.status_code, body)
                if isinstance(error, BrokerTokenRateLimited):
                    since = (requested_at - last_issued_at).total_seconds() if last_issued_at else 0.0
                    wait = min(max(1.0, cfg.token_issue_interval - since + 1.0), cfg.token_issue_interval + 1.0)
                    if time.monotonic() + wait > deadline:
                        raise error
                    logger.warning(
                        "broker token issuance deferred",
                        extra={**self._log, "error_code": error.code, "wait_s": round(wait, 1)},
                    )
                    time.sleep(wait)
                    last_issued_at = None  # afterwards, only the back-stop interval applies
                    continue
                if error is not None:
                    raise error
                token, expires_at = parsing.parse_token(body, now=requested_at)
                logger.info(
                    "broker token issued",
                    extra={**self._log, "expires_at": expires_at.isoformat()},
                )
                return AccessToken(token=token, expires_at=expires_at, issued_at=requested_at)

    def _raise_if_unknown(self, code: str, output1: Any) -> None:
        """Chart TRs answer an unknown code with a zeroed ``output1`` and ``[{}]`` (kis-api.md §3.2)."""
        if isinstance(output1, Mapping) and parsing.parse_int(output1.get("stck_prpr"), field="stck_prpr") <= 0:
            raise UnknownSymbol(f"unknown stock code {code}", msg_cd="NO_DATA")


def _sync_twin(transport: httpx.AsyncBaseTransport | None) -> httpx.BaseTransport | None:
    """For tests that pass an ``httpx.MockTransport`` (usable both ways); None for real networking."""
    return transport if isinstance(transport, httpx.BaseTransport) else None


class SyncKisClient:
    """Blocking facade for Celery tasks and scripts: runs an :class:`AsyncKisClient` on a private loop.

    Not thread-safe (one per thread) and not usable from inside a running event loop.
    """

    def __init__(self, config: KisConfig, *, token_store: TokenStore, redis_url: str, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = self._run(self._make(config, token_store, redis_url, kwargs))

    @staticmethod
    async def _make(config: KisConfig, store: TokenStore, redis_url: str, kwargs: dict[str, Any]) -> AsyncKisClient:
        return AsyncKisClient(config, token_store=store, redis_url=redis_url, **kwargs)

    def _run(self, coro: Coroutine[Any, Any, T] | Awaitable[T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._loop.run_until_complete(coro)
        if asyncio.iscoroutine(coro):
            coro.close()
        raise RuntimeError("SyncKisClient cannot be used inside a running event loop; use AsyncKisClient")

    @property
    def config(self) -> KisConfig:
        return self._client.config

    def __enter__(self) -> SyncKisClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._client.aclose())
        self._loop.close()

    def current_price(self, code: str, **kwargs: Any) -> Quote:
        return self._run(self._client.current_price(code, **kwargs))

    def daily_prices(self, code: str, **kwargs: Any) -> list[DailyBar]:
        return self._run(self._client.daily_prices(code, **kwargs))

    def daily_bars(self, code: str, start: dt.date, end: dt.date, **kwargs: Any) -> list[DailyBar]:
        return self._run(self._client.daily_bars(code, start, end, **kwargs))

    def minute_bars_today(self, code: str, **kwargs: Any) -> list[MinuteBar]:
        return self._run(self._client.minute_bars_today(code, **kwargs))

    def market_days(self, since: dt.date, **kwargs: Any) -> list[MarketDay]:
        return self._run(self._client.market_days(since, **kwargs))

    def approval_key(self) -> str:
        return self._run(self._client.approval_key())

    def request(self, method: str, path: str, tr_id: str | None, **kwargs: Any) -> KisResponse:
        return self._run(self._client.request(method, path, tr_id, **kwargs))


__all__ = ["AsyncKisClient", "KisResponse", "SyncKisClient", "backoff_delay", "classify"]
