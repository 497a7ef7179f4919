"""The migration that gave conditions owners keeps existing rows valid: the deployment key goes to the staff
user among the owners (else the first to sync), their conditions are attached, the others' copies are kept
but detached, and Slack posting is turned off for the operator to turn on again."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("conditions", "0001_initial")]
AFTER = [("conditions", "0004_remove_condition_email_recipients")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_existing_conditions_are_attached_or_detached_and_slack_is_off():
    old = _migrate(BEFORE)
    User = old.get_model("auth", "User")
    Condition = old.get_model("conditions", "Condition")
    first = User.objects.create(username="first-syncer")
    staff = User.objects.create(username="operator", is_staff=True)
    for owner in (first, staff):
        Condition.objects.create(owner=owner, seq="0", name="조건", notify_slack=True, email_recipients="x@example.com")

    new = _migrate(AFTER)
    Condition = new.get_model("conditions", "Condition")
    BrokerConnection = new.get_model("conditions", "BrokerConnection")

    connection_row = BrokerConnection.objects.get()
    assert connection_row.owner_id == staff.pk
    assert Condition.objects.get(owner_id=staff.pk).connection_id == connection_row.pk
    assert Condition.objects.get(owner_id=first.pk).connection_id is None  # kept, detached: shown to nobody
    assert not Condition.objects.filter(notify_slack=True).exists()
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())  # back to the latest schema
