"""Sign-up, log-in and log-out, the paper account created on first login, login-required pages, and the
layout every page shares (language, title, navigation, staff links, notifications)."""

from __future__ import annotations

import re

import pytest

from apps.trading.accounts.models import PaperAccount

pytestmark = pytest.mark.django_db

PAGES = ["/", "/stocks/005930/", "/portfolio/", "/orders/", "/data-quality/", "/portfolio/live/", "/orders/live/"]


def test_sign_up_creates_the_user_and_a_paper_account_and_logs_in(client, django_user_model):
    page = client.get("/accounts/signup/")
    assert page.status_code == 200
    html = page.content.decode()
    for field in ("username", "password1", "password2"):
        assert re.search(rf'<label for="id_{field}">', html), field

    response = client.post(
        "/accounts/signup/", {"username": "newbie", "password1": "Tr4ding-Pass!", "password2": "Tr4ding-Pass!"}
    )

    assert (response.status_code, response["Location"]) == (302, "/")
    user = django_user_model.objects.get(username="newbie")
    account = PaperAccount.objects.get(user=user)
    assert (account.cash, account.initial_cash, account.reserved_cash) == (10_000_000, 10_000_000, 0)
    assert client.get("/api/paper-trading/balance").json()["cash"] == 10_000_000  # the session is logged in


def test_sign_up_with_mismatched_passwords_creates_nothing(client, django_user_model):
    response = client.post(
        "/accounts/signup/", {"username": "newbie", "password1": "Tr4ding-Pass!", "password2": "other-Pass!1"}
    )

    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert not django_user_model.objects.filter(username="newbie").exists()
    assert PaperAccount.objects.count() == 0


def test_first_login_creates_the_paper_account_and_lands_on_the_dashboard(client, django_user_model):
    user = django_user_model.objects.create_user(username="kim", password="s3cret-pass-9")
    page = client.get("/accounts/login/").content.decode()
    assert 'name="username"' in page and 'name="password"' in page and 'type="submit"' in page
    assert '<label for="id_username">' in page and '<label for="id_password">' in page

    response = client.post("/accounts/login/", {"username": "kim", "password": "s3cret-pass-9"})

    assert (response.status_code, response["Location"]) == (302, "/")
    assert PaperAccount.objects.filter(user=user).count() == 1
    client.post("/accounts/logout/")
    client.post("/accounts/login/", {"username": "kim", "password": "s3cret-pass-9"})
    assert PaperAccount.objects.filter(user=user).count() == 1  # idempotent


def test_wrong_password_is_refused_without_an_account(client, django_user_model):
    user = django_user_model.objects.create_user(username="kim", password="s3cret-pass-9")

    response = client.post("/accounts/login/", {"username": "kim", "password": "wrong"})

    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert not PaperAccount.objects.filter(user=user).exists()


def test_logout_is_a_post_from_the_top_bar(web):
    page = web.get("/portfolio/").content.decode()
    assert re.search(r'<form class="logout" method="post" action="/accounts/logout/">', page)

    assert web.get("/accounts/logout/").status_code == 405
    response = web.post("/accounts/logout/")

    assert (response.status_code, response["Location"]) == (302, "/accounts/login/")
    assert web.get("/portfolio/")["Location"] == "/accounts/login/?next=/portfolio/"


@pytest.mark.parametrize("path", PAGES)
def test_pages_require_login(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_every_page_has_language_title_navigation_and_notifications(web, stocks, market):
    for path in ["/", "/stocks/005930/", "/portfolio/", "/orders/", "/data-quality/"]:
        html = web.get(path).content.decode()
        assert '<html lang="ko">' in html, path
        title = re.search(r"<title>(.+?)</title>", html).group(1)
        assert "Hoga" in title and len(title) > len("Hoga 호가"), path
        for href, label in [
            ("/", "대시보드"),
            ("/portfolio/", "포트폴리오"),
            ("/orders/", "주문"),
            ("/conditions/", "조건검색"),
            ("/data-quality/", "데이터 품질"),
        ]:
            assert re.search(rf'<a href="{re.escape(href)}"( aria-current="page")?>{label}</a>', html), (path, label)
        assert '<div id="toasts" class="toasts" aria-live="polite"></div>' in html
        assert '<script type="module" src="/static/js/notifications.js"></script>' in html
        assert '<script src="/static/vendor/htmx.min.js" defer></script>' in html
        assert 'href="/admin/"' not in html  # not staff


def test_staff_see_admin_and_flower_links(client, django_user_model, settings):
    staff = django_user_model.objects.create_user(username="ops", password="x", is_staff=True)
    client.force_login(staff)

    html = client.get("/data-quality/").content.decode()

    assert '<a href="/admin/">관리자</a>' in html
    assert f'<a href="{settings.FLOWER_URL}">Flower</a>' in html


def test_anonymous_pages_have_no_notifications_script(client):
    html = client.get("/accounts/login/").content.decode()

    assert 'id="toasts"' not in html and "notifications.js" not in html
