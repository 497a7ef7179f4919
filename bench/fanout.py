"""Sandbox-to-browser fan-out on the full stack: latency, staleness, frames/s, CPU per web process, end state.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hoga REDIS_URL=redis://127.0.0.1:6379/13 \
        .venv/bin/python bench/fanout.py [--clients 100,500,1000] [--speeds 1,3] [--web-workers 1,2] \
        [--duration 10] [--codes-per-client 10] [--client-procs 4]

Every part is a real process: the sandbox broker (``runsandbox``, real-market tape density, the recorded day
of ``HOGA_DATA_DIR`` when set), the feed holder (``runfeed``, the feed worker's code: three KIS connections of
20 stocks each, so all ``--stocks`` are live), the web role (``bin/hoga-process web``: gunicorn with
``WEB_CONCURRENCY`` uvicorn workers, one run per ``--web-workers`` entry) and the browsers: plain
``websockets`` protocol clients (on uvloop) with a session cookie in ``--client-procs`` processes, each
subscribed to ``--codes-per-client`` stocks. A client stamps each frame when its bytes arrive and keeps them;
frames are decoded after the run, so the clients' own parsing neither delays a receipt nor competes for the
cores (see :func:`client_worker`).

Each run pauses the tape (the sandbox's ``ws_stall`` fault) while its clients connect, moves the replay clock
to the busiest ``--duration`` seconds of the day at the run's speed, lets it play, pauses it again and drains.
The sandbox logs every trade print it writes to its socket (``SANDBOX_SEND_LOG``: code, cumulative volume,
price, wall time); the clients stamp every snapshot they receive, and the two are joined on (code, cumulative
volume). Reported per run:

- latency p50/p99/max: sandbox write -> client receipt, over the snapshots the clients received (conflation
  means a client may skip intermediate prints: they are not counted, staleness is);
- staleness p50/p99/max: sampled every 100 ms for every (client, stock): 0 when the client holds the latest
  print sent so far, else the time since the oldest print it has not seen was sent;
- frames/s per client (mean, max), reconnects, clients dropped (could not stay connected);
- CPU per web process (psutil, % of one core over the window);
- end state: after the tape pauses, every client must hold the latest quote of each of its stocks, i.e. the
  snapshot in Redis (``stale`` counts the (client, stock) pairs that do not).

Clients, sandbox, feed, web and Redis share this machine's cores (figures are upper bounds on a shared box).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import hashlib
import json
import multiprocessing as mp
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

ADMIN = "bench-fanout-admin"
STOCKS_PER_CONNECTION = 20  # KIS: 41 registrations per connection, 2 per stock


# --- browser client processes --------------------------------------------------------------------------


def client_worker(port: int, cookie: str, plans: list[list[str]], conn) -> None:
    """Runs ``len(plans)`` browsers; sends ``ready`` once all subscribed, then on ``stop`` their records.

    A browser is a plain WebSocket client: ``websockets``' own protocol (handshake, frame parsing, answers
    to the server's pings, close) driven from an asyncio protocol on uvloop. It stamps the bytes it reads
    when they arrive (every frame completed by one read gets that read's time) and keeps each text frame's
    bytes; frames are decoded after the run (:meth:`Browser.record`), so neither the clients' parsing nor
    a task switch per message delays a receipt or competes with the stack for the cores."""
    import uvloop
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.typing import Origin
    from websockets.uri import parse_uri

    uri = parse_uri(f"ws://127.0.0.1:{port}/ws/market/")
    origin = Origin(f"http://127.0.0.1:{port}")
    now = time.time

    class Link(asyncio.Protocol):
        """One connection of a browser."""

        def __init__(self, browser: Browser):
            self.browser = browser
            self.ws = ClientProtocol(uri, origin=origin, max_size=2**22)
            self.transport: asyncio.Transport | None = None
            self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.frames: list[tuple[float, bytes]] = []  # (receipt time, the text frame's bytes), in order
            self.live = False  # handshake done and subscribed: a loss from then on is a reconnect

        def connection_made(self, transport) -> None:
            self.transport = transport
            request = self.ws.connect()
            request.headers["Cookie"] = f"sessionid={cookie}"
            self.ws.send_request(request)
            self.write()

        def data_received(self, data: bytes) -> None:
            at = now()
            ws = self.ws
            ws.receive_data(data)
            for event in ws.events_received():
                if isinstance(event, Frame):
                    if event.opcode is Opcode.TEXT:
                        self.frames.append((at, event.data))
                elif not self.opened.done():  # the handshake's response
                    if ws.handshake_exc is None:
                        self.opened.set_result(None)
                    else:
                        self.opened.set_exception(ws.handshake_exc)
            self.write()

        def eof_received(self) -> None:
            self.ws.receive_eof()
            self.write()

        def connection_lost(self, exc) -> None:
            if not self.opened.done():
                self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
            if self.live and not stopping.is_set():
                self.live = False
                asyncio.ensure_future(self.browser.reopen())

        def write(self) -> None:
            for data in self.ws.data_to_send():
                if data:
                    self.transport.write(data)
                elif self.transport.can_write_eof():
                    self.transport.write_eof()

        def close(self) -> None:
            self.live = False
            if self.transport is not None and not self.transport.is_closing():
                self.ws.send_close(1000)
                self.write()
                self.transport.close()

    class Browser:
        def __init__(self, codes: list[str]):
            self.codes = codes
            self.links: list[Link] = []  # a reconnect opens another
            self.reconnects = 0
            self.failed = ""
            self.dead = False  # lost and could not reconnect

        async def open(self) -> None:
            loop = asyncio.get_running_loop()
            for attempt in range(5):
                link = Link(self)
                try:
                    await loop.create_connection(lambda: link, "127.0.0.1", port)  # noqa: B023
                    await asyncio.wait_for(link.opened, 60)
                except Exception as exc:  # noqa: BLE001 - refused, reset, timed out, handshake refused
                    self.failed = repr(exc)
                    if link.transport is not None:
                        link.transport.abort()
                    await asyncio.sleep(0.5 * (attempt + 1))
                    continue
                link.ws.send_text(json.dumps({"type": "subscribe", "codes": self.codes}).encode())
                link.write()
                link.live = True
                self.links.append(link)
                return
            raise RuntimeError(f"could not connect: {self.failed}")

        async def reopen(self) -> None:
            self.reconnects += 1
            try:
                await self.open()
            except RuntimeError:
                self.dead = True

        def close(self) -> None:
            for link in self.links:
                link.close()

        def record(self) -> dict:
            """What the orchestrator joins with the sandbox's send log: per stock, every snapshot received
            (receipt, cumulative volume, the feed's receipt time of the print); batch frame times; seq gaps."""
            timeline: dict[str, list[tuple[float, int, str]]] = {c: [] for c in self.codes}
            batch_times: list[float] = []
            gaps = 0  # seq not previous + 1 on one connection
            for link in self.links:
                last_seq = 0
                for at, raw in link.frames:
                    message = json.loads(raw)
                    if message.get("type") != "batch":
                        continue
                    batch_times.append(at)
                    if message["seq"] != last_seq + 1:
                        gaps += 1
                    last_seq = message["seq"]
                    for code, quote in message["quotes"].items():
                        timeline[code].append((at, quote["cum_volume"], quote["received_at"]))
            return {"codes": self.codes, "timeline": timeline, "frames": batch_times, "reconnects": self.reconnects,
                    "gaps": gaps, "alive": not self.dead}  # fmt: skip

    stopping = asyncio.Event()

    async def main() -> list[dict]:
        browsers = [Browser(codes) for codes in plans]
        for i in range(0, len(browsers), 50):  # connect in waves: the server's accept queue is finite
            await asyncio.gather(*(b.open() for b in browsers[i : i + 50]))
        await asyncio.sleep(1.0)  # subscribed and initial snapshots in
        loop = asyncio.get_running_loop()
        # While the browsers record, this process's cyclic garbage collector stays off: the frames they keep
        # (a tuple per read) would make it walk a growing heap, and its pauses would count as the server's
        # latency (a browser's own collector does not run in the page's network thread).
        gc.collect()
        gc.freeze()
        gc.disable()
        conn.send("ready")
        await loop.run_in_executor(None, conn.recv)  # "stop"
        gc.enable()
        stopping.set()
        for b in browsers:
            b.close()
        await asyncio.sleep(0.5)
        return [b.record() for b in browsers]

    try:
        conn.send(uvloop.run(main()))  # as the web processes: the clients' own overhead stays small
    except Exception as exc:  # reported to the orchestrator instead of hanging it
        conn.send({"error": repr(exc)})


# --- tape -------------------------------------------------------------------------------------------------


def busiest_window(market, codes: list[str], span_ms: int) -> tuple[int, int]:
    """(start sim ms, prints) of the ``span_ms`` window with the most prints over ``codes``."""
    times = sorted(t.t_ms for code in codes for t in market.tapes[code].all_ticks())
    best, best_start, j = 0, times[0], 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + span_ms:
            j += 1
        if j - i > best:
            best, best_start = j - i, start
    return best_start, best


def hhmmss(t_ms: int) -> str:
    s = t_ms // 1000
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def read_send_log(path: Path, since: float) -> dict[str, tuple[list[float], list[int]]]:
    """code -> (send times, cumulative volumes), in send order, of the prints written after ``since``."""
    sent: dict[str, tuple[list[float], list[int]]] = defaultdict(lambda: ([], []))
    with path.open() as f:
        for line in f:
            code, cum, _price, at = line.split()
            at_f = float(at)
            if at_f >= since:
                times, cums = sent[code]
                times.append(at_f)
                cums.append(int(cum))
    return sent


# --- the stack ------------------------------------------------------------------------------------------


def extra_credentials(n: int) -> list[tuple[str, str]]:
    """``n`` KIS-shaped app key pairs for the sandbox (and the feed's FEED_EXTRA_APP_KEYS)."""

    def derive(label: str, length: int) -> str:
        out, counter = "", 0
        while len(out) < length:
            out += hashlib.sha512(f"bench-fanout:{label}:{counter}".encode()).hexdigest()
            counter += 1
        return out[:length]

    return [("PS" + derive(f"key{i}", 34), derive(f"secret{i}", 180)) for i in range(n)]


class CpuMeter:
    """CPU seconds of every process of the web role (gunicorn's master and its workers)."""

    def __init__(self, pid: int, only: list[int] | None = None):
        self.pid = pid
        self.only = only  # these processes (not the tree under ``pid``)

    def read(self) -> dict[int, float]:
        import psutil

        out = {}
        try:
            if self.only is not None:
                tree = [psutil.Process(pid) for pid in self.only]
            else:
                parent = psutil.Process(self.pid)
                tree = [parent, *parent.children(recursive=True)]
            for p in tree:
                try:
                    t = p.cpu_times()
                    out[p.pid] = t.user + t.system
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            pass
        return out

    @staticmethod
    def total(before: dict[int, float], after: dict[int, float], seconds: float) -> float:
        return sum(after[p] - before.get(p, 0.0) for p in after) / seconds * 100

    @staticmethod
    def report(before: dict[int, float], after: dict[int, float], seconds: float) -> str:
        used = sorted(((after[p] - before.get(p, 0.0)) / seconds * 100 for p in after), reverse=True)
        return " ".join(f"{u:.0f}%" for u in used if u >= 0.5) or "0%"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="100,500,1000")
    parser.add_argument("--speeds", default="1,3", help="replay speed factors; 1 = the recorded day's pace")
    parser.add_argument("--web-workers", default="1,2", help="web processes (WEB_CONCURRENCY), one pass each")
    parser.add_argument("--duration", type=float, default=10.0, help="wall seconds of replay per run")
    parser.add_argument("--stocks", type=int, default=41, help="replayed stocks (three feed connections of 20)")
    parser.add_argument("--codes-per-client", type=int, default=10)
    parser.add_argument("--client-procs", type=int, default=4, help="client processes")
    parser.add_argument("--at", default="", help="replay from this HH:MM:SS instead of the busiest window")
    parser.add_argument("--max-fps", default="", help="MARKET_WS_MAX_FPS of the web processes (default: setting)")
    parser.add_argument("--keep-logs", action="store_true", help="print the process log directory")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    from apps.core.redis import get_redis

    redis = get_redis()
    redis.flushdb()
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    parts = urlsplit(os.environ["DATABASE_URL"])
    database_url = urlunsplit(parts._replace(path="/" + test_db))
    logdir = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    started: list = []  # the process stack, as soon as it exists (stopped however the run ends)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(args, database_url, logdir, started)
    finally:
        for stack in started:
            stack.stop()
        from django.db import connections

        connections.close_all()
        connection.creation.destroy_test_db(test_db, verbosity=0)
        redis.flushdb()
        if args.keep_logs:
            print(f"process logs: {logdir}")


def run(args, database_url: str, logdir: Path, started: list) -> None:
    import httpx
    from django.contrib.auth import get_user_model
    from django.test import Client

    from apps.core.redis import get_redis
    from apps.marketdata.models import Stock
    from apps.sandbox.config import TapeDensity, config_from_settings
    from apps.sandbox.replay import build_market
    from tests.integration.harness import ProcessStack, free_port

    redis = get_redis()
    market = build_market(config_from_settings(tape_density=TapeDensity.parse("real")))
    codes = list(market.tapes)[: args.stocks]
    Stock.objects.bulk_create([Stock(code=c, name=c, market="KOSPI") for c in codes], ignore_conflicts=True)
    user = get_user_model().objects.create_user(username="bench", password="bench-pass-123")
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"].value

    extra = extra_credentials((len(codes) - 1) // STOCKS_PER_CONNECTION)
    send_log = logdir / "sandbox-sent.log"
    stack = ProcessStack(
        logdir,
        admin_token=ADMIN,
        DATABASE_URL=database_url,
        KIS_ENV="real",
        SANDBOX_TAPE_DENSITY="real",
        SANDBOX_SPEED="1",
        SANDBOX_SEND_LOG=str(send_log),
        SANDBOX_APP_CREDENTIALS=",".join(f"{k}:{s}:real" for k, s in extra),
        FEED_EXTRA_APP_KEYS=",".join(f"{k}:{s}" for k, s in extra),
        FEED_POLL_ENABLED="false",
        FEED_STALL_TIMEOUT="600",  # the tape is paused between runs
        FEED_SILENCE_TIMEOUT="600",
        LOG_LEVEL="WARNING",
        # Every simulated browser is the same user: lift the per-user caps for this measurement.
        MARKET_WS_MAX_CONNECTIONS_PER_USER="0",
        MARKET_WS_USER_MESSAGES_PER_MINUTE="0",
        MARKET_WS_MAX_CODES_PER_USER="0",
        **({"MARKET_WS_MAX_FPS": args.max_fps} if args.max_fps else {}),
    )
    started.append(stack)
    admin = httpx.Client(
        base_url=f"http://127.0.0.1:{stack.ports['real_rest']}", headers={"X-Sandbox-Admin": ADMIN}, timeout=10
    )
    stack.start("sandbox", [sys.executable, "manage.py", "runsandbox"])
    stack.wait_port(stack.ports["real_rest"], "sandbox", timeout=120)
    stack.wait_port(stack.ports["real_ws"], "sandbox", timeout=120)
    stack.start("feed", [sys.executable, "manage.py", "runfeed", "--watchlist", ",".join(codes)])
    deadline = time.monotonic() + 90
    while redis.hlen("hoga:rt:quotes") < len(codes):
        if time.monotonic() > deadline:
            raise SystemExit(f"the feed did not publish every stock within 90 s:\n{stack.logs()}")
        time.sleep(0.5)
    rates = {}
    for speed in (float(s) for s in args.speeds.split(",")):
        span = int(args.duration * speed * 1000)
        if args.at:
            from apps.sandbox.clock import parse_hhmmss

            start_ms = int(parse_hhmmss(args.at) * 1000)
            prints = sum(len(market.tapes[c].ticks_between(start_ms - 1, start_ms + span - 1)) for c in codes)
        else:
            start_ms, prints = busiest_window(market, codes, span)
        rates[speed] = (start_ms, prints)
        which = "the" if args.at else "busiest"
        print(f"speed {speed:g}x: {which} {args.duration:g} s from {hhmmss(start_ms)} = "
              f"{prints / args.duration:.0f} prints/s over {len(codes)} stocks")  # fmt: skip
    print(f"replay {market.date} ({market.data_source[:60]}), synthetic={market.synthetic}; "
          f"{args.codes_per_client} stocks per client, {args.client_procs} client processes", flush=True)  # fmt: skip

    for workers in (int(w) for w in args.web_workers.split(",")):
        port = free_port()
        name = f"web{workers}"
        stack.env.update(HOGA_PORT=str(port), WEB_CONCURRENCY=str(workers), HOGA_VAR_DIR=str(logdir / name))
        stack.start(name, [str(ROOT / "bin" / "hoga-process"), "web"])
        stack.wait_port(port, name, timeout=60)
        time.sleep(2.0 + workers)  # every worker up
        try:
            for speed in (float(s) for s in args.speeds.split(",")):
                for n in (int(c) for c in args.clients.split(",")):
                    one_run(args, admin, redis, port, cookie, codes, n, speed, rates[speed][0], workers, stack, name)
        finally:
            _stop(stack, name)
    admin.close()


def _stop(stack, name: str) -> None:
    import signal

    proc = stack.procs.pop(name)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except Exception:  # noqa: BLE001
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def settled_quotes(redis, quiet: float = 1.5, timeout: float = 60.0) -> dict[str, int]:
    """code -> cumulative volume of the stored quotes, once the feed has published everything it had (the hash
    unchanged for ``quiet`` s after the tape paused)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = {code.decode(): json.loads(raw)["cum_volume"] for code, raw in redis.hgetall("hoga:rt:quotes").items()}
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.1)
    return last or {}


def one_run(args, admin, redis, port, cookie, codes, n, speed, start_ms, workers, stack, web_name) -> None:
    pause = {"fault": "ws_stall"}
    assert admin.post("/sandbox/faults", json=pause).status_code == 200
    k = min(args.codes_per_client, len(codes))
    plans = [[codes[(i * k + j) % len(codes)] for j in range(k)] for i in range(n)]
    procs_n = max(1, min(args.client_procs, n))
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for w in range(procs_n):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=client_worker, args=(port, cookie, plans[w::procs_n], child), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    for parent in pipes:
        if not parent.poll(300):
            raise SystemExit("client process did not get ready")
        ready = parent.recv()
        if ready != "ready":
            raise SystemExit(f"client process failed: {ready}")

    meter = CpuMeter(stack.procs[web_name].pid)
    others = {"sandbox": CpuMeter(stack.procs["sandbox"].pid), "feed": CpuMeter(stack.procs["feed"].pid),
              "clients": CpuMeter(os.getpid(), only=[p.pid for p in procs])}  # fmt: skip
    load0 = os.getloadavg()[0]
    assert admin.post("/sandbox/clock", json={"speed": speed}).status_code == 200
    assert admin.post("/sandbox/clock", json={"time": hhmmss(start_ms)}).status_code == 200
    t0 = time.time()
    cpu0 = meter.read()
    others0 = {k: m.read() for k, m in others.items()}
    assert admin.delete("/sandbox/faults").status_code == 200
    time.sleep(args.duration)
    cpu1 = meter.read()
    others1 = {k: m.read() for k, m in others.items()}
    load1 = os.getloadavg()[0]
    t1 = time.time()
    assert admin.post("/sandbox/faults", json=pause).status_code == 200
    stored = settled_quotes(redis)
    time.sleep(2.0)  # the last batches reach every client
    for parent in pipes:
        parent.send("stop")
    results = []
    for parent in pipes:
        got = parent.recv() if parent.poll(120) else {"error": "no answer"}
        if isinstance(got, dict):
            raise SystemExit(f"client process failed: {got['error']}")
        results.extend(got)
    for proc in procs:
        proc.join(10)

    sent = read_send_log(Path(stack.env["SANDBOX_SEND_LOG"]), t0)
    fromiso = datetime.fromisoformat
    latencies: list[float] = []
    to_feed: list[float] = []  # sandbox write -> feed receipt (part of the latency)
    staleness: list[float] = []
    fps: list[float] = []
    stale_end = reconnects = gaps = dropped = 0
    samples = [t0 + 0.5 + 0.1 * i for i in range(int((t1 - t0 - 0.5) / 0.1))]
    send_at = {code: dict(zip(cums, times, strict=True)) for code, (times, cums) in sent.items()}
    for browser in results:
        reconnects += browser["reconnects"]
        gaps += browser["gaps"]
        dropped += not browser["alive"]
        fps.append(sum(t0 <= f <= t1 for f in browser["frames"]) / (t1 - t0))
        for code in browser["codes"]:
            timeline = browser["timeline"][code]
            lookup = send_at.get(code, {})
            for at, cum, received_at in timeline:
                sent_at = lookup.get(cum)
                if sent_at is not None:
                    latencies.append((at - sent_at) * 1000.0)
                    to_feed.append((fromiso(received_at).timestamp() - sent_at) * 1000.0)
            if not timeline or timeline[-1][1] != stored.get(code):
                stale_end += 1
            times, cums = sent.get(code, ([], []))
            recv_times = [row[0] for row in timeline]
            for t in samples:
                i = bisect.bisect_right(times, t)
                if i == 0:
                    staleness.append(0.0)
                    continue
                j = bisect.bisect_right(recv_times, t)
                held = timeline[j - 1][1] if j else -1
                if held >= cums[i - 1]:
                    staleness.append(0.0)
                else:  # the first print sent after the one the client holds
                    first_unseen = bisect.bisect_right(cums, held, 0, i)
                    staleness.append((t - times[first_unseen]) * 1000.0)
    prints = sum(len(t) for t, _ in sent.values())
    cpu = CpuMeter.report(cpu0, cpu1, t1 - t0)
    rest = "  ".join(f"{k} {CpuMeter.total(others0[k], others1[k], t1 - t0):.0f}%" for k in others)
    print(
        f"web workers={workers} clients={n:4d} speed={speed:g}x  sandbox sent {prints} prints "
        f"({prints / (t1 - t0):.0f}/s)  latency p50 {statistics.median(latencies):.1f} p99 {pct(latencies, 0.99):.1f} "
        f"max {max(latencies):.1f} ms ({len(latencies)} snapshots; of which sandbox->feed p50 "
        f"{statistics.median(to_feed):.1f} p99 {pct(to_feed, 0.99):.1f})  staleness p50 {pct(staleness, 0.5):.0f} "
        f"p99 {pct(staleness, 0.99):.0f} max {max(staleness):.0f} ms  frames/s per client mean "
        f"{statistics.fmean(fps):.1f} max {max(fps):.1f}  web CPU {cpu}  end state: {stale_end} stale of "
        f"{sum(len(b['codes']) for b in results)}  reconnects {reconnects}  dropped {dropped}  seq gaps {gaps}  "
        f"(CPU of one core: {rest}; load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} cores)",
        flush=True,
    )


if __name__ == "__main__":
    main()
