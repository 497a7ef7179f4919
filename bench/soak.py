"""Soak: the whole stack for a long session at the realistic tape, watching every process's memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hoga_soak REDIS_URL=redis://127.0.0.1:6379/8 \
        .venv/bin/python bench/soak.py [--minutes 30] [--speed 1] [--browsers 200] [--web-workers 2]

Creates and drops its own database (test_<name>) and empties its Redis database (use a spare one). Starts the
sandbox broker on the realistic tape (``SANDBOX_TAPE_DENSITY=real``, ``--speed``x), the feed worker, one
default-queue worker (its fill engine), and the web role exactly as ``bin/hoga-process web`` runs it
(gunicorn, ``--web-workers`` uvicorn workers). Then:

- ``--browsers`` plain WebSocket clients on ``/ws/market/`` with session cookies (4 per user: the per-user
  connection limit is 8), each subscribed to ``--codes-per-browser`` of the first ``--stocks`` stocks, read
  continuously in ``--client-procs`` processes; a dropped connection is reopened and counted as a reconnect;
- the order bench's flow at a low rate (``--order-rate`` orders/s: crossing LIMIT and MARKET buys, then sells
  of what filled) through the REST API with DRF tokens;
- every ``--sample`` seconds, each process's RSS (gunicorn's master and each worker separately).

Prints per process the RSS at start / after ``--warmup`` / at the end and the MB/h slope (least squares) after
the warm-up, the ticks delivered to the browsers, reconnects, orders accepted/filled, and the books. With
``--tracemalloc`` the web, feed and Celery workers write tracemalloc comparisons (``HOGA_TRACEMALLOC_DIR``, see
``apps/core/memtrace.py``) to the log directory. Target: after the warm-up no process grows more than 5 MB/h,
and no reconnects. Figures only, no asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

from orders import API, Book, Stack, load_market, make_users  # noqa: E402


def browser_proc(port: int, plans: list[tuple[str, list[str]]], conn, stop_at: float) -> None:
    """Runs one WebSocket browser per plan (cookie, codes) until ``stop_at``; sends its counts back."""
    import websockets

    counts = Counter()

    async def browser(cookie: str, codes: list[str]) -> None:
        url = f"ws://127.0.0.1:{port}/ws/market/"
        first = True
        while time.time() < stop_at:
            try:
                async with websockets.connect(
                    url, origin=f"http://127.0.0.1:{port}", additional_headers={"Cookie": f"sessionid={cookie}"},
                    max_size=2**22, open_timeout=30, ping_interval=20, ping_timeout=60,
                ) as ws:  # fmt: skip
                    if not first:
                        counts["reconnects"] += 1
                    first = False
                    await ws.send(json.dumps({"type": "subscribe", "codes": codes}))
                    while time.time() < stop_at:
                        try:
                            raw = await asyncio.wait_for(ws.recv(), timeout=max(0.1, min(5.0, stop_at - time.time())))
                        except TimeoutError:
                            continue
                        message = json.loads(raw)
                        kind = message.get("type")
                        counts[f"frames:{kind}"] += 1
                        if kind == "batch":  # {"type": "batch", "seq": n, "quotes": {code: ...}, "books": {...}}
                            counts["ticks"] += len(message.get("quotes") or {})
                            counts["books"] += len(message.get("books") or {})
                    return
            except Exception as exc:  # noqa: BLE001 - a soak counts failures and goes on
                counts[f"error:{type(exc).__name__}"] += 1
                await asyncio.sleep(1 + random.random())

    async def main() -> None:
        tasks = []
        for cookie, codes in plans:
            tasks.append(asyncio.create_task(browser(cookie, codes)))
            await asyncio.sleep(0.02)  # spread the handshakes
        await asyncio.gather(*tasks)

    asyncio.run(main())
    conn.send(dict(counts))


async def order_flow(base_url: str, tokens: list[str], book: Book, rate: float, stop_at: float, out: Counter):
    import httpx

    clients = [
        httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Token {t}"}, timeout=30) for t in tokens
    ]
    codes = list(book.last)
    n = 0
    try:
        while time.time() < stop_at:
            started = time.monotonic()
            client = clients[n % len(clients)]
            code = codes[n % len(codes)]
            try:
                if n % 4 == 3:  # a sell of what this client holds, if anything
                    held = (await client.get(f"{API}/positions")).json()
                    free = [p for p in held if p["free_quantity"] > 0]
                    if free:
                        p = free[0]
                        body = book.sell_order(p["code"], p["free_quantity"], market=n % 8 == 7)
                    else:
                        body = book.buy_order(code, "market")
                else:
                    body = book.buy_order(code, "market" if n % 4 == 1 else "cross")
                response = await client.post(f"{API}/orders", json=body)
                out[f"status:{response.status_code}"] += 1
                if response.status_code == 201:
                    out["accepted"] += 1
                elif response.status_code == 400 and "price_out_of_band" in response.text:
                    out["out_of_band"] += 1  # the price moved since the start; refresh the book
                    book.last.update(await _quotes(client, codes))
            except Exception as exc:  # noqa: BLE001
                out[f"error:{type(exc).__name__}"] += 1
            n += 1
            if n % 50 == 0:
                try:
                    book.last.update(await _quotes(clients[0], codes))
                except Exception as exc:  # noqa: BLE001
                    out[f"quotes-error:{type(exc).__name__}"] += 1
            await asyncio.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))
    finally:
        for client in clients:
            await client.aclose()


async def live_quotes(base_url: str, token: str, codes: list[str], timeout: float) -> dict[str, int]:
    """The live (WebSocket-fed) prices of as many of ``codes`` as have one, once at least one has."""
    import httpx

    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=30) as http:
        deadline = time.monotonic() + timeout
        live: dict[str, int] = {}
        while time.monotonic() < deadline:
            try:
                body = (await http.get("/api/marketdata/quotes", params={"codes": ",".join(codes)})).json()
                live = {q["code"]: q["price"] for q in body.get("quotes", []) if q["source"] == "ws"}
            except (httpx.HTTPError, ValueError):
                live = {}
            if len(live) >= min(3, len(codes)):
                return live
            await asyncio.sleep(1)
    raise SystemExit(f"no live quotes within {timeout:.0f}s (got {sorted(live)})")


async def _quotes(client, codes: list[str]) -> dict[str, int]:
    body = (await client.get("/api/marketdata/quotes", params={"codes": ",".join(codes)})).json()
    return {q["code"]: q["price"] for q in body.get("quotes", []) if q.get("price")}


class RssSampler:
    def __init__(self, stack: Stack, path: Path):
        self.stack = stack
        self.path = path
        self.samples: dict[str, list[tuple[float, float]]] = {}

    def sample(self, t: float) -> None:
        import psutil

        for name, proc in self.stack.procs.items():
            try:
                parent = psutil.Process(proc.pid)
                family = [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for n, p in enumerate(family):
                label = name if n == 0 else f"{name}/{p.pid}"
                try:
                    rss = p.memory_info().rss / 2**20
                except psutil.NoSuchProcess:
                    continue
                self.samples.setdefault(label, []).append((t, rss))
                with self.path.open("a") as f:
                    f.write(f"{t:.0f},{label},{rss:.2f}\n")

    def report(self, warmup: float) -> list[tuple[str, float]]:
        print()
        print(f"== memory (RSS MB; slope after the first {warmup / 60:.0f} min, least squares) ==")
        slopes = []
        for label, points in sorted(self.samples.items()):
            late = [(t, v) for t, v in points if t >= warmup]
            slope = _slope(late) * 3600 if len(late) >= 3 else float("nan")
            at_warm = late[0][1] if late else float("nan")
            print(
                f"  {label:26} start {points[0][1]:7.1f}  after warm-up {at_warm:7.1f}  end {points[-1][1]:7.1f}  "
                f"slope {slope:+7.1f} MB/h  ({len(late)} samples)"
            )
            slopes.append((label, slope))
        return slopes


def _slope(points: list[tuple[float, float]]) -> float:
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (v - mv) for t, v in points) / den if den else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=10, help="minutes excluded from the slope")
    parser.add_argument("--speed", type=float, default=1.0, help="sandbox replay speed")
    parser.add_argument("--start", default="09:05:00", help="replay time to start at")
    parser.add_argument("--browsers", type=int, default=200)
    parser.add_argument("--codes-per-browser", type=int, default=5)
    parser.add_argument("--stocks", type=int, default=20)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--order-rate", type=float, default=1.0, help="orders per second")
    parser.add_argument("--order-clients", type=int, default=10)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--sample", type=float, default=30, help="seconds between RSS samples")
    parser.add_argument("--tracemalloc", action="store_true", help="tracemalloc in the web, feed and Celery workers")
    args = parser.parse_args()

    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # kill <pid>: stop the stack and drop the database
    import django

    django.setup()
    from django.db import connection

    from apps.core.redis import get_redis

    redis = get_redis()
    redis.flushdb()
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    parts = urlsplit(os.environ["DATABASE_URL"])
    database_url = urlunsplit(parts._replace(path="/" + test_db))
    logdir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    stack = Stack(database_url=database_url, speed=args.speed, logdir=logdir)
    stack.env.update(SANDBOX_TAPE_DENSITY="real", LOG_LEVEL="INFO")
    if args.tracemalloc:
        stack.env.update(HOGA_TRACEMALLOC_DIR=str(logdir / "tracemalloc"), HOGA_TRACEMALLOC_AFTER=str(args.warmup * 60))
    print(f"process logs and samples: {logdir}", flush=True)
    try:
        run(args, stack, logdir)
    finally:
        stack.stop()
        from channels.db import database_sync_to_async
        from django.db import connections

        asyncio.run(database_sync_to_async(connections.close_all)())
        connections.close_all()
        connection.creation.destroy_test_db(test_db, verbosity=0)
        redis.flushdb()


def run(args, stack: Stack, logdir: Path) -> None:
    from tests.integration.harness import session_cookie

    t_setup = time.time()
    stack.start_sandbox()
    stack.set_clock({"time": args.start})
    codes, day = load_market(stack, args.stocks)
    stack.start_workers(1)
    stack.start_web_server("gunicorn", args.web_workers)
    port = stack.ports["web"]
    tokens = make_users(args.order_clients, prefix="soak-orders-")
    base_url = f"http://127.0.0.1:{port}"
    last = asyncio.run(live_quotes(base_url, tokens[0], codes, timeout=300))
    book = Book(sorted(last), day, last)
    print(f"live quotes of {len(last)} stocks after {time.time() - t_setup:.0f} s of setup", flush=True)

    users = [session_cookie(f"soak-browser-{n:03d}") for n in range((args.browsers + 3) // 4)]
    rng = random.Random(7)
    plans = [(users[n // 4], rng.sample(codes, min(args.codes_per_browser, len(codes)))) for n in range(args.browsers)]
    t0 = time.time()
    stop_at = t0 + args.minutes * 60
    pipes, procs = [], []
    for k in range(args.client_procs):
        parent, child = mp.Pipe()
        proc = mp.Process(target=browser_proc, args=(port, plans[k :: args.client_procs], child, stop_at), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    print(
        f"soak: {args.minutes:g} min at {args.speed:g}x from {args.start} ({day}); {args.browsers} browsers over "
        f"{len(codes)} stocks; orders {args.order_rate:g}/s; web {args.web_workers} workers; RSS every "
        f"{args.sample:g} s",
        flush=True,
    )
    sampler = RssSampler(stack, logdir / "rss.csv")
    orders = Counter()

    async def drive() -> None:
        flow = asyncio.create_task(order_flow(base_url, tokens, book, args.order_rate, stop_at, orders))
        next_sample = time.time()
        while time.time() < stop_at:
            if time.time() >= next_sample:
                elapsed = time.time() - t0
                sampler.sample(elapsed)
                next_sample += args.sample
                if int(elapsed) % 300 < args.sample:
                    print(f"  {elapsed / 60:5.1f} min: orders {dict(orders)}", flush=True)
            await asyncio.sleep(1)
        await flow

    asyncio.run(drive())
    sampler.sample(time.time() - t0)
    browsers = Counter()
    for pipe in pipes:
        if pipe.poll(120):
            browsers.update(pipe.recv())
    for proc in procs:
        proc.join(timeout=30)

    slopes = sampler.report(args.warmup * 60)
    print()
    print("== browsers ==")
    per_second = browsers["ticks"] / (args.minutes * 60)
    frames = {k: v for k, v in browsers.items() if k.startswith("frames:")}
    print(
        f"  {args.browsers} browsers: {browsers['ticks']:,} quote and {browsers['books']:,} book snapshots "
        f"delivered ({per_second:,.0f} quotes/s), "
        f"reconnects {browsers['reconnects']}; frames {frames}"
    )
    errors = {k: v for k, v in browsers.items() if k.startswith("error:")}
    if errors:
        print(f"  connection errors: {errors}")
    print()
    print("== orders ==")
    print(f"  {dict(orders)}")
    from orders import check_books

    check_books()
    over = [(label, s) for label, s in slopes if s == s and s > 5]
    print()
    print(
        "target (after the warm-up no process grows more than 5 MB/h; no reconnects): "
        + ("met" if not over and not browsers["reconnects"] else f"NOT met {over}")
    )
    if args.tracemalloc:
        print(f"tracemalloc comparisons: {logdir / 'tracemalloc'}")


if __name__ == "__main__":
    main()
