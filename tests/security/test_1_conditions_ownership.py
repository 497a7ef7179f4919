"""Finding 1: conditions leaked across users. Attacks: sync the deployment's Kiwoom list as any signed-up user,
read another user's conditions, members and events (API, page, WebSocket), point alert e-mails at arbitrary
addresses, switch on the operator's Slack webhook, forge a verification link. All must fail."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.core import mail
from django.test import Client

from apps.brokers.base import ConditionInfo
from apps.conditions.models import Condition, ConditionEvent
from apps.conditions.services import broker_connection_link, condition_alert_record, conditions_sync
from tests.conditions.conftest import alert

from .conftest import api_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_conditions(victim, django_capture_on_commit_callbacks):
    """The victim owns this deployment's Kiwoom key; their conditions have a member and two events."""
    broker_connection_link(user=victim)
    conditions_sync(owner=victim, infos=[ConditionInfo("0", "비밀 조건"), ConditionInfo("1", "두번째")])
    condition_alert_record(alert=alert("0", "005930", "IN"))
    condition_alert_record(alert=alert("1", "000660", "IN", second=1))
    return {c.seq: c for c in Condition.objects.filter(owner=victim)}


def test_a_user_without_a_broker_connection_cannot_sync_the_deployment_list(attacker, settings):
    settings.SANDBOX_KIWOOM_REST_PORT = settings.SANDBOX_KIWOOM_WS_PORT = 9  # nothing would answer anyway

    api = api_for(attacker)
    response = api.post("/api/conditions/sync")
    page = Client()
    page.force_login(attacker)
    button = page.post("/conditions/sync", follow=True)

    assert (response.status_code, response.json()["error"]["code"]) == (403, "no_broker_connection")
    assert "[no_broker_connection]" in button.content.decode()
    assert Condition.objects.count() == 0


def test_another_users_conditions_members_and_events_stay_invisible(attacker, operator_conditions):
    api = api_for(attacker)
    pk = operator_conditions["0"].pk

    assert api.get("/api/conditions/").json() == []
    assert api.get(f"/api/conditions/{pk}").status_code == 404
    assert api.get(f"/api/conditions/{pk}/members").status_code == 404
    assert api.get("/api/conditions/events").json()["count"] == 0
    assert api.get("/api/conditions/events", {"condition": pk}).status_code == 404
    assert api.patch(f"/api/conditions/{pk}", {"enabled": False}, format="json").status_code == 404
    page = Client()
    page.force_login(attacker)
    html = page.get("/conditions/").content.decode()
    assert "비밀 조건" not in html and "005930" not in html
    event = ConditionEvent.objects.filter(condition_id=pk).first()
    buy = page.post("/conditions/order", {"event": event.pk, "quantity": 1}, follow=True)
    assert "[event_not_orderable]" in buy.content.decode()
    assert Condition.objects.get(pk=pk).enabled is True


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_conditions_socket_joins_only_visible_conditions(async_db_cleanup, clean_redis):
    from channels.db import database_sync_to_async
    from django.contrib.auth import get_user_model

    from apps.conditions.consumers import ConditionsConsumer

    def setup():
        users = get_user_model().objects
        owner = users.create_user(username="owner-ws", password="pw-12345678")
        intruder = users.create_user(username="intruder-ws", password="pw-12345678")
        broker_connection_link(user=owner)
        conditions_sync(owner=owner, infos=[ConditionInfo("0", "조건")])
        return intruder

    intruder = await database_sync_to_async(setup)()
    socket = WebsocketCommunicator(ConditionsConsumer.as_asgi(), "/ws/conditions/")
    socket.scope["user"] = intruder
    assert (await socket.connect())[0]
    assert await socket.receive_json_from() == {"type": "subscribed", "conditions": []}
    await socket.disconnect()


def test_alert_email_goes_to_the_verified_address_only(victim, operator_conditions, django_capture_on_commit_callbacks):
    from django.utils import timezone

    from apps.trading.accounts.models import VerifiedEmail

    api = api_for(victim)
    pk = operator_conditions["0"].pk
    twenty = [f"target{i}@example.com" for i in range(20)]

    redirected = api.patch(f"/api/conditions/{pk}", {"email_recipients": twenty}, format="json")
    assert (redirected.status_code, redirected.json()["error"]["code"]) == (403, "operator_only_setting")
    assert (
        api.patch(f"/api/conditions/{pk}", {"notify_email": True, "notify_browser": False}, format="json").status_code
        == 200
    )

    with django_capture_on_commit_callbacks(execute=True):
        condition_alert_record(alert=alert("0", "035420", "IN", second=5))
    assert mail.outbox == []  # no verified address yet: nothing is sent anywhere

    VerifiedEmail.objects.create(user=victim, email="victim@example.com", verified_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        condition_alert_record(alert=alert("0", "051910", "IN", second=9))
    assert [m.to for m in mail.outbox] == [["victim@example.com"]]


def test_a_user_cannot_switch_on_the_operators_slack_webhook(victim, operator_conditions, settings):
    settings.CONDITIONS_SLACK_WEBHOOK_URL = "https://hooks.slack.invalid/T000/B000/XXX"
    pk = operator_conditions["0"].pk

    api_attempt = api_for(victim).patch(f"/api/conditions/{pk}", {"notify_slack": True}, format="json")
    page = Client()
    page.force_login(victim)
    page.post(f"/conditions/{pk}/settings", {"enabled": "on", "notify_slack": "on"})

    assert (api_attempt.status_code, api_attempt.json()["error"]["code"]) == (403, "operator_only_setting")
    assert Condition.objects.get(pk=pk).notify_slack is False


def test_operator_shares_a_condition_with_a_group_read_only(attacker, operator_conditions, admin_client):
    from django.contrib.auth.models import Group

    group = Group.objects.create(name="desk")
    attacker.groups.add(group)
    pk = operator_conditions["0"].pk
    admin_client.post(f"/admin/conditions/condition/{pk}/change/", {"enabled": "on", "shared_with": [group.pk]})

    api = api_for(attacker)
    listed = api.get("/api/conditions/").json()
    assert [(c["id"], c["owned"]) for c in listed] == [(pk, False)]
    assert api.patch(f"/api/conditions/{pk}", {"enabled": False}, format="json").status_code == 404
    assert api.get(f"/api/conditions/{operator_conditions['1'].pk}").status_code == 404  # only what was shared


def test_a_verification_link_proves_nothing_for_another_account(victim, attacker, settings):
    from django.core import signing

    from apps.trading.accounts.models import VerifiedEmail
    from apps.trading.accounts.services import EMAIL_VERIFY_SALT

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    page = Client()
    page.force_login(attacker)
    page.post("/accounts/email/", {"email": "attacker@example.com"})
    link = mail.outbox[-1].body.split("http://testserver", 1)[1].split()[0]
    forged = signing.dumps({"u": victim.pk, "e": "attacker@example.com"}, salt="another-salt")

    victim_page = Client()
    victim_page.force_login(victim)
    stolen = victim_page.get(link, follow=True)  # the attacker's link opened in the victim's session
    tampered = victim_page.get(f"/accounts/email/verify/{forged}/", follow=True)

    assert "[invalid_verification_link]" in stolen.content.decode()
    assert "[invalid_verification_link]" in tampered.content.decode()
    assert not VerifiedEmail.objects.filter(user=victim).exists()
    assert (
        page.get(link).status_code == 302 and VerifiedEmail.objects.get(user=attacker).email == "attacker@example.com"
    )
    assert EMAIL_VERIFY_SALT != "another-salt"


def test_the_admin_links_a_key_to_one_user_only(admin_client, victim, attacker):
    from apps.conditions.models import BrokerConnection
    from apps.conditions.selectors import current_key_id

    linked = admin_client.post(
        "/admin/conditions/brokerconnection/add/", {"owner": victim.pk, "key_id": current_key_id()}
    )
    stolen = admin_client.post(
        "/admin/conditions/brokerconnection/add/", {"owner": attacker.pk, "key_id": current_key_id()}
    )

    assert linked.status_code == 302 and stolen.status_code == 200
    assert "[broker_connection_taken]" in stolen.content.decode()
    assert list(BrokerConnection.objects.values_list("owner_id", flat=True)) == [victim.pk]
