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

import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

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
    DailyBar,
    MinuteBar,
    Quote,
    UnknownSymbol,
)
from ..rest import RestClient, RestResponse, SyncClient, backoff_delay, token_request
from . import parsing
from .config import KiwoomConfig

logger = logging.getLogger(__name__)

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
class KiwoomResponse(RestResponse):
    """A successful Kiwoom response; ``cont-yn`` / ``next-key`` say whether more pages follow."""

    @property
    def cont_yn(self) -> str:
        return str(self.headers.get("cont-yn", "")).strip().upper()

    @property
    def next_key(self) -> str:
        return str(self.headers.get("next-key", "")).strip()

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


class AsyncKiwoomClient(RestClient[KiwoomConfig, KiwoomResponse]):
    """Asynchronous Kiwoom REST client for one app key. One instance per event loop; ``async with`` or aclose."""

    broker = "kiwoom"
    response_type = KiwoomResponse
    label_field = "api_id"
    max_connections = (20, 10)
    classify = staticmethod(classify)

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

    async def pages(self, api_id: str, path: str, body: Mapping[str, Any]) -> AsyncIterator[KiwoomResponse]:
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
        return await self.call(api_id, lambda: self._attempt(api_id, path, body, cont_yn, next_key))

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
        return await self.exchange(
            lambda: self._http.post(path, json=dict(body), headers=headers), label=api_id, counted=api_id, token=token
        )

    # --- tokens -----------------------------------------------------------------------------------------------

    def _issue_token(self, last_issued_at: dt.datetime | None) -> AccessToken:
        """au10001 ``POST /oauth2/token`` (synchronous: it runs in the token store's thread, under its lock).

        The body field is ``secretkey`` (§A2). Rate-limited answers are retried after a bounded wait.
        """
        cfg = self.config
        payload = {"grant_type": "client_credentials", "appkey": cfg.app_key, "secretkey": cfg.secret_key}
        headers = {"content-type": "application/json;charset=UTF-8", "api-id": "au10001"}
        with self._token_http() as http:
            for attempt in range(1, cfg.max_retries + 2):
                requested_at, response, body = token_request(http, "/oauth2/token", payload, headers)
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


class SyncKiwoomClient(SyncClient[AsyncKiwoomClient]):
    """Blocking facade of :class:`AsyncKiwoomClient` for Celery tasks and scripts (one per thread)."""

    async_type = AsyncKiwoomClient

    @property
    def config(self) -> KiwoomConfig:
        return self._client.config

    def quote(self, code: str) -> Quote:
        return self._run(self._client.quote(code))

    def daily_bars(self, code: str, start: dt.date, end: dt.date, **kwargs: Any) -> list[DailyBar]:
        return self._run(self._client.daily_bars(code, start, end, **kwargs))

    def minute_bars(self, code: str, **kwargs: Any) -> list[MinuteBar]:
        return self._run(self._client.minute_bars(code, **kwargs))


__all__ = ["AsyncKiwoomClient", "KiwoomResponse", "SyncKiwoomClient", "classify"]
