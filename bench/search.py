"""Stock search over the whole listing: index build, in-memory search and the full API request, p50/p99.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hoga REDIS_URL=redis://127.0.0.1:6379/13 \
        .venv/bin/python bench/search.py [--rounds 20]

Creates and drops its own database (test_<name>), starts a sandbox broker in-process and loads the listing from
its stock master files (the recorded all-listed file of HOGA_DATA_DIR: 2,882 stocks), timing that refresh too.
"The API" is Django's in-process test client: URL routing, session authentication, the view and JSON rendering,
i.e. the server-side time without the network.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

QUERIES = [
    "005930", "0059", "00", "1", "ㅅㅅㅈㅈ", "ㅅ", "ㄱ", "ㅋㅋㅇ", "삼성", "삼성전자", "전자", "바이오", "삼ㅅ", "셀ㅌ",
    "samsung", "hyundai", "kakao", "celltrion", "posco", "naver", "sk", "lg", "a", "hanwha", "kia", "에코프로",
    "SK하이닉스", "우", "홀딩스", "zzzz",
]  # fmt: skip


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20, help="times each query is asked")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        run(args)
    finally:
        from channels.db import database_sync_to_async
        from django.db import connections

        asyncio.run(database_sync_to_async(connections.close_all)())
        connections.close_all()
        connection.creation.destroy_test_db(test_db, verbosity=0)


def run(args) -> None:
    import datetime as dt

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from apps.marketdata.listing import listing_sync
    from apps.marketdata.models import Stock
    from apps.marketdata.selectors import _search_index_build, stock_search_index
    from apps.sandbox.config import SandboxConfig
    from apps.sandbox.server import SandboxThread

    data_dir = Path(settings.HOGA_DATA_DIR) if settings.HOGA_DATA_DIR else None
    cfg = SandboxConfig(data_dir=data_dir, real_rest_port=0, paper_rest_port=0, real_ws_port=0, paper_ws_port=0)
    with SandboxThread(cfg) as sandbox:
        settings.MARKET_BROKER = "sandbox"
        settings.KIS_ENV = "paper"
        settings.SANDBOX_CONNECT_HOST = "127.0.0.1"
        settings.SANDBOX_PAPER_REST_PORT = sandbox.ports.paper_rest
        started = time.perf_counter()
        run_ = asyncio.run(listing_sync(as_of=dt.datetime.now(tz=dt.UTC).date()))
        refresh_s = time.perf_counter() - started
    listed = Stock.objects.filter(active=True).count()
    print(f"listing refresh from the master files: {listed} stocks in {refresh_s:.2f} s ({run_.status}: {run_.note})")

    builds = []
    for _ in range(5):
        started = time.perf_counter()
        index = _search_index_build()
        builds.append((time.perf_counter() - started) * 1000)
    print(f"index build (query + names, 초성, sound keys): median {statistics.median(builds):.1f} ms")

    stock_search_index()  # warm, as a serving process is
    memory = []
    for _ in range(args.rounds):
        for query in QUERIES:
            started = time.perf_counter()
            index.search(query, limit=10)
            memory.append((time.perf_counter() - started) * 1000)
    print(f"in-memory search, {len(memory)} queries: p50 {pct(memory, .5):.2f} ms, p99 {pct(memory, .99):.2f} ms, "
          f"max {max(memory):.2f} ms")  # fmt: skip

    user = get_user_model().objects.create_user(username="bench", password="bench-pass-1234")
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = Client()
    client.force_login(user)
    api = []
    for _ in range(args.rounds):
        for query in QUERIES:
            started = time.perf_counter()
            response = client.get("/api/marketdata/stocks/search", {"q": query, "limit": "10"})
            api.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content
    print(f"API request (in-process), {len(api)} requests: p50 {pct(api, .5):.2f} ms, p99 {pct(api, .99):.2f} ms, "
          f"max {max(api):.2f} ms")  # fmt: skip
    worst = max(QUERIES, key=lambda q: statistics.median(
        [t for i, t in enumerate(memory) if QUERIES[i % len(QUERIES)] == q]))  # fmt: skip
    print(f"slowest query in memory: {worst!r}")


if __name__ == "__main__":
    main()
