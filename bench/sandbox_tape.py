#!/usr/bin/env python
"""The sandbox's replayed tape and its own send path: how dense the tape is and whether the sandbox keeps up.

    .venv/bin/python bench/sandbox_tape.py                                # both parts, real density, 1x and 3x
    .venv/bin/python bench/sandbox_tape.py --part tape --densities real,light
    .venv/bin/python bench/sandbox_tape.py --part send --speeds 1,3 --duration 60 --at 09:00:00
    .venv/bin/python bench/sandbox_tape.py --part send --speeds 3 --profile   # where the sandbox spends its CPU

Part ``tape`` builds the replay day in this process (the same data, date and seed as ``runsandbox``) and
prints, per density: prints and quote updates a day over the first ``--stocks`` and all stocks of the
universe, the session's average ticks/s, the busiest 10 s, the open / midday / close print rates, the
005930 print rate and its mean print size against the calibration of ``apps/sandbox/replay.py``.

Part ``send`` starts ``manage.py runsandbox`` as its own process on free ports and connects plain
WebSocket clients for ``--stocks`` stocks: KIS connections of 20 stocks each (H0STCNT0 + H0STASP0 =
40 of the 41 registrations a session allows) and one Kiwoom connection (0B + 0D for every stock). It jumps
the sandbox clock to ``--at`` and reads for ``--duration`` seconds, then prints per connection and in
total: frames/s, records/s (prints and books), the sandbox process's CPU (share of one core) and the lag
of each print behind the sim clock: the print is found by its cumulative volume in the in-process tape,
so its exact sim time is known; lag = sim clock at receipt − print time, in real milliseconds (it
includes the sandbox's flush interval, 50 ms). ``sent/expected`` compares the prints received with the
prints the tape holds for the window. No database or Redis is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

ADMIN = "bench-admin"
KIS_STOCKS_PER_CONNECTION = 20  # x 2 TRs = 40 of the 41 registrations a KIS session allows
SESSION_S = (15 * 60 + 30 - 9 * 60) * 60


def _setup_django() -> None:
    import django

    django.setup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def build(density: str, universe: int):
    from apps.sandbox.config import TapeDensity, config_from_settings
    from apps.sandbox.replay import build_market

    return build_market(config_from_settings(tape_density=TapeDensity.parse(density), universe_size=universe))


# --- part 1: the tape --------------------------------------------------------------------------------


def busiest(times: list[int], window_ms: int) -> tuple[int, int]:
    """(most events in any ``window_ms``, window start) over sorted ``times``."""
    best, start, lo = 0, 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window_ms:
            lo += 1
        if hi - lo + 1 > best:
            best, start = hi - lo + 1, times[lo]
    return best, start


def hhmmss(ms: int) -> str:
    s = ms // 1000
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def tape_part(args: argparse.Namespace) -> None:
    from apps.sandbox.clock import CONTINUOUS_END_S, OPEN_S
    from apps.sandbox.replay import mean_print_size

    for density in args.densities.split(","):
        started = time.monotonic()
        market = build(density, 50)
        codes = list(market.tapes)
        print(f"\n== tape density {density}: {market.date}, {len(codes)} stocks ({market.data_source[:80]})")
        per_code: dict[str, tuple[list[int], int]] = {}
        for code in codes:
            tape = market.tapes[code]
            times = [t.t_ms for t in tape.all_ticks()]
            per_code[code] = (times, tape.counts()[1])
        took = time.monotonic() - started
        for label, subset in ((f"first {args.stocks}", codes[: args.stocks]), (f"all {len(codes)}", codes)):
            times = sorted(t for c in subset for t in per_code[c][0])
            quotes = sum(per_code[c][1] for c in subset)
            peak, at = busiest(times, 10_000)
            open_rate = sum(1 for t in times if OPEN_S * 1000 <= t < (OPEN_S + 600) * 1000) / 600
            mid_rate = sum(1 for t in times if 12 * 3600 * 1000 <= t < 13 * 3600 * 1000) / 3600
            end = CONTINUOUS_END_S * 1000
            close_rate = sum(1 for t in times if end - 600_000 <= t < end) / 600
            print(
                f"{label:>9} stocks: {len(times):,} prints + {quotes:,} quote updates a day; "
                f"{len(times) / SESSION_S:.1f} ticks/s on average (09:00-15:30), busiest 10 s {peak / 10:.0f} ticks/s "
                f"(from {hhmmss(at)}); 09:00-09:10 {open_rate:.1f}/s, 12:00-13:00 {mid_rate:.1f}/s, "
                f"15:10-15:20 {close_rate:.1f}/s (open/midday {open_rate / mid_rate:.1f}x, close/midday "
                f"{close_rate / mid_rate:.1f}x)"
            )
        samsung = market.tapes.get("005930")
        if samsung is not None:
            ticks = samsung.all_ticks()
            cont = [t for t in ticks[1:] if t.t_ms < CONTINUOUS_END_S * 1000]
            mean = sum(t.volume for t in cont) / len(cont)
            price = sum(t.price * t.volume for t in cont) / sum(t.volume for t in cont)
            print(
                f"005930: {len(ticks):,} prints ({len(ticks) / 380:.0f} a minute), continuous-session mean print "
                f"{mean:.1f} shares at VWAP {price:,.0f} (calibrated real mean {mean_print_size(price):.1f}); "
                f"opening print {ticks[0].volume:,} shares at {hhmmss(ticks[0].t_ms)}, closing print "
                f"{ticks[-1].volume:,} at {hhmmss(ticks[-1].t_ms)}"
            )
        print(f"(generated in {took:.1f} s)")


# --- part 2: the send path ---------------------------------------------------------------------------


@dataclass
class ConnStats:
    name: str
    frames: int = 0
    prints: int = 0
    books: int = 0
    bytes: int = 0
    lags_ms: list[float] = field(default_factory=list)
    unknown: int = 0
    closed: str = ""


class SimClock:
    """The sandbox's sim clock as seen by a client process: the main process writes the anchor (sim ms at
    the clock jump, and the monotonic time it happened, midway through the admin request) into shared
    memory; CLOCK_MONOTONIC is the same in every process."""

    def __init__(self, shared, speed: float) -> None:
        self.shared = shared  # multiprocessing.Array("d", [anchor sim ms, anchor monotonic]); 0 = not yet
        self.speed = speed

    def now_ms(self) -> float | None:
        """The sim clock now, or None before the measurement starts (``shared[2]``, after the warm-up)."""
        anchor_ms, anchor_mono, start_mono = self.shared[0], self.shared[1], self.shared[2]
        now = time.monotonic()
        if not anchor_mono:
            return None
        sim = anchor_ms + (now - anchor_mono) * 1000 * self.speed
        return sim if start_mono and now >= start_mono else None

    def lag(self, stats: ConnStats, now: float, t_ms: int) -> None:
        lag_ms = (now - t_ms) / self.speed
        stats.lags_ms.append(lag_ms)

    def warm(self, t_ms: int) -> None:
        """During the warm-up: note when a print arrives less than 200 ms (real) behind the clock."""
        anchor_ms, anchor_mono = self.shared[0], self.shared[1]
        if anchor_mono:
            sim = anchor_ms + (time.monotonic() - anchor_mono) * 1000 * self.speed
            if (sim - t_ms) / self.speed < 200:
                self.shared[3] = 1.0


def start_sandbox(args: argparse.Namespace, speed: float, ports: dict[str, int], creds: list[str], logdir: Path):
    env = dict(os.environ)
    env.update(
        SANDBOX_SPEED=str(speed),
        SANDBOX_TAPE_DENSITY=args.density,
        SANDBOX_ADMIN_TOKEN=ADMIN,
        SANDBOX_APP_CREDENTIALS=",".join(creds),
        SANDBOX_REAL_REST_PORT=str(ports["real_rest"]),
        SANDBOX_PAPER_REST_PORT=str(ports["paper_rest"]),
        SANDBOX_REAL_WS_PORT=str(ports["real_ws"]),
        SANDBOX_PAPER_WS_PORT=str(ports["paper_ws"]),
        SANDBOX_KIWOOM_REST_PORT=str(ports["kiwoom_rest"]),
        SANDBOX_KIWOOM_WS_PORT=str(ports["kiwoom_ws"]),
        HOGA_UNIVERSE_SIZE="50",
        SANDBOX_WS_HEARTBEAT="10",
        LOG_LEVEL="INFO",
    )
    cmd = [sys.executable]
    if args.profile:
        cmd += ["-m", "cProfile", "-o", str(logdir / f"sandbox-{speed:g}x.prof")]
    cmd += [str(ROOT / "manage.py"), "runsandbox"]
    log = (logdir / f"sandbox-{speed:g}x.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", ports["kiwoom_ws"]), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"sandbox exited: see {logdir}") from None
            time.sleep(0.2)
    raise SystemExit("sandbox did not come up in 60 s")


async def _received(ws: Any, stop: Any) -> AsyncIterator[str]:
    """The messages of ``ws`` until ``stop`` is set (checked at least twice a second)."""
    while not stop.is_set():
        try:
            yield await asyncio.wait_for(ws.recv(), 0.5)
        except TimeoutError:
            continue


def _cntg_ms(payload: str) -> int:
    """Print time (ms of day, to the second) of the first record of an H0STCNT0 payload."""
    hhmmss = payload.split("^", 2)[1]
    return (int(hhmmss[:2]) * 3600 + int(hhmmss[2:4]) * 60 + int(hhmmss[4:])) * 1000 + 999


async def kis_client(
    url: str, key: str, codes: list[str], stats: ConnStats, index: dict, clock: SimClock, stop
) -> None:
    import websockets

    async with websockets.connect(url, max_size=2**24, ping_interval=None) as ws:
        for code in codes:
            for tr_id in ("H0STCNT0", "H0STASP0"):
                msg = {
                    "header": {"approval_key": key, "custtype": "P", "tr_type": "1", "content-type": "utf-8"},
                    "body": {"input": {"tr_id": tr_id, "tr_key": code}},
                }
                await ws.send(json.dumps(msg))
                while True:
                    raw = await ws.recv()
                    if raw.startswith("{") and '"PINGPONG"' not in raw:
                        assert json.loads(raw)["body"]["rt_cd"] == "0", raw
                        break
        async for raw in _received(ws, stop):
            now = clock.now_ms()
            if raw[0] == "{":
                if '"PINGPONG"' in raw:
                    await ws.send(raw)
                continue
            _enc, tr_id, count, payload = raw.split("|", 3)
            if now is None:
                if tr_id == "H0STCNT0":
                    clock.warm(int(_cntg_ms(payload)))
                continue
            stats.frames += 1
            stats.bytes += len(raw)
            n = int(count)
            if tr_id == "H0STASP0":
                stats.books += n
                continue
            stats.prints += n
            fields = payload.split("^")
            for i in range(n):
                t_ms = index.get(fields[i * 46], {}).get(int(fields[i * 46 + 13]))
                if t_ms is None:
                    stats.unknown += 1
                else:
                    clock.lag(stats, now, t_ms)


async def kiwoom_client(
    url: str, token: str, codes: list[str], stats: ConnStats, index: dict, clock: SimClock, stop
) -> None:
    import websockets

    async with websockets.connect(url, max_size=2**24, ping_interval=None) as ws:
        await ws.send(json.dumps({"trnm": "LOGIN", "token": token}))
        assert json.loads(await ws.recv())["return_code"] == 0
        reg = {"trnm": "REG", "grp_no": "1", "refresh": "1", "data": [{"item": codes, "type": ["0B", "0D"]}]}
        await ws.send(json.dumps(reg))
        async for raw in _received(ws, stop):
            now = clock.now_ms()
            msg = json.loads(raw)
            if msg.get("trnm") == "PING":
                await ws.send(raw)
                continue
            if msg.get("trnm") != "REAL" or now is None:
                continue
            stats.frames += 1
            stats.bytes += len(raw)
            for entry in msg["data"]:
                if entry["type"] == "0D":
                    stats.books += 1
                    continue
                stats.prints += 1
                t_ms = index.get(entry["item"][:6], {}).get(int(entry["values"]["13"]))
                if t_ms is None:
                    stats.unknown += 1
                else:
                    clock.lag(stats, now, t_ms)


def client_process(kind: str, jobs: list[tuple], index: dict, shared, speed: float, ready, stop, out) -> None:
    """One process of plain WebSocket clients (all KIS sessions, or the Kiwoom session)."""

    async def run() -> list[ConnStats]:
        clock = SimClock(shared, speed)
        stats = [ConnStats(name) for name, *_ in jobs]
        client = kis_client if kind == "kis" else kiwoom_client
        tasks = [
            asyncio.create_task(client(url, key, codes, st, index, clock, stop))
            for (_name, url, key, codes), st in zip(jobs, stats, strict=True)
        ]
        await asyncio.sleep(2.0)  # subscriptions in place
        ready.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for st, result in zip(stats, results, strict=True):
            if isinstance(result, BaseException):
                st.closed = f"{type(result).__name__}: {result}"[:120]
        return stats

    started = time.process_time()
    stats = asyncio.run(run())
    out.put((kind, stats, time.process_time() - started))


def print_index(market, codes: list[str], start_ms: int, end_ms: int) -> dict:
    """{code: {cumulative volume: print time}} for the prints in [start, end]."""
    index: dict[str, dict[int, int]] = {}
    for code in codes:
        tape = market.tapes[code]
        volume, rows = tape.state_at(start_ms - 1).volume, {}
        for tick in tape.ticks_between(start_ms - 1, end_ms):
            volume += tick.volume
            rows[volume] = tick.t_ms
        index[code] = rows
    return index


def send_run(args: argparse.Namespace, market, speed: float, logdir: Path) -> None:
    import multiprocessing as mp

    import httpx
    import psutil

    from apps.core.demo_credentials import KIWOOM_DEMO_REAL_APP_KEY, KIWOOM_DEMO_REAL_SECRET_KEY
    from apps.sandbox.clock import parse_hhmmss

    codes = list(market.tapes)[: args.stocks]
    groups = [codes[i : i + KIS_STOCKS_PER_CONNECTION] for i in range(0, len(codes), KIS_STOCKS_PER_CONNECTION)]
    creds = [(f"PSBENCH{i:029d}", f"bench-secret-{i}".ljust(180, "x")) for i in range(len(groups))]
    ports = {n: free_port() for n in ("real_rest", "paper_rest", "real_ws", "paper_ws", "kiwoom_rest", "kiwoom_ws")}
    at_ms = parse_hhmmss(args.at) * 1000
    index = print_index(market, codes, at_ms, at_ms + int((args.duration + 60) * speed * 1000))
    proc = start_sandbox(args, speed, ports, [f"{k}:{s}:real" for k, s in creds], logdir)
    ctx = mp.get_context("fork")
    shared = ctx.Array("d", [0.0, 0.0, 0.0, 0.0])  # anchor sim ms, anchor monotonic, measuring from, warm
    stop, out = ctx.Event(), ctx.Queue()
    children = []
    try:
        rest = f"http://127.0.0.1:{ports['real_rest']}"
        kis_jobs = []
        for i, ((appkey, secret), group) in enumerate(zip(creds, groups, strict=True)):
            body = {"grant_type": "client_credentials", "appkey": appkey, "secretkey": secret}
            key = httpx.post(f"{rest}/oauth2/Approval", json=body, timeout=30).json()["approval_key"]
            kis_jobs.append((f"KIS #{i + 1} ({len(group)} stocks)", f"ws://127.0.0.1:{ports['real_ws']}/", key, group))
        body = {"grant_type": "client_credentials", "appkey": KIWOOM_DEMO_REAL_APP_KEY}
        body["secretkey"] = KIWOOM_DEMO_REAL_SECRET_KEY
        token = httpx.post(f"http://127.0.0.1:{ports['kiwoom_rest']}/oauth2/token", json=body, timeout=30).json()
        kiwoom_url = f"ws://127.0.0.1:{ports['kiwoom_ws']}/api/dostk/websocket"
        kiwoom_jobs = [(f"Kiwoom ({len(codes)} stocks)", kiwoom_url, token["token"], codes)]
        for kind, jobs in (("kis", kis_jobs), ("kiwoom", kiwoom_jobs)):
            ready = ctx.Event()
            child = ctx.Process(target=client_process, args=(kind, jobs, index, shared, speed, ready, stop, out))
            child.start()
            children.append(child)
            if not ready.wait(60):
                raise SystemExit(f"{kind} clients did not subscribe within 60 s")
        sandbox = psutil.Process(proc.pid)
        httpx.post(f"{rest}/sandbox/clock", json={"time": args.at}, headers={"X-Sandbox-Admin": ADMIN})
        # Where the sim clock is: of a few readings, the one with the shortest round trip (as NTP does).
        readings = []
        with httpx.Client(base_url=rest, timeout=10) as client:
            for _ in range(7):
                sent = time.monotonic()
                now = dt.datetime.fromisoformat(client.get("/sandbox/clock").json()["now"])
                got = time.monotonic()
                sim_ms = (now.hour * 3600 + now.minute * 60 + now.second) * 1000 + now.microsecond / 1000
                readings.append((got - sent, sim_ms, (sent + got) / 2))
                time.sleep(0.02)
        rtt, shared[0], shared[1] = min(readings)
        sent, got = 0.0, rtt
        # Warm-up: after a jump far into the day the sandbox first generates the tape (held, then sent at once);
        # measure from when prints arrive on time, plus a second.
        warm_deadline = time.monotonic() + 300
        while not shared[3] and time.monotonic() < warm_deadline:
            time.sleep(0.1)
        warmup = time.monotonic() - shared[1]
        time.sleep(1.0)
        shared[2] = time.monotonic()
        cpu0 = sum(sandbox.cpu_times()[:2])
        rss0 = sandbox.memory_info().rss
        time.sleep(args.duration)
        cpu = sum(sandbox.cpu_times()[:2]) - cpu0
        rss1 = sandbox.memory_info().rss
        wall = time.monotonic() - shared[2]
        stop.set()
        results = {}
        for _ in children:
            kind, stats, client_cpu = out.get(timeout=60)
            results[kind] = (stats, client_cpu)
        for child in children:
            child.join(10)
    finally:
        stop.set()
        for child in children:
            if child.is_alive():
                child.kill()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    start_ms = shared[0] + (shared[2] - shared[1]) * 1000 * speed  # the sim time when measuring started
    end_ms = start_ms + wall * speed * 1000
    window_prints = sum(1 for rows in index.values() for t in rows.values() if start_ms <= t <= end_ms)
    print(
        f"\n== send path at {speed:g}x ({args.density} density), {len(codes)} stocks from {args.at} "
        f"(+{warmup:.1f} s warm-up) for {wall:.0f} s "
        f"(clock read to +-{(got - sent) * 500:.0f} ms): sandbox CPU {cpu / wall * 100:.0f}% of one core, "
        f"RSS {rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} MB; the tape holds {window_prints / wall:.0f} prints/s "
        "over these stocks; client processes' CPU "
        + ", ".join(f"{kind} {c / wall * 100:.0f}%" for kind, (_s, c) in results.items())
    )
    for kind, protocol in (("kis", "KIS"), ("kiwoom", "Kiwoom")):
        rows = results[kind][0]
        for s in rows:
            print(
                f"  {s.name:<22} {s.frames / wall:7.0f} frames/s {s.prints / wall:7.0f} prints/s "
                f"{s.books / wall:7.0f} books/s {s.bytes / wall / 1e6:5.2f} MB/s; lag p50 {pct(s.lags_ms, 0.5):.0f} "
                f"p99 {pct(s.lags_ms, 0.99):.0f} max {max(s.lags_ms, default=float('nan')):.0f} ms"
                + (f"; {s.unknown} prints not in the tape index" if s.unknown else "")
                + (f"; CLOSED: {s.closed}" if s.closed else "")
            )
        frames = sum(s.frames for s in rows)
        prints = sum(s.prints for s in rows)
        books = sum(s.books for s in rows)
        lags = [x for s in rows for x in s.lags_ms]
        print(
            f"  {protocol + ' total':<22} {frames / wall:7.0f} frames/s {prints / wall:7.0f} prints/s "
            f"{books / wall:7.0f} books/s {(prints + books) / wall:7.0f} records/s; lag p50 {pct(lags, 0.5):.0f} "
            f"p99 {pct(lags, 0.99):.0f} max {max(lags, default=float('nan')):.0f} ms; "
            f"prints received/in the tape {prints}/{window_prints}"
        )
    beats = [line for line in (logdir / f"sandbox-{speed:g}x.log").read_text().splitlines() if "heartbeat" in line]
    for line in beats[-6:]:
        print("  sandbox:", line[line.find("msg=") + 5 :][:220] if "msg=" in line else line[-220:])
    if args.profile:
        import pstats

        prof = logdir / f"sandbox-{speed:g}x.prof"
        if prof.exists():
            print(f"  cProfile of the sandbox ({prof}), top functions by own time:")
            pstats.Stats(str(prof)).sort_stats("tottime").print_stats(args.profile_top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--part", choices=["tape", "send", "both"], default="both")
    parser.add_argument("--densities", default="real,light", help="tape part: densities to describe")
    parser.add_argument("--density", default="real", help="send part: SANDBOX_TAPE_DENSITY of the sandbox")
    parser.add_argument("--speeds", default="1,3", help="send part: replay speeds (3 = 3x the real density)")
    parser.add_argument("--stocks", type=int, default=41, help="registered stocks (KIS: 20 per connection)")
    parser.add_argument("--duration", type=float, default=60.0, help="send part: seconds of reading per speed")
    parser.add_argument("--at", default="09:00:00", help="send part: sim time to jump to (09:00:00 = the open)")
    parser.add_argument("--profile", action="store_true", help="send part: run the sandbox under cProfile")
    parser.add_argument("--profile-top", type=int, default=25)
    args = parser.parse_args()
    _setup_django()
    if args.part in ("tape", "both"):
        tape_part(args)
    if args.part in ("send", "both"):
        market = build(args.density, 50)
        with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
            for speed in (float(s) for s in args.speeds.split(",")):
                send_run(args, market, speed, Path(tmp))


if __name__ == "__main__":
    main()
