"""``python manage.py runsandbox``: run the sandbox broker (KIS and Kiwoom) until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import signal
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.sandbox.config import config_from_settings
from apps.sandbox.kiwoom.conditions import ConditionFileError
from apps.sandbox.server import SandboxServer

logger = logging.getLogger("apps.sandbox")


class Command(BaseCommand):
    help = (
        "Run the sandbox broker replaying recorded KRX data: KIS REST + WebSocket (real and paper) and "
        "Kiwoom REST + WebSocket with condition search (real and mock keys)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host")
        parser.add_argument("--real-rest-port", type=int)
        parser.add_argument("--paper-rest-port", type=int)
        parser.add_argument("--real-ws-port", type=int)
        parser.add_argument("--paper-ws-port", type=int)
        parser.add_argument("--kiwoom-rest-port", type=int)
        parser.add_argument("--kiwoom-ws-port", type=int)
        parser.add_argument("--kiwoom-conditions", help="condition rules JSON (default: SANDBOX_KIWOOM_CONDITIONS)")
        parser.add_argument("--speed", type=float)
        parser.add_argument("--clock", choices=["replay", "wallclock"])
        parser.add_argument("--replay-date", help="YYYY-MM-DD (default: latest recorded date)")
        parser.add_argument("--seed", type=int)

    def handle(self, *args: Any, **opts: Any) -> None:
        if not logger.handlers and not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logger.setLevel(logging.INFO)
        try:
            replay_date = dt.date.fromisoformat(opts["replay_date"]) if opts.get("replay_date") else None
            config = config_from_settings(
                host=opts.get("host"),
                real_rest_port=opts.get("real_rest_port"),
                paper_rest_port=opts.get("paper_rest_port"),
                real_ws_port=opts.get("real_ws_port"),
                paper_ws_port=opts.get("paper_ws_port"),
                kiwoom_rest_port=opts.get("kiwoom_rest_port"),
                kiwoom_ws_port=opts.get("kiwoom_ws_port"),
                kiwoom_conditions=Path(opts["kiwoom_conditions"]) if opts.get("kiwoom_conditions") else None,
                speed=opts.get("speed"),
                clock_mode=opts.get("clock"),
                replay_date=replay_date,
                seed=opts.get("seed"),
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        asyncio.run(self._serve(config))

    async def _serve(self, config: Any) -> None:
        try:
            server = SandboxServer(config)
        except ConditionFileError as exc:
            raise CommandError(f"invalid Kiwoom condition rules: {exc}") from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await server.start()
        # Everything built so far (Django, the listeners, the recorded market) lives as long as the process:
        # leave it out of the garbage collector's full passes, which would otherwise scan it every time and
        # pause the send loops (gc.freeze is meant for exactly this, after start-up).
        gc.freeze()
        try:
            while not stop.is_set():
                # Heartbeat: one status line every 10 minutes of real time, otherwise wait for a signal.
                try:
                    await asyncio.wait_for(stop.wait(), 600)
                except TimeoutError:
                    status = server.core.clock_status()
                    logger.info(
                        "sandbox heartbeat: %s %s, %s KIS and %s Kiwoom ws connections",
                        status["now"],
                        status["session"],
                        len(server.core.hub.connections),
                        len(server.core.kiwoom_hub.connections),
                    )
        finally:
            logger.info("shutdown requested; closing listeners")
            await server.stop()
