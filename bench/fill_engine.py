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

Then (``--protective N``, default 10,000; 0 skips it) the same engine with N resting conditional orders across
``--stocks`` stocks (50): per (account, stock) a stop, a trailing stop, a take-profit and a bracket's two OCO
legs sharing one reservation, triggers spread 100 won apart around the price. It times three kinds of tick
(each on the next stock in turn): a quiet print between the triggers (fires nothing: the candidate read
only), a print one tick lower than the last (fires and fills the stop, trailing stop and bracket stop-loss at
that level, cancelling that leg's take-profit), and a print one tick higher (a new high: every trailing stop
of the stock ratchets, the take-profits at that level fire and fill). Target: p99 under 50 ms per tick.
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
    parser.add_argument("--protective", type=int, default=10_000, help="resting conditional orders (0: skip)")
    parser.add_argument("--stocks", type=int, default=50, help="stocks the conditional orders spread across")
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

    from apps.core.krx.calendar import KST
    from apps.live.realtime import keys
    from apps.marketdata.market_clock import MarketNow
    from apps.marketdata.models import DailyBar, Stock
    from apps.trading.accounts.services import paper_account_create
    from apps.trading.orders.engine import FillEngine
    from apps.trading.orders.placement import order_place

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
    if args.protective:
        protective(args, redis, engine, market, accounts, stock)
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)


def protective(args, redis, engine, market, accounts, first_stock) -> None:
    """Resting conditional orders across ``--stocks`` stocks, then quiet, falling and rising ticks (docstring)."""
    from decimal import Decimal

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.core.krx.calendar import KST
    from apps.live.realtime import keys
    from apps.marketdata.models import DailyBar, Stock
    from apps.trading.orders.demand import fill_stream_position
    from apps.trading.orders.models import Order
    from apps.trading.positions.models import Position

    per_pair = 5  # stop, trailing stop, take-profit, and a bracket's two legs
    holders = accounts[: max(1, args.protective // (per_pair * args.stocks))]
    stocks = [first_stock] + [
        Stock.objects.create(code=f"{100000 + n:06d}", name=f"Bench {n}", market="KOSPI", active=True)
        for n in range(1, args.stocks)
    ]
    DailyBar.objects.bulk_create(
        [
            DailyBar(stock=s, date=TRADING_DATE - dt.timedelta(days=1), open=BASE, high=BASE, low=BASE, close=BASE,
                     volume=1000, source="kis")
            for s in stocks[1:]
        ]
    )  # fmt: skip
    Position.objects.filter(stock=first_stock).delete()  # the first part's buys
    Position.objects.bulk_create(
        [Position(account=a, stock=s, quantity=40, reserved_quantity=40, cost_basis=40 * BASE, avg_price=BASE)
         for a in holders for s in stocks]
    )  # fmt: skip
    after = fill_stream_position()
    common = {
        "side": "SELL", "order_type": "MARKET", "quantity": 10, "commission_rate": Decimal("0.00015"),
        "trading_date": TRADING_DATE, "fill_after_id": after, "accepted_at": market.now, "trigger_state": "ARMED",
    }  # fmt: skip
    orders, pairs = [], []
    for s in stocks:
        for n, a in enumerate(holders):
            down, up = BASE - 100 * (n % 50 + 1), BASE + 100 * (n % 50 + 1)
            orders += [
                Order(account=a, stock=s, trigger_type="STOP", trigger_direction="DOWN", trigger_price=down, **common),
                Order(account=a, stock=s, trigger_type="TRAILING_STOP", trigger_direction="DOWN", trigger_price=down,
                      trail_amount=BASE - down, trail_anchor=BASE, **common),
                Order(account=a, stock=s, trigger_type="TAKE_PROFIT", trigger_direction="UP", trigger_price=up,
                      **common),
            ]  # fmt: skip
            pairs.append(
                (
                    Order(account=a, stock=s, trigger_type="TAKE_PROFIT", trigger_direction="UP", trigger_price=up,
                          bracket_leg="TAKE_PROFIT", **common),
                    Order(account=a, stock=s, trigger_type="STOP", trigger_direction="DOWN", trigger_price=down,
                          bracket_leg="STOP_LOSS", **common),
                )
            )  # fmt: skip
    Order.objects.bulk_create(orders + [leg for pair in pairs for leg in pair], batch_size=2000)
    for tp, sl in pairs:
        tp.oco_peer, sl.oco_peer = sl, tp
    Order.objects.bulk_update([leg for pair in pairs for leg in pair], ["oco_peer"], batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    resting = Order.objects.filter(trigger_state="ARMED").count()
    print(f"protective orders: {resting:,} armed across {len(stocks)} stocks ({len(holders)} accounts per stock)")

    levels = {s.code: [BASE, BASE] for s in stocks}  # the lowest and the highest print so far
    at = dt.datetime.combine(TRADING_DATE, dt.time(11), tzinfo=KST)
    for kind in ("quiet", "falling", "rising"):
        walls, statements, fills = [], [], 0
        for i in range(args.rounds * 3):
            s = stocks[i % len(stocks)]
            low, high = levels[s.code]
            if kind == "quiet":
                price = BASE
            elif kind == "falling":
                price = levels[s.code][0] = low - 100
            else:
                price = levels[s.code][1] = high + 100
            fields = {"code": s.code, "price": price, "volume": 10_000, "cum_volume": 0, "at": at.isoformat(),
                      "ask": price, "bid": price - 100}  # fmt: skip
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                redis.xadd(keys.FILL_TICKS_STREAM, fields)
                fills += engine.step()
                walls.append((time.perf_counter() - started) * 1000)
            statements.append(len(queries))
        print(
            f"  {kind:8} ticks: wall p50 {_pct(walls, 0.5):6.1f} ms, p99 {_pct(walls, 0.99):6.1f} ms, "
            f"max {max(walls):6.1f} ms; SQL statements per tick {min(statements)}-{max(statements)}; "
            f"{fills} executions in {len(walls)} ticks"
        )
    left = Order.objects.filter(trigger_state="ARMED", status="PENDING").count()
    print(f"  still armed after the ticks: {left:,}")


if __name__ == "__main__":
    main()
