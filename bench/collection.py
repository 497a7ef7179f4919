"""Minute-collection cycle time for the universe against the sandbox (at the paper rate limit), and
bulk-upsert throughput of minute bars into PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hoga REDIS_URL=redis://127.0.0.1:6379/13 \
        .venv/bin/python bench/collection.py [--stocks 50] [--rate 2] [--cycles 2]

Creates and drops its own database (test_<name>), starts a sandbox broker in-process on free ports.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time as wall
import uuid
from datetime import date, datetime, time, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stocks", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2.0, help="sandbox paper limit, req/s (KIS paper: 2)")
    parser.add_argument("--cycles", type=int, default=2)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        run(args, settings)
    finally:
        from channels.db import database_sync_to_async
        from django.db import connections

        asyncio.run(database_sync_to_async(connections.close_all)())  # the services' worker-thread connection
        connections.close_all()
        connection.creation.destroy_test_db(test_db, verbosity=0)


def run(args, settings) -> None:
    from apps.brokers.kis.client import AsyncKisClient
    from apps.brokers.kis.config import KisConfig
    from apps.core.krx.calendar import KST, KrxCalendar
    from apps.marketdata.broker_services import DatabaseTokenStore
    from apps.marketdata.collection import MinuteRow, minute_collect
    from apps.marketdata.market_clock import CONTINUOUS, MarketNow
    from apps.marketdata.models import MinuteBar, Stock
    from apps.marketdata.services import minute_bars_upsert
    from apps.sandbox.config import AppCredential, config_from_settings
    from apps.sandbox.server import SandboxThread

    cred = AppCredential(f"PSBENCH{uuid.uuid4().hex}"[:36], "b" * 180, "paper")
    cfg = config_from_settings(
        real_rest_port=0,
        paper_rest_port=0,
        real_ws_port=0,
        paper_ws_port=0,
        paper_rate_limit=args.rate,
        app_credentials=(cred,),
        admin_token="bench",
    )
    client_rate = args.rate * 0.9  # the client's default margin below the documented limit
    with SandboxThread(cfg) as sandbox:
        status = sandbox.server.core.clock_status()
        codes = status["universe"][: args.stocks]
        day = date.fromisoformat(status["replay_date"])
        for rank, code in enumerate(codes, start=1):
            Stock.objects.update_or_create(code=code, defaults={"name": code, "market": "KOSPI", "rank": rank})
        config = KisConfig.for_sandbox(
            env="paper",
            rest_port=sandbox.ports.paper_rest,
            app_key=cred.appkey,
            app_secret=cred.appsecret,
            rate_limit=client_rate,
            redis_prefix=f"hoga:bench:{uuid.uuid4().hex[:8]}",
        )
        import httpx

        admin = httpx.Client(
            base_url=f"http://127.0.0.1:{sandbox.ports.paper_rest}", headers={"X-Sandbox-Admin": "bench"}
        )
        calendar = KrxCalendar()
        print(f"sandbox: {status['data_source'][:90]}")
        print(f"universe: {len(codes)} stocks, sandbox paper limit {args.rate}/s, client limit {client_rate:.2f}/s")
        for cycle in range(1, args.cycles + 1):
            minute = time(9, cycle)
            admin.post("/sandbox/clock", json={"time": minute.strftime("%H:%M:%S"), "speed": 0.0001})
            market = MarketNow(
                now=datetime.combine(day, minute, tzinfo=KST), trading_date=day, session=CONTINUOUS, source="bench"
            )

            async def go(market=market):
                async with AsyncKisClient(
                    config, token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL
                ) as client:
                    return await minute_collect(client=client, market=market, calendar=calendar, codes=codes)

            started = wall.perf_counter()
            result = asyncio.run(go())
            took = wall.perf_counter() - started
            floor = len(codes) / client_rate
            print(
                f"minute cycle {cycle}: {took:.1f} s for {len(codes)} stocks "
                f"({result.stored} bars, {result.failed} failed); "
                f"rate-limit floor {floor:.1f} s ({len(codes)} calls / {client_rate:.2f}/s); "
                f"{'fits' if took < 60 else 'does NOT fit'} in the minute"
            )

    # Bulk upsert throughput: a full day for the universe, inserted, then updated in place.
    base = datetime.combine(date(2026, 2, 20), time(9, 0), tzinfo=KST)
    rows = [
        MinuteRow(code, base + timedelta(minutes=i), 100 + i, 110 + i, 90 + i, 105 + i, 1000 + i)
        for code in codes
        for i in range(381)
    ]
    MinuteBar.objects.all().delete()
    timings = []
    for label in ("insert", "update"):
        started = wall.perf_counter()
        minute_bars_upsert(source="kis", bars=rows)
        took = wall.perf_counter() - started
        timings.append(took)
        print(f"bulk upsert ({label}): {len(rows)} rows in {took:.2f} s = {len(rows) / took:,.0f} rows/s")
    print(f"mean upsert rate: {len(rows) / statistics.mean(timings):,.0f} rows/s (machine is shared and noisy)")


if __name__ == "__main__":
    main()
