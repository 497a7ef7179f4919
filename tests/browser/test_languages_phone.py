"""Every page, in each language, on a phone (390x844): no horizontal scroll, the stock page's ticket one tap away,
no Korean left on the English pages (stock names and other user data aside) and no English UI label left on the
Korean pages, and axe-core's checks passing.

The pages are the URL conf's (enumerated, not listed here), so a page added later is covered: every route outside
the API, the admin and the language endpoints whose path parameters are known (a stock code) and that answers a
signed-in GET with a whole HTML page. The language is switched with the top bar's switcher, as a person does,
and switched back at the end (the trader's session is shared with the other browser tests).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.support import CODE, ROOT, assert_accessible, csp_violations, new_context

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

PHONE = {"width": 390, "height": 844}
LIVE = 8_000
HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]+")
# Routes that are not pages of their own: the API, the admin, the language endpoints, metrics and health.
NOT_PAGES = ("api/", "admin/", "i18n/", "metrics", "healthz", "static/", "ws/")
# Values for path parameters; a route with any other parameter (an order id, a token) is an action, not a page.
PARAMETERS = {"<str:code>": CODE}
ANONYMOUS_PAGES = ["/accounts/login/", "/accounts/signup/"]
# Text of the pages that is data, not interface, in whatever language it was written: stock names, the names
# of accounts and watchlists, conditions, stored notifications and operators' calendar notes.
TEXT_OF_DATA = """
() => {
  const parts = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const element = walker.currentNode.parentElement;
    if (!element || element.closest("script, style, noscript, template")) continue;
    if (element.closest('[lang]:not(html)')) continue;  // the switcher names each language in itself
    parts.push(walker.currentNode.textContent);
  }
  for (const element of document.querySelectorAll("[title], [aria-label], [placeholder], [alt]")) {
    if (element.closest('[lang]:not(html)')) continue;
    for (const name of ["title", "aria-label", "placeholder", "alt"]) {
      if (element.hasAttribute(name)) parts.push(element.getAttribute(name));
    }
  }
  return parts.join("\\n");
}
"""


def page_paths() -> list[str]:
    """The URL conf's page routes (see the module docstring), in URL-conf order."""
    from django.urls import URLPattern, URLResolver, get_resolver

    paths: list[str] = []

    def walk(patterns, prefix: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if route.startswith(NOT_PAGES) or route.startswith("^"):
                continue
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern):
                for parameter, value in PARAMETERS.items():
                    route = route.replace(parameter, value)
                if "<" not in route and "/" + route not in paths:
                    paths.append("/" + route)

    walk(get_resolver().url_patterns, "")
    return paths


def _catalogue(domain: str) -> dict[str, str]:
    text = (ROOT / "locale" / "ko" / "LC_MESSAGES" / f"{domain}.po").read_text(encoding="utf-8")
    pairs = re.findall(r'^msgid "(.+)"\n(?:msgid_plural "[^\n]*"\n)?msgstr(?:\[0\])? "(.*)"$', text, re.M)
    return {msgid: msgstr for msgid, msgstr in pairs}


def english_labels() -> list[str]:
    """English UI words a Korean page must not show: each msgid with a Korean translation that does not itself
    appear in any Korean translation (KRW, KST, ROE ... are Korean text too), at least one word long."""
    catalogue = {**_catalogue("django"), **_catalogue("djangojs")}
    korean = "\n".join(catalogue.values())
    labels = []
    for msgid, msgstr in catalogue.items():
        plain = re.sub(r"%\(\w+\)s|%%", "", msgid).strip(" .:?!()")
        if len(plain) < 4 or "%" in plain or msgstr in ("", msgid) or plain in korean or not HANGUL.search(msgstr):
            continue
        labels.append(plain)
    return sorted(set(labels), key=len, reverse=True)


def data_strings() -> list[str]:
    """User data and names the pages show as stored (the honest allow-list of the English pages)."""
    from django.contrib.auth import get_user_model

    from apps.conditions.models import Condition
    from apps.marketdata.models import CalendarOverride, Stock
    from apps.notifications.models import Notification
    from apps.trading.accounts.models import PaperAccount
    from apps.watchlists.models import Watchlist

    values: set[str] = set()
    for model, fields in (
        (Stock, ("name",)),
        (PaperAccount, ("name",)),
        (Watchlist, ("name",)),
        (Condition, ("name",)),
        (Notification, ("title", "body")),
        (CalendarOverride, ("note",)),
        (get_user_model(), ("username",)),
    ):
        for row in model.objects.values_list(*fields):
            values.update(value for value in row if value)
    return sorted(values, key=len, reverse=True)


def korean_left(text: str, allowed: list[str]) -> list[str]:
    for value in allowed:
        text = text.replace(value, " ")
    return sorted({text[max(0, m.start() - 20) : m.end() + 20].replace("\n", " ") for m in HANGUL.finditer(text)})


def english_left(text: str, labels: list[str], allowed: list[str]) -> list[str]:
    for value in allowed:
        text = text.replace(value, " ")
    found = []
    for label in labels:
        match = re.search(rf"(?<![\w-]){re.escape(label)}(?![\w-])", text)
        if match:
            found.append(f"{label} in “{text[max(0, match.start() - 30) : match.end() + 30]}”".replace("\n", " "))
    return found


def switch_language(page, language: str) -> None:
    """Through the top bar's switcher (a form posting to Django's set_language); back on the same page."""
    if page.locator("html").get_attribute("lang") == language:
        return
    page.locator(f'#language-switch button[data-language="{language}"]').click()
    expect(page.locator("html")).to_have_attribute("lang", language)


def check_page(page, path: str, language: str, allowed: list[str], labels: list[str]) -> list[str]:
    """The problems of the page on screen (an empty list when it passes)."""
    problems = []
    width = page.evaluate("() => document.scrollingElement.scrollWidth")
    if width > PHONE["width"]:
        wide = page.evaluate(
            """(limit) => {
                 const clipped = (e) => {  // inside a box that scrolls and itself fits
                   for (let p = e.parentElement; p; p = p.parentElement) {
                     if (getComputedStyle(p).overflowX !== "visible") return p.getBoundingClientRect().right <= limit;
                   }
                   return false;
                 };
                 return [...document.querySelectorAll("body *")]
                   .filter((e) => e.getBoundingClientRect().right > limit && !clipped(e))
                   .slice(0, 5).map((e) => e.tagName + (e.id ? "#" + e.id : "") + "." + e.className);
               }""",
            PHONE["width"],
        )
        problems.append(f"{path} [{language}]: {width} px wide at {PHONE['width']} px: {wide}")
    text = page.evaluate(TEXT_OF_DATA)
    if language == "en":
        left = korean_left(text, allowed)
        if left:
            problems.append(f"{path} [en]: Korean left: {left[:8]}")
    else:
        left = english_left(text, labels, allowed)
        if left:
            problems.append(f"{path} [ko]: untranslated English labels: {left[:8]}")
    if csp_violations(page):
        problems.append(f"{path} [{language}]: CSP violations {csp_violations(page)}")
    return problems


def settle(page) -> None:
    """The page's live content on screen (as the accessibility test waits for it)."""
    if page.locator("#feed-status").count():
        expect(page.locator("#feed-status")).to_have_attribute("data-status", "connected", timeout=LIVE)
    if page.locator("#chart").count():
        expect(page.locator("#chart")).to_have_attribute("data-bars", re.compile(r"^[1-9]\d*$"), timeout=LIVE)


def check_ticket_bar(page, problems: list[str], language: str) -> None:
    """On the stock page the ticket is one tap of the bottom bar away, its side chosen and its quantity focused."""
    bar = page.locator("#ticket-bar")
    expect(bar).to_be_visible()
    box = bar.bounding_box()
    if not box or box["y"] + box["height"] > PHONE["height"] + 1 or box["y"] < PHONE["height"] / 2:
        problems.append(f"stock [{language}]: the buy/sell bar is not at the bottom of the screen: {box}")
    bar.locator('a[data-side="SELL"]').click()
    ticket = page.locator("#order-ticket")
    expect(ticket.locator('input[name="side"][value="SELL"]')).to_be_checked()
    expect(ticket.locator('input[name="quantity"]')).to_be_focused()
    top = ticket.bounding_box()["y"]
    if not 0 <= top < PHONE["height"] / 2:
        problems.append(f"stock [{language}]: the ticket is not on screen after the tap (top at {top} px)")
    page.evaluate("() => window.scrollTo(0, 0)")


@pytest.mark.parametrize("language", ["ko", "en"])
def test_every_page_fits_a_phone_speaks_one_language_and_passes_axe(stack, browser, login_state, language):
    paths = page_paths()
    assert {"/", f"/stocks/{CODE}/", "/orders/", "/portfolio/"} <= set(paths), paths
    allowed = data_strings()
    labels = english_labels()
    assert "Open orders" in labels and "Place order" in labels  # the check can fail
    problems: list[str] = []
    visited: list[str] = []

    anonymous = new_context(browser, stack.url, viewport=PHONE, is_mobile=True, has_touch=True)
    page = anonymous.new_page()
    page.goto(ANONYMOUS_PAGES[0])
    switch_language(page, language)
    for path in ANONYMOUS_PAGES:
        page.goto(path)
        expect(page.locator("html")).to_have_attribute("lang", language)
        problems += check_page(page, path, language, allowed, labels)
        assert_accessible(page, f"{path} [{language}, phone]")
    anonymous.close()

    context = new_context(browser, stack.url, viewport=PHONE, is_mobile=True, has_touch=True, storage_state=login_state)
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    page = context.new_page()
    try:
        page.goto("/")
        switch_language(page, language)
        for path in paths:
            probe = context.request.get(path, max_redirects=0)
            assert probe.status < 500, f"{path}: {probe.status}"
            is_page = (
                probe.status == 200
                and "text/html" in probe.headers.get("content-type", "")
                and "<main>" in probe.text()
            )
            if not is_page:
                continue  # a fragment, a JSON answer, a redirect, an action refusing GET
            page.goto(path)
            visited.append(path)
            expect(page.locator("html")).to_have_attribute("lang", language)
            settle(page)
            problems += check_page(page, path, language, allowed, labels)
            if path == f"/stocks/{CODE}/":
                check_ticket_bar(page, problems, language)
            assert_accessible(page, f"{path} [{language}, phone]")
    finally:
        page.goto("/")
        switch_language(page, "ko")  # the trader's session (and stored choice) back as the other tests expect
        context.close()
    assert {"/", f"/stocks/{CODE}/", "/orders/", "/portfolio/", "/data-quality/"} <= set(visited), visited
    assert not problems, "\n".join(problems)
    assert errors == [], errors


def test_the_checks_see_what_they_look_for():
    """The Korean and English finders catch a leftover (the page test's assertions can fail)."""
    assert korean_left("Open orders · 미체결 · 삼성전자", ["삼성전자"]) == ["Open orders · 미체결 ·  "]
    assert english_left("미체결 주문 · Open orders", ["Open orders", "Place order"], []) == [
        "Open orders in “미체결 주문 · Open orders”"
    ]
    assert english_left("미체결 주문 · NAVER", ["Open orders"], ["NAVER"]) == []
    assert Path(ROOT / "locale" / "ko" / "LC_MESSAGES" / "django.mo").is_file()
