"""Channels: encryption at rest, hostile destinations, verification by code, owner checks over the API."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.db import connection

from apps.notifications import crypto
from apps.notifications.models import Channel
from apps.notifications.services import channel_create

from .conftest import BOT_TOKEN

pytestmark = pytest.mark.django_db


def test_slack_and_telegram_credentials_are_encrypted_at_rest_and_never_shown(api_client, standin):
    slack = api_client.post(
        "/api/notifications/channels", {"kind": "slack", "destination": {"webhook_url": standin.webhook}}, format="json"
    )
    telegram = api_client.post(
        "/api/notifications/channels",
        {"kind": "telegram", "destination": {"bot_token": BOT_TOKEN, "chat_id": "-100123"}},
        format="json",
    )
    assert (slack.status_code, telegram.status_code) == (201, 201)

    with connection.cursor() as cursor:
        cursor.execute("SELECT secret, label FROM notifications_channel ORDER BY id")
        rows = cursor.fetchall()
    raw = " ".join(secret + label for secret, label in rows)
    assert "secretpart" not in raw and standin.webhook not in raw and BOT_TOKEN not in raw
    assert BOT_TOKEN.split(":")[1] not in raw
    assert crypto.decrypt(rows[0][0]) == {"webhook_url": standin.webhook}  # readable with the settings' key
    assert crypto.decrypt(rows[1][0]) == {"bot_token": BOT_TOKEN, "chat_id": "-100123"}

    listed = api_client.get("/api/notifications/channels").content.decode()
    assert "secretpart" not in listed and BOT_TOKEN not in listed
    assert slack.json()["label"] == "Slack webhook …part" and slack.json()["verified"] is False


def test_a_configured_key_encrypts_and_a_rotated_key_still_decrypts(settings):
    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.NOTIFICATIONS_ENCRYPTION_KEYS = [old]
    token = crypto.encrypt({"webhook_url": "x"})
    assert Fernet(old.encode()).decrypt(token.encode()) == b'{"webhook_url":"x"}'
    settings.NOTIFICATIONS_ENCRYPTION_KEYS = [new, old]
    assert crypto.decrypt(token) == {"webhook_url": "x"}
    settings.NOTIFICATIONS_ENCRYPTION_KEYS = [new]
    assert crypto.decrypt(token) == {}  # a lost key: the channel must be set up again, no 5xx


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.slack.com/services/T0/B0/x",  # not https
        "https://evil.example.com/services/T0/B0/x",  # another host
        "https://hooks.slack.com.evil.example.com/services/T0/B0/x",
        "https://user:pw@hooks.slack.com/services/T0/B0/x",  # credentials
        "https://hooks.slack.com:8443/services/T0/B0/x",  # a port
        "https://hooks.slack.com/api/chat.postMessage",  # not a webhook path
        "https://hooks.slack.com/services/T0/B0/x?next=http://127.0.0.1",
        "https://hooks.slack.com/services/../../admin",
        "http://127.0.0.1:9/services/T0/B0/x",  # loopback, not an allowed stand-in origin
        "http://[::1/services/x",  # malformed
        "https://hooks.slack.com/services/" + "a" * 600,  # oversized
        "javascript:alert(1)",
        "",
    ],
)
def test_hostile_slack_webhooks_are_refused_with_a_coded_400(api_client, url):
    response = api_client.post(
        "/api/notifications/channels", {"kind": "slack", "destination": {"webhook_url": url}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("bad_destination", "validation_error")
    assert not Channel.objects.exists()


@pytest.mark.parametrize(
    "destination",
    [
        {"bot_token": "123:short", "chat_id": "1"},
        {"bot_token": BOT_TOKEN + "/../../x", "chat_id": "1"},
        {"bot_token": BOT_TOKEN, "chat_id": "1/../../sendPhoto"},
        {"bot_token": BOT_TOKEN, "chat_id": "@x"},
        {"bot_token": BOT_TOKEN},
    ],
)
def test_hostile_telegram_destinations_are_refused(api_client, destination):
    response = api_client.post(
        "/api/notifications/channels", {"kind": "telegram", "destination": destination}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] in ("bad_destination", "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        ["kind", "slack"],
        {"kind": "fax", "destination": {}},
        {"kind": "email", "destination": {"address": "not-an-address"}},
        {"kind": "email", "destination": "me@example.com"},
        {"kind": "browser", "events": ["fill", "lottery"]},
        {"kind": "browser", "events": "fill"},
    ],
)
def test_malformed_channel_input_is_a_coded_400(api_client, body):
    response = api_client.post("/api/notifications/channels", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"]


def test_verification_by_code_through_the_slack_stand_in(api_client, standin):
    channel_id = api_client.post(
        "/api/notifications/channels", {"kind": "slack", "destination": {"webhook_url": standin.webhook}}, format="json"
    ).json()["id"]
    early = api_client.post(f"/api/notifications/channels/{channel_id}/verify", {"code": "000000"}, format="json")
    assert (early.status_code, early.json()["error"]["code"]) == (400, "no_code_sent")

    assert api_client.post(f"/api/notifications/channels/{channel_id}/send-code").status_code == 200
    [message] = standin.slack
    code = re.search(r"code\): (\d{6})", message["text"]).group(1)
    again = api_client.post(f"/api/notifications/channels/{channel_id}/send-code")
    assert (again.status_code, again.json()["error"]["code"]) == (429, "too_many_requests")

    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    refused = api_client.post(f"/api/notifications/channels/{channel_id}/verify", {"code": wrong}, format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "wrong_code")
    assert Channel.objects.get(pk=channel_id).verification_attempts == 1  # kept although the call failed
    accepted = api_client.post(f"/api/notifications/channels/{channel_id}/verify", {"code": code}, format="json")
    assert accepted.status_code == 200 and accepted.json()["verified"] is True


def test_wrong_codes_are_limited_per_sent_code(api_client, standin):
    channel_id = api_client.post(
        "/api/notifications/channels", {"kind": "slack", "destination": {"webhook_url": standin.webhook}}, format="json"
    ).json()["id"]
    api_client.post(f"/api/notifications/channels/{channel_id}/send-code")
    code = re.search(r"code\): (\d{6})", standin.slack[0]["text"]).group(1)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    codes = [
        api_client.post(f"/api/notifications/channels/{channel_id}/verify", {"code": wrong}, format="json").json()[
            "error"
        ]["code"]
        for _ in range(5)
    ]
    assert codes == ["wrong_code"] * 5
    last = api_client.post(f"/api/notifications/channels/{channel_id}/verify", {"code": code}, format="json")
    assert last.json()["error"]["code"] == "too_many_attempts"  # even the right code, until a new one is sent


def test_verification_through_telegram_and_email(api_client, standin):
    telegram_id = api_client.post(
        "/api/notifications/channels",
        {"kind": "telegram", "destination": {"bot_token": BOT_TOKEN, "chat_id": "4242"}},
        format="json",
    ).json()["id"]
    api_client.post(f"/api/notifications/channels/{telegram_id}/send-code")
    [(token, body)] = standin.telegram
    assert token == BOT_TOKEN and body["chat_id"] == "4242"
    code = re.search(r"code\): (\d{6})", body["text"]).group(1)
    assert api_client.post(f"/api/notifications/channels/{telegram_id}/verify", {"code": code}, format="json").json()[
        "verified"
    ]

    email_id = api_client.post(
        "/api/notifications/channels", {"kind": "email", "destination": {"address": "me@example.com"}}, format="json"
    ).json()["id"]
    api_client.post(f"/api/notifications/channels/{email_id}/send-code")
    assert mail.outbox[-1].to == ["me@example.com"]
    code = re.search(r"code\): (\d{6})", mail.outbox[-1].body).group(1)
    assert api_client.post(f"/api/notifications/channels/{email_id}/verify", {"code": code}, format="json").json()[
        "verified"
    ]


def test_an_unreachable_destination_is_a_coded_400(api_client, settings):
    settings.NOTIFICATIONS_LOCAL_ORIGINS = ["http://127.0.0.1:9"]  # nothing listens on the discard port
    channel_id = api_client.post(
        "/api/notifications/channels",
        {"kind": "slack", "destination": {"webhook_url": "http://127.0.0.1:9/services/T/B/x"}},
        format="json",
    ).json()["id"]
    response = api_client.post(f"/api/notifications/channels/{channel_id}/send-code")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "channel_unreachable")
    again = api_client.post(f"/api/notifications/channels/{channel_id}/send-code")  # no wait: nothing was sent
    assert (again.status_code, again.json()["error"]["code"]) == (400, "channel_unreachable")


def test_browser_channels_and_the_verified_address_need_no_code(user, api_client):
    from django.utils import timezone

    from apps.trading.accounts.models import VerifiedEmail

    VerifiedEmail.objects.create(user=user, email="me@example.com", verified_at=timezone.now())
    browser = api_client.post("/api/notifications/channels", {"kind": "browser"}, format="json").json()
    known = api_client.post(
        "/api/notifications/channels", {"kind": "email", "destination": {"address": "ME@example.com"}}, format="json"
    ).json()
    assert browser["verified"] and known["verified"]


def test_another_users_channel_ids_answer_404(api_client, django_user_model, standin):
    other = django_user_model.objects.create_user(username="other", password="pw-12345678")
    theirs = channel_create(user=other, kind="slack", destination={"webhook_url": standin.webhook})
    base = f"/api/notifications/channels/{theirs.pk}"
    answers = [
        api_client.get(base),
        api_client.patch(base, {"enabled": False}, format="json"),
        api_client.post(f"{base}/send-code"),
        api_client.post(f"{base}/verify", {"code": "123456"}, format="json"),
        api_client.delete(base),
        api_client.get("/api/notifications/channels/99999999999"),
    ]
    codes = [(a.status_code, a.json()["error"]["code"]) for a in answers]
    assert codes == [(404, "channel_not_found")] * 6
    theirs.refresh_from_db()
    assert theirs.enabled and not standin.slack
    assert api_client.get("/api/notifications/channels").json() == []


def test_another_users_channel_through_the_page_forms_is_untouched(client, user, django_user_model, standin):
    other = django_user_model.objects.create_user(username="other", password="pw-12345678")
    theirs = channel_create(user=other, kind="browser", destination={})
    client.force_login(user)
    response = client.post(f"/notifications/channels/{theirs.pk}/delete", follow=True)
    assert response.status_code == 200 and "channel_not_found" in response.content.decode()
    assert Channel.objects.filter(pk=theirs.pk).exists()


def test_events_and_switch_can_be_changed(api_client):
    channel_id = api_client.post("/api/notifications/channels", {"kind": "browser"}, format="json").json()["id"]
    changed = api_client.patch(
        f"/api/notifications/channels/{channel_id}",
        {"events": ["fill", "fill", "rejection"], "enabled": False},
        format="json",
    ).json()
    assert (changed["events"], changed["enabled"]) == (["fill", "rejection"], False)


def test_channels_are_added_and_verified_through_the_page_forms(client, user, standin):
    client.force_login(user)
    page = client.post("/notifications/channels/add", {"kind": "slack", "webhook_url": standin.webhook}, follow=True)
    assert page.status_code == 200 and "확인 코드를 보냈습니다" in page.content.decode()
    channel = Channel.objects.get(owner=user)
    code = re.search(r"code\): (\d{6})", standin.slack[0]["text"]).group(1)
    page = client.post(f"/notifications/channels/{channel.pk}/verify", {"code": code}, follow=True)
    assert "확인되었습니다" in page.content.decode()
    channel.refresh_from_db()
    assert channel.verified
    refused = client.post(
        "/notifications/channels/add",
        {"kind": "slack", "webhook_url": "https://evil.example.com/services/x"},
        follow=True,
    )
    assert "[bad_destination]" in refused.content.decode() and Channel.objects.count() == 1


def test_the_admin_never_shows_a_channels_secret(admin_client, user, standin):
    channel = channel_create(user=user, kind="slack", destination={"webhook_url": standin.webhook})
    pages = [
        admin_client.get("/admin/notifications/channel/"),
        admin_client.get(f"/admin/notifications/channel/{channel.pk}/change/"),
        admin_client.get("/admin/notifications/notification/"),
        admin_client.get("/admin/portfolio/equitysnapshot/"),
    ]
    assert [p.status_code for p in pages] == [200, 200, 200, 200]
    assert not any("secretpart" in p.content.decode() or channel.secret in p.content.decode() for p in pages)
    assert admin_client.get("/admin/notifications/channel/add/").status_code == 403
