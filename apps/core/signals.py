"""Logout closes the session's WebSockets: ``session.ended`` to the session's group (``apps.core.consumers``)."""

from __future__ import annotations

import logging

from .consumers import SESSION_ENDED
from .groups import session_group
from .realtime import group_send_many

logger = logging.getLogger(__name__)


def close_session_sockets(sender, request=None, user=None, **kwargs) -> None:

    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if not key:
        return
    group_send_many([(session_group(key), {"type": SESSION_ENDED, "reason": "logout"})], what="session end")
