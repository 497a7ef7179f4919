"""The whole market day of the sandbox, 08:00–20:00: phases per venue, the prints the recorded data lacks, VI.

The recorded data covers KRX's regular session only (the opening print, continuous trading, the closing print).
This module adds, per stock and day, deterministically (seeded by ``seed:date:code``):

- **The phase schedule** per venue (krx-rules §3.3, §3.4; names from ``apps.core.krx.phases``). KRX: opening
  call auction from 08:30 (with the pre-open closing-price session 08:30–08:40), continuous matching, the
  closing call auction (10 minutes before the close), the post-close closing-price session (close+10 min to
  close+30 min: 15:40–16:00 on a regular day) and the after-hours single price (16:00–18:00); every KRX window
  moves with the day's open/close (special days). NXT: pre-market 08:00–08:50, main market 09:00:30–15:20,
  after-market 15:30–20:00 (single-price open 15:30–15:40, continuous from 15:40); NXT's windows do not move.
- **SYNTHETIC prints** where the recorded data has none (flagged in the clock status and logged at start-up):
  the pre-open closing-price trades at the previous close, the post-close closing-price trades at today's
  close, one after-hours single-price call every 10 minutes (16:10 … 18:00) within ±10 % of the close (most
  calls within ±2 %; some calls have no print), NXT's pre-market (a walk from the previous close) and
  after-market (its 15:40 single-price open, then a walk from the close). Sizes are small (about 1/100,000 of
  the previous day's volume a print, lognormal). All of it is a model, not data.
- **The closing auction's random end**: the closing print moves 0–30 s (seeded per stock) after the close
  (krx-rules §3.5's random end; the opening print keeps its recorded 09:00:00.000, because the first
  continuous prints of the recorded minute would otherwise have to move).
- **VI episodes** (krx-rules §3.5): the continuous prints of the replayed tape are scanned in order; a print
  more than the static threshold (10 %) away from the static reference (the previous close before the
  opening print, then the last single price) or more than the dynamic threshold (3 % for KOSPI200 members,
  6 % for the others; settings) away from the previous print starts a VI: the stock goes into a 2-minute call
  (+ a seeded random end of up to 30 s). The prints of the tape inside the episode are not sent; at its end ONE
  ``VI_AUCTION`` print carries their volume at the tape's last price, and continuous trading resumes. An
  operator (or a test) can force an episode (``POST /sandbox/vi``). The recorded tape moves by a tick or two
  between prints, so natural episodes are rare (days with a 10 % move).

The KIS codes carrying the phase in the frames (``NEW_MKOP_CLS_CODE``'s second character, ``HOUR_CLS_CODE`` of
expected prices, ``VI_CLS_CODE``) are the sandbox's choice where the reference is UNCONFIRMED: the client's
parser (``apps.brokers.kis.realtime``) holds the same table; a test checks that both agree.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NamedTuple

from apps.core.krx import phases as P
from apps.core.krx import vi
from apps.core.krx.auction import random_end
from apps.sandbox.auction import Expected, walk
from apps.sandbox.auction import expected_at as auction_expected_at
from apps.sandbox.clock import OPEN_S, SessionTimes
from apps.sandbox.replay import BUY, SELL, DayTape, RunningState, Tick

logger = logging.getLogger("apps.sandbox")

H = 3600
M = 60

# --- the schedule -------------------------------------------------------------------------------------------

#: KRX windows relative to a regular day's open (09:00) / close (15:30), krx-rules §3.3.
KRX_CALL_START_S = 8 * H + 30 * M  # opening auction order entry and the pre-open closing-price session
KRX_PRE_CLOSE_END_S = 8 * H + 40 * M
POST_CLOSE_FROM_CLOSE_S = 10 * M  # 15:40
AFTER_HOURS_FROM_CLOSE_S = 30 * M  # 16:00
AFTER_HOURS_END_FROM_CLOSE_S = 150 * M  # 18:00
AFTER_HOURS_CALL_S = 10 * M
#: NXT windows (krx-rules §3.4; they do not move on KRX's special days: UNCONFIRMED).
NXT_PRE_START_S = 8 * H
NXT_PRE_END_S = 8 * H + 50 * M
NXT_MAIN_START_S = 9 * H + 30
NXT_MAIN_END_S = 15 * H + 20 * M
NXT_AFTER_START_S = 15 * H + 30 * M
NXT_AFTER_MATCH_S = 15 * H + 40 * M
NXT_AFTER_END_S = 20 * H
DAY_START_S = 8 * H
DAY_END_S = 20 * H


def _moment(s: float) -> dt.datetime:
    """Seconds of day on an arbitrary date (the schedule depends on the session times only)."""
    return dt.datetime.combine(_ANY_DAY, dt.time(0), tzinfo=P.KST) + dt.timedelta(seconds=s)


_ANY_DAY = dt.date(2026, 1, 5)


def _clock(s: int) -> dt.time:
    return dt.time(s // 3600, s // 60 % 60, s % 60)


def krx_now(times: SessionTimes, s: float) -> P.PhaseNow:
    """``apps.core.krx.phases.phase_at`` for KRX on a day with this session."""
    return P.phase_at(P.KRX, _moment(s), session_open=_clock(times.open_s), session_close=_clock(times.close_s))


def krx_phase(times: SessionTimes, s: float, *, closing_print_s: float | None = None) -> str:
    """The KRX phase at ``s`` seconds of day (market-wide; VI and halts are per stock), from the shared schedule
    (``apps.core.krx.phases``); the closing auction lasts until the closing print (``closing_print_s``: the
    close plus the random end)."""
    if closing_print_s is not None and times.close_s <= s < closing_print_s:
        return P.CLOSING_AUCTION
    return krx_now(times, s).phase


def krx_also(times: SessionTimes, s: float) -> tuple[str, ...]:
    """Sessions running beside the KRX phase: the pre-open closing-price session 08:30–08:40."""
    return krx_now(times, s).also


def nxt_phase(s: float) -> str:
    """The NXT phase at ``s`` seconds of day (krx-rules §3.4; NXT's windows do not move with KRX's day)."""
    return P.phase_at(P.NXT, _moment(s), session_open=dt.time(9), session_close=dt.time(15, 30)).phase


def phase_changes(times: SessionTimes) -> list[tuple[int, str, str]]:
    """(second of day, venue, new phase) of every market-wide phase change of the day, in time order."""
    out: list[tuple[int, str, str]] = []
    midnight = _moment(0)
    for venue in P.VENUES:
        windows = P.day_windows(_ANY_DAY, venue, open_time=_clock(times.open_s), close_time=_clock(times.close_s))
        primary = [w for w in windows if not w.concurrent]
        for i, w in enumerate(primary):
            out.append((int((w.start - midnight).total_seconds()), venue, w.phase))
            following = primary[i + 1] if i + 1 < len(primary) else None
            if following is None or following.start > w.end:
                out.append((int((w.end - midnight).total_seconds()), venue, P.CLOSED))
    return sorted(out, key=lambda x: (x[0], x[1]))


# --- KIS codes (UNCONFIRMED second characters; the client's parser has the same table) -----------------------

#: NEW_MKOP_CLS_CODE per print phase: the first character is kis-api.md §6.5's (1 pre-open, 2 regular, 3 after
#: the close, 4 off-hours); the second one is the sandbox's (UNCONFIRMED).
NEW_MKOP_BY_PHASE: dict[str, str] = {
    P.OPENING_AUCTION: "11",
    P.PRE_CLOSE_PRICE: "12",
    P.NXT_PRE: "13",
    P.CONTINUOUS: "20",
    P.VI_AUCTION: "21",
    P.CLOSING_AUCTION: "22",
    P.CLOSED: "30",
    P.POST_CLOSE_PRICE: "31",
    P.NXT_AFTER: "32",
    P.AFTER_HOURS_SINGLE: "40",
}
#: HOUR_CLS_CODE of expected-price records (kis-api.md §6.5: A after-close expected, B pre-open expected, C after
#: 09:00 / VI, D off-hours single price); trade prints carry "0".
EXPECTED_HOUR_CLS: dict[str, str] = {
    P.OPENING_AUCTION: "B",
    P.CLOSING_AUCTION: "A",
    P.VI_AUCTION: "C",
    P.AFTER_HOURS_SINGLE: "D",
}
#: H0STMKO0 VI_CLS_CODE: N none, 1 static, 2 dynamic (UNCONFIRMED).
VI_CLS_CODES = {"": "N", "static": "1", "dynamic": "2"}
#: H0STMKO0 MKOP_CLS_CODE (장운영 구분 코드) per phase: the sandbox's 3-character table (UNCONFIRMED).
MKOP_CLS_BY_PHASE: dict[str, str] = {
    P.CLOSED: "129",
    P.OPENING_AUCTION: "110",
    P.PRE_CLOSE_PRICE: "110",
    P.CONTINUOUS: "112",
    P.VI_AUCTION: "115",
    P.CLOSING_AUCTION: "121",
    P.POST_CLOSE_PRICE: "131",
    P.AFTER_HOURS_SINGLE: "141",
    P.NXT_PRE: "113",
    P.NXT_AFTER: "132",
}


# --- prints -------------------------------------------------------------------------------------------------


class PhasePrint(NamedTuple):
    """A print with its venue and phase (a call phase's print is the call's single price)."""

    t_ms: int
    price: int
    volume: int
    side: str
    venue: str
    phase: str

    @property
    def tick(self) -> Tick:
        return Tick(self.t_ms, self.price, self.volume, self.side)


@dataclass(frozen=True, slots=True)
class ViEpisode:
    """One VI: a call from ``start_ms`` to ``end_ms`` (the VI_AUCTION print), ``reference`` the price the
    threshold was measured from, ``trigger`` the price that crossed it."""

    start_ms: int
    end_ms: int
    kind: str  # static | dynamic
    reference: int
    trigger: int
    price: int
    volume: int
    forced: bool = False


@dataclass(frozen=True, slots=True)
class ViRules:
    """VI thresholds (krx-rules §3.5, the percentages (verify) are settings) and the call's length."""

    static_pct: float = 10.0
    dynamic_pct_kospi200: float = 3.0
    dynamic_pct_other: float = 6.0
    duration_s: int = 120
    random_end_s: int = 30


#: Mean shares of a synthetic print as a share of the previous day's volume (lognormal around it).
SYNTHETIC_PRINT_SHARE = 1e-5


def _size(rng: random.Random, prev_volume: int) -> int:
    return max(1, int(max(1.0, prev_volume * SYNTHETIC_PRINT_SHARE) * rng.lognormvariate(0.0, 0.8)))


class DayModel:
    """The day of one stock beyond the recorded session (see the module docstring). Built lazily per tape."""

    def __init__(
        self,
        tape: DayTape,
        *,
        nxt_eligible: bool,
        kospi200: bool,
        rules: ViRules = ViRules(),  # noqa: B008 - a frozen value
    ) -> None:
        self.tape = tape
        self.nxt_eligible = nxt_eligible
        self.kospi200 = kospi200
        self.rules = rules
        self._base = f"{tape.seed}:{tape.date.isoformat()}:{tape.code}:day"
        self._krx_extra: list[PhasePrint] | None = None
        self._nxt_extra: list[PhasePrint] | None = None
        self._forced: list[tuple[int, str]] = []
        self._episodes: list[ViEpisode] = []
        self._starts: list[int] = []
        self._scanned_bars = 0
        self._scan = _ViScan(self)
        tape.bar_listeners.append(self._on_bar)

    def _on_bar(self, index: int, prints: list) -> None:
        """A bar generated for the first time: scan it now when it is the next one (``DayTape.bar_listeners``)."""
        if index == self._scanned_bars:
            self._scan.bar(index, prints)
            self._scanned_bars += 1

    # --- the schedule of this stock ------------------------------------------------------------------------
    @property
    def times(self) -> SessionTimes:
        return self.tape.times

    @property
    def closing_print_ms(self) -> int:
        return self.tape.closing_print_ms

    def krx_phase(self, t_ms: int) -> str:
        """KRX phase of this stock at ``t_ms``: the market's, or VI_AUCTION inside a VI episode."""
        phase = krx_phase(self.times, t_ms / 1000, closing_print_s=self.closing_print_ms / 1000)
        if phase == P.CONTINUOUS and self.vi_at(t_ms) is not None:
            return P.VI_AUCTION
        return phase

    def nxt_phase(self, t_ms: int) -> str:
        if not self.nxt_eligible:
            return P.CLOSED
        return nxt_phase(t_ms / 1000)

    def print_phase(self, t_ms: int) -> str:
        """The phase of a KRX print of the replayed tape at ``t_ms``: the opening print (at the open), the
        closing print, else continuous."""
        if t_ms == self.times.open_s * 1000:
            return P.OPENING_AUCTION
        if t_ms >= self.times.close_s * 1000:
            return P.CLOSING_AUCTION
        return P.CONTINUOUS

    # --- synthetic prints ----------------------------------------------------------------------------------
    @property
    def today_close(self) -> int:
        """Today's closing price: the last recorded bar's close."""
        return self.tape.bars[-1].close if self.tape.bars else self.tape.prev_close

    def krx_extra(self) -> list[PhasePrint]:
        """The synthetic KRX prints of the day: pre-open and post-close closing-price trades, after-hours calls."""
        if self._krx_extra is None:
            self._krx_extra = self._build_krx_extra()
        return self._krx_extra

    def _build_krx_extra(self) -> list[PhasePrint]:
        tape, times = self.tape, self.times
        out: list[PhasePrint] = []
        if not tape.bars:
            return out
        shift = times.open_s - OPEN_S
        rng = random.Random(self._base + ":pre-close")
        start, end = (KRX_CALL_START_S + shift) * 1000, (KRX_PRE_CLOSE_END_S + shift) * 1000
        for t in sorted(rng.randrange(start, end) for _ in range(rng.randint(1, 4))):
            side = BUY if rng.random() < 0.5 else SELL
            out.append(PhasePrint(t, tape.prev_close, _size(rng, tape.prev_volume), side, P.KRX, P.PRE_CLOSE_PRICE))
        close = self.today_close
        rng = random.Random(self._base + ":post-close")
        start = (times.close_s + POST_CLOSE_FROM_CLOSE_S) * 1000
        end = (times.close_s + AFTER_HOURS_FROM_CLOSE_S) * 1000
        for t in sorted(rng.randrange(start, end) for _ in range(rng.randint(1, 6))):
            side = BUY if rng.random() < 0.5 else SELL
            out.append(PhasePrint(t, close, _size(rng, tape.prev_volume), side, P.KRX, P.POST_CLOSE_PRICE))
        out.extend(self._after_hours_calls())
        return out

    def after_hours_band(self) -> tuple[int, int]:
        """(low, high) of the after-hours single price: ±10 % of today's close, inside the daily limits."""
        close = self.today_close
        grid = self.tape.grid
        high = min(grid.floor(int(close * 1.1)), self.tape.upper_limit)
        low = max(grid.ceil(int(close * 0.9 + 0.999)), self.tape.lower_limit)
        return low, high

    def _after_hours_calls(self) -> list[PhasePrint]:
        tape, times = self.tape, self.times
        rng = random.Random(self._base + ":after-hours")
        close = self.today_close
        low, high = self.after_hours_band()
        level = float(close)
        out = []
        first = times.close_s + AFTER_HOURS_FROM_CLOSE_S + AFTER_HOURS_CALL_S
        last = times.close_s + AFTER_HOURS_END_FROM_CLOSE_S
        for call_s in range(first, last + 1, AFTER_HOURS_CALL_S):
            level *= 1 + rng.gauss(0.0, 0.004)
            price = min(max(tape.grid.floor(max(1, int(level))), low), high)
            if rng.random() < 0.25:
                continue  # no cross in this call
            side = BUY if price >= close else SELL
            out.append(
                PhasePrint(call_s * 1000, price, _size(rng, tape.prev_volume), side, P.KRX, P.AFTER_HOURS_SINGLE)
            )
        return out

    def after_hours_call_times(self) -> list[int]:
        """Milliseconds of day of the 12 after-hours calls (16:10 … 18:00 on a regular day)."""
        first = self.times.close_s + AFTER_HOURS_FROM_CLOSE_S + AFTER_HOURS_CALL_S
        last = self.times.close_s + AFTER_HOURS_END_FROM_CLOSE_S
        return [s * 1000 for s in range(first, last + 1, AFTER_HOURS_CALL_S)]

    def nxt_extra(self) -> list[PhasePrint]:
        """The synthetic NXT pre-market and after-market prints (none for a stock NXT does not list)."""
        if self._nxt_extra is None:
            self._nxt_extra = self._build_nxt_extra() if self.nxt_eligible else []
        return self._nxt_extra

    def _walk(self, rng: random.Random, start_price: int, start_ms: int, end_ms: int, count: int, phase: str):
        tape = self.tape
        base = tape.prev_close
        # NXT's band: ±30 % of the previous KRX close (krx-rules §3.4), the same limits as KRX's.
        lo, hi = tape.lower_limit, tape.upper_limit
        price = min(max(tape.grid.floor(start_price), lo), hi)
        times = sorted(rng.randrange(start_ms, end_ms) for _ in range(count))
        out: list[PhasePrint] = []
        for t in times:
            step = rng.choice((-1, 0, 0, 1))
            if step > 0:
                price = min(tape.grid.up(price), hi)
            elif step < 0:
                price = max(tape.grid.down(price), lo)
            if abs(price - base) > base * 0.05:  # keep the synthetic walk near the anchor
                price = tape.grid.floor(base)
            side = BUY if step > 0 else SELL if step < 0 else (BUY if rng.random() < 0.5 else SELL)
            out.append(PhasePrint(t, price, _size(rng, tape.prev_volume), side, P.NXT, phase))
        return out

    def _build_nxt_extra(self) -> list[PhasePrint]:
        tape = self.tape
        if not tape.bars:
            return []
        rng = random.Random(self._base + ":nxt")
        out = self._walk(
            rng, tape.prev_close, NXT_PRE_START_S * 1000, NXT_PRE_END_S * 1000, rng.randint(20, 60), P.NXT_PRE
        )
        close = self.today_close
        grid = tape.grid
        opening = close
        for _ in range(rng.randint(0, 2)):
            opening = grid.up(opening) if rng.random() < 0.5 else grid.down(opening)
        opening = min(max(opening, tape.lower_limit), tape.upper_limit)
        out.append(
            PhasePrint(NXT_AFTER_MATCH_S * 1000, opening, _size(rng, tape.prev_volume) * 3, BUY, P.NXT, P.NXT_AFTER)
        )
        out += self._walk(
            rng, opening, NXT_AFTER_MATCH_S * 1000 + 1, NXT_AFTER_END_S * 1000, rng.randint(40, 150), P.NXT_AFTER
        )
        return out

    @staticmethod
    def between(prints: list[PhasePrint], after_ms: int, until_ms: int) -> list[PhasePrint]:
        lo = bisect.bisect_right(prints, after_ms, key=lambda p: p.t_ms)
        hi = bisect.bisect_right(prints, until_ms, key=lambda p: p.t_ms)
        return prints[lo:hi]

    # --- VI ------------------------------------------------------------------------------------------------
    def force_vi(self, at_ms: int, kind: str = "dynamic") -> None:
        """Start a VI at the first continuous print at or after ``at_ms`` (operator / test), whatever the move."""
        if kind not in ("static", "dynamic"):
            raise ValueError("kind must be static or dynamic")
        self._forced.append((at_ms, kind))
        self._forced.sort()
        self._episodes, self._starts, self._scanned_bars = [], [], 0
        self._scan = _ViScan(self)

    def episodes(self, until_ms: int | None = None) -> list[ViEpisode]:
        """The finished VI episodes that started at or before ``until_ms`` (default: the whole day)."""
        if until_ms is None:
            self._advance(None)
            return list(self._episodes)
        self._advance(until_ms)
        return [e for e in self._episodes if e.start_ms <= until_ms]

    def vi_at(self, t_ms: int) -> ViEpisode | None:
        """The VI in force at ``t_ms`` (start <= t < end), else None. A running episode's price and volume are
        those so far."""
        self._advance(t_ms)
        i = bisect.bisect_right(self._starts, t_ms) - 1
        if i >= 0 and self._episodes[i].end_ms > t_ms:
            return self._episodes[i]
        cur = self._scan.current
        if cur is not None and cur[0] <= t_ms < cur[1]:
            return ViEpisode(cur[0], cur[1], str(cur[2]), cur[3], cur[4], cur[5], cur[6], bool(cur[7]))
        return None

    def known_vi_at(self, t_ms: int) -> ViEpisode | None:
        """``vi_at`` from what has been scanned so far (no tape generation: cheap for every stock)."""
        i = bisect.bisect_right(self._starts, t_ms) - 1
        if i >= 0 and self._episodes[i].end_ms > t_ms:
            return self._episodes[i]
        cur = self._scan.current
        if cur is not None and cur[0] <= t_ms < cur[1]:
            return ViEpisode(cur[0], cur[1], str(cur[2]), cur[3], cur[4], cur[5], cur[6], bool(cur[7]))
        return None

    def _advance(self, t_ms: int | None) -> None:
        """Scan the tape's bars through ``t_ms`` plus the longest episode (so an episode that started by
        ``t_ms`` is known with its end), and close an episode whose end lies before every unscanned print."""
        tape = self.tape
        n = len(tape.bars)
        if t_ms is None:
            last = n - 1
        else:
            horizon = (self.rules.duration_s + self.rules.random_end_s + 1) * 1000
            last = min(tape.bar_index(t_ms + horizon), n - 1)
        while self._scanned_bars <= last:
            i = self._scanned_bars
            if i >= tape.prepared:
                tape.prepare(i)  # generating it calls ``_on_bar``, which scans it
                if self._scanned_bars > i:
                    continue
            self._scan.bar(i, tape.bar_tape(i).ticks)
            self._scanned_bars += 1
        cur = self._scan.current
        if cur is not None:
            next_start = tape.bars[self._scanned_bars].start_s * 1000 if self._scanned_bars < n else None
            if next_start is None or cur[1] <= next_start:
                self._scan.close_current()

    def expected_at(self, t_ms: int) -> tuple[str, Expected] | None:
        """(phase, expected price and quantity) of the call building at ``t_ms``: the opening or closing auction
        (``apps.sandbox.auction``), a VI, or the after-hours single-price call (a walk from the previous call's
        price, or the close, to the next call's print); None outside a call or before a call without a cross."""
        tape = self.tape
        vi = self.vi_at(t_ms)
        if vi is not None:
            exp = walk(tape, f"vi{vi.start_ms}", t_ms, vi.start_ms, vi.end_ms, vi.trigger, vi.price, vi.volume)
            return P.VI_AUCTION, exp
        auction = auction_expected_at(tape, t_ms)
        if auction is not None:
            return (P.OPENING_AUCTION if auction.auction == "open" else P.CLOSING_AUCTION), auction
        if krx_phase(self.times, t_ms / 1000) != P.AFTER_HOURS_SINGLE:
            return None
        calls = self.after_hours_call_times()
        k = bisect.bisect_right(calls, t_ms)
        if k >= len(calls):
            return None
        prints = {p.t_ms: p for p in self.krx_extra() if p.phase == P.AFTER_HOURS_SINGLE}
        target = prints.get(calls[k])
        if target is None:
            return None
        before = [prints[c] for c in calls[:k] if c in prints]
        start_price = before[-1].price if before else self.today_close
        low, high = self.after_hours_band()
        exp = walk(
            tape,
            f"ah{k}",
            t_ms,
            calls[k] - AFTER_HOURS_CALL_S * 1000,
            calls[k],
            start_price,
            target.price,
            target.volume,
            lower=low,
            upper=high,
        )
        return P.AFTER_HOURS_SINGLE, exp

    def has_vi(self, until_ms: int) -> bool:
        """Whether any VI started by ``until_ms`` (plus the longest episode): the fast path of the frames."""
        self._advance(until_ms)
        return bool(self._episodes) or self._scan.current is not None

    def static_reference(self, t_ms: int, state: RunningState) -> int:
        """VI_STND_PRC at ``t_ms``: the last single price (the last VI's print, else the opening print), the
        previous close before the open."""
        i = bisect.bisect_right(self._starts, t_ms) - 1
        while i >= 0:
            if self._episodes[i].end_ms <= t_ms:
                return self._episodes[i].price
            i -= 1
        return state.open if state.count else self.tape.prev_close

    def _add_episode(self, episode: ViEpisode) -> None:
        self._episodes.append(episode)
        self._starts.append(episode.start_ms)

    def krx_prints(self, after_ms: int, until_ms: int) -> list[PhasePrint]:
        """Every KRX print in (after_ms, until_ms] with its phase: the replayed tape's (minus those inside a VI,
        plus each VI's single print) and the synthetic ones. (The WebSocket listeners use the tape's events
        and ``vi_at`` directly; this is the reference for the tests and the REST answers.)"""
        out: list[PhasePrint] = []
        for tick in self.tape.ticks_between(after_ms, until_ms):
            if self.print_phase(tick.t_ms) == P.CONTINUOUS and self.vi_at(tick.t_ms) is not None:
                continue
            out.append(PhasePrint(*tick, P.KRX, self.print_phase(tick.t_ms)))
        for ep in self.episodes(until_ms):
            if after_ms < ep.end_ms <= until_ms:
                out.append(PhasePrint(ep.end_ms, ep.price, ep.volume, BUY, P.KRX, P.VI_AUCTION))
        out += self.between(self.krx_extra(), after_ms, until_ms)
        out.sort(key=lambda p: p.t_ms)
        return out


class _ViScan:
    """The incremental scan of the continuous prints for VI triggers with ``apps.core.krx.vi.ViState`` (the shared
    rules: static from the last single price, dynamic from the previous print, "or more" triggers). The opening
    print sets both references (it is the recorded print: not checked here); each VI's single print sets them
    again (``ViState.on_print(..., VI_AUCTION)``)."""

    def __init__(self, day: DayModel) -> None:
        self.day = day
        rules = day.rules
        core_rules = vi.ViRules(
            static_pct=Fraction(str(rules.static_pct)),
            dynamic_kospi200_pct=Fraction(str(rules.dynamic_pct_kospi200)),
            dynamic_other_pct=Fraction(str(rules.dynamic_pct_other)),
            duration_seconds=rules.duration_s,
            random_end_max_seconds=rules.random_end_s,
        )
        tape = day.tape
        self.state = vi.ViState(tape.code, tape.prev_close, kospi200=day.kospi200, rules=core_rules, seed=day._base)
        self.midnight = dt.datetime.combine(tape.date, dt.time(0), tzinfo=P.KST)
        #: [start_ms, end_ms, kind, reference, trigger, last price, volume, forced] of the running episode.
        self.current: list[Any] | None = None
        self.forced = list(day._forced)

    def _dt(self, t_ms: int) -> dt.datetime:
        return self.midnight + dt.timedelta(milliseconds=t_ms)

    def close_current(self) -> None:
        cur = self.current
        assert cur is not None
        start, end, kind, ref, trigger, price, volume, forced = cur
        self.day._add_episode(ViEpisode(start, end, str(kind), ref, trigger, price, max(1, volume), bool(forced)))
        self.state.on_print(price, self._dt(end), P.VI_AUCTION)
        self.current = None

    def _force(self, t_ms: int, price: int, kind: str) -> vi.ViEvent:
        state = self.state
        reference = state.static_reference if kind == vi.STATIC else (state.last_price or state.static_reference)
        started = self._dt(t_ms)
        ends = random_end(
            started + dt.timedelta(seconds=self.day.rules.duration_s),
            seed=self.day._base,
            key=(P.KRX, self.day.tape.code, "forced"),
            max_seconds=self.day.rules.random_end_s,
        )
        event = vi.ViEvent(
            self.day.tape.code,
            kind,
            vi.UP if price >= reference else vi.DOWN,
            price,
            reference,
            P.CONTINUOUS,
            started,
            ends,
        )
        state.current = event
        state.history.append(event)
        return event

    def bar(self, index: int, ticks: list) -> None:
        day = self.day
        state = self.state
        open_ms = day.times.open_s * 1000
        close_ms = day.times.continuous_end_s * 1000
        rules = day.rules
        static_f = rules.static_pct * 0.999
        dynamic_f = (rules.dynamic_pct_kospi200 if day.kospi200 else rules.dynamic_pct_other) * 0.999
        for t_ms, price, volume, _side in ticks:
            cur = self.current
            if cur is not None and t_ms >= cur[1]:
                self.close_current()
                cur = None
            if cur is not None:
                cur[5], cur[6] = price, cur[6] + volume
                continue
            if t_ms <= open_ms:
                state.static_reference = state.last_price = price  # the opening print: the static reference
                continue
            if t_ms >= close_ms:
                continue
            forced = False
            if not (self.forced and self.forced[0][0] <= t_ms):
                # Fast path: far from both thresholds (a float pre-check with a margin; the exact check is
                # ViState's), the print only moves the dynamic reference, as ViState.on_print would.
                ref = state.static_reference
                last = state.last_price or ref
                if abs(price - ref) * 100 < static_f * ref and abs(price - last) * 100 < dynamic_f * last:
                    state.last_price = price
                    continue
            if self.forced and self.forced[0][0] <= t_ms:
                kind = self.forced.pop(0)[1]
                while self.forced and self.forced[0][0] <= t_ms:
                    self.forced.pop(0)
                event: vi.ViEvent | None = self._force(t_ms, price, kind)
                forced = True
            else:
                event = state.on_print(price, self._dt(t_ms), P.CONTINUOUS)
            if event is None:
                continue
            end = int((event.ends - self.midnight).total_seconds() * 1000)
            end = min(end, close_ms)  # a VI never runs into the closing auction here (the closing call takes over)
            self.current = [t_ms, end, event.kind, event.reference, price, price, volume, int(forced)]
            logger.info(
                "VI (%s%s) %s at %s: %s -> %s",
                event.kind,
                ", forced" if forced else "",
                day.tape.code,
                t_ms,
                event.reference,
                price,
            )


#: NXT-eligible stocks when no list is configured (``NXT_ELIGIBLE_CODES``): a subset of the large caps,
#: APPROXIMATE (NXT's real list changes daily and has grown from 10 names at launch toward ~800; krx-rules §3.4).
DEFAULT_NXT_ELIGIBLE: tuple[str, ...] = (
    "005930",
    "000660",
    "373220",
    "207940",
    "005380",
    "000270",
    "068270",
    "105560",
    "035420",
    "035720",
    "247540",
    "012450",
)
#: KOSPI200 membership when no list is configured: the KOSPI stocks of the replayed universe ranked by market
#: capitalisation (listed shares × previous close), top 200: APPROXIMATE (the index has its own rules).
KOSPI200_SIZE = 200


class DayBook:
    """The ``DayModel`` of every stock of the replayed market (built on first use)."""

    def __init__(
        self,
        market,
        *,
        nxt_eligible: tuple[str, ...] = DEFAULT_NXT_ELIGIBLE,
        kospi200: tuple[str, ...] = (),
        rules: ViRules = ViRules(),  # noqa: B008 - a frozen value
    ) -> None:
        self.market = market
        self.nxt_eligible = frozenset(nxt_eligible)
        if kospi200:
            self.kospi200 = frozenset(kospi200)
            self.kospi200_source = "configured"
        else:
            ranked = sorted(
                (t for t in market.tapes.values() if t.instrument.market == "KOSPI"),
                key=lambda t: t.instrument.listed_shares * t.prev_close,
                reverse=True,
            )
            self.kospi200 = frozenset(t.code for t in ranked[:KOSPI200_SIZE])
            self.kospi200_source = "approximate: top KOSPI market caps of the universe"
        self.rules = rules
        self._days: dict[str, DayModel] = {}
        for code in market.tapes:
            self.day(code)  # now, so each tape's bars are scanned for VIs as they are first generated

    def day(self, code: str) -> DayModel | None:
        found = self._days.get(code)
        if found is None:
            tape = self.market.tape(code)
            if tape is None:
                return None
            found = self._days[code] = DayModel(
                tape, nxt_eligible=code in self.nxt_eligible, kospi200=code in self.kospi200, rules=self.rules
            )
        return found

    def status(self, t_ms: int) -> dict[str, object]:
        """The clock status's ``day`` part: the phase per venue and what is synthetic."""
        times = self.market.times
        krx = krx_now(times, t_ms / 1000)
        vis = []
        for code, day in self._days.items():
            ep = day.known_vi_at(t_ms)  # what the scan knows: a status never generates tapes
            if ep is not None:
                vis.append({"code": code, "kind": ep.kind, "reference": ep.reference, "until_ms": ep.end_ms})
        return {
            "phases": {P.KRX: krx.phase, P.NXT: nxt_phase(t_ms / 1000)},
            "also": list(krx.also),
            "vi": vis,
            "synthetic": [
                "pre-open and post-close closing-price trades",
                "after-hours single-price calls",
                "NXT pre-market and after-market prints",
                "NXT main-market prints (mirrored from KRX)",
                "the closing auction's random end",
            ],
            "nxt_eligible": sorted(self.nxt_eligible),
            "kospi200": self.kospi200_source,
        }
