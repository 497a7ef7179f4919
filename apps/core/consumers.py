"""Bases of Hoga's JSON WebSockets.

``SafeJsonConsumer``: every client frame gets an answer or an effect, and a bad one an ``error`` frame while
the socket stays open: binary frames, oversized frames, malformed or too deeply nested JSON
(``apps.core.jsonsafe``), frames above the connection's rate (a token bucket: ``WS_MESSAGE_RATE`` per second,
bursts of ``WS_MESSAGE_BURST``) and even an unexpected error in a handler (logged; ``server_error``). A
connection is bound to its login session: logging out (``user_logged_out``) sends ``session.ended`` to the
session's group, and the session's expiry is timed, so the socket closes (4401) when its session ends instead
of receiving pushes for a user who left.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from .groups import session_group
from .jsonsafe import UnsafeJSON, loads_bounded

logger = logging.getLogger(__name__)

SESSION_ENDED = "session.ended"
CLOSE_SESSION_ENDED = 4401


class ClientMessageError(Exception):
    """A client frame answered with an error frame (the connection stays open)."""

    def __init__(self, code: str, message: str, *, codes: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.codes = codes


class SafeJsonConsumer(AsyncJsonWebsocketConsumer):
    max_message_chars = 8192

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tokens = float(settings.WS_MESSAGE_BURST)
        self._tokens_at = time.monotonic()
        self._session_group: str | None = None
        self._expiry_task: asyncio.Task | None = None

    # --- frames ------------------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        try:
            if not self._take_token():
                raise ClientMessageError(
                    "rate_limited", f"at most {settings.WS_MESSAGE_RATE:g} messages per second on one connection"
                )
            if text_data is None:
                raise ClientMessageError("bad_message", "expected a JSON text frame")
            if len(text_data) > self.max_message_chars:
                raise ClientMessageError(
                    "message_too_large", f"messages are limited to {self.max_message_chars} characters"
                )
            try:
                content = loads_bounded(text_data, max_depth=settings.WS_JSON_MAX_DEPTH)
            except UnsafeJSON as exc:
                raise ClientMessageError(
                    "bad_message" if exc.code == "invalid_json" else exc.code, exc.message
                ) from None
            await self.receive_json(content)
        except ClientMessageError as exc:
            await self.send_error(exc.code, exc.message, codes=exc.codes)
        except Exception:
            logger.exception("websocket frame failed", extra={"consumer": type(self).__name__})
            await self.send_error("server_error", "the message could not be handled; try again")

    async def send_error(self, code: str, message: str, *, codes: list[str] | None = None) -> None:
        error: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if codes is not None:
            error["codes"] = codes
        try:
            await self.send_json(error)
        except Exception:  # the browser left meanwhile
            logger.debug("error frame not sent: connection gone")

    def _take_token(self) -> bool:
        now = time.monotonic()
        rate, burst = float(settings.WS_MESSAGE_RATE), float(settings.WS_MESSAGE_BURST)
        self._tokens = min(burst, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    # --- the login session ---------------------------------------------------------------------------

    async def bind_session(self) -> None:
        """Join the session's group and time its expiry (call once accepted). No session: nothing to bind."""
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        if not key:
            return
        self._session_group = session_group(key)
        await self.channel_layer.group_add(self._session_group, self.channel_name)
        try:
            seconds = await database_sync_to_async(session.get_expiry_age)()
        except Exception:
            logger.warning("websocket: session expiry unknown; closed at logout only")
            return
        self._expiry_task = asyncio.create_task(self._close_at_expiry(max(1.0, float(seconds))))

    async def _close_at_expiry(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.session_ended({"reason": "expired"})

    async def session_ended(self, event: dict[str, Any]) -> None:
        try:
            await self.send_json({"type": "session_ended", "reason": event.get("reason", "logout")})
        except Exception:
            logger.debug("session_ended not sent: connection gone")
        await self.close(code=CLOSE_SESSION_ENDED)

    async def unbind_session(self) -> None:
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            self._expiry_task = None
        if self._session_group is not None:
            group, self._session_group = self._session_group, None
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception as exc:
                logger.warning("websocket: leaving the session group failed: %r", exc)


class PingJsonConsumer(SafeJsonConsumer):
    """A JSON WebSocket whose clients only send ``ping`` (answered with ``pong``); anything else, including
    text that is not JSON, gets a ``bad_message`` error and the connection stays open."""

    bad_message_text = 'only {"type": "ping"} is accepted'

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "id": content.get("id")})
        else:
            await self.send_error("bad_message", self.bad_message_text)

    async def disconnect(self, code):
        await self.unbind_session()


class GroupsConsumer(PingJsonConsumer):
    """A push-only WebSocket: ``join`` its groups at connect (and binds its session), leaves them on disconnect."""

    groups_joined: list[str]

    async def join(self, groups: list[str]) -> None:
        self.groups_joined = groups
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.bind_session()

    async def disconnect(self, code):
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        await self.unbind_session()


class PingConsumer(PingJsonConsumer):
    """Liveness of the WebSocket path (browser -> Daphne -> Channels): answers ``ping`` with ``pong``."""

    bad_message_text = 'expected {"type": "ping"}'

    async def connect(self):
        if not self.scope["user"].is_authenticated:
            await self.close(code=4401)
            return
        await self.accept()
        await self.bind_session()
