"""Finding 4: no brute-force protection. Attacks: 30 wrong passwords in a row on the login page and on the
admin login, from one address and from many addresses at one username; a flood of sign-ups; a flood of API
writes; an old API token. All must be refused with a clear, coded message."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from apps.trading.orders.models import Order

from .conftest import api_for

pytestmark = pytest.mark.django_db


def _login(client: Client, username: str, password: str, *, url: str = "/accounts/login/", ip: str = "10.1.1.1"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_thirty_wrong_passwords_lock_the_login_page_with_a_clear_message(victim, settings):
    settings.AXES_FAILURE_LIMIT = 5
    client = Client()

    answers = [_login(client, "victim", f"guess-{i}").status_code for i in range(30)]
    right_password = _login(client, "victim", "victim-pass-123")

    assert answers[:4] == [200] * 4  # the form again, with its error
    assert set(answers[5:]) == {429}
    assert right_password.status_code == 429  # locked out: not even the right password gets in
    text = right_password.content.decode()
    assert "[login_locked]" in text and "로그인이 잠시 잠겼습니다" in text
    assert "_auth_user_id" not in client.session


def test_the_lockout_holds_per_username_across_addresses_and_per_address_across_usernames(victim, attacker):
    for i in range(5):
        _login(Client(), "victim", f"guess-{i}", ip=f"10.9.0.{i}")  # one username, five addresses
    for i in range(5):
        _login(Client(), f"nobody-{i}", "guess", ip="10.7.7.7")  # one address, five usernames

    assert _login(Client(), "victim", "victim-pass-123", ip="10.3.3.3").status_code == 429
    assert _login(Client(), "attacker", "attacker-pass-123", ip="10.7.7.7").status_code == 429
    assert _login(Client(), "attacker", "attacker-pass-123", ip="10.3.3.4").status_code == 302  # others unaffected


def test_the_admin_login_is_locked_the_same_way(admin_user):
    client = Client()
    for i in range(5):
        _login(client, "admin", f"guess-{i}", url="/admin/login/?next=/admin/")

    locked = _login(client, "admin", "password", url="/admin/login/?next=/admin/")

    assert locked.status_code == 429
    assert client.get("/admin/").status_code == 302  # still not logged in


def test_a_flood_of_sign_ups_from_one_address_is_refused(settings):
    from django.contrib.auth import get_user_model

    settings.AUTH_SIGNUP_RATE_PER_HOUR = 3
    answers = []
    for i in range(6):
        response = Client().post(
            "/accounts/signup/",
            {"username": f"bot{i}", "password1": "x9!long-pass-phrase", "password2": "x9!long-pass-phrase"},
            REMOTE_ADDR="10.5.5.5",
        )
        answers.append(response.status_code)

    assert answers == [302, 302, 302, 429, 429, 429]
    assert "[too_many_signups]" in response.content.decode()
    assert get_user_model().objects.filter(username__startswith="bot").count() == 3


def test_api_writes_are_throttled_per_user(attacker, samsung, open_clock, settings):
    settings.API_WRITE_RATE = "5/min"
    client = api_for(attacker)
    body = {"code": "005930", "side": "BUY", "order_type": "LIMIT", "quantity": 1, "limit_price": 69_000}

    answers = [client.post("/api/paper-trading/orders", body, format="json") for _ in range(8)]

    assert [a.status_code for a in answers] == [201] * 5 + [429] * 3
    assert answers[-1].json()["error"]["code"] == "throttled" and answers[-1]["Retry-After"]
    assert client.get("/api/paper-trading/orders").status_code == 200  # reads are not throttled
    assert Order.objects.count() == 5


def test_an_expired_api_token_is_refused(attacker, settings):
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    settings.API_TOKEN_TTL_DAYS = 30
    token = Token.objects.create(user=attacker)
    Token.objects.filter(pk=token.pk).update(created=timezone.now() - dt.timedelta(days=31))
    fresh_user = get_user_model().objects.create_user(username="fresh", password="pw-12345678")
    fresh_user_token = Token.objects.create(user=fresh_user)
    client = APIClient()

    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    old = client.get("/api/paper-trading/accounts")
    client.credentials(HTTP_AUTHORIZATION=f"Token {fresh_user_token.key}")
    fresh = client.get("/api/paper-trading/accounts")

    assert (old.status_code, old.json()["error"]["code"]) == (401, "token_expired")
    assert fresh.status_code == 200
