"""The REST call loop every broker client shares: breaker, token, rate limit, retries, metrics, sync facade.

A broker client (:class:`~apps.brokers.kis.client.AsyncKisClient`,
:class:`~apps.brokers.kiwoom.client.AsyncKiwoomClient`) says only how one request is built and how an answer
is classified; every call goes through :meth:`RestClient.call`, in this order:

1. the shared circuit breaker (:mod:`.breaker`): an open circuit raises :class:`CircuitOpen` at once; a
   half-open probe gets no retries;
2. the attempt (:meth:`RestClient.exchange` inside the broker's own ``_attempt``): the shared access token
   (in-process cache → TokenStore, issued under the store's cross-process lock), the shared Redis rate
   limiter (:mod:`.ratelimit`), the HTTP request, and its classification into a response or a typed
   :class:`BrokerError`;
   Each request's latency also goes to the process's Prometheus histogram (``apps.core.metrics``).
3. retries of :class:`BrokerTransientError` only (network, timeout, 5xx, rate limit), at most
   ``max_retries`` more attempts with exponential back-off and jitter (at least one limiter interval after
   a rate-limited answer); a rejected token is dropped, re-issued once and the call retried at once;
4. the outcome reported to the breaker. Failures count against it: transient errors whose retries ran
   out (a rate limit included: the key got no answer it could use). Successes and business errors (the
   broker answered) count for it; the limiter timing out, an unavailable token store and cancellation
   count for neither.

Nothing here touches the ORM or logs a secret (only ``key_id``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

import httpx
from redis.asyncio import Redis as AsyncRedis

from apps.core.metrics import observe_broker_call

from .base import (
    KST,
    AccessToken,
    BrokerError,
    BrokerRateLimited,
    BrokerTokenRejected,
    BrokerTransientError,
    BrokerUnavailable,
    CircuitOpen,
    LimiterTimeout,
)
from .breaker import Permit, Rejection
from .config import BrokerConfig
from .guards import broker_guards
from .tokens import TokenStore

logger = logging.getLogger(__name__)

T = TypeVar("T")
C = TypeVar("C", bound=BrokerConfig)
R = TypeVar("R", bound="RestResponse")


def backoff_delay(attempt: int, *, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Exponential back-off with "equal jitter": half of ``min(cap, base * 2**(attempt-1))`` plus a
    uniformly random share of the other half. ``attempt`` counts retries from 1."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return float(ceiling / 2 + rng() * ceiling / 2)


@dataclass(frozen=True, slots=True)
class RestResponse:
    """A successful response: the JSON body, the response headers (lower-case), the status and the latency."""

    body: Mapping[str, Any]
    headers: httpx.Headers
    status: int
    latency: float


class Classifier(Protocol):
    def __call__(self, status: int, body: Any) -> BrokerError | None: ...


def token_request(http: httpx.Client, path: str, payload: Mapping[str, str], headers: Mapping[str, str]) -> tuple[
    dt.datetime, httpx.Response, Any
]:  # fmt: skip
    """POST a token request (blocking): (requested_at, response, JSON body or None). Network failures are
    :class:`BrokerTransientError`."""
    requested_at = dt.datetime.now(KST)
    try:
        response = http.post(path, json=dict(payload), headers=dict(headers))
    except httpx.TimeoutException as exc:
        raise BrokerTransientError("timeout issuing a token", kind="timeout") from exc
    except httpx.TransportError as exc:
        raise BrokerTransientError(f"network error issuing a token: {type(exc).__name__}", kind="network") from exc
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    return requested_at, response, body


class RestClient(Generic[C, R]):
    """Asynchronous REST client for one app key. One instance per event loop; ``async with`` or :meth:`aclose`.

    Subclasses set :attr:`broker`, :attr:`response_type`, :attr:`label_field` and :attr:`max_connections`,
    implement :meth:`classify` and :meth:`_issue_token`, and build each request in their own ``_attempt``,
    which hands the send to :meth:`exchange`.
    """

    broker: ClassVar[str]
    response_type: type[R]
    #: The log field naming a call: ``tr_id`` (KIS) or ``api_id`` (Kiwoom).
    label_field: ClassVar[str] = "call"
    max_connections: ClassVar[tuple[int, int]] = (20, 10)
    classify: Classifier

    def __init__(
        self,
        config: C,
        *,
        token_store: TokenStore,
        redis: AsyncRedis | None = None,
        redis_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if redis is None:
            if not redis_url:
                raise ValueError(
                    f"{type(self).__name__} needs a Redis client or redis_url (shared limiter and breaker)"
                )
            redis = AsyncRedis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
            self._owns_redis = True
        else:
            self._owns_redis = False
        self.config = config
        self._store = token_store
        self._redis = redis
        self._rng = rng
        connections, keepalive = self.max_connections
        self._http = httpx.AsyncClient(
            base_url=config.rest_url,
            timeout=httpx.Timeout(config.timeout),
            transport=transport,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=keepalive),
            trust_env=False,
        )
        self._sync_transport = transport  # only used to detect test transports for token issuance
        guards = broker_guards(redis, config)
        self.limiter, self.breaker, self.metrics = guards.limiter, guards.breaker, guards.metrics
        self._token: AccessToken | None = None
        self._token_lock = asyncio.Lock()
        self._log: dict[str, Any] = {"broker": self.broker, "env": config.env, "key_id": config.key_id}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._owns_redis:
            await self._redis.aclose()

    # --- the call loop ----------------------------------------------------------------------------------------

    async def call(self, label: str, attempt: Callable[[], Awaitable[R]], *, renewable: bool = True) -> R:
        """One call with the full breaker / token / limiter / retry treatment (see the module docstring).

        ``attempt`` performs one request (through :meth:`exchange`); ``renewable`` = False for a call made
        without a token, whose token rejection cannot be cured by renewing it.
        """
        verdict = await self.breaker.before_call()
        if isinstance(verdict, Rejection):
            await self.metrics.incr({"breaker_rejected": 1})
            raise CircuitOpen(
                f"circuit breaker open for app key {self.config.key_id} ({self.config.env}); "
                f"retry in {verdict.retry_after:.1f}s",
                retry_after=verdict.retry_after,
            )
        permit = verdict
        max_retries = 0 if permit is Permit.PROBE else self.config.max_retries
        retries = 0
        token_renewed = False
        while True:
            try:
                resp = await attempt()
            except BrokerTokenRejected as exc:
                if not renewable or token_renewed:
                    await self._finish(permit, ok=True, error=exc, label=label)
                    raise
                token_renewed = True
                await self._renew_token(exc.rejected_token, code=exc.code)
                continue
            except LimiterTimeout as exc:
                await self._finish(permit, ok=None, error=exc, label=label)
                raise
            except BrokerTransientError as exc:
                if retries >= max_retries:
                    await self._finish(permit, ok=False, error=exc, label=label)
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
                        self.label_field: label,
                        "retry": retries,
                        "error_code": exc.code,
                        "delay_s": round(delay, 3),
                    },
                )
                await asyncio.sleep(delay)
                continue
            except BrokerUnavailable as exc:
                await self._finish(permit, ok=None, error=exc, label=label)
                raise
            except BrokerError as exc:
                await self._finish(permit, ok=True, error=exc, label=label)
                raise
            except BaseException:
                await asyncio.shield(self.breaker.after_call(ok=None, permit=permit))
                raise
            await self._finish(permit, ok=True, error=None, label=label)
            return resp

    async def exchange(
        self,
        send: Callable[[], Awaitable[httpx.Response]],
        *,
        label: str,
        counted: str | None,
        token: AccessToken | None,
    ) -> R:
        """One request: a limiter slot, the send, the classification, the counters. ``counted`` names the
        per-call counter (``calls:<counted>``); ``token`` is the one sent (recorded on a rejection)."""
        reservation = await self.limiter.acquire()
        counts = {"calls": 1}
        if counted:
            counts[f"calls:{counted}"] = 1
        if reservation.waited > 0:
            counts["limiter_waits"] = 1
            counts["limiter_wait_ms"] = round(reservation.waited * 1000)
        started = time.perf_counter()
        try:
            response = await send()
        except httpx.TimeoutException as exc:
            await self._count_error(counts, "timeout", started, counted)
            raise BrokerTransientError(f"timeout calling {label}: {type(exc).__name__}", kind="timeout") from exc
        except httpx.TransportError as exc:
            await self._count_error(counts, "network", started, counted)
            raise BrokerTransientError(f"network error calling {label}: {type(exc).__name__}", kind="network") from exc
        latency = time.perf_counter() - started
        counts["latency_ms"] = round(latency * 1000)
        observe_broker_call(self.broker, counted, latency, "ok" if response.status_code < 400 else "error")
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        error = self.classify(response.status_code, body)
        if error is not None:
            counts["errors"] = 1
            counts[f"errors:{error.code}"] = 1
            await self.metrics.incr(counts)
            if isinstance(error, BrokerTokenRejected) and token is not None:
                error.rejected_token = token.token
            raise error
        counts["ok"] = 1
        await self.metrics.incr(counts)
        return self.response_type(body=body, headers=response.headers, status=response.status_code, latency=latency)

    async def _count_error(self, counts: dict[str, int], code: str, started: float, counted: str | None) -> None:
        elapsed = time.perf_counter() - started
        counts["errors"] = 1
        counts[f"errors:{code}"] = 1
        counts["latency_ms"] = round(elapsed * 1000)
        observe_broker_call(self.broker, counted, elapsed, code)
        await self.metrics.incr(counts)

    async def _finish(self, permit: Permit, *, ok: bool | None, error: BrokerError | None, label: str) -> None:
        """Report the call's outcome to the breaker; log the failure and any transition (one line each)."""
        try:
            transition = await self.breaker.after_call(ok=ok, permit=permit)
        except Exception as exc:  # noqa: BLE001 - the call's own outcome matters more than the bookkeeping
            logger.warning("broker breaker update failed", extra={**self._log, "error": type(exc).__name__})
            transition = ""
        if error is not None and ok is False:
            logger.warning("broker call failed", extra={**self._log, self.label_field: label, "error_code": error.code})
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

    # --- tokens -----------------------------------------------------------------------------------------------

    def _token_usable(self, token: AccessToken) -> bool:
        """Usable until ``token_refresh_margin`` before its expiry; for short-lived tokens, until half-life."""
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
        """Drop the rejected token and get another one.

        Idempotent per rejected token: when another coroutine of this process already replaced it,
        nothing happens; when another process already replaced it, the store returns that one.
        """
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
        """Request a fresh token (blocking: it runs in the token store's thread, under its lock)."""
        raise NotImplementedError

    def _token_http(self) -> httpx.Client:
        """A blocking HTTP client for token issuance (a test transport is reused when it works both ways)."""
        transport = self._sync_transport if isinstance(self._sync_transport, httpx.BaseTransport) else None
        return httpx.Client(
            base_url=self.config.rest_url,
            timeout=httpx.Timeout(self.config.timeout),
            transport=transport,
            trust_env=False,
        )


A = TypeVar("A", bound=RestClient[Any, Any])


class SyncClient(Generic[A]):
    """Blocking facade for Celery tasks and scripts: runs an asynchronous client on a private loop.

    Not thread-safe (one per thread) and not usable from inside a running event loop.
    """

    async_type: type[A]

    def __init__(self, config: BrokerConfig, *, token_store: TokenStore, redis_url: str, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._client: A = self._run(self._make(config, token_store, redis_url, kwargs))

    async def _make(self, config: BrokerConfig, store: TokenStore, redis_url: str, kwargs: dict[str, Any]) -> A:
        return self.async_type(config, token_store=store, redis_url=redis_url, **kwargs)

    def _run(self, coro: Coroutine[Any, Any, T] | Awaitable[T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._loop.run_until_complete(coro)
        if asyncio.iscoroutine(coro):
            coro.close()
        raise RuntimeError(
            f"{type(self).__name__} cannot be used inside a running event loop; use {self.async_type.__name__}"
        )

    @property
    def config(self) -> Any:
        return self._client.config

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._client.aclose())
        self._loop.close()
