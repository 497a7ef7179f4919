"""Volatility interruptions (변동성완화장치, VI) of one stock: pure rules and a small per-stock state machine.

Facts (krx-rules §3.5, KRX RGL03010409 via the sunkeunchoi research file §3, broker and news explainers):

- **Static VI:** a price that moves ±10 % or more from the static reference: the previous close (기준가) until
  the day's first single price, then the last single-price match (the opening print, a VI's call, ...).
- **Dynamic VI:** a jump from the immediately preceding trade of 3 % (KOSPI200 constituents) / 6 % (others) in
  continuous trading, 2 % / 4 % in the closing auction (thresholds (verify)).
- **Effect:** the stock turns into a 2-minute call auction, plus a random end of up to 30 s; no daily cap.
- "10 % 이상": a move of exactly the threshold triggers (news lists show static VIs at −10.00 %:
  infostockdaily.co.kr 2021-06-11 "엘비루셈 18,000 → 16,200").

Where it applies (not in krx-rules §3.5; each is a setting, marked (verify)):
- continuous trading and the closing auction: static and dynamic (the closing thresholds in the closing auction);
- the opening auction: static only (``VI_STATIC_IN_OPENING_AUCTION`` true, ``VI_DYNAMIC_IN_OPENING_AUCTION``
  false): an opening price 10 % away from the reference extends the opening call;
- the after-hours single price: dynamic only (``VI_STATIC_IN_AFTER_HOURS`` false, ``VI_DYNAMIC_IN_AFTER_HOURS``
  true, continuous thresholds): a secondary explainer (cafe.daum.net axi4/52: dynamic 09:00–18:00 except the
  closing-price sessions; static in the regular market only);
- never in the closing-price sessions (they trade at one fixed price);
- NXT: dynamic only (krx-rules §3.4 "reportedly dynamic VI only" (verify); ``VI_NXT_STATIC`` false).

Not modelled: ETF/ETN thresholds, the exemptions (정리매매, 단기과열종목), a circuit breaker cancelling running VIs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction

from apps.core.krx.auction import RANDOM_END_MAX_SECONDS, random_end
from apps.core.krx.phases import (
    AFTER_HOURS_SINGLE,
    CLOSING_AUCTION,
    CONTINUOUS,
    KRX,
    NXT_AFTER,
    NXT_PRE,
    OPENING_AUCTION,
    VI_AUCTION,
)

STATIC = "static"
DYNAMIC = "dynamic"
UP = "up"
DOWN = "down"

#: The call a VI turns the stock into: 2 minutes (krx-rules §3.5), plus the random end.
VI_DURATION_SECONDS = 120


@dataclass(frozen=True, slots=True)
class ViRules:
    """Thresholds (percent) and where they apply; defaults per the module docstring, all overridable by settings."""

    static_pct: Fraction = Fraction(10)
    dynamic_kospi200_pct: Fraction = Fraction(3)
    dynamic_other_pct: Fraction = Fraction(6)
    closing_kospi200_pct: Fraction = Fraction(2)
    closing_other_pct: Fraction = Fraction(4)
    duration_seconds: float = VI_DURATION_SECONDS
    random_end_max_seconds: float = RANDOM_END_MAX_SECONDS
    static_in_opening_auction: bool = True
    dynamic_in_opening_auction: bool = False
    static_in_after_hours: bool = False
    dynamic_in_after_hours: bool = True
    nxt_static: bool = False

    @classmethod
    def from_settings(cls) -> ViRules:
        from django.conf import settings

        def pct(name: str, default: Fraction) -> Fraction:
            return Fraction(str(getattr(settings, name, default)))

        defaults = cls()
        return cls(
            static_pct=pct("VI_STATIC_PCT", defaults.static_pct),
            dynamic_kospi200_pct=pct("VI_DYNAMIC_KOSPI200_PCT", defaults.dynamic_kospi200_pct),
            dynamic_other_pct=pct("VI_DYNAMIC_OTHER_PCT", defaults.dynamic_other_pct),
            closing_kospi200_pct=pct("VI_CLOSING_KOSPI200_PCT", defaults.closing_kospi200_pct),
            closing_other_pct=pct("VI_CLOSING_OTHER_PCT", defaults.closing_other_pct),
            duration_seconds=float(getattr(settings, "VI_DURATION_SECONDS", defaults.duration_seconds)),
            random_end_max_seconds=float(
                getattr(settings, "VI_RANDOM_END_MAX_SECONDS", defaults.random_end_max_seconds)
            ),
            static_in_opening_auction=bool(getattr(settings, "VI_STATIC_IN_OPENING_AUCTION", True)),
            dynamic_in_opening_auction=bool(getattr(settings, "VI_DYNAMIC_IN_OPENING_AUCTION", False)),
            static_in_after_hours=bool(getattr(settings, "VI_STATIC_IN_AFTER_HOURS", False)),
            dynamic_in_after_hours=bool(getattr(settings, "VI_DYNAMIC_IN_AFTER_HOURS", True)),
            nxt_static=bool(getattr(settings, "VI_NXT_STATIC", False)),
        )

    def checks(self, venue: str, phase: str, kospi200: bool) -> tuple[Fraction | None, Fraction | None]:
        """(static threshold, dynamic threshold) in percent for a print of ``phase``; None = not checked."""
        continuous_dyn = self.dynamic_kospi200_pct if kospi200 else self.dynamic_other_pct
        if venue != KRX:
            static = self.static_pct if self.nxt_static else None
            return (static, continuous_dyn) if phase in (CONTINUOUS, NXT_PRE, NXT_AFTER) else (None, None)
        if phase == CONTINUOUS:
            return self.static_pct, continuous_dyn
        if phase == CLOSING_AUCTION:
            return self.static_pct, self.closing_kospi200_pct if kospi200 else self.closing_other_pct
        if phase == OPENING_AUCTION:
            return (
                self.static_pct if self.static_in_opening_auction else None,
                continuous_dyn if self.dynamic_in_opening_auction else None,
            )
        if phase == AFTER_HOURS_SINGLE:
            return (
                self.static_pct if self.static_in_after_hours else None,
                continuous_dyn if self.dynamic_in_after_hours else None,
            )
        return None, None  # closing-price sessions, VI calls, closed, halted


def breaches(price: int, reference: int, pct: Fraction) -> bool:
    """True when ``price`` is ``pct`` percent or more away from ``reference`` (exact integer arithmetic)."""
    return reference > 0 and abs(price - reference) * 100 >= pct * reference


@dataclass(frozen=True, slots=True)
class ViEvent:
    code: str
    kind: str  # STATIC | DYNAMIC
    direction: str  # UP | DOWN
    price: int  # the price that triggered it (the trade that did not happen, or the call's price)
    reference: int  # the reference it moved from
    phase: str  # the phase it interrupted
    started: datetime
    ends: datetime  # started + 2 minutes + the random end

    @property
    def pct(self) -> float:
        return (self.price - self.reference) * 100 / self.reference


@dataclass
class ViState:
    """One stock's VI state on one venue for one day.

    ``on_print(price, at, phase)``: a print (or a call's price about to be struck) of ``phase``. Returns the VI it
    triggers, and then does not move the references (the trade does not happen: the stock goes into a call);
    otherwise moves the dynamic reference (and, for a call's single price, the static one) and returns None.
    A print of VI_AUCTION is the VI call's single price: it ends the running VI and sets both references.
    ``active(at)``: the VI in force at ``at`` (None when none). Prints during a running VI are ignored."""

    code: str
    static_reference: int  # the previous close (기준가) at the start of the day
    kospi200: bool = False
    venue: str = KRX
    rules: ViRules = field(default_factory=ViRules)
    seed: object = 0
    last_price: int | None = None  # the dynamic reference: the immediately preceding trade
    current: ViEvent | None = None
    history: list[ViEvent] = field(default_factory=list)

    def active(self, at: datetime) -> ViEvent | None:
        if self.current is not None and at < self.current.ends:
            return self.current
        return None

    def on_print(self, price: int, at: datetime, phase: str) -> ViEvent | None:
        if price <= 0:
            raise ValueError("a print's price must be positive")
        if phase == VI_AUCTION:
            self.current = None
            self.static_reference = self.last_price = price
            return None
        if self.active(at) is not None:
            return None
        static_pct, dynamic_pct = self.rules.checks(self.venue, phase, self.kospi200)
        event = None
        if static_pct is not None and breaches(price, self.static_reference, static_pct):
            event = self._start(STATIC, price, self.static_reference, phase, at)
        elif dynamic_pct is not None:
            dynamic_ref = self.last_price if self.last_price is not None else self.static_reference
            if breaches(price, dynamic_ref, dynamic_pct):
                event = self._start(DYNAMIC, price, dynamic_ref, phase, at)
        if event is not None:
            return event
        self.last_price = price
        if phase in (OPENING_AUCTION, CLOSING_AUCTION, AFTER_HOURS_SINGLE):
            self.static_reference = price  # the last single-price match
        return None

    def _start(self, kind: str, price: int, reference: int, phase: str, at: datetime) -> ViEvent:
        nominal = at + timedelta(seconds=self.rules.duration_seconds)
        ends = random_end(
            nominal, seed=self.seed, key=(self.venue, self.code, kind), max_seconds=self.rules.random_end_max_seconds
        )
        event = ViEvent(
            code=self.code,
            kind=kind,
            direction=UP if price > reference else DOWN,
            price=price,
            reference=reference,
            phase=phase,
            started=at,
            ends=ends,
        )
        self.current = event
        self.history.append(event)
        return event


def trigger_prices(reference: int, pct: Fraction) -> tuple[Fraction, Fraction]:
    """(lowest price that triggers upward, highest that triggers downward) for ``reference`` and ``pct``."""
    width = reference * pct / 100
    return reference + width, reference - width
