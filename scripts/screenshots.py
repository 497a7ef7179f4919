#!/usr/bin/env python
"""Screenshots of every page for the README, in both languages and at phone size:
docs/screenshots/<page>.png (Korean, 1280x800), <page>.en.png (English), <page>.phone.png and
<page>.phone.en.png (390x844, what a phone shows first).

    python scripts/screenshots.py [--out docs/screenshots] [--speed 60]

Starts the stack the browser tests use (the sandbox broker replaying fast, Daphne, the feed worker and the
fill-engine worker) against a scratch database ``<name>_screenshots`` on the PostgreSQL of DATABASE_URL
(created, migrated, dropped at the end) and the Redis database of REDIS_URL (15 instead of 0; emptied
before and after), or on the embedded servers when those are unset, as `make test` does. It loads the
universe and its daily history through the sandbox, logs a trader in through the login page, places a few
orders (two the replay fills, a partial sale, one resting), lets the replay run so the charts have bars,
and saves one PNG per page with Debian's Chromium (HOGA_BROWSER, installed by `make browser`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import devstack  # noqa: E402  (scripts/devstack.py: the same services as `make test`)

USERNAME = "demo"
PAGES = {
    "dashboard": "/",
    "stock": "/stocks/005930/",
    "portfolio": "/portfolio/",
    "orders": "/orders/",
    "data-quality": "/data-quality/",
    "notifications": "/notifications/",
    "watchlists": "/watchlists/",
}
ANONYMOUS_PAGES = {"login": "/accounts/login/", "signup": "/accounts/signup/"}
REPLAY_SECONDS = 25  # real seconds the replay runs before the pages are shot: ~25 market minutes at speed 60


def scratch_database(url: str) -> tuple[str, str]:
    """(URL of the scratch database, URL of the server's maintenance database ``postgres``)."""
    parts = urlsplit(url)
    name = (parts.path.lstrip("/") or "hoga") + "_screenshots"
    return urlunsplit(parts._replace(path=f"/{name}")), urlunsplit(parts._replace(path="/postgres"))


def recreate(maintenance_url: str, name: str, *, create: bool) -> None:
    import psycopg

    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')


def place(api, *, code: str, side: str, limit: int, quantity: int) -> dict:
    response = api.post(
        "/api/paper-trading/orders",
        json={"code": code, "side": side, "order_type": "LIMIT", "quantity": quantity, "limit_price": limit},
    )
    if response.status_code != 201:
        raise SystemExit(f"order {side} {quantity} {code} @ {limit} refused: {response.text}")
    return response.json()


def band(api, code: str, day) -> tuple[int, int, int]:
    from tests.integration.harness import price_limits

    quote = api.get("/api/marketdata/quotes", params={"codes": code}).json()["quotes"][0]
    upper, lower = price_limits(quote["price"] - quote["change"], day)
    return quote["price"], upper, lower


def trade(stack, api) -> None:
    """Two buys the replay crosses, a sale of part of one, and a buy resting far below the market."""
    from tests.browser.support import CODE, OTHER_CODE, poll
    from tests.integration.harness import grid_floor, ticks_up

    day = stack.replay_day
    filled = []
    for code, quantity in ((CODE, 20), (OTHER_CODE, 5)):
        last, upper, _ = band(api, code, day)
        filled.append(place(api, code=code, side="BUY", limit=min(ticks_up(last, 5, day), upper), quantity=quantity))
    for order in filled:
        poll(
            lambda order=order: api.get(f"/api/paper-trading/orders/{order['id']}").json()["status"],
            lambda status: status == "FILLED",
            timeout=60,
            what=f"order {order['id']} not filled",
            logs=stack.logs,
        )
    last, _, lower = band(api, CODE, day)
    place(api, code=CODE, side="SELL", limit=max(grid_floor(last - last // 100, day), lower), quantity=5)
    place(api, code=CODE, side="BUY", limit=max(grid_floor(int(last * 0.9), day), lower), quantity=10)


PHONE = {"width": 390, "height": 844}
# (file-name suffix, language, phone-sized)
VARIANTS = [("", "ko", False), (".en", "en", False), (".phone", "ko", True), (".phone.en", "en", True)]


def variant_context(browser, url: str, language: str, phone: bool, **options):
    """A browser context whose pages speak ``language`` (the switcher's cookie), phone-sized or not."""
    from tests.browser.support import new_context

    if phone:
        options.update(viewport=PHONE, is_mobile=True, has_touch=True)
    context = new_context(browser, url, **options)
    context.add_cookies([{"name": "hoga_language", "value": language, "url": url}])
    return context


def shoot(page, name: str, path: str, out: Path) -> None:
    from playwright.sync_api import expect

    page.goto(path)
    if page.locator("#feed-status").count():
        expect(page.locator("#feed-status")).to_have_attribute("data-status", "connected", timeout=15_000)
    if page.locator("#chart").count():
        page.wait_for_function("() => Number(document.querySelector('#chart').dataset.bars) > 0", timeout=15_000)
    page.wait_for_timeout(1_500)  # a few live updates on screen
    page.screenshot(path=str(out / f"{name}.png"))
    print(f"[hoga] {out / f'{name}.png'}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"), help="folder of the PNG files")
    parser.add_argument("--speed", default="60", help="sandbox replay speed (default %(default)s)")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    devstack.build_static()
    services, started = devstack.ensure_services("test")
    redis_url = services["REDIS_URL"]
    if urlsplit(redis_url).path in ("", "/", "/0"):
        redis_url = urlunsplit(urlsplit(redis_url)._replace(path="/15"))  # never the data of `make run`
    database_url, maintenance_url = scratch_database(services["DATABASE_URL"])
    database = urlsplit(database_url).path.lstrip("/")
    os.environ.update(DATABASE_URL=database_url, REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="config.settings.test")
    stack = None
    try:
        recreate(maintenance_url, database, create=True)
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections
        from django.test import override_settings
        from playwright.sync_api import sync_playwright

        from apps.core.redis import get_redis
        from tests.browser.support import (
            BrowserStack,
            api_for,
            create_trader,
            launch,
            log_in,
            new_context,
        )

        devstack.say(f"scratch database {database}, Redis {devstack.redact(redis_url)}")
        call_command("migrate", verbosity=0)
        get_redis().flushdb()
        tmp = Path(tempfile.mkdtemp(prefix="hoga-screenshots-"))
        password = secrets.token_urlsafe(12)
        stack = BrowserStack(tmp, SANDBOX_SPEED=args.speed)
        stack.start_sandbox()
        with override_settings(REPORTS_DIR=str(tmp / "reports")):
            stack.replay_day = stack.load_market_data()
        create_trader(USERNAME, password)
        connections.close_all()
        stack.start_app()
        devstack.say(f"stack up at {stack.url}; process logs in {tmp}")

        with sync_playwright() as playwright:
            browser = launch(playwright)
            for suffix, language, phone in VARIANTS:
                anonymous = variant_context(browser, stack.url, language, phone)
                for name, path in ANONYMOUS_PAGES.items():
                    shoot(anonymous.new_page(), name + suffix, path, out)
                anonymous.close()
            context = new_context(browser, stack.url)
            page = context.new_page()
            log_in(page, USERNAME, password)
            api = api_for(context, stack.url)
            stack.wait_live(api)
            trade(stack, api)
            time.sleep(REPLAY_SECONDS)
            pages = dict(PAGES)
            if (ROOT / "templates" / "conditions").is_dir():
                pages["conditions"] = "/conditions/"
            if (ROOT / "templates" / "strategies").is_dir():
                pages["strategies"] = "/strategies/"
            state = context.storage_state()
            for suffix, language, phone in VARIANTS:
                signed_in = variant_context(browser, stack.url, language, phone, storage_state=state)
                page = signed_in.new_page()
                for name, path in pages.items():
                    shoot(page, name + suffix, path, out)
                signed_in.close()
            api.close()
            browser.close()
    finally:
        if stack is not None:
            stack.stop()
        try:
            from django.db import connections

            connections.close_all()
            from apps.core.redis import get_redis

            get_redis().flushdb()
        except Exception as exc:  # noqa: BLE001 - clean up the rest regardless
            devstack.say(f"cleanup: {exc}")
        recreate(maintenance_url, database, create=False)
        devstack.stop_all(started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
