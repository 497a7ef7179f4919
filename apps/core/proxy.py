"""Proxy headers from trusted proxies only.

Daphne is started without ``--proxy-headers`` (which would believe ``X-Forwarded-For`` from anyone).
Instead this ASGI middleware honours ``X-Forwarded-For`` / ``X-Forwarded-Proto`` only when the connection
comes from an address in ``HOGA_TRUSTED_PROXIES`` (IPs or CIDR networks, e.g. the load balancer). From
anyone else the headers are removed, so a client published directly cannot claim HTTPS or another address.
With the proxy trusted, the client address becomes the right-most ``X-Forwarded-For`` entry not itself a
trusted proxy, and the scheme becomes ``https`` / ``wss`` when the proxy says ``https``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

FORWARDED = (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"forwarded")


def parse_networks(entries: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(e.strip(), strict=False) for e in entries if e and e.strip()]


def _trusted(address: str | None, networks) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


class TrustedProxyMiddleware:
    def __init__(self, app, trusted: Iterable[str]):
        self.app = app
        self.networks = parse_networks(trusted)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = list(scope.get("headers") or [])
        client = scope.get("client")
        peer = client[0] if client else None
        kept = [(k, v) for k, v in headers if k.lower() not in FORWARDED]
        scope = dict(scope, headers=kept)
        if self.networks and _trusted(peer, self.networks):
            values = {k.lower(): v.decode("latin-1") for k, v in headers if k.lower() in FORWARDED}
            chain = [p.strip() for p in values.get(b"x-forwarded-for", "").split(",") if p.strip()]
            for hop in reversed(chain):
                if not _trusted(hop, self.networks):
                    scope["client"] = (hop, 0)
                    break
            proto = values.get(b"x-forwarded-proto", "").split(",")[0].strip().lower()
            if proto in ("https", "http"):
                secure = proto == "https"
                if scope["type"] == "websocket":
                    scope["scheme"] = "wss" if secure else "ws"
                else:
                    scope["scheme"] = proto
        return await self.app(scope, receive, send)
