"""The sandbox broker: KIS listeners (real/paper REST, real/paper WS) and Kiwoom listeners (one REST, one
WS, both serving real and mock keys), all aiohttp, over one core: one replayed market and one clock.

``SandboxServer`` runs inside an existing event loop (``runsandbox`` uses it directly);
``SandboxThread`` runs one in a background thread with its own loop (tests, other Hoga tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from apps.sandbox.auth import Authority
from apps.sandbox.clock import DAY_END_S, SandboxClock
from apps.sandbox.config import SandboxConfig
from apps.sandbox.day import DEFAULT_NXT_ELIGIBLE, DayBook, ViRules
from apps.sandbox.faults import FaultState
from apps.sandbox.kiwoom.auth import KiwoomAuthority
from apps.sandbox.kiwoom.conditions import ConditionEngine, load_conditions
from apps.sandbox.kiwoom.rest import KiwoomRestApi
from apps.sandbox.kiwoom.ws import KiwoomHub
from apps.sandbox.orders import OrderBookKeeper
from apps.sandbox.replay import ReplayMarket, build_market
from apps.sandbox.rest import RestApi
from apps.sandbox.venues import VenueModel
from apps.sandbox.ws import WsHub

logger = logging.getLogger("apps.sandbox")
T = TypeVar("T")


def _hms(s: int) -> str:
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


class SandboxCore:
    """Shared state of all listeners: config, market, clock, auth, faults, the WS hubs and the
    Kiwoom condition engine. A malformed condition rules file raises ``ConditionFileError`` here."""

    def __init__(self, config: SandboxConfig, market: ReplayMarket | None = None) -> None:
        self.config = config
        self.market = market if market is not None else build_market(config)
        self.clock = SandboxClock(config.clock_mode, config.speed, self.market.date, times=self.market.times)
        self.authority = Authority(config)
        self.orders = OrderBookKeeper(self.market, config.order_deposit)
        self.venues = VenueModel()
        self.days = DayBook(
            self.market,
            nxt_eligible=config.nxt_eligible or DEFAULT_NXT_ELIGIBLE,
            kospi200=config.kospi200,
            rules=ViRules(config.vi_static_pct, config.vi_dynamic_pct_kospi200, config.vi_dynamic_pct_other),
        )
        self.faults = FaultState()
        self.hub = WsHub(self)
        self.orders.sinks.append(self.hub.on_notice)
        self.kiwoom_auth = KiwoomAuthority(config)
        self.conditions = ConditionEngine(load_conditions(config.kiwoom_conditions_path()), self.market)
        self.kiwoom_hub = KiwoomHub(self)

    def clock_status(self) -> dict[str, object]:
        """JSON of ``GET /sandbox/clock``."""
        return {
            "now": self.clock.now_dt().isoformat(timespec="milliseconds"),
            "replay_date": self.market.date.isoformat(),
            "session": self.clock.state(),
            "speed": self.clock.speed,
            "clock": self.clock.mode,
            "data_source": self.market.data_source,
            "synthetic": self.market.synthetic,
            "universe": list(self.market.tapes),
            # The replayed day's session (the market clock computes each venue's phase from it) and the sandbox's own
            # phase per venue, VIs and what is synthetic (``apps.sandbox.day``).
            "session_open": _hms(self.clock.times.open_s),
            "session_close": _hms(self.clock.times.close_s),
            "day": self.days.status(self.clock.now_ms()),
            # True while a connection waits for the replayed tape to be generated up to now (after a jump far
            # into the day): the prints of the wait reach no client until it is False again.
            "catching_up": self.hub.catching_up,
        }

    def restart_session(self) -> None:
        self.jump_to(self.clock.times.open_s)

    def jump_to(self, sim_s: float) -> None:
        self.clock.jump(sim_s)
        wallclock = self.clock.mode == "wallclock"
        since_ms = self.clock.now_ms() if wallclock else int(min(max(sim_s, 0.0), DAY_END_S) * 1000)
        self.hub.reset_cursor(since_ms)
        self.kiwoom_hub.reset_cursor(since_ms)
        logger.info("clock moved to %s (%s)", self.clock.now_dt().strftime("%H:%M:%S"), self.clock.state())

    async def run_fault(self, name: str, body: dict[str, object]) -> dict[str, object]:
        """Execute one-shot faults; standing ones were recorded by ``FaultState.apply``."""
        if name == "ws_drop":
            count = await self.hub.drop_all("fault ws_drop")
            kiwoom = await self.kiwoom_hub.drop_all("fault ws_drop")
            logger.warning("fault ws_drop: dropped %s KIS and %s Kiwoom connections", count, kiwoom)
            return {"dropped": count, "kiwoom_dropped": kiwoom}
        if name == "expire_tokens":
            count = self.authority.expire_all()
            kiwoom = self.kiwoom_auth.expire_all()
            logger.warning("fault expire_tokens: %s KIS and %s Kiwoom live tokens expired", count, kiwoom)
            return {"expired": count, "kiwoom_expired": kiwoom}
        logger.warning("fault %s set: %s", name, body)
        return {}


@dataclass(frozen=True, slots=True)
class BoundPorts:
    """Ports actually bound (differs from the config when it asked for port 0)."""

    real_rest: int
    paper_rest: int
    real_ws: int
    paper_ws: int
    kiwoom_rest: int = 0
    kiwoom_ws: int = 0


class SandboxServer:
    """Starts and stops the six listeners and the replay loops inside the running event loop."""

    def __init__(self, config: SandboxConfig, market: ReplayMarket | None = None) -> None:
        self.config = config
        self.core = SandboxCore(config, market)
        self._runners: list[web.AppRunner] = []
        self._stop = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._kiwoom_task: asyncio.Task[None] | None = None
        self.ports: BoundPorts | None = None

    async def _listen(self, app: web.Application, port: int) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, port, reuse_address=True)
        await site.start()
        self._runners.append(runner)
        sockets = site._server.sockets if site._server is not None else ()  # type: ignore[union-attr]
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def start(self) -> BoundPorts:
        cfg = self.config
        core = self.core
        market = core.market
        if market.synthetic:
            logger.warning(
                "SYNTHETIC MARKET DATA: no recorded data dir; replaying a seeded random walk for %s codes",
                len(market.tapes),
            )
        logger.warning(
            "SYNTHETIC market-day prints: closing-price sessions, after-hours single-price calls and NXT pre/after "
            "markets are a seeded model (no recorded data there); NXT-eligible: %s; KOSPI200 membership %s",
            ",".join(sorted(core.days.nxt_eligible)),
            core.days.kospi200_source,
        )
        self.ports = BoundPorts(
            real_rest=await self._listen(RestApi(core, "real").make_app(), cfg.real_rest_port),
            paper_rest=await self._listen(RestApi(core, "paper").make_app(), cfg.paper_rest_port),
            real_ws=await self._listen(core.hub.make_app("real"), cfg.real_ws_port),
            paper_ws=await self._listen(core.hub.make_app("paper"), cfg.paper_ws_port),
            kiwoom_rest=await self._listen(KiwoomRestApi(core).make_app(), cfg.kiwoom_rest_port),
            kiwoom_ws=await self._listen(core.kiwoom_hub.make_app(), cfg.kiwoom_ws_port),
        )
        # A replayed session starts at its open (09:00:00.000 on a regular day) when the sandbox starts: send from
        # there (the opening print).
        since_ms = core.clock.times.open_s * 1000 if core.clock.mode == "replay" else None
        core.hub.reset_cursor(since_ms)
        core.kiwoom_hub.reset_cursor(since_ms)
        self._loop_task = asyncio.create_task(core.hub.run(self._stop), name="sandbox-replay")
        self._kiwoom_task = asyncio.create_task(core.kiwoom_hub.run(self._stop), name="sandbox-kiwoom-replay")
        logger.info(
            "sandbox up on %s: REST real %s / paper %s, WS real %s / paper %s; replay %s (%s, speed %g); %s",
            cfg.host,
            self.ports.real_rest,
            self.ports.paper_rest,
            self.ports.real_ws,
            self.ports.paper_ws,
            market.date,
            cfg.clock_mode,
            cfg.speed,
            market.data_source,
        )
        logger.info(
            "kiwoom sandbox up on %s: REST %s, WS %s%s; %s conditions from %s (evaluated every %gs)",
            cfg.host,
            self.ports.kiwoom_rest,
            self.ports.kiwoom_ws,
            "/api/dostk/websocket",
            len(core.conditions.conditions.rules),
            cfg.kiwoom_conditions_path(),
            core.conditions.conditions.evaluation_interval,
        )
        if not cfg.admin_token:
            logger.warning("SANDBOX_ADMIN_TOKEN is empty: admin endpoints (faults, clock) are disabled")
        return self.ports

    async def stop(self) -> None:
        self._stop.set()
        for task in (self._loop_task, self._kiwoom_task):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(task, 5.0)
        await self.core.hub.drop_all("server shutdown")
        await self.core.kiwoom_hub.drop_all("server shutdown")
        for runner in reversed(self._runners):
            with contextlib.suppress(Exception):
                await runner.cleanup()
        self._runners.clear()
        logger.info("sandbox stopped")


class SandboxThread:
    """A ``SandboxServer`` in a daemon thread with its own event loop (``with`` or start/stop)."""

    def __init__(self, config: SandboxConfig, market: ReplayMarket | None = None) -> None:
        self.config = config
        self._market = market
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: SandboxServer | None = None
        self._thread = threading.Thread(target=self._main, name="sandbox", daemon=True)

    @property
    def ports(self) -> BoundPorts:
        assert self.server is not None and self.server.ports is not None
        return self.server.ports

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            self.server = SandboxServer(self.config, self._market)
            loop.run_until_complete(self.server.start())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self.server.stop())
        loop.close()

    def start(self, timeout: float = 30.0) -> SandboxThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("sandbox did not start")
        if self._error is not None:
            raise RuntimeError("sandbox failed to start") from self._error
        return self

    def call(self, fn: Callable[..., T], *args: object, timeout: float = 10.0) -> T:
        """Run ``fn(*args)`` on the server loop thread and return its result."""
        assert self.loop is not None

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> SandboxThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
