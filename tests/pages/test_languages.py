"""Languages: Korean by default, English on request (the top bar's switcher, Django's set_language), remembered
in the cookie and, for a logged-in user, across browsers; message files complete and compiled; KRW, share
counts and 억 amounts written per language; no Korean left in a template outside the message files."""

from __future__ import annotations

import ast
import gettext
import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from apps.pages import formatting

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "locale"
HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]")
# Korean a template may hold as it is: the brand's Hangul half, shown on Korean pages only.
TEMPLATE_HANGUL_ALLOWED = {"templates/base.html": {"호가"}}


def _lang(html: str) -> str:
    return re.search(r'<html lang="([^"]+)">', html).group(1)


# --- switching and remembering ------------------------------------------------------------------------------


def test_pages_are_korean_by_default_and_english_after_the_switch(web, market):
    html = web.get("/").content.decode()
    assert _lang(html) == "ko" and ">대시보드</a>" in html
    assert re.search(r'<button type="submit" name="language" value="en" lang="en"[^>]*>English</button>', html)

    response = web.post("/i18n/setlang/", {"language": "en", "next": "/orders/"})

    assert response.status_code == 302 and response["Location"] == "/orders/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    html = web.get("/orders/").content.decode()
    assert _lang(html) == "en" and ">Dashboard</a>" in html and "<h1>Orders</h1>" in html
    assert ">한국어</button>" in html  # the way back, named in its own language
    assert "미체결" not in html


def test_a_users_choice_follows_them_to_another_browser(client, web, trader, market):
    web.post("/i18n/setlang/", {"language": "en", "next": "/"})

    other = type(client)()  # a second browser: no cookie of the first
    other.force_login(trader)  # django.contrib.auth.login: sends user_logged_in like the login page

    response = other.get("/portfolio/")
    assert _lang(response.content.decode()) == "en"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"  # the cookie follows the choice
    assert response["Content-Language"] == "en"


def test_anonymous_visitors_switch_with_the_cookie_only(client):
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/accounts/login/"})
    assert response.status_code == 302
    html = client.get("/accounts/login/").content.decode()
    assert _lang(html) == "en" and "<h1>Log in</h1>" in html


@pytest.mark.parametrize(
    "data",
    [
        {"language": "xx"},
        {"language": "ko" * 500},
        {"language": ""},
        {},
        {"language": "en", "next": "https://evil.example/"},
        {"language": ["en", "ko"]},
    ],
)
def test_the_switcher_refuses_bad_input_without_a_server_error(web, market, data):
    from apps.core.models import UserLanguage

    response = web.post("/i18n/setlang/", data)

    assert response.status_code < 500
    if response.status_code == 302:
        assert not response["Location"].startswith("https://evil")
    assert set(UserLanguage.objects.values_list("language", flat=True)) <= {"ko", "en"}  # never an unknown one
    assert _lang(web.get("/").content.decode()) in {"ko", "en"}


def test_the_switcher_answers_get_with_405(web):
    assert web.get("/i18n/setlang/?language=en").status_code == 405


def test_the_javascript_catalogue_speaks_the_page_language(client):
    korean = json.dumps("실시간 연결됨")  # the catalogue is JSON with \\u escapes
    assert korean in client.get("/i18n/js/").content.decode()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    assert korean not in client.get("/i18n/js/").content.decode()


# --- formats --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "value", "ko", "en"),
    [
        (formatting.won, 1234, "1,234원", "₩1,234"),
        (formatting.won, None, "—", "—"),
        (formatting.won_signed, -5000, "-5,000원", "-₩5,000"),
        (formatting.won_signed, 1500, "+1,500원", "+₩1,500"),
        (formatting.shares, 1, "1주", "1 share"),
        (formatting.shares, 1200, "1,200주", "1,200 shares"),
        (formatting.eok_won, 1234, "1,234억", "₩123.4B"),
        (formatting.eok_won, "+12.3", "+12.3억", "+₩1.23B"),
        (formatting.eok_won, "-4.0", "-4.0억", "-₩0.4B"),
        (formatting.bilingual, "설날 연휴 Seollal", "설날 연휴", "Seollal"),
        (formatting.bilingual, "<b>시스템 점검</b>", "<b>시스템 점검</b>", "<b>시스템 점검</b>"),
    ],
)
def test_amounts_are_written_the_way_each_language_writes_them(function, value, ko, en):
    assert function(value, "ko") == ko
    assert function(value, "en") == en
    with translation.override("en"):
        assert function(value) == en


# --- message files --------------------------------------------------------------------------------------


def _po_entries(path: Path) -> dict[tuple[str, str], tuple[list[str], bool]]:
    """``(msgctxt, msgid) -> ([msgstr...], fuzzy)`` of a .po file (the subset of the format makemessages writes)."""
    entries: dict[tuple[str, str], tuple[list[str], bool]] = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        fuzzy = False
        for line in block.splitlines():
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            if line.startswith("#") or not line.strip():
                continue
            match = re.match(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?) (\".*\")$", line)
            if match:
                key = match.group(1)
                fields[key] = ast.literal_eval(match.group(2))
            elif line.startswith('"') and key:
                fields[key] += ast.literal_eval(line)
        if "msgid" not in fields or fields["msgid"] == "":
            continue
        strs = [v for k, v in sorted(fields.items()) if k.startswith("msgstr")]
        entries[(fields.get("msgctxt", ""), fields["msgid"])] = (strs, fuzzy)
    return entries


@pytest.mark.parametrize("domain", ["django", "djangojs"])
def test_every_korean_message_is_translated_and_the_mo_files_are_current(domain):
    for language in ("ko", "en"):
        po = LOCALE / language / "LC_MESSAGES" / f"{domain}.po"
        mo = LOCALE / language / "LC_MESSAGES" / f"{domain}.mo"
        entries = _po_entries(po)
        assert entries, po
        with mo.open("rb") as handle:
            catalog = gettext.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
        for (context, msgid), (strs, fuzzy) in entries.items():
            if language == "ko":
                assert not fuzzy and all(strs), f"{po.name}: {msgid!r} has no Korean translation"
            key = f"{context}\x04{msgid}" if context else msgid
            compiled = catalog.get(key, catalog.get((key, 0)))
            expected = strs[0] if strs and strs[0] and not fuzzy else None
            assert compiled == expected, f"{mo}: {msgid!r} is {compiled!r}, the .po says {expected!r}: recompile"


def test_no_template_holds_korean_outside_the_message_files():
    """Every Korean word of a page comes from locale/ko (so English pages have none): a template written in
    Korean (a new page, a merged branch) fails here, naming the file and line."""
    templates = [*ROOT.glob("templates/**/*.html"), *ROOT.glob("apps/*/templates/**/*.html")]
    assert templates
    found = []
    for path in templates:
        relative = str(path.relative_to(ROOT))
        allowed = TEMPLATE_HANGUL_ALLOWED.get(relative, set())
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            stripped = line
            for word in allowed:
                stripped = stripped.replace(word, "")
            if HANGUL.search(stripped):
                found.append(f"{relative}:{number}: {line.strip()[:100]}")
    assert not found, "Korean outside {% translate %}:\n" + "\n".join(found)


def test_the_default_account_name_is_shown_in_the_page_language_and_a_chosen_one_as_it_is():
    with translation.override("en"):
        assert formatting.account_name("모의투자") == "Paper trading"
        assert formatting.account_name("장기 투자") == "장기 투자"
    with translation.override("ko"):
        assert formatting.account_name("모의투자") == "모의투자"
