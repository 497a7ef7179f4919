"""Market-wide safeguards as pure rules: the circuit breaker (서킷브레이커, CB) and the sidecar (사이드카).

Not in krx-rules.md; sources (all (verify) against KRX's regulation text, 유가증권시장 업무규정 제25조 / 코스닥시장
업무규정 제26조 for CB, 제16조 / 제13조 for the sidecar):

- **CB, KOSPI:** global.krx.co.kr GLB0602010204T2 ("Circuit Breakers in stock market"); **KOSDAQ:**
  global.krx.co.kr GLB0602020204T2. The index falls 8 % / 15 % / 20 % or more below the previous close and the
  condition lasts 1 minute. Stage 2 also needs a further 1 % fall below the index value that triggered stage 1,
  after stage 1's halt and resumption; stage 3 likewise below stage 2's. Stages 1 and 2: every order (except
  cancellations) and trade halted for 20 minutes, then orders are collected for 10 minutes and the first price is a
  single-price call. Stage 3: the market closes for the day (no orders, not even cancellations, on KOSPI). Each
  stage at most once a day; stages 1 and 2 not in the last 40 minutes before the close (14:50 on a regular day),
  stage 3 then too. Secondary: ajunews.com 2019-08-05 (20190805141612647), kokstock.com "서킷브레이커, 사이드카".
- **Sidecar:** KOSPI200 futures (the most traded contract) ±5 % from the previous close for 1 minute: program
  buy (up) or sell (down) orders lose effect for 5 minutes (ajunews.com 2019-08-05). KOSDAQ: KOSDAQ150 futures
  ±6 % **and** the KOSDAQ150 index ±3 % from their previous closes, in the same direction, simultaneously for
  1 minute (wowtv.co.kr 2026-03-06 A202603060275; theviewers.co.kr 125863). Once a day; not in the last 40 minutes
  before the close; not in the first 5 minutes after the open (hankyung.com 2008-07-02 2008070268366 (verify)).
  Ends after 5 minutes, or at the 40-minutes-before-close cutoff (a secondary runbook; ``release_at_cutoff``,
  (verify)).

Each rule object covers one market (KOSPI or KOSDAQ) for one day and is fed observations in time order; "lasts
1 minute" means every observation during 60 s meets the condition and one at least 60 s after the first still
does (``persist_seconds``). Hoga has no index or futures feed yet: these rules are tested, not wired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction

KOSPI = "KOSPI"
KOSDAQ = "KOSDAQ"

NORMAL = "normal"
HALTED = "halted"  # CB stages 1-2: cancels only
RESUME_CALL = "resume_call"  # the 10-minute call after a CB halt: orders collected, one price at its end
CLOSED = "closed"  # CB stage 3: the market is closed for the day

UP = "up"
DOWN = "down"


def _pct(value: object) -> Fraction:
    return Fraction(str(value))


@dataclass(frozen=True, slots=True)
class CircuitRules:
    stage_pcts: tuple[Fraction, ...] = (Fraction(8), Fraction(15), Fraction(20))
    further_pct: Fraction = Fraction(1)  # beyond the previous stage's trigger value
    halt_minutes: int = 20
    call_minutes: int = 10
    persist_seconds: int = 60
    cutoff_minutes_before_close: int = 40
    sidecar_kospi_futures_pct: Fraction = Fraction(5)
    sidecar_kosdaq_futures_pct: Fraction = Fraction(6)
    sidecar_kosdaq_index_pct: Fraction = Fraction(3)
    sidecar_minutes: int = 5
    sidecar_grace_minutes_after_open: int = 5
    release_at_cutoff: bool = True

    @classmethod
    def from_settings(cls) -> CircuitRules:
        from django.conf import settings

        d = cls()
        raw_stages = getattr(settings, "CB_STAGE_PCTS", None)
        return cls(
            stage_pcts=tuple(_pct(p) for p in raw_stages) if raw_stages else d.stage_pcts,
            further_pct=_pct(getattr(settings, "CB_FURTHER_PCT", d.further_pct)),
            halt_minutes=int(getattr(settings, "CB_HALT_MINUTES", d.halt_minutes)),
            call_minutes=int(getattr(settings, "CB_CALL_MINUTES", d.call_minutes)),
            persist_seconds=int(getattr(settings, "MARKET_GUARD_PERSIST_SECONDS", d.persist_seconds)),
            cutoff_minutes_before_close=int(
                getattr(settings, "MARKET_GUARD_CUTOFF_MINUTES", d.cutoff_minutes_before_close)
            ),
            sidecar_kospi_futures_pct=_pct(getattr(settings, "SIDECAR_KOSPI_FUTURES_PCT", d.sidecar_kospi_futures_pct)),
            sidecar_kosdaq_futures_pct=_pct(
                getattr(settings, "SIDECAR_KOSDAQ_FUTURES_PCT", d.sidecar_kosdaq_futures_pct)
            ),
            sidecar_kosdaq_index_pct=_pct(getattr(settings, "SIDECAR_KOSDAQ_INDEX_PCT", d.sidecar_kosdaq_index_pct)),
            sidecar_minutes=int(getattr(settings, "SIDECAR_MINUTES", d.sidecar_minutes)),
            sidecar_grace_minutes_after_open=int(
                getattr(settings, "SIDECAR_GRACE_MINUTES_AFTER_OPEN", d.sidecar_grace_minutes_after_open)
            ),
            release_at_cutoff=bool(getattr(settings, "SIDECAR_RELEASE_AT_CUTOFF", d.release_at_cutoff)),
        )


def move_pct(value: Fraction, reference: Fraction) -> Fraction:
    return (value - reference) * 100 / reference


@dataclass(frozen=True, slots=True)
class CbEvent:
    market: str
    stage: int  # 1, 2, 3
    value: Fraction  # the index value at the trigger
    triggered: datetime
    halt_until: datetime | None  # None for stage 3 (closed for the day)
    call_until: datetime | None


@dataclass(frozen=True, slots=True)
class CbState:
    kind: str  # NORMAL | HALTED | RESUME_CALL | CLOSED
    stage: int | None = None
    until: datetime | None = None


@dataclass
class CircuitBreaker:
    """One market's circuit breaker for one day. Feed ``on_index(value, at)`` in time order."""

    market: str
    previous_close: Fraction | float | str
    session_open: datetime
    session_close: datetime
    rules: CircuitRules = field(default_factory=CircuitRules)
    events: list[CbEvent] = field(default_factory=list)
    _breach_since: datetime | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.previous_close = _pct(self.previous_close)
        if self.previous_close <= 0:
            raise ValueError("the previous close must be positive")

    @property
    def cutoff(self) -> datetime:
        return self.session_close - timedelta(minutes=self.rules.cutoff_minutes_before_close)

    def state_at(self, at: datetime) -> CbState:
        for event in reversed(self.events):
            if event.triggered > at:
                continue
            if event.halt_until is None:
                return CbState(CLOSED, event.stage)
            if at < event.halt_until:
                return CbState(HALTED, event.stage, event.halt_until)
            if event.call_until is not None and at < event.call_until:
                return CbState(RESUME_CALL, event.stage, event.call_until)
            break
        return CbState(NORMAL)

    def _next_stage(self) -> int | None:
        stage = len(self.events) + 1
        return stage if stage <= len(self.rules.stage_pcts) else None

    def _condition(self, stage: int, value: Fraction) -> bool:
        floor_pct = self.rules.stage_pcts[stage - 1]
        if move_pct(value, Fraction(self.previous_close)) > -floor_pct:
            return False
        if stage > 1:
            previous = self.events[-1].value
            if move_pct(value, previous) > -self.rules.further_pct:
                return False
        return True

    def on_index(self, value: Fraction | float | str, at: datetime) -> CbEvent | None:
        """The stage this observation triggers, if any."""
        value = _pct(value)
        stage = self._next_stage()
        if stage is None or self.state_at(at).kind != NORMAL:
            self._breach_since = None
            return None
        if not self.session_open <= at < self.session_close:
            self._breach_since = None
            return None
        last_stage = stage == len(self.rules.stage_pcts)
        if not last_stage and at >= self.cutoff:
            self._breach_since = None
            return None
        if not self._condition(stage, value):
            self._breach_since = None
            return None
        if self._breach_since is None:
            self._breach_since = at
        if at - self._breach_since < timedelta(seconds=self.rules.persist_seconds):
            return None
        self._breach_since = None
        if last_stage:
            event = CbEvent(self.market, stage, value, at, None, None)
        else:
            halt_until = at + timedelta(minutes=self.rules.halt_minutes)
            event = CbEvent(
                self.market, stage, value, at, halt_until, halt_until + timedelta(minutes=self.rules.call_minutes)
            )
        self.events.append(event)
        return event


@dataclass(frozen=True, slots=True)
class SidecarEvent:
    market: str
    direction: str  # UP: program buy orders suspended; DOWN: program sell orders suspended
    triggered: datetime
    until: datetime


@dataclass
class Sidecar:
    """One market's sidecar for one day. ``index_previous_close``: the KOSDAQ150 index's (KOSDAQ only)."""

    market: str
    futures_previous_close: Fraction | float | str
    session_open: datetime
    session_close: datetime
    index_previous_close: Fraction | float | str | None = None
    rules: CircuitRules = field(default_factory=CircuitRules)
    event: SidecarEvent | None = None
    _breach: tuple[datetime, str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.futures_previous_close = _pct(self.futures_previous_close)
        if self.market == KOSDAQ:
            if self.index_previous_close is None:
                raise ValueError("the KOSDAQ sidecar needs the KOSDAQ150 index's previous close")
            self.index_previous_close = _pct(self.index_previous_close)

    @property
    def cutoff(self) -> datetime:
        return self.session_close - timedelta(minutes=self.rules.cutoff_minutes_before_close)

    def active(self, at: datetime) -> SidecarEvent | None:
        if self.event is not None and self.event.triggered <= at < self.event.until:
            return self.event
        return None

    def _direction(self, futures: Fraction, index: Fraction | None) -> str | None:
        fut = move_pct(futures, Fraction(self.futures_previous_close))
        if self.market == KOSPI:
            limit = self.rules.sidecar_kospi_futures_pct
            return UP if fut >= limit else DOWN if fut <= -limit else None
        if index is None:
            return None
        idx = move_pct(index, Fraction(self.index_previous_close))  # type: ignore[arg-type]
        f_lim, i_lim = self.rules.sidecar_kosdaq_futures_pct, self.rules.sidecar_kosdaq_index_pct
        if fut >= f_lim and idx >= i_lim:
            return UP
        if fut <= -f_lim and idx <= -i_lim:
            return DOWN
        return None

    def on_prices(
        self, at: datetime, futures: Fraction | float | str, index: Fraction | float | str | None = None
    ) -> SidecarEvent | None:
        """The sidecar this observation triggers, if any (once a day)."""
        if self.event is not None:
            return None
        earliest = self.session_open + timedelta(minutes=self.rules.sidecar_grace_minutes_after_open)
        direction = self._direction(_pct(futures), _pct(index) if index is not None else None)
        if direction is None or not earliest <= at < self.cutoff:
            self._breach = None
            return None
        if self._breach is None or self._breach[1] != direction:
            self._breach = (at, direction)
        if at - self._breach[0] < timedelta(seconds=self.rules.persist_seconds):
            return None
        until = at + timedelta(minutes=self.rules.sidecar_minutes)
        if self.rules.release_at_cutoff:
            until = min(until, self.cutoff)
        self.event = SidecarEvent(self.market, direction, at, until)
        return self.event
