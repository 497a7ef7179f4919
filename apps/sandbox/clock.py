"""The sandbox clock and KRX session states (krx-rules §3.3).

Replay mode: the replayed session starts at 09:00 KST on the replay date at the moment the sandbox
starts and advances at ``speed`` × real time. After the 15:30 closing print the market stays
CLOSED; the clock keeps running until 23:59:59.999 of the replay date and then stops there. It never
rolls over into another day: ``restart()`` (admin ``POST /sandbox/clock``) starts the session again.

Wallclock mode: the time of day is the real KST time of day, on the replay date (the recorded data
belongs to that date); ``speed`` is ignored and jumps are refused.

Sim time is expressed as float seconds since 00:00 KST of the replay date. The session's times come from
the sandbox's calendar (``apps.sandbox.calendar``): 09:00-15:30 on a regular day, 10:00-15:30 on the first
trading day of a year, 10:00-16:30 on CSAT day; the closing auction is always the last 10 minutes.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

KST = ZoneInfo("Asia/Seoul")

OPEN_S = 9 * 3600
CONTINUOUS_END_S = 15 * 3600 + 20 * 60
CLOSE_S = 15 * 3600 + 30 * 60
DAY_END_S = 24 * 3600 - 0.001

PRE_OPEN = "pre_open"
CONTINUOUS = "continuous"
CLOSING_AUCTION = "closing_auction"
CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SessionTimes:
    """One day's session in seconds of day: continuous matching from ``open_s``, the 10-minute closing
    auction from ``continuous_end_s``, the closing print at ``close_s``."""

    open_s: int = OPEN_S
    close_s: int = CLOSE_S

    @property
    def continuous_end_s(self) -> int:
        return self.close_s - (CLOSE_S - CONTINUOUS_END_S)

    @property
    def minutes(self) -> int:
        """Continuous-session minutes (380 on a regular day)."""
        return (self.continuous_end_s - self.open_s) // 60


REGULAR = SessionTimes()


def session_state(sim_s: float, times: SessionTimes = REGULAR) -> str:
    """Session state at ``sim_s``: continuous 09:00–15:20, closing auction 15:20–15:30 (the closing
    print happens at 15:30:00 exactly), closed from 15:30 on, pre_open before 09:00 (on a regular day)."""
    if sim_s < times.open_s:
        return PRE_OPEN
    if sim_s < times.continuous_end_s:
        return CONTINUOUS
    if sim_s < times.close_s:
        return CLOSING_AUCTION
    return CLOSED


def parse_hhmmss(text: str) -> int:
    """'HHMMSS' or 'HH:MM[:SS]' -> seconds of day; ValueError if malformed."""
    raw = text.replace(":", "")
    if len(raw) == 4:
        raw += "00"
    if len(raw) != 6 or not raw.isdigit():
        raise ValueError(f"bad time {text!r}")
    h, m, s = int(raw[:2]), int(raw[2:4]), int(raw[4:])
    if h > 23 or m > 59 or s > 59:
        raise ValueError(f"bad time {text!r}")
    return h * 3600 + m * 60 + s


class SandboxClock:
    """Sim clock for one replay date (see module docstring for the after-close rule)."""

    def __init__(
        self,
        mode: str,
        speed: float,
        replay_date: dt.date,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        times: SessionTimes = REGULAR,
    ) -> None:
        self.mode = mode
        self.speed = speed
        self.replay_date = replay_date
        self.times = times
        self._monotonic = monotonic
        self._wall = wall
        self._anchor_sim = float(times.open_s)
        self._anchor_mono = monotonic()

    def now_s(self) -> float:
        """Current sim seconds of day, clamped to the replay date."""
        if self.mode == "wallclock":
            now = dt.datetime.fromtimestamp(self._wall(), KST)
            return now.hour * 3600 + now.minute * 60 + now.second + now.microsecond / 1e6
        sim = self._anchor_sim + (self._monotonic() - self._anchor_mono) * self.speed
        return min(max(sim, 0.0), DAY_END_S)

    def now_ms(self) -> int:
        """Current sim time in integer milliseconds of day."""
        return int(self.now_s() * 1000)

    def now_dt(self) -> dt.datetime:
        """Current sim time as an aware KST datetime."""
        midnight = dt.datetime.combine(self.replay_date, dt.time(0), KST)
        return midnight + dt.timedelta(seconds=self.now_s())

    def state(self) -> str:
        """Session state now."""
        return session_state(self.now_s(), self.times)

    def restart(self, at_s: float | None = None) -> None:
        """Restart the replayed session (default at the session's open). Refused in wallclock mode."""
        self.jump(self.times.open_s if at_s is None else at_s)

    def jump(self, to_s: float) -> None:
        """Move the sim clock to ``to_s`` (forward or backward). Refused in wallclock mode."""
        if self.mode == "wallclock":
            raise ValueError("the wallclock clock cannot be moved")
        self._anchor_sim = min(max(float(to_s), 0.0), DAY_END_S)
        self._anchor_mono = self._monotonic()

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on (sim time is continuous across the change)."""
        if speed <= 0:
            raise ValueError("speed must be > 0")
        current = self.now_s()
        self.speed = speed
        if self.mode == "replay":
            self._anchor_sim = current
            self._anchor_mono = self._monotonic()
