"""Page helpers for the browser tests: the order ticket, statuses, numbers and the no-reload marker."""

from __future__ import annotations

import re

from playwright.sync_api import Page

NUMBER = re.compile(r"-?[\d,]+")


def number(text: str) -> int:
    """The first integer in a formatted cell ("1,234원", "-5,000") as an int."""
    match = NUMBER.search(text or "")
    assert match, f"no number in {text!r}"
    return int(match.group().replace(",", ""))


def mark_no_reload(page: Page) -> None:
    """Tag the document: a reload or navigation replaces it and ``assert_not_reloaded`` fails."""
    page.evaluate("() => { window.__hogaMarker = 'still-here'; }")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("() => window.__hogaMarker") == "still-here", "the page reloaded or navigated"


def choose(form, name: str, value: str) -> None:
    """Pick ``value`` of a radio group or select as a person does (a hidden radio through its label)."""
    if form.locator(f'select[name="{name}"]').count():  # locators work with JavaScript disabled too
        form.locator(f'select[name="{name}"]').select_option(value)
        return
    radio = form.locator(f'input[name="{name}"][value="{value}"]')
    if radio.is_visible():
        radio.check()
    else:
        radio_id = radio.get_attribute("id")
        label = form.locator(f'label[for="{radio_id}"]') if radio_id else radio.locator("xpath=ancestor::label")
        label.first.click()
    assert radio.is_checked(), f"{name}={value} not selected"


def fill_ticket(page: Page, *, side: str, order_type: str, quantity: int, price: int | None = None) -> str:
    """Fill the order ticket on a stock page; the ticket's ``client_order_id``. Does not submit."""
    ticket = page.locator("#order-ticket")
    choose(ticket, "side", side)
    choose(ticket, "order_type", order_type)
    ticket.locator('input[name="quantity"]').fill(str(quantity))
    if price is not None:
        ticket.locator('input[name="price"]').fill(str(price))
    return ticket.locator('input[name="client_order_id"]').input_value()


def submit_ticket(page: Page) -> None:
    page.locator('#order-ticket button[type="submit"]').first.click()


def status_of(row) -> str:
    """An order row's status code: ``data-value`` of its status cell when present, else the cell's text."""
    cell = row.locator('[data-field="status"]').first
    return (cell.get_attribute("data-value") or cell.inner_text()).strip().upper()
