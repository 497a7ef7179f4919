"""KRW and KST display formats (apps/pages/formatting.py) and their template filters."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.template import Context, Template

from apps.pages import formatting as f


@pytest.mark.parametrize(
    ("value", "text"),
    [(1_234_567, "1,234,567"), (0, "0"), (Decimal("70000.5"), "70,001"), ("812", "812"), (None, "—"), ("x", "—")],
)
def test_krw(value, text):
    assert f.krw(value) == text


@pytest.mark.parametrize(
    ("value", "signed", "change", "direction", "arrow"),
    [
        (1_500, "+1,500", "▲ 1,500", "up", "▲"),
        (-700, "-700", "▼ 700", "down", "▼"),
        (0, "0", "0", "", ""),
        (None, "—", "—", "", ""),
    ],
)
def test_signed_changes_follow_the_korean_convention(value, signed, change, direction, arrow):
    assert (f.krw_signed(value), f.change_text(value), f.direction(value), f.arrow(value)) == (
        signed,
        change,
        direction,
        arrow,
    )


@pytest.mark.parametrize(
    ("value", "text"), [(Decimal("1.234"), "+1.23%"), ("-0.5", "-0.50%"), (0, "0.00%"), ("1.435", "+1.44%")]
)
def test_percent(value, text):
    assert f.pct_signed(value) == text


def test_times_are_shown_in_kst_whatever_their_zone():
    utc = dt.datetime(2026, 2, 20, 0, 0, 5, tzinfo=dt.UTC)
    assert f.kst(utc) == "2026-02-20 09:00:05 KST"
    assert f.kst("2026-02-20T09:00:05+09:00") == "2026-02-20 09:00:05 KST"
    assert f.kst(dt.datetime(2026, 2, 20, 6, 30)) == "2026-02-20 15:30:00 KST"  # naive: taken as UTC
    assert f.kst_time("2026-02-20T01:02:03+00:00") == "10:02:03"
    assert (f.kst(None), f.kst("not a time")) == ("—", "—")


def test_template_filters():
    template = Template(
        "{% load hoga %}{{ cash|krw }}원 {{ pnl|krw_signed }} {{ rate|pct_signed }} "
        "{{ change|change_text }} {{ change|direction }} {{ at|kst }} {{ 30|depth_pct:120 }}"
    )
    text = template.render(
        Context(
            {
                "cash": 10_000_000,
                "pnl": -12_345,
                "rate": Decimal("-0.12"),
                "change": -100,
                "at": dt.datetime(2026, 2, 20, 6, 0, tzinfo=dt.UTC),
            }
        )
    )
    assert text == "10,000,000원 -12,345 -0.12% ▼ 100 down 2026-02-20 15:00:00 KST 25"


def test_order_book_levels_are_coloured_against_the_previous_close():
    from apps.pages.selectors import book_levels

    book = {"asks": [[70_100, 5], [70_000, 3]], "bids": [[69_900, 4], [69_800, 0]]}
    levels = book_levels(book, base=70_000)
    asks = {row["price"]: row["direction"] for row in levels["asks"] if row["price"]}
    bids = {row["price"]: row["direction"] for row in levels["bids"] if row["price"]}
    assert asks == {70_100: "up", 70_000: ""}
    assert bids == {69_900: "down", 69_800: "down"}
    assert levels["base"] == 70_000
    assert all(row["direction"] == "" for row in book_levels(book)["asks"])  # no base known: neutral
