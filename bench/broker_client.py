#!/usr/bin/env python
"""Benchmark the KIS client against the sandbox broker: achieved calls/s vs the configured limit,
and p50/p99 call latency (limiter wait included, and the HTTP round trip alone).

    python bench/broker_client.py                      # in-process sandbox, real mode, 200 calls
    python bench/broker_client.py --env paper --calls 20
    python bench/broker_client.py --processes 4 --calls 400 --concurrency 8
    python bench/broker_client.py --rest-url http://127.0.0.1:19443 --env real   # a running sandbox

Needs Redis (REDIS_URL; the limiter and breaker live there). Tokens are kept in memory per process
(the database is not needed), so with --processes N each process obtains its own token via the
sandbox's 6-hour reuse rule. Every run uses a fresh Redis key prefix and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


def _setup_django() -> None:
    import django

    django.setup()


def _worker(config_fields: dict[str, Any], code: str, calls: int, concurrency: int, start_at: float, out: Any) -> None:
    _setup_django()
    from django.conf import settings

    from apps.brokers.base import BrokerError
    from apps.brokers.kis.client import AsyncKisClient
    from apps.brokers.kis.config import KisConfig
    from apps.brokers.tokens import MemoryTokenStore

    config = KisConfig(**config_fields)

    async def run() -> dict[str, Any]:
        async with AsyncKisClient(config, token_store=MemoryTokenStore(), redis_url=settings.REDIS_URL) as client:
            await client.current_price(code)  # token + connection warm-up, not measured
            await asyncio.sleep(max(0.0, start_at - time.time()))
            latencies: list[float] = []
            http_latencies: list[float] = []
            errors: dict[str, int] = {}
            remaining = [calls]

            async def one() -> None:
                while remaining[0] > 0:
                    remaining[0] -= 1
                    began = time.perf_counter()
                    try:
                        resp = await client.get(
                            "/uapi/domestic-stock/v1/quotations/inquire-price",
                            "FHKST01010100",
                            {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": code},
                        )
                        http_latencies.append(resp.latency)
                    except BrokerError as exc:
                        errors[exc.code] = errors.get(exc.code, 0) + 1
                    latencies.append(time.perf_counter() - began)

            began = time.time()
            await asyncio.gather(*(one() for _ in range(concurrency)))
            return {
                "latencies": latencies,
                "http_latencies": http_latencies,
                "errors": errors,
                "started": began,
                "finished": time.time(),
            }

    out.put(asyncio.run(run()))


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=("real", "paper"), default="real")
    parser.add_argument("--calls", type=int, default=200, help="total calls across all processes")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent calls per process")
    parser.add_argument("--rate", type=float, default=None, help="client limit (default: KIS_<ENV>_RATE_LIMIT)")
    parser.add_argument("--sandbox-rate", type=float, default=None, help="in-process sandbox limit (default 20/2)")
    parser.add_argument("--rest-url", default="", help="use a running sandbox instead of starting one")
    parser.add_argument("--code", default="")
    args = parser.parse_args()

    _setup_django()
    from dataclasses import asdict

    from django.conf import settings

    from apps.brokers.kis.config import KisConfig
    from apps.brokers.metrics import read_metrics
    from apps.core.demo_credentials import demo_credentials
    from apps.core.redis import get_redis
    from apps.sandbox.config import SandboxConfig
    from apps.sandbox.server import SandboxThread

    rate = args.rate or float(getattr(settings, f"KIS_{args.env.upper()}_RATE_LIMIT"))
    prefix = f"hoga:bench:{uuid.uuid4().hex[:8]}"
    sandbox = None
    code = args.code or "005930"
    if args.rest_url:
        rest_url = args.rest_url.rstrip("/")
    else:
        data_dir = Path(settings.HOGA_DATA_DIR) if settings.HOGA_DATA_DIR else None
        sandbox_rate = args.sandbox_rate or (20.0 if args.env == "real" else 2.0)
        sandbox = SandboxThread(
            SandboxConfig(
                data_dir=data_dir if data_dir and (data_dir / "daily/krx_marcap").is_dir() else None,
                universe_size=5,
                real_rest_port=0,
                paper_rest_port=0,
                real_ws_port=0,
                paper_ws_port=0,
                real_rate_limit=sandbox_rate,
                paper_rate_limit=sandbox_rate,
            )
        ).start()
        port = sandbox.ports.real_rest if args.env == "real" else sandbox.ports.paper_rest
        rest_url = f"http://127.0.0.1:{port}"
        code = args.code or next(iter(sandbox.server.core.market.tapes))
        print(f"sandbox: in-process on {rest_url}, {sandbox_rate:g} req/s per app key")
    app_key, app_secret = demo_credentials(args.env)
    config = KisConfig(
        env=args.env,
        rest_url=rest_url,
        ws_url="",
        app_key=app_key,
        app_secret=app_secret,
        rate_limit=rate,
        redis_prefix=prefix,
    )
    per_process = [
        args.calls // args.processes + (1 if i < args.calls % args.processes else 0) for i in range(args.processes)
    ]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 3.0 + 0.5 * args.processes  # all processes start together
    procs = [
        ctx.Process(target=_worker, args=(asdict(config), code, n, args.concurrency, start_at, queue))
        for n in per_process
    ]
    try:
        for proc in procs:
            proc.start()
        results = [queue.get(timeout=600) for _ in procs]
        for proc in procs:
            proc.join(10)
        redis = get_redis()
        counters = read_metrics(redis, prefix=prefix, scope=config.scope)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        redis = get_redis()
        keys = list(redis.scan_iter(f"{prefix}:*"))
        if keys:
            redis.delete(*keys)
        if sandbox is not None:
            sandbox.stop()

    latencies = [x for r in results for x in r["latencies"]]
    http = [x for r in results for x in r["http_latencies"]]
    errors: dict[str, int] = {}
    for r in results:
        for key, value in r["errors"].items():
            errors[key] = errors.get(key, 0) + value
    duration = max(r["finished"] for r in results) - min(r["started"] for r in results)
    achieved = len(latencies) / duration if duration > 0 else float("nan")
    print(
        f"env={args.env} processes={args.processes} concurrency={args.concurrency} calls={len(latencies)} "
        f"duration={duration:.2f}s"
    )
    spaced = (len(latencies) - 1) / duration if duration > 0 and len(latencies) > 1 else float("nan")
    print(
        f"calls/s achieved: {achieved:.2f} (calls/duration; {spaced:.2f} over the {len(latencies) - 1} spacing "
        f"intervals)  configured limit: {rate:g}/s  ({100 * spaced / rate:.1f}% of limit)"
    )
    print(
        f"call latency (limiter wait + HTTP): p50={1000 * _percentile(latencies, 0.5):.1f} ms "
        f"p99={1000 * _percentile(latencies, 0.99):.1f} ms"
    )
    print(
        f"HTTP round trip only:               p50={1000 * _percentile(http, 0.5):.1f} ms "
        f"p99={1000 * _percentile(http, 0.99):.1f} ms"
    )
    print(
        f"errors: {errors or 'none'}; broker EGW00201: {counters['errors_by_code'].get('EGW00201', 0)}; "
        f"retries: {counters['retries']}; limiter waits: {counters['limiter_waits']}"
    )
    print(f"mean HTTP latency: {statistics.fmean(http) * 1000:.1f} ms" if http else "no successful calls")
    return 0 if not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
