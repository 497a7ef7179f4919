"""What the browser tests and ``scripts/screenshots.py`` share: the real stack (the sandbox broker replaying
fast, Daphne, the feed worker and the fill-engine worker), Debian's Chromium driven by Playwright, logging in
through the login page, the REST API with a browser's session, and the axe-core accessibility check."""

from __future__ import annotations

import asyncio
import io
import secrets
import threading
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from tests.integration.harness import ProcessStack, poll

ROOT = Path(__file__).resolve().parents[2]
CODE = "005930"  # Samsung Electronics: rank 1 of the universe, prints several times a second at SPEED
OTHER_CODE = "000660"
SPEED = "20"  # replay speed: 1 s of real time is 20 s of market time, so the first names move every second
VIEWPORT = {"width": 1280, "height": 800}
# Debian's chromium under Playwright: headless, no sandbox (root in containers), and none of the background
# services that would try to reach the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_PATH = ROOT / "static" / "vendor" / "axe.min.js"
AXE_RULES = ["label", "color-contrast", "button-name", "link-name", "html-has-lang", "document-title"]
API = "/api/paper-trading"
HISTORY_DAYS = 30  # calendar days of daily bars loaded before the replay day (previous close, 1d chart)
# A window of the recorded KRX history the sandbox serves that the recorded FinanceDataReader and Yahoo files
# cover too (Yahoo with some stale rows): the validation shown on the data-quality page.
VALIDATION_FROM, VALIDATION_TO = date(2022, 1, 3), date(2022, 2, 17)
VALIDATION_CODES = ["005930", "005380"]


class BrowserStack(ProcessStack):
    """The whole stack on free ports against one database; ``env`` extras override the defaults."""

    def __init__(self, tmp_path: Path, *, admin_token: str = "browser-admin", **env: str):
        defaults = {
            "SANDBOX_SPEED": SPEED,
            "SANDBOX_PAPER_RATE_LIMIT": "50",
            "KIS_PAPER_RATE_LIMIT": "40",
            "PAPER_FILL_BLOCK_MS": "200",
            "FEED_STATUS_INTERVAL": "1",
        }
        super().__init__(tmp_path, admin_token=admin_token, **{**defaults, **env})

    universe: list[str] = []  # set by load_market_data, with what follows
    synthetic = False  # the sandbox replays its seeded synthetic market (no recorded KRX data)
    validated = False  # the data-quality page has a validation report

    def priced_codes(self) -> set[str]:
        """The universe stocks the sandbox has prices for: all of them with recorded data; with its synthetic
        market, the few it simulates."""
        if not self.synthetic:
            return set(self.universe)
        from apps.sandbox.replay import SYNTHETIC_UNIVERSE

        return set(self.universe) & {row[0] for row in SYNTHETIC_UNIVERSE}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['web']}"

    def load_market_data(self, codes: list[str] | None = None) -> date:
        """Market data as the collection jobs store it, through the real KIS client and the sandbox, in this
        process before Playwright starts its loop: the universe; the daily bars of ``codes`` (default: the
        universe) for the 30 days before the replay day (the previous close that changes and price bands
        are measured from, the daily chart); and, with recorded data, a validation of the broker's bars
        against the recorded FinanceDataReader and Yahoo files over a window all of them cover (the
        data-quality page). Returns the replay day."""
        from channels.db import database_sync_to_async
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connections

        from apps.brokers.kis.client import AsyncKisClient
        from apps.brokers.kis.config import KisConfig
        from apps.marketdata.broker_services import DatabaseTokenStore
        from apps.marketdata.collection import daily_backfill, universe_codes
        from apps.marketdata.models import Stock
        from apps.marketdata.services import daily_bars_upsert, validation_run_execute
        from apps.marketdata.sources.recorded import RecordedFdrSource, RecordedYahooSource

        replay_day = date.fromisoformat(self.sandbox_clock()["replay_date"])
        call_command("load_universe", stdout=io.StringIO())
        self.universe = universe_codes()
        codes = codes or self.universe
        checked = list(Stock.objects.filter(code__in=VALIDATION_CODES).values_list("code", flat=True))
        self.synthetic = bool(self.sandbox_clock()["synthetic"])
        validate = bool(settings.HOGA_DATA_DIR) and not self.synthetic and checked
        self.validated = bool(validate)
        config = KisConfig.for_sandbox(env="paper", rest_port=self.ports["paper_rest"], rate_limit=40.0)

        async def collect():
            async with AsyncKisClient(config, token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL) as client:
                daily = await daily_backfill(
                    client=client,
                    codes=codes,
                    start=replay_day - timedelta(days=HISTORY_DAYS),
                    end=replay_day - timedelta(days=1),
                )
                window = (
                    await daily_backfill(client=client, codes=checked, start=VALIDATION_FROM, end=VALIDATION_TO)
                    if validate
                    else None
                )
                return daily, window

        try:
            daily, window = asyncio.run(collect())
        finally:
            asyncio.run(database_sync_to_async(connections.close_all)())  # the services' worker-thread connection
        assert daily.stored and not daily.failed, f"daily backfill: {daily.stored} stored, {daily.error_summary}"
        if window is not None:
            assert window.stored and not window.failed, f"backfill: {window.stored} stored, {window.error_summary}"
            for source in (RecordedFdrSource(settings.HOGA_DATA_DIR), RecordedYahooSource(settings.HOGA_DATA_DIR)):
                bars = [bar for code in checked for bar in source.daily_bars(code, VALIDATION_FROM, VALIDATION_TO)]
                if bars:
                    daily_bars_upsert(source=source.name, bars=bars)
                    validation_run_execute(
                        source_a="kis",
                        source_b=source.name,
                        date_from=VALIDATION_FROM,
                        date_to=VALIDATION_TO,
                        codes=checked,
                    )
        return replay_day

    def wait_live(self, api: httpx.Client, code: str = CODE, timeout: float = 45) -> dict:
        """The first live (``source=ws``) quote of ``code``: the feed holds the broker WebSocket.

        Meanwhile one minute-bar request waits for the web process's XKRX calendar (loaded in the background
        when it starts; about ten seconds to build while HOGA_CACHE_DIR holds no copy yet), so no test's first
        chart depends on how warm that cache is."""
        day = self.sandbox_clock()["replay_date"]
        params = {"code": code, "interval": "1m", "from": day, "to": day}
        warm = threading.Thread(target=lambda: api.get("/api/marketdata/bars", params=params, timeout=60), daemon=True)
        warm.start()
        quote = poll(
            lambda: api.get("/api/marketdata/quotes", params={"codes": code}).json(),
            lambda body: any(q.get("source") == "ws" for q in body.get("quotes", [])),
            timeout=timeout,
            what=f"no live quote for {code}",
            logs=self.logs,
        )
        warm.join(timeout=60)
        return quote


def create_trader(username: str, password: str) -> None:
    """A user with a paper account (ORM: call before Playwright starts its event loop in this thread)."""
    from apps.trading.accounts.services import paper_account_ensure, user_ensure

    user, _ = user_ensure(username=username, password=password)
    paper_account_ensure(user=user)


# --- the browser ---------------------------------------------------------------------------------------


def chromium_path() -> str:
    """``HOGA_BROWSER``, or the test fails saying how to install it (never a silent skip)."""
    from django.conf import settings

    path = Path(settings.HOGA_BROWSER)
    if not (path.is_file() and path.stat().st_mode & 0o111):
        pytest.fail(
            f"Chromium not found at {path} (HOGA_BROWSER): run `make browser` (installs Debian's chromium) "
            "or set HOGA_BROWSER to a Chromium binary"
        )
    return str(path)


def launch(playwright):
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)


# Every page records what its Content Security Policy blocked (an inline script or style, a foreign source);
# the tests assert it stays empty while the page does its live work.
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile || ""}:${e.lineNumber}`;
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI || "inline"} ${where}`);
});
"""


def new_context(browser, base_url: str, **options):
    options.setdefault("viewport", VIEWPORT)
    context = browser.new_context(base_url=base_url, locale="ko-KR", timezone_id="Asia/Seoul", **options)
    context.add_init_script(CSP_RECORDER)
    return context


def csp_violations(page) -> list[str]:
    return page.evaluate("() => window.__cspViolations || []")


def log_in(page, username: str, password: str) -> None:
    """Log in through the login page, as a person does; lands on the dashboard."""
    page.goto("/accounts/login/")
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(password)
    page.locator('main form button[type="submit"]').first.click()
    page.wait_for_url(lambda url: httpx.URL(url).path == "/", timeout=10_000)


def api_for(context, base_url: str) -> httpx.Client:
    """The REST API as the browser context's user: its session cookie, plus a CSRF cookie and header."""
    session = next((c["value"] for c in context.cookies() if c["name"] == "sessionid"), None)
    assert session, "the browser context holds no session cookie: not logged in"
    csrf = secrets.token_hex(16)  # 32 characters: an unmasked CSRF secret, valid as cookie and header
    return httpx.Client(
        base_url=base_url,
        cookies={"sessionid": session, "csrftoken": csrf},
        headers={"X-CSRFToken": csrf},
        timeout=10,
    )


# --- accessibility -------------------------------------------------------------------------------------


def axe_violations(page) -> list[dict]:
    """Run axe-core (vendored from npm to static/vendor/axe.min.js) on the page with the rules for labels,
    contrast, button and link names, the document language and title; its violations."""
    if not AXE_PATH.is_file():
        pytest.fail(f"{AXE_PATH.relative_to(ROOT)} is missing: run `make static` (vendors axe-core from npm)")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # By URL (static/vendor/ is served by Hoga): the pages' CSP refuses inline scripts.
        page.add_script_tag(url="/static/vendor/axe.min.js")
    result = page.evaluate(
        """async (rules) => {
            const options = {runOnly: {type: "rule", values: rules}, resultTypes: ["violations"]};
            const result = await axe.run(document, options);
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary || ""})),
            }));
        }""",
        AXE_RULES,
    )
    return result


def format_violations(page_name: str, violations: list[dict]) -> str:
    lines = [f"{page_name}: {len(violations)} accessibility violation(s)"]
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:10]:
            summary = " ".join(node["summary"].split())
            lines.append(f"    {node['target']}: {summary}")
        if len(violation["nodes"]) > 10:
            lines.append(f"    ... and {len(violation['nodes']) - 10} more")
    return "\n".join(lines)


def assert_accessible(page, page_name: str) -> None:
    violations = axe_violations(page)
    assert not violations, format_violations(page_name, violations)
