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
from dataclasses import dataclass, field
from pathlib import Path

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


class SimClock:
    """The sandbox's sim clock as seen from here: anchored on the admin answer of the clock jump."""

    def __init__(self, now_iso: str, speed: float) -> None:
        now = dt.datetime.fromisoformat(now_iso)
        self.anchor_ms = (now.hour * 3600 + now.minute * 60 + now.second) * 1000 + now.microsecond // 1000
        self.anchor_mono = time.monotonic()
        self.speed = speed

    def now_ms(self) -> float:
        return self.anchor_ms + (time.monotonic() - self.anchor_mono) * 1000 * self.speed


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
        LOG_LEVEL="WARNING",
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


async def kis_client(
    url: str, key: str, codes: list[str], stats: ConnStats, index: dict, clock: list, stop: asyncio.Event
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
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            now = clock[0].now_ms() if clock else None
            if raw[0] == "{":
                if '"PINGPONG"' in raw:
                    await ws.send(raw)
                continue
            if now is None:
                continue
            _enc, tr_id, count, payload = raw.split("|", 3)
            stats.frames += 1
            stats.bytes += len(raw)
            n = int(count)
            if tr_id == "H0STASP0":
                stats.books += n
                continue
            stats.prints += n
            fields = payload.split("^")
            for i in range(n):
                rec = fields[i * 46 : (i + 1) * 46]
                t_ms = index.get(rec[0], {}).get(int(rec[13]))
                if t_ms is None:
                    stats.unknown += 1
                else:
                    stats.lags_ms.append((now - t_ms) / clock[0].speed)


async def kiwoom_client(
    url: str, token: str, codes: list[str], stats: ConnStats, index: dict, clock: list, stop: asyncio.Event
) -> None:
    import websockets

    async with websockets.connect(url, max_size=2**24, ping_interval=None) as ws:
        await ws.send(json.dumps({"trnm": "LOGIN", "token": token}))
        assert json.loads(await ws.recv())["return_code"] == 0
        reg = {"trnm": "REG", "grp_no": "1", "refresh": "1", "data": [{"item": codes, "type": ["0B", "0D"]}]}
        await ws.send(json.dumps(reg))
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            now = clock[0].now_ms() if clock else None
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
                    stats.lags_ms.append((now - t_ms) / clock[0].speed)


def print_index(market, codes: list[str], start_ms: int, end_ms: int) -> tuple[dict, int]:
    """{code: {cumulative volume: print time}} for the prints in [start, end], and how many there are."""
    index: dict[str, dict[int, int]] = {}
    total = 0
    for code in codes:
        tape = market.tapes[code]
        state = tape.state_at(start_ms - 1)
        volume, rows = state.volume, {}
        for tick in tape.ticks_between(start_ms - 1, end_ms):
            volume += tick.volume
            rows[volume] = tick.t_ms
        index[code] = rows
        total += len(rows)
    return index, total


def send_run(args: argparse.Namespace, market, speed: float, logdir: Path) -> None:
    import httpx
    import psutil

    from apps.sandbox.clock import parse_hhmmss
    from apps.sandbox.credentials import KIWOOM_DEMO_REAL_APP_KEY, KIWOOM_DEMO_REAL_SECRET_KEY

    codes = list(market.tapes)[: args.stocks]
    groups = [codes[i : i + KIS_STOCKS_PER_CONNECTION] for i in range(0, len(codes), KIS_STOCKS_PER_CONNECTION)]
    creds = [(f"PSBENCH{i:029d}", f"bench-secret-{i}".ljust(180, "x")) for i in range(len(groups))]
    ports = {n: free_port() for n in ("real_rest", "paper_rest", "real_ws", "paper_ws", "kiwoom_rest", "kiwoom_ws")}
    at_ms = parse_hhmmss(args.at) * 1000
    span_ms = int(args.duration * speed * 1000)
    index, expected = print_index(market, codes, at_ms, at_ms + span_ms + 10_000)
    proc = start_sandbox(args, speed, ports, [f"{k}:{s}:real" for k, s in creds], logdir)
    try:
        rest = f"http://127.0.0.1:{ports['real_rest']}"
        keys = []
        for appkey, secret in creds:
            body = {"grant_type": "client_credentials", "appkey": appkey, "secretkey": secret}
            keys.append(httpx.post(f"{rest}/oauth2/Approval", json=body, timeout=30).json()["approval_key"])
        kiwoom_rest = f"http://127.0.0.1:{ports['kiwoom_rest']}"
        body = {"grant_type": "client_credentials", "appkey": KIWOOM_DEMO_REAL_APP_KEY}
        body["secretkey"] = KIWOOM_DEMO_REAL_SECRET_KEY
        token = httpx.post(f"{kiwoom_rest}/oauth2/token", json=body, timeout=30).json()["token"]
        stats = [ConnStats(f"KIS #{i + 1} ({len(g)} stocks)") for i, g in enumerate(groups)]
        stats.append(ConnStats(f"Kiwoom ({len(codes)} stocks)"))
        sandbox = psutil.Process(proc.pid)

        async def main() -> tuple[float, float]:
            stop = asyncio.Event()
            clock: list[SimClock] = []
            tasks = [
                asyncio.create_task(kis_client(f"ws://127.0.0.1:{ports['real_ws']}/", k, g, s, index, clock, stop))
                for k, g, s in zip(keys, groups, stats, strict=False)
            ]
            kiwoom_url = f"ws://127.0.0.1:{ports['kiwoom_ws']}/api/dostk/websocket"
            tasks.append(asyncio.create_task(kiwoom_client(kiwoom_url, token, codes, stats[-1], index, clock, stop)))
            await asyncio.sleep(2.0)  # subscriptions in place
            async with httpx.AsyncClient(base_url=rest, headers={"X-Sandbox-Admin": ADMIN}, timeout=30) as admin:
                answer = (await admin.post("/sandbox/clock", json={"time": args.at})).json()
            clock.append(SimClock(answer["now"], speed))
            cpu0 = sum(sandbox.cpu_times()[:2])
            wall0 = time.monotonic()
            await asyncio.sleep(args.duration)
            cpu = sum(sandbox.cpu_times()[:2]) - cpu0
            wall = time.monotonic() - wall0
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            return cpu, wall

        cpu, wall = asyncio.run(main())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    end_ms = at_ms + wall * speed * 1000
    window_prints = sum(1 for rows in index.values() for t in rows.values() if at_ms <= t <= end_ms)
    print(
        f"\n== send path at {speed:g}x ({args.density} density), {len(codes)} stocks from {args.at} for {wall:.0f} s: "
        f"sandbox CPU {cpu / wall * 100:.0f}% of one core; the tape holds {window_prints / wall:.0f} prints/s "
        f"over these stocks in the window"
    )
    for protocol, rows in (("KIS", stats[:-1]), ("Kiwoom", stats[-1:])):
        for s in rows:
            print(
                f"  {s.name:<22} {s.frames / wall:7.0f} frames/s {s.prints / wall:7.0f} prints/s "
                f"{s.books / wall:7.0f} books/s {s.bytes / wall / 1e6:5.2f} MB/s; lag p50 {pct(s.lags_ms, 0.5):.0f} "
                f"p99 {pct(s.lags_ms, 0.99):.0f} max {max(s.lags_ms, default=float('nan')):.0f} ms"
                + (f"; {s.unknown} prints not in the tape index" if s.unknown else "")
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
