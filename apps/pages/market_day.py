"""What the pages show of the market day: phase and venue labels, and the per-stock flags of a quote snapshot.

Pure functions (no Redis, no ORM), used by the selectors, the template tags and the tests.

Phases and venues are the shared names of ``apps.core.krx.phases`` (krx-rules §3.3–§3.5). A quote snapshot
(``apps/live/realtime/snapshots.py``) may carry, besides the price:

- ``phase`` / ``venue``: the phase and venue of its last print;
- ``halted``: true while the stock is halted (거래정지: cancels only);
- ``vi``: ``{"kind": "static"|"dynamic", "reference": <price>, "until": <ISO time>}`` while a volatility
  interruption turns the stock into a 2-minute call auction, else null (a ``phase`` of ``vi_auction`` is a VI
  too, of a kind not known);
- ``expected``: ``{"price": <KRW>, "quantity": <shares>}`` while a call auction's book builds, else null.

Snapshots come from another process, so every field is read defensively: a missing or malformed field is
"not known" (no badge), never an error of the page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext_lazy as _

from apps.core.krx import phases as P

PHASE_LABELS = {
    P.CLOSED: _("Closed"),
    P.PRE_CLOSE_PRICE: _("Pre-open closing price"),
    P.OPENING_AUCTION: _("Opening auction"),
    P.CONTINUOUS: _("Continuous trading"),
    P.VI_AUCTION: _("VI auction"),
    P.CLOSING_AUCTION: _("Closing auction"),
    P.POST_CLOSE_PRICE: _("After-hours closing price"),
    P.AFTER_HOURS_SINGLE: _("After-hours single price"),
    P.NXT_PRE: _("NXT pre-market"),
    P.NXT_AFTER: _("NXT after-market"),
    P.HALTED: _("Halted"),
    P.KRX_AFTER_MARKET: _("KRX after-market"),
}
#: NXT's main session is CONTINUOUS on venue NXT: its own name on the NXT line of the phase bar.
NXT_PHASE_LABELS = {**PHASE_LABELS, P.CONTINUOUS: _("NXT main market")}
UNKNOWN_LABEL = _("Unknown")
VENUE_LABELS = {P.KRX: _("KRX Korea Exchange"), P.NXT: _("NXT Nextrade"), P.SOR: _("SOR smart routing (best of both)")}
VI_KIND_LABELS = {"static": _("Static VI"), "dynamic": _("Dynamic VI")}
MAX_REASONABLE = 10**13  # larger numbers in a snapshot are not prices or volumes: treated as unknown


def phase_label(phase: str | None, venue: str = P.KRX) -> str:
    labels = NXT_PHASE_LABELS if venue == P.NXT else PHASE_LABELS
    return str(labels.get(phase or "", UNKNOWN_LABEL))


def venue_label(venue: str | None) -> str:
    return str(VENUE_LABELS.get(venue or "", "—"))


@dataclass(frozen=True)
class VenuePhase:
    """One line of the phase bar: the venue's phase now, until when, and what follows."""

    venue: str
    phase: str
    since: dt.datetime | None
    until: dt.datetime | None
    next_phase: str | None
    also: tuple[str, ...] = ()
    accepted: tuple[str, ...] = ()  # order kinds the venue takes now (sorted)
    indicative: bool = False  # a call's expected price is published now

    @property
    def label(self) -> str:
        return phase_label(self.phase, self.venue)

    @property
    def venue_label(self) -> str:
        return venue_label(self.venue)

    @property
    def next_label(self) -> str:
        return phase_label(self.next_phase, self.venue) if self.next_phase else ""

    @property
    def also_labels(self) -> list[str]:
        return [phase_label(p, self.venue) for p in self.also]

    def seconds_left(self, now: dt.datetime | None) -> int | None:
        if now is None or self.until is None:
            return None
        return max(0, int((self.until - now).total_seconds()))

    def as_json(self) -> dict:
        return {
            "venue": self.venue,
            "venue_label": self.venue_label,
            "phase": self.phase,
            "label": self.label,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "next_phase": self.next_phase,
            "next_label": self.next_label,
            "also": list(self.also),
            "also_labels": self.also_labels,
            "accepted": list(self.accepted),
            "indicative": self.indicative,
        }


def from_phase_now(now: P.PhaseNow) -> VenuePhase:
    """A ``PhaseNow`` of ``apps.core.krx.phases`` as a phase-bar line."""
    return VenuePhase(
        venue=now.venue,
        phase=now.phase,
        since=now.since,
        until=now.until,
        next_phase=now.next_phase,
        also=tuple(now.also),
        accepted=tuple(sorted(now.accepted)),
        indicative=bool(now.indicative),
    )


def countdown(seconds: int | None) -> str:
    """``3725`` -> ``"1:02:05"``, ``65`` -> ``"1:05"``; unknown -> ``"—"``."""
    if seconds is None:
        return "—"
    hours, rest = divmod(max(0, int(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# --- per-stock flags of a quote snapshot ------------------------------------------------------------------


def _whole(value: Any) -> int | None:
    """A positive whole number of a snapshot field (int or digit string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 15):
            return None
        value = int(text)
    if isinstance(value, int) and 0 < value < MAX_REASONABLE:
        return value
    return None


def _moment(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


@dataclass(frozen=True)
class StockFlags:
    """What a page shows next to a stock besides its price: halted, VI, the expected auction price."""

    code: str
    halted: bool = False
    vi_kind: str | None = None  # "static" | "dynamic" | "" (a VI of unknown kind) | None (no VI)
    vi_reference: int | None = None
    vi_until: dt.datetime | None = None
    expected_price: int | None = None
    expected_quantity: int | None = None
    phase: str | None = None
    venue: str | None = None

    @property
    def vi(self) -> bool:
        return self.vi_kind is not None

    @property
    def vi_label(self) -> str:
        return str(VI_KIND_LABELS.get(self.vi_kind or "", _("Volatility interruption")))

    @property
    def phase_label(self) -> str:
        return phase_label(self.phase, self.venue or P.KRX) if self.phase else ""

    @property
    def any(self) -> bool:
        return self.halted or self.vi

    def as_json(self) -> dict:
        return {
            "code": self.code,
            "halted": self.halted,
            "vi": None
            if not self.vi
            else {
                "kind": self.vi_kind,
                "reference": self.vi_reference,
                "until": self.vi_until.isoformat() if self.vi_until else None,
            },
            "expected": None
            if self.expected_price is None
            else {"price": self.expected_price, "quantity": self.expected_quantity},
            "phase": self.phase,
            "venue": self.venue,
        }


def stock_flags(code: str, snapshot: dict[str, Any] | None) -> StockFlags:
    """The flags of one stock from its quote snapshot (None: no snapshot, no flag)."""
    if not isinstance(snapshot, dict):
        return StockFlags(code=code)
    vi = snapshot.get("vi")
    vi_kind = vi_reference = vi_until = None
    if isinstance(vi, dict):
        kind = vi.get("kind")
        vi_kind = kind if kind in VI_KIND_LABELS else ""
        vi_reference = _whole(vi.get("reference"))
        vi_until = _moment(vi.get("until"))
    expected = snapshot.get("expected")
    expected_price = expected_quantity = None
    if isinstance(expected, dict):
        expected_price = _whole(expected.get("price"))
        expected_quantity = _whole(expected.get("quantity")) if expected_price is not None else None
        if expected_quantity is None and expected_price is not None and type(expected.get("quantity")) is int:
            expected_quantity = 0 if expected["quantity"] == 0 else None  # 0: a price and no volume crossing yet
    phase = snapshot.get("phase")
    venue = snapshot.get("venue")
    if vi_kind is None and phase == P.VI_AUCTION:
        vi_kind = ""  # the stock's phase says VI before (or without) the VI's details
    return StockFlags(
        code=code,
        halted=snapshot.get("halted") is True,
        vi_kind=vi_kind,
        vi_reference=vi_reference,
        vi_until=vi_until,
        expected_price=expected_price,
        expected_quantity=expected_quantity,
        phase=phase if phase in P.PHASES else None,
        venue=venue if venue in P.VENUES else None,
    )
