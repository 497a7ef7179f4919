"""Tick-to-browser fan-out: latency p50/p99/max and delivered ticks/s for 1, 100 and 500 browser clients.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hoga REDIS_URL=redis://127.0.0.1:6379/13 \
        .venv/bin/python bench/fanout.py [--clients 1,100,500] [--speeds 1,10] [--duration 10]

Creates and drops its own database (test_<name>), starts Daphne (config.asgi) on a free port and logs
one user in through Django's session. Browser clients are plain `websockets` clients with the session
cookie, spread over ``--workers`` processes; each subscribes to ``--codes-per-client`` of the replayed
stocks. The feed side replays the sandbox's tick tapes of the replay day (``build_market``, the first
``--stocks`` of the universe: KIS allows 41 real-time registrations per session) from the busiest
``--duration`` seconds of the day at each ``--speeds`` factor, through ``QuotePublisher`` exactly as the
feed holder does. Latency runs from the publish ("sandbox send") time, carried in the snapshot's
``received_at`` (ms resolution), to the client's receive time. Clients read continuously ("keep up"),
so every published tick of their stocks should arrive: ``lost`` counts those that did not.

Clients, Daphne, Redis and the publisher share this machine's cores: figures are upper bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")


# --- client worker processes ---------------------------------------------------------------------------


def client_worker(port: int, cookie: str, plans: list[list[str]], conn) -> None:
    """Runs ``len(plans)`` browser clients; reports ``ready``, then on ``stop`` their measurements."""
    import datetime as dt

    import websockets

    async def main() -> dict:
        url = f"ws://127.0.0.1:{port}/ws/market/"
        headers = {"Cookie": f"sessionid={cookie}"}
        latencies: list[float] = []
        received: list[Counter] = [Counter() for _ in plans]
        disorder = [0] * len(plans)
        sockets = []
        for codes in plans:
            ws = await websockets.connect(
                url, origin=f"http://127.0.0.1:{port}", additional_headers=headers, max_size=2**20, open_timeout=30
            )
            await ws.recv()  # status
            await ws.send(json.dumps({"type": "subscribe", "codes": codes}))
            reply = json.loads(await ws.recv())
            assert reply["type"] == "subscribed", reply
            sockets.append(ws)

        async def read(i: int, ws) -> None:
            last_cum: dict[str, int] = {}
            fromiso = dt.datetime.fromisoformat
            async for raw in ws:
                now = time.time()
                message = json.loads(raw)
                if message["type"] != "quote":
                    continue
                quote = message["quote"]
                latencies.append((now - fromiso(quote["received_at"]).timestamp()) * 1000.0)
                received[i][quote["code"]] += 1
                if quote["cum_volume"] < last_cum.get(quote["code"], 0):
                    disorder[i] += 1
                last_cum[quote["code"]] = quote["cum_volume"]

        readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(sockets)]
        loop = asyncio.get_running_loop()
        conn.send("ready")
        await loop.run_in_executor(None, conn.recv)  # "stop"
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*readers, return_exceptions=True)
        return {"latencies": latencies, "received": [dict(c) for c in received], "disorder": disorder}

    conn.send(asyncio.run(main()))


# --- the feed side ------------------------------------------------------------------------------------


def busiest_window(market, codes: list[str], span_ms: int) -> int:
    """Start (sim ms) of the ``span_ms`` window with the most prints over ``codes``."""
    times = sorted(t.t_ms for code in codes for t in market.tapes[code].all_ticks())
    best, best_start, j = 0, times[0], 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + span_ms:
            j += 1
        if j - i > best:
            best, best_start = j - i, start
    return best_start


def window_ticks(market, codes: list[str], start_ms: int, span_ms: int) -> list[tuple[int, str, object, object]]:
    """(t_ms, code, print, running state after it) in time order, states continuing the day so far."""
    out = []
    for code in codes:
        tape = market.tapes[code]
        state = tape.state_at(start_ms - 1).copy()
        for t in tape.ticks_between(start_ms - 1, start_ms + span_ms - 1):
            state.apply(t)
            out.append((t.t_ms, code, t, state.copy()))
    out.sort(key=lambda row: row[0])
    return out


def broker_tick(code: str, market, state, day, t_ms: int):
    """A ``brokers.base.Tick`` as KisRealtimeSession would parse it from the sandbox's H0STCNT0 record;
    ``received_at`` is the publish time (the latency origin)."""
    import datetime as dt
    from decimal import Decimal

    from apps.marketdata.brokers.base import KST, PriceSign, Tick, TradeSide

    prev_close = market.tapes[code].prev_close
    change = state.last - prev_close
    sign = PriceSign.UP if change > 0 else PriceSign.DOWN if change < 0 else PriceSign.UNCHANGED
    at = dt.datetime.combine(day, dt.time(0), tzinfo=KST) + dt.timedelta(milliseconds=t_ms)
    return Tick(
        code=code,
        at=at.replace(microsecond=0),
        price=state.last,
        change=change,
        sign=sign,
        change_rate=(Decimal(change) * 100 / prev_close).quantize(Decimal("0.01")),
        volume=state.last_volume,
        cum_volume=state.volume,
        cum_value=state.value,
        open=state.open,
        high=state.high,
        low=state.low,
        ask1=state.last,
        bid1=state.last,
        side=TradeSide.BUY if state.last_side == "1" else TradeSide.SELL,
        session="0",
        received_at=dt.datetime.now(tz=KST),
    )


async def publish_window(rows, market, day, speed: float) -> tuple[int, float]:
    import redis.asyncio as aioredis
    from channels.layers import get_channel_layer
    from django.conf import settings

    from apps.marketdata.realtime.publisher import QuotePublisher

    client = aioredis.Redis.from_url(settings.REDIS_URL)
    publisher = QuotePublisher(redis=client, channel_layer=get_channel_layer())
    start_ms = rows[0][0]
    began = time.monotonic()
    for t_ms, code, _print, state in rows:
        delay = began + (t_ms - start_ms) / 1000.0 / speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await publisher.publish_tick(broker_tick(code, market, state, day, t_ms), now=time.monotonic())
    took = time.monotonic() - began
    await client.aclose()
    return publisher.published, took


# --- orchestration ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_daphne(database_url: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    # Every simulated browser is the same user: lift the per-user connection cap for this measurement.
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING",
           "MARKET_WS_MAX_CONNECTIONS_PER_USER": "0", "MARKET_WS_USER_MESSAGES_PER_MINUTE": "0"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("daphne did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one_run(args, port: int, cookie: str, market, codes: list[str], n: int, speed: float) -> None:
    from apps.core.redis import get_redis
    from apps.marketdata.realtime import keys

    get_redis().delete(keys.QUOTES_HASH, keys.BOOKS_HASH, keys.VIEWERS_ZSET)
    span_ms = int(args.duration * speed * 1000)
    start_ms = busiest_window(market, codes, span_ms)
    rows = window_ticks(market, codes, start_ms, span_ms)
    k = min(args.codes_per_client, len(codes))
    plans = [[codes[(i * k + j) % len(codes)] for j in range(k)] for i in range(n)]
    workers = max(1, min(args.workers, n))
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for w in range(workers):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=client_worker, args=(port, cookie, plans[w::workers], child), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    for parent in pipes:
        if not parent.poll(120):
            raise SystemExit("client worker did not get ready")
        assert parent.recv() == "ready"
    time.sleep(0.5)  # Daphne's SUBSCRIBEs reach Redis

    published, took = asyncio.run(publish_window(rows, market, market.date, speed))
    time.sleep(1.0)  # drain
    for parent in pipes:
        parent.send("stop")
    results = [parent.recv() for parent in pipes]
    for proc in procs:
        proc.join(10)

    latencies = [x for r in results for x in r["latencies"]]
    per_code = Counter(code for _t, code, _p, _s in rows)
    worker_plans = [plans[w::workers] for w in range(workers)]
    lost = 0
    clients_losing = 0
    disorder = sum(sum(r["disorder"]) for r in results)
    for r, wp in zip(results, worker_plans, strict=True):
        for got, plan in zip(r["received"], wp, strict=True):
            missing = sum(per_code[c] - got.get(c, 0) for c in plan)
            lost += missing
            clients_losing += missing > 0
    rate = published / took if took else 0.0
    if latencies:
        print(
            f"clients={n:4d} speed={speed:g}x  feed {published} ticks in {took:.1f}s ({rate:.0f}/s, "
            f"{len(codes)} stocks, {k}/client)  delivered {len(latencies)} = {len(latencies) / took:,.0f} ticks/s  "
            f"latency p50 {statistics.median(latencies):.1f} ms  p99 {percentile(latencies, 0.99):.1f} ms  "
            f"max {max(latencies):.1f} ms  lost {lost} ({clients_losing} clients)  out-of-order {disorder}",
            flush=True,
        )
    else:
        print(f"clients={n} speed={speed:g}x: nothing delivered ({published} published)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="1,100,500")
    parser.add_argument("--speeds", default="1,10", help="replay speed factors; 1 = the sandbox's real-time pace")
    parser.add_argument("--duration", type=float, default=10.0, help="wall seconds of replay per run")
    parser.add_argument("--stocks", type=int, default=41, help="replayed stocks (KIS: 41 registrations)")
    parser.add_argument("--codes-per-client", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    daphne = None
    try:
        from urllib.parse import urlsplit, urlunsplit

        from django.contrib.auth import get_user_model
        from django.test import Client

        from apps.sandbox.config import config_from_settings
        from apps.sandbox.replay import build_market

        user = get_user_model().objects.create_user(username="bench", password="bench-pass-123")
        client = Client()
        client.force_login(user)
        cookie = client.cookies["sessionid"].value
        market = build_market(config_from_settings())
        codes = list(market.tapes)[: args.stocks]
        from apps.marketdata.models import Stock

        # Only stocks of the universe table can be subscribed.
        Stock.objects.bulk_create([Stock(code=c, name=c, market="KOSPI") for c in codes], ignore_conflicts=True)
        print(f"replay {market.date} ({market.data_source[:70]}), synthetic={market.synthetic}; {len(codes)} stocks")
        for speed in (float(s) for s in args.speeds.split(",")):
            span = int(args.duration * speed * 1000)
            rows = window_ticks(market, codes, busiest_window(market, codes, span), span)
            print(f"speed {speed:g}x: busiest {args.duration:g}s of the day = {len(rows) / args.duration:.0f} ticks/s")
        parts = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hoga"))
        daphne, port = start_daphne(urlunsplit(parts._replace(path="/" + settings.DATABASES["default"]["NAME"])))
        for speed in (float(s) for s in args.speeds.split(",")):
            for n in (int(c) for c in args.clients.split(",")):
                one_run(args, port, cookie, market, codes, n, speed)
    finally:
        if daphne is not None:
            daphne.terminate()
            daphne.wait(10)
        from django.db import connections

        connections.close_all()
        connection.creation.destroy_test_db(test_db, verbosity=0)


if __name__ == "__main__":
    main()
