"""``python manage.py sandbox_fault <fault> [options]``: inject a fault into a running sandbox.

Faults: ws_drop, ws_stall, rate_limit, server_error, expire_tokens, latency, kiwoom_mute_conditions (see
apps.sandbox.faults; they act on the KIS and the Kiwoom listeners alike);
``clear`` removes standing faults, ``show`` prints them, ``restart`` restarts the replayed session.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.sandbox.config import config_from_settings
from apps.sandbox.faults import FAULT_NAMES


class Command(BaseCommand):
    help = "Inject a fault into (or clear/show the faults of) a running sandbox broker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("fault", choices=[*FAULT_NAMES, "clear", "show", "restart"])
        parser.add_argument("--count", type=int, help="rate_limit/server_error: number of calls")
        parser.add_argument("--seconds", type=float, help="duration (latency: added delay per response)")
        parser.add_argument("--duration", type=float, help="latency: how long the delay stays on")
        parser.add_argument("--status", type=int, help="server_error: HTTP status (5xx)")
        parser.add_argument("--mode", choices=["real", "paper"], default="paper", help="REST listener to call")
        parser.add_argument("--host")
        parser.add_argument("--port", type=int)

    def handle(self, *args: Any, **opts: Any) -> None:
        config = config_from_settings()
        host = opts.get("host") or config.host
        port = opts.get("port") or (config.real_rest_port if opts["mode"] == "real" else config.paper_rest_port)
        base = f"http://{host}:{port}"
        headers = {"X-Sandbox-Admin": config.admin_token}
        name = opts["fault"]
        try:
            with httpx.Client(base_url=base, headers=headers, timeout=10.0) as client:
                if name == "clear":
                    resp = client.delete("/sandbox/faults")
                elif name == "show":
                    resp = client.get("/sandbox/faults")
                elif name == "restart":
                    resp = client.post("/sandbox/clock", json={"action": "restart"})
                else:
                    body: dict[str, object] = {"fault": name}
                    for key in ("count", "seconds", "duration", "status"):
                        if opts.get(key) is not None:
                            body[key] = opts[key]
                    resp = client.post("/sandbox/faults", json=body)
        except httpx.HTTPError as exc:
            raise CommandError(f"sandbox at {base} unreachable: {exc}") from exc
        if resp.status_code != 200:
            raise CommandError(f"sandbox refused ({resp.status_code}): {resp.text}")
        self.stdout.write(json.dumps(resp.json(), ensure_ascii=False, indent=2))
