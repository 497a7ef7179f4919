"""One-shot condition search calls (kiwoom-api.md §A7), each on its own short WebSocket connection.

Every call: token → connect → ``LOGIN`` → ``CNSRLST`` (the reference requires the list call first on the
connection) → the request, every page (body ``cont_yn`` / ``next_key``, not headers) → close. The whole call
is bounded by ``timeout`` seconds. A LOGIN refused for the token (8005 …) gets one fresh token and one retry.

``config=None`` means :meth:`KiwoomConfig.from_settings`. The access token comes from ``token`` (``async
(rejected) -> str``) or, without it, from a REST client built by ``clients(config)`` (the application passes
its factory, whose token store is the database one shared with the REST client).
The ``*_sync`` wrappers are for Celery tasks (they must not run inside an event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ..base import BrokerProtocolError, ConditionHit, ConditionInfo
from . import parsing
from .client import AsyncKiwoomClient
from .config import KiwoomConfig
from .ws import TOKEN_CODES, KiwoomConnection, LoginRefused, RequestRefused, condition_request

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = 20.0
#: Pages of one search at most (each page is one request/answer on the socket).
MAX_PAGES = 50

TokenSource = Callable[[str | None], Awaitable[str]]
ClientFactory = Callable[[KiwoomConfig], AsyncKiwoomClient]


@contextlib.asynccontextmanager
async def _token_source(
    config: KiwoomConfig, token: TokenSource | None, clients: ClientFactory | None
) -> AsyncIterator[TokenSource]:
    if token is not None:
        yield token
        return
    if clients is None:
        raise ValueError("a condition call needs a token source or a client factory")
    client = clients(config)
    try:
        yield client.ws_token
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def _session(
    config: KiwoomConfig, token: TokenSource | None, clients: ClientFactory | None, timeout: float
) -> AsyncIterator[KiwoomConnection]:
    """A logged-in connection with CNSRLST done (its answer in ``conn.condition_infos``)."""
    async with _token_source(config, token, clients) as source:
        current = await source(None)
        for attempt in (1, 2):
            conn = KiwoomConnection(config.ws_url, request_timeout=timeout, open_timeout=min(timeout, 10.0),
                                    log_extra={"broker": "kiwoom", "key_id": config.key_id})  # fmt: skip
            await conn.connect()
            try:
                await conn.login(current)
            except LoginRefused as exc:
                await conn.close()
                if attempt == 2 or exc.msg_cd not in TOKEN_CODES:
                    raise
                current = await source(current)
                continue
            try:
                await conn.condition_list()
                yield conn
            finally:
                await conn.close()
            return


async def condition_list(
    config: KiwoomConfig | None = None,
    *,
    token: TokenSource | None = None,
    clients: ClientFactory | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[ConditionInfo]:
    """The account's saved conditions (CNSRLST), seqs stripped of padding."""
    config = config or KiwoomConfig.from_settings()

    async def run() -> list[ConditionInfo]:
        async with _session(config, token, clients, timeout) as conn:
            return list(conn.condition_infos)

    return await asyncio.wait_for(run(), timeout)


async def condition_search(
    seq: str,
    config: KiwoomConfig | None = None,
    *,
    token: TokenSource | None = None,
    clients: ClientFactory | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[ConditionHit]:
    """The stocks matching condition ``seq`` now (CNSRREQ ``search_type`` 0), every page, in answer order.

    :class:`RequestRefused` (a BrokerBusinessError) when the broker refuses the request (e.g. unknown seq).
    """
    seq = str(seq).strip()
    if not seq:
        raise ValueError("condition seq is empty")
    config = config or KiwoomConfig.from_settings()

    async def run() -> list[ConditionHit]:
        hits: list[ConditionHit] = []
        async with _session(config, token, clients, timeout) as conn:
            cont_yn, next_key = "N", ""
            for _page in range(MAX_PAGES):
                answer = await conn.request(
                    condition_request(seq, search_type="0", exchange=config.condition_exchange, cont_yn=cont_yn,
                                      next_key=next_key),
                    "CNSRREQ",
                )  # fmt: skip
                hits.extend(parsing.parse_condition_hits(answer))
                more = str(answer.get("cont_yn") or "").strip().upper() == "Y"
                next_key = str(answer.get("next_key") or "").strip()
                if not more or not next_key:
                    return hits
                cont_yn = "Y"
            raise BrokerProtocolError(f"condition {seq}: more than {MAX_PAGES} pages")

    return await asyncio.wait_for(run(), timeout)


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("the *_sync condition calls cannot run inside an event loop; await the async ones")


def condition_list_sync(config: KiwoomConfig | None = None, **kwargs: Any) -> list[ConditionInfo]:
    return _run_sync(condition_list(config, **kwargs))


def condition_search_sync(seq: str, config: KiwoomConfig | None = None, **kwargs: Any) -> list[ConditionHit]:
    return _run_sync(condition_search(seq, config, **kwargs))


__all__ = [
    "RequestRefused",
    "condition_list",
    "condition_list_sync",
    "condition_search",
    "condition_search_sync",
]
