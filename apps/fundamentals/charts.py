"""Geometry of the stock page's flows chart (pure: rows in, SVG coordinates out; the template draws it).

Two panels share one x axis, one slot per trading day, so the flows line up with the price: on top the daily
close, below the net buying per investor type as grouped bars (foreigners, institutions, individuals) and, on the
same panel with its own scale on the right, each type's cumulative net from the first day shown.
"""

from __future__ import annotations

from django.utils import translation
from django.utils.translation import gettext_lazy as _

SERIES = (("foreign", _("Foreigners")), ("institution", _("Institutions")), ("individual", _("Individuals")))


def compact(value: float) -> str:
    """Shares for an axis label: ``4_232_033`` -> ``423만``, ``123_456_789`` -> ``1.2억``, ``950`` -> ``950``."""
    size = abs(value)
    if translation.get_language() and not translation.get_language().startswith("ko"):
        if size >= 1_000_000:
            return f"{value / 1_000_000:,.1f}M"
        return f"{value:,.0f}"
    if size >= 100_000_000:
        return f"{value / 100_000_000:.1f}억"
    if size >= 10_000:
        return f"{value / 10_000:,.0f}만"
    return f"{value:,.0f}"


def _scale(lo: float, hi: float, top: float, height: float):
    span = (hi - lo) or 1.0

    def y(value: float) -> float:
        return round(top + height * (1 - (value - lo) / span), 2)

    return y


def flows_chart(rows: list[dict], *, width: int = 720, price_h: int = 110, flow_h: int = 170) -> dict | None:
    """``rows`` (oldest first) carry ``date``, ``close``, ``<type>_net_qty`` and ``<type>_cum_qty``."""
    if not rows:
        return None
    left, right, gap, top = 64, 64, 18, 8
    step = (width - left - right) / len(rows)
    x_mid = [round(left + (i + 0.5) * step, 2) for i in range(len(rows))]

    closes = [r["close"] for r in rows]
    y_price = _scale(min(closes), max(closes), top, price_h)
    price_line = " ".join(f"{x},{y_price(c)}" for x, c in zip(x_mid, closes, strict=True))

    flow_top = top + price_h + gap
    nets = [r.get(f"{who}_net_qty") or 0 for r in rows for who, _ in SERIES]
    bound = max([abs(n) for n in nets] + [1])
    y_net = _scale(-bound, bound, flow_top, flow_h)
    cums = [r[f"{who}_cum_qty"] for r in rows for who, _ in SERIES]
    cum_bound = max([abs(c) for c in cums] + [1])
    y_cum = _scale(-cum_bound, cum_bound, flow_top, flow_h)
    zero = y_net(0)
    bar_w = round(max(step * 0.8 / len(SERIES), 0.5), 2)
    bars, lines = [], []
    for k, (who, label) in enumerate(SERIES):
        for i, row in enumerate(rows):
            value = row.get(f"{who}_net_qty") or 0
            y = y_net(value)
            bars.append(
                {
                    "who": who,
                    "x": round(left + i * step + step * 0.1 + k * bar_w, 2),
                    "y": min(y, zero),
                    "w": bar_w,
                    "h": round(abs(zero - y), 2),
                    "title": f"{row['date']} {label} {value:+,}",
                }
            )
        points = " ".join(f"{x},{y_cum(r[f'{who}_cum_qty'])}" for x, r in zip(x_mid, rows, strict=True))
        lines.append({"who": who, "label": label, "points": points})
    return {
        "width": width,
        "height": flow_top + flow_h + 22,
        "left": left,
        "right_x": width - right,
        "price_line": price_line,
        "price_top_y": top,
        "price_bottom_y": top + price_h,
        "price_max": max(closes),
        "price_min": min(closes),
        "flow_top_y": flow_top,
        "flow_bottom_y": flow_top + flow_h,
        "zero_y": zero,
        "net_bound": bound,
        "cum_bound": cum_bound,
        "net_label": compact(bound),
        "cum_label": compact(cum_bound),
        "bars": bars,
        "lines": lines,
        "first": rows[0]["date"],
        "last": rows[-1]["date"],
        "label_y": flow_top + flow_h + 16,
    }
