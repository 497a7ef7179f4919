"""Small security helpers shared by settings and views."""

from __future__ import annotations


def client_ip(request) -> str | None:
    """The client address for throttles and login lockouts: ``REMOTE_ADDR`` only. Behind a trusted proxy
    (``HOGA_TRUSTED_PROXIES``) the ASGI layer has already replaced it with the forwarded client address;
    a forwarded header from anyone else never reaches Django (``apps.core.proxy``)."""
    return request.META.get("REMOTE_ADDR") or None
