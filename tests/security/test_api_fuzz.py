"""Every API operation of the OpenAPI schema, fed schemathesis-generated input as an authenticated user, never
answers 5xx: schema-conforming input (positive) and input that breaks the schema (negative: wrong types,
out-of-range numbers, missing fields, odd strings), for each operation and method, in-process through the WSGI
handler (every middleware included). Deterministic (``derandomize``) and bounded (``EXAMPLES`` per operation and
mode), so it runs in `make test`. The figures are printed (run with ``-s`` to see them)."""

from __future__ import annotations

import sys
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from .conftest import make_stock

EXAMPLES = 60  # per operation and generation mode (67 operations: up to about 8,000 requests)


@pytest.fixture
def world(db, attacker, victim, open_clock, django_capture_on_commit_callbacks):
    """Rows the generated ids may hit: both users' accounts, orders, a condition of each, a token."""
    from rest_framework.authtoken.models import Token

    from apps.brokers.base import ConditionInfo
    from apps.conditions.services import broker_connection_link, condition_alert_record, conditions_sync
    from apps.trading.accounts.services import paper_account_ensure
    from apps.trading.orders.placement import order_place
    from tests.conditions.conftest import alert

    make_stock("005930", rank=1)
    make_stock("000660", rank=2)
    for user in (attacker, victim):
        account = paper_account_ensure(user=user)
        order_place(account=account, user=user, code="005930", side="BUY", order_type="LIMIT", quantity=1,
                    limit_price=69_000)  # fmt: skip
    broker_connection_link(user=victim)
    conditions_sync(owner=victim, infos=[ConditionInfo("0", "조건")])
    condition_alert_record(alert=alert("0", "005930", "IN"))
    return Token.objects.create(user=attacker)


@pytest.mark.timeout(1200)  # every operation of the schema in one test: minutes on a loaded machine
def test_no_api_operation_answers_5xx_to_generated_input(world, settings):
    from django.core.signals import request_finished, request_started
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections

    settings.API_WRITE_RATE = ""  # the fuzzer's writes must reach the views (throttling has its own test)
    settings.API_SEARCH_RATE = ""
    # As Django's test client does: the test's transaction (and connection) must outlive each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        figures = _fuzz(get_wsgi_application(), {"Authorization": f"Token {world.key}"})
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    sys.stdout.write(
        f"\nschemathesis {schemathesis.SCHEMATHESIS_VERSION}: {figures['operations']} operations, "
        f"{figures['examples']} examples ({figures['unbreakable']} operation(s) with no input to break), "
        f"statuses {dict(sorted(figures['statuses'].items()))}\n"
    )
    assert figures["operations"] >= 15
    assert figures["failures"] == [], "\n".join(figures["failures"][:20])


def _fuzz(app, headers: dict[str, str]) -> dict:
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", app)
    figures: dict = {"operations": 0, "examples": 0, "unbreakable": 0, "statuses": Counter(), "failures": []}
    for result in schema.get_all_operations():
        operation = result.ok()
        figures["operations"] += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz_operation(operation, mode, headers, figures)
            except Unsatisfiable:  # negative mode of an operation with no input to break (e.g. a bare list)
                figures["unbreakable"] += 1
    return figures


def _fuzz_operation(operation, mode, headers: dict[str, str], figures: dict) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        figures["examples"] += 1
        response = case.call(headers=headers)
        figures["statuses"][response.status_code] += 1
        if response.status_code >= 500:
            figures["failures"].append(
                f"{operation.method.upper()} {operation.path} ({mode}) -> {response.status_code}: "
                f"{case.formatted_path} query={case.query} body={str(case.body)[:200]}"
            )

    run()


def test_generated_ids_never_reach_another_users_rows(world, attacker, victim):
    """The fuzzer's world has the victim's order and condition; the attacker's token must never read them."""
    from rest_framework.test import APIClient

    from apps.conditions.models import Condition
    from apps.trading.orders.models import Order

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {world.key}")
    victim_order = Order.objects.get(account__user=victim)
    victim_condition = Condition.objects.get(owner=victim)

    assert client.get(f"/api/paper-trading/orders/{victim_order.pk}").status_code == 404
    assert client.delete(f"/api/paper-trading/orders/{victim_order.pk}").status_code == 404
    assert client.get(f"/api/conditions/{victim_condition.pk}").status_code == 404
    assert Order.objects.get(pk=victim_order.pk).status == "PENDING"
