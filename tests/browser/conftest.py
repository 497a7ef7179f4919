"""Fixtures of the browser end-to-end tests.

One real stack for the whole package (the sandbox broker replaying at ``SPEED``, Daphne, the feed worker and
the fill-engine worker on free ports against pytest-django's test database), one Chromium, and a fresh
browser context per test. The tests are ``django_db`` (so pytest-django creates the test database) but reach
the data only through the stack (pages and REST API); the stack's rows are committed by the package fixture,
so each test's rolled-back transaction in this process changes nothing. Playwright's sync API keeps an event
loop running in this thread, so ``DJANGO_ALLOW_ASYNC_UNSAFE`` is set in this process while the browser runs
(never in the stack's processes). At the end the test database is put back as the migrations left it (the
rows of data migrations included) and the Redis database is emptied.
"""

from __future__ import annotations

import os

import pytest

from tests.browser.support import (
    CODE,
    OTHER_CODE,
    BrowserStack,
    api_for,
    assert_accessible,
    chromium_path,
    create_trader,
    launch,
    log_in,
    new_context,
)
from tests.integration.harness import stopped_after

USERNAME = "browser-trader"
PASSWORD = "pw-browser-123456"
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


@pytest.fixture(scope="package")
def stack(django_db_setup, django_db_blocker, redis_client, tmp_path_factory, request):
    from django.core.management import call_command
    from django.db import connection, connections
    from django.test import override_settings

    chromium_path()  # fails at once, saying how to install it, when the browser is missing
    tmp = tmp_path_factory.mktemp("browser-stack")
    redis_client.flushdb()
    with django_db_blocker.unblock():
        seeded = connection.creation.serialize_db_to_string()  # the rows data migrations put there
    try:
        with stopped_after(BrowserStack(tmp), request) as running:
            running.start_sandbox()
            with django_db_blocker.unblock(), override_settings(REPORTS_DIR=str(tmp / "reports")):
                # The stocks the tests trade and chart; the rest of the watch list shows prices without a change.
                running.replay_day = running.load_market_data([CODE, OTHER_CODE])
                create_trader(USERNAME, PASSWORD)
                connections.close_all()
            running.start_app()
            yield running
    finally:
        with django_db_blocker.unblock():
            end_other_sessions()
            call_command("flush", interactive=False, verbosity=0, inhibit_post_migrate=True)
            connection.creation.deserialize_db_from_string(seeded)
            connections.close_all()
        redis_client.flushdb()


def end_other_sessions() -> None:
    """Close this process's connections opened while Playwright's loop ran (Django keeps them per async
    context, out of reach of pytest-django's teardown), so the test database can be dropped."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(scope="package")
def browser(stack):
    """Debian's Chromium (``HOGA_BROWSER``) under Playwright's sync API; the test fails if it is missing."""
    from playwright.sync_api import sync_playwright

    previous = os.environ.get(ASYNC_UNSAFE)
    playwright = sync_playwright().start()
    os.environ[ASYNC_UNSAFE] = "true"  # this test process only: the stack's environment was copied before
    try:
        chromium = launch(playwright)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture(scope="package")
def login_state(stack, browser):
    """The storage state (cookies) of one login through the login page, reused by ``page``."""
    context = new_context(browser, stack.url)
    page = context.new_page()
    log_in(page, USERNAME, PASSWORD)
    api = api_for(context, stack.url)
    stack.wait_live(api)  # the feed streams before any test looks at a live page
    api.close()
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture
def anonymous_page(stack, browser):
    context = new_context(browser, stack.url)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def js_errors() -> list[str]:
    """Uncaught JavaScript errors of every page of the test's browser context."""
    return []


@pytest.fixture
def page(stack, browser, login_state, js_errors):
    """A page in a fresh context logged in as the trader; its pages' uncaught errors go to ``js_errors``."""
    context = new_context(browser, stack.url, storage_state=login_state)
    context.on("weberror", lambda error: js_errors.append(f"{error.page.url if error.page else ''}: {error.error}"))
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def api(page, stack):
    """The REST API as the trader (same session as ``page``)."""
    client = api_for(page.context, stack.url)
    yield client
    client.close()


@pytest.fixture
def axe():
    """``axe(page, name)``: fails listing every violation of the label, contrast, name, lang and title rules."""
    return assert_accessible
