"""The fill engine on its own: time and statements to apply one trade tick that crosses many orders.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hoga_benchfills REDIS_URL=redis://127.0.0.1:6379/7 \
        .venv/bin/python bench/fill_engine.py [--accounts 50] [--rounds 20]

Creates and drops its own database (test_<name>) and empties its Redis database (use a spare one). For
each batch size k (1, 10, 35 by default) it places k LIMIT BUYs of k different accounts at the same price,
then appends a trade tick at that price with enough volume for all of them to the real fill-tick stream
and runs one ``FillEngine.step()`` (read, ``order_fills_apply`` in one transaction, commit, order pushes
after commit, ack). Prints per tick: wall time from XADD to the step's return (p50/p99), and the SQL
statements the step ran. This is the engine's own cost on an otherwise idle database; ``bench/orders.py``
measures the whole stack under API load. Figures only, no timed asserts.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

TRADING_DATE = dt.date(2026, 3, 3)
BASE = 70_000


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20, help="ticks per batch size")
    parser.add_argument("--sizes", default="1,10,35", help="orders crossed per tick")
    parser.add_argument("--profile", action="store_true", help="print where the steps spend their CPU (cProfile)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    from apps.core.redis import get_redis

    redis = get_redis()
    redis.flushdb()
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        run(args, redis)
    finally:
        from django.db import connections

        connections.close_all()
        connection.creation.destroy_test_db(test_db, verbosity=0)
        redis.flushdb()


def run(args, redis) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.accounts.services import paper_account_create
    from apps.marketdata.calendar import KST
    from apps.marketdata.market_clock import MarketNow
    from apps.marketdata.models import DailyBar, Stock
    from apps.marketdata.realtime import keys
    from apps.orders.engine import FillEngine
    from apps.orders.services import order_place

    stock = Stock.objects.create(code="005930", name="Samsung Electronics", market="KOSPI", active=True)
    DailyBar.objects.create(
        stock=stock, date=TRADING_DATE - dt.timedelta(days=1), open=BASE, high=BASE, low=BASE, close=BASE,
        volume=1000, source="kis",
    )  # fmt: skip
    market = MarketNow(
        now=dt.datetime.combine(TRADING_DATE, dt.time(10), tzinfo=KST),
        trading_date=TRADING_DATE,
        session="continuous",
        source="calendar",
    )
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"bench-fill-{n}") for n in range(args.accounts)]
    )
    accounts = [paper_account_create(user=u, name="bench", initial_cash=1_000_000_000) for u in users]
    engine = FillEngine(consumer="bench")
    engine.reader.ensure_group()
    engine._last_expiry = engine._last_demand = float("inf")  # housekeeping is not what is measured here
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"fill engine, one tick crossing k resting LIMIT BUYs of k accounts; {args.rounds} ticks per k")
    order_n = 0
    profiler = cProfile.Profile() if args.profile else None
    for k in sizes:
        if k > len(accounts):
            raise SystemExit(f"--accounts must be >= {k}")
        walls, statements = [], []
        for _ in range(args.rounds):
            for account in accounts[:k]:
                order_n += 1
                order_place(
                    account_id=account.pk, code=stock.code, side="BUY", order_type="LIMIT", quantity=10,
                    limit_price=BASE, market=market, client_order_id=f"b{order_n}",
                )  # fmt: skip
            at = dt.datetime.combine(TRADING_DATE, dt.time(10, 30), tzinfo=KST)
            fields = {"code": stock.code, "price": BASE, "volume": 10 * k, "cum_volume": 0, "at": at.isoformat(),
                      "ask": BASE, "bid": BASE - 100}  # fmt: skip
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                redis.xadd(keys.FILL_TICKS_STREAM, fields)
                if profiler:
                    profiler.enable()
                created = engine.step()
                if profiler:
                    profiler.disable()
                walls.append((time.perf_counter() - started) * 1000)
            statements.append(len(queries))
            if created != k:
                raise SystemExit(f"expected {k} executions, got {created}")
        print(
            f"  k={k:3}: wall p50 {_pct(walls, 0.5):6.1f} ms, p99 {_pct(walls, 0.99):6.1f} ms, "
            f"max {max(walls):6.1f} ms; SQL statements per tick {min(statements)}-{max(statements)}"
        )
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)


if __name__ == "__main__":
    main()
