"""A child process for the multi-process broker tests (run by ``conftest.Children``).

argv[1] is a JSON job: {"config": {...KisConfig fields...}, "calls": N, "concurrency": C, "code": "005930"}.
Prints ``ready``, waits for ``go`` on stdin, runs the calls through a Django-backed client and prints
one JSON line: ok/error counts, error codes, wall-clock start/end, whether this process issued a token.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


def main() -> None:
    import django

    django.setup()
    from django.conf import settings

    from apps.brokers.base import BrokerError
    from apps.brokers.kis.client import AsyncKisClient
    from apps.brokers.kis.config import KisConfig
    from apps.marketdata.broker_services import DatabaseTokenStore

    job = json.loads(sys.argv[1])
    config = KisConfig(**job["config"])
    calls = int(job.get("calls", 1))
    concurrency = int(job.get("concurrency", 1))
    code = job.get("code", "005930")

    async def run() -> dict:
        async with AsyncKisClient(config, token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL) as client:
            # Warm up imports and connections (not the token: that is what the tests watch).
            await client._redis.ping()
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            await asyncio.to_thread(sys.stdin.readline)
            started = time.time()
            errors: list[str] = []
            ok = 0
            queue = list(range(calls))

            async def worker() -> None:
                nonlocal ok
                while queue:
                    queue.pop()
                    try:
                        await client.current_price(code)
                        ok += 1
                    except BrokerError as exc:
                        errors.append(exc.code)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            finished = time.time()
        return {"ok": ok, "errors": errors, "started": started, "finished": finished}

    sys.stdout.write(json.dumps(asyncio.run(run())) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
