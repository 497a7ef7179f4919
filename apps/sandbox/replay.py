"""The sandbox market model: a replayed KRX day built from recorded bars.

Tick generation. Every replayed bar (a recorded 1-minute bar, a recorded 5-minute bar, or a minute
bar derived from a daily bar) is turned into trade prints by ``generate_bar_ticks``, seeded by
``seed:date:code:bar-index`` so the result does not depend on the order bars are generated in. The
bar's anchors are its open, its high and its low (in random order) and its close; consecutive equal
anchors are merged. The print count is about ``ticks_per_minute`` per minute of the bar (at least one
per minute, at least one per anchor, at most one per share of volume). The path walks monotonically
from each anchor to the next through grid prices strictly between them (repeats allowed), so every
print lies inside [low, high], the first print is the open, the high and the low are each touched
and the last print is the close. Every print gets one share and the remaining volume is split by
random exponential weights with largest-remainder rounding, so print volumes sum exactly to the bar
volume. Print times are sorted random milliseconds inside [start, end) with at least one print in
every minute of a multi-minute bar; a single-print bar (the 15:30 closing auction) is one print at
15:30:00.000. Recorded prices are authoritative: an off-grid recorded high/low (57 half-tick values
in the 2026 KRX window) is printed as recorded; every generated in-between price is on the grid.
For a stock/day with only a daily bar, ``spread_daily_bar`` first derives 380 continuous minute
bars (09:00–15:19) plus a 15:30 closing-auction print: minute closes follow a bridge from the open
to the close on the grid inside [low, high], the minute whose prices come nearest the day's high
(low) gets the day's high (low), and volumes follow a U-shaped intraday profile (each minute >= 4
shares, exact sum); re-aggregating those minute bars gives the recorded daily bar exactly. Bars
with zero volume produce no prints (Yahoo's first 5-minute bar of each day is such a bar).

The market state at a sim time t is a pure function of t (the prints with time <= t), which is what
makes clock jumps and restarts trivial.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from apps.sandbox import data as recorded
from apps.sandbox.clock import REGULAR, SessionTimes
from apps.sandbox.config import SandboxConfig
from apps.sandbox.data import DailyBar, Instrument, IntradayBar
from apps.sandbox.ticks import TickTable

logger = logging.getLogger("apps.sandbox")

BUY = "1"
SELL = "5"
SESSION_MINUTES = REGULAR.minutes  # 380 on a regular day


class Grid:
    """The tick grid of one instrument on one date."""

    def __init__(self, table: TickTable, on: dt.date, market: str) -> None:
        self.table = table
        self.on = on
        self.market = market

    def tick(self, price: int) -> int:
        return self.table.tick_size(price, self.on, self.market)

    def floor(self, price: int) -> int:
        return self.table.floor(price, self.on, self.market)

    def ceil(self, price: int) -> int:
        return self.table.ceil(price, self.on, self.market)

    def up(self, price: int) -> int:
        return self.table.tick_up(price, self.on, self.market)

    def down(self, price: int) -> int:
        return self.table.tick_down(price, self.on, self.market)

    def on_grid(self, price: int) -> bool:
        return self.table.on_grid(price, self.on, self.market)

    def between(self, low: int, high: int) -> list[int]:
        return self.table.grid_between(low, high, self.on, self.market)


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade print: sim milliseconds of day, price, volume, side (BUY "1" / SELL "5")."""

    t_ms: int
    price: int
    volume: int
    side: str


@dataclass(slots=True)
class RunningState:
    """Cumulative state of a stock's day after some prints (empty: ``count == 0``)."""

    count: int = 0
    open: int = 0
    high: int = 0
    low: int = 0
    last: int = 0
    open_ms: int = 0
    high_ms: int = 0
    low_ms: int = 0
    last_ms: int = 0
    last_side: str = BUY
    last_volume: int = 0
    volume: int = 0
    value: int = 0
    buy_volume: int = 0
    sell_volume: int = 0
    buy_count: int = 0
    sell_count: int = 0
    first_volume: int = 0

    def copy(self) -> RunningState:
        return dataclasses.replace(self)

    def apply(self, tick: Tick) -> None:
        """Fold one print into the state (prints must come in time order)."""
        if self.count == 0:
            self.open = self.high = self.low = tick.price
            self.open_ms = self.high_ms = self.low_ms = tick.t_ms
            self.first_volume = tick.volume
        if tick.price > self.high:
            self.high, self.high_ms = tick.price, tick.t_ms
        if tick.price < self.low:
            self.low, self.low_ms = tick.price, tick.t_ms
        self.count += 1
        self.last, self.last_ms, self.last_side, self.last_volume = (
            tick.price,
            tick.t_ms,
            tick.side,
            tick.volume,
        )
        self.volume += tick.volume
        self.value += tick.price * tick.volume
        if tick.side == BUY:
            self.buy_volume += tick.volume
            self.buy_count += 1
        else:
            self.sell_volume += tick.volume
            self.sell_count += 1


@dataclass(frozen=True, slots=True)
class MinuteBar:
    """A 1-minute bar aggregated from prints; ``minute_s`` is the minute's START (KIS label)."""

    minute_s: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    cum_value: int


@dataclass(frozen=True, slots=True)
class OrderBook:
    """10 levels per side; level 1 is the best price; 0/0 beyond the daily limits."""

    asks: tuple[int, ...]
    bids: tuple[int, ...]
    ask_qty: tuple[int, ...]
    bid_qty: tuple[int, ...]


def _allocate(total: int, weights: list[float], minimum: int) -> list[int]:
    """Split ``total`` into len(weights) ints >= ``minimum`` proportional to weights, exact sum."""
    n = len(weights)
    rest = total - minimum * n
    if rest < 0:
        raise ValueError("total too small for the minimum")
    wsum = sum(weights) or 1.0
    raw = [rest * w / wsum for w in weights]
    out = [minimum + int(r) for r in raw]
    short = total - sum(out)
    order = sorted(range(n), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    for i in order[:short]:
        out[i] += 1
    return out


def generate_bar_ticks(bar: IntradayBar, rng: random.Random, grid: Grid, ticks_per_minute: float) -> list[Tick]:
    """Prints for one bar; see the module docstring for the invariants."""
    volume = bar.volume
    if volume <= 0:
        return []
    mid = [bar.high, bar.low] if rng.random() < 0.5 else [bar.low, bar.high]
    anchors: list[int] = []
    for p in [bar.open, *mid, bar.close]:
        if not anchors or anchors[-1] != p:
            anchors.append(p)
    duration_ms = (bar.end_s - bar.start_s) * 1000
    minutes = max(1, math.ceil(duration_ms / 60000))
    if volume < len(anchors):
        # Cannot touch every anchor with one share each: keep the open and the close.
        logger.warning(
            "bar at %ss has volume %s < %s anchors; replaying open/close only",
            bar.start_s,
            volume,
            len(anchors),
        )
        anchors = [bar.open, bar.close][: max(volume, 1)] if bar.open != bar.close else [bar.close]
    target = round(ticks_per_minute * max(duration_ms, 60000) / 60000 * rng.uniform(0.5, 1.5))
    if duration_ms <= 0:
        n = len(anchors)  # a single-price call (the closing auction): one print per anchor
    else:
        n = min(volume, max(len(anchors), min(minutes, volume), target))
    extra = n - len(anchors)
    prices: list[int] = []
    if len(anchors) == 1:
        prices = [anchors[0]] * n
    else:
        segments = len(anchors) - 1
        weights = [abs(anchors[i + 1] - anchors[i]) + 1 for i in range(segments)]
        counts = [0] * segments
        for i in rng.choices(range(segments), weights=weights, k=extra):
            counts[i] += 1
        for i in range(segments):
            a, b = anchors[i], anchors[i + 1]
            lo, hi = min(a, b), max(a, b)
            inner = [p for p in grid.between(lo, hi) if lo < p < hi]
            picks = rng.choices([a, *inner], k=counts[i]) if counts[i] else []
            picks.sort(reverse=b < a)
            prices.append(a)
            prices.extend(picks)
        prices.append(anchors[-1])
    vols = _allocate(volume, [rng.expovariate(1.0) for _ in prices], 1) if len(prices) <= volume else [1] * len(prices)
    if duration_ms <= 0:
        offsets = [0] * len(prices)
    else:
        offsets = [rng.randrange(0, duration_ms) for _ in range(len(prices))]
        if minutes > 1 and len(prices) >= minutes:
            for m in range(minutes):
                offsets[m] = rng.randrange(m * 60000, min((m + 1) * 60000, duration_ms))
        offsets.sort()
        offsets[0] = min(offsets[0], rng.randrange(0, min(2000, duration_ms)))
    start_ms = bar.start_s * 1000
    ticks: list[Tick] = []
    side = BUY if rng.random() < 0.5 else SELL
    prev = None
    for price, vol, off in zip(prices, vols, offsets, strict=True):
        if prev is not None and price != prev:
            side = BUY if price > prev else SELL
        ticks.append(Tick(start_ms + off, price, vol, side))
        prev = price
    return ticks


def spread_daily_bar(bar: DailyBar, rng: random.Random, grid: Grid, times: SessionTimes = REGULAR) -> list[IntradayBar]:
    """Minute bars (09:00–15:19 on a regular day) + the closing print (15:30) that re-aggregate exactly to
    ``bar``; on a shifted day (``times``) the same shape moves with the session."""
    session_minutes = times.minutes
    total = bar.volume
    if total <= 0 or bar.open <= 0:
        return []
    o, h, low, c = bar.open, bar.high, bar.low, bar.close
    auction = int(total * rng.uniform(0.03, 0.08)) if total >= 4 * (session_minutes + 1) else 0
    continuous = total - auction
    k = max(1, min(session_minutes, continuous // 4))
    slots = [0] + sorted(rng.sample(range(1, session_minutes), k - 1)) if k > 1 else [0]
    lo_g, hi_g = grid.ceil(low), grid.floor(h)

    def snap(x: float) -> int:
        if lo_g > hi_g:
            return o
        return min(max(grid.floor(int(round(x))), lo_g), hi_g)

    walk, w = [], 0.0
    for _ in range(k):
        w += rng.gauss(0.0, 1.0)
        walk.append(w)
    bridge = [walk[m] - (m + 1) / k * walk[-1] for m in range(k)]
    span = max(abs(b) for b in bridge) or 1.0
    scale = (h - low) / 2 / span * rng.uniform(0.6, 1.0)
    closes = [snap(o + (c - o) * (m + 1) / k + scale * bridge[m]) for m in range(k)]
    if auction == 0:
        closes[-1] = c
    opens = [o, *closes[:-1]]
    highs, lows = [], []
    for m in range(k):
        top, bottom = max(opens[m], closes[m]), min(opens[m], closes[m])
        wig_hi, wig_lo = top, bottom
        for _ in range(rng.randint(0, 2)):
            if lo_g <= hi_g and grid.up(grid.floor(wig_hi)) <= hi_g:
                wig_hi = grid.up(grid.floor(wig_hi))
        for _ in range(rng.randint(0, 2)):
            if lo_g <= hi_g and grid.down(grid.ceil(wig_lo)) >= lo_g:
                wig_lo = grid.down(grid.ceil(wig_lo))
        highs.append(max(top, wig_hi))
        lows.append(min(bottom, wig_lo))
    i_high = max(range(k), key=lambda m: (highs[m], rng.random()))
    i_low = min(range(k), key=lambda m: (lows[m], rng.random()))
    highs[i_high] = h
    lows[i_low] = low
    profile = [
        (1.0 + 2.5 * math.exp(-slots[m] / 25.0) + 1.5 * math.exp(-(session_minutes - 1 - slots[m]) / 25.0))
        * rng.lognormvariate(0.0, 0.5)
        for m in range(k)
    ]
    vols = _allocate(continuous, profile, min(4, continuous // k))
    bars = [
        IntradayBar(
            times.open_s + slots[m] * 60,
            times.open_s + slots[m] * 60 + 60,
            opens[m],
            highs[m],
            lows[m],
            closes[m],
            vols[m],
        )
        for m in range(k)
    ]
    if auction:
        bars.append(IntradayBar(times.close_s, times.close_s, c, c, c, c, auction))
    return bars


class DayTape:
    """One stock's replayed day: bars, lazily generated prints and cumulative states.

    Invariants: bars are sorted and non-overlapping; prints of bar i lie in [start_i, end_i) (a
    single-print bar at start_i); prints are generated bar by bar in order, so ``_end_states[i]``
    is the state after every print of bars 0..i.
    """

    def __init__(
        self,
        instrument: Instrument,
        date: dt.date,
        bars: list[IntradayBar],
        *,
        prev_close: int,
        prev_volume: int,
        seed: int,
        grid: Grid,
        ticks_per_minute: float,
        source: str,
        times: SessionTimes = REGULAR,
    ) -> None:
        self.instrument = instrument
        self.times = times
        self.code = instrument.code
        self.date = date
        self.bars = bars
        self.prev_close = prev_close
        self.prev_volume = prev_volume
        self.seed = seed
        self.grid = grid
        self.ticks_per_minute = ticks_per_minute
        self.source = source
        self.upper_limit, self.lower_limit = grid.table.price_limits(prev_close, date, instrument.market)
        self._starts_ms = [b.start_s * 1000 for b in bars]
        self._ticks: list[list[Tick]] = []
        self._end_states: list[RunningState] = []

    def _ensure(self, index: int) -> None:
        while len(self._ticks) <= index < len(self.bars):
            i = len(self._ticks)
            rng = random.Random(f"{self.seed}:{self.date.isoformat()}:{self.code}:{i}")
            ticks = generate_bar_ticks(self.bars[i], rng, self.grid, self.ticks_per_minute)
            state = self._end_states[-1].copy() if self._end_states else RunningState()
            for t in ticks:
                state.apply(t)
            self._ticks.append(ticks)
            self._end_states.append(state)

    def bar_ticks(self, index: int) -> list[Tick]:
        """The prints of bar ``index``."""
        self._ensure(index)
        return self._ticks[index]

    def all_ticks(self) -> list[Tick]:
        """Every print of the day."""
        self._ensure(len(self.bars) - 1)
        return [t for ticks in self._ticks for t in ticks]

    def _bar_at(self, t_ms: int) -> int:
        return bisect.bisect_right(self._starts_ms, t_ms) - 1

    def state_at(self, t_ms: int) -> RunningState:
        """State after every print with time <= ``t_ms``."""
        i = self._bar_at(t_ms)
        if i < 0:
            return RunningState()
        self._ensure(i)
        state = self._end_states[i - 1].copy() if i > 0 else RunningState()
        for t in self._ticks[i]:
            if t.t_ms > t_ms:
                break
            state.apply(t)
        return state

    def ticks_between(self, after_ms: int, until_ms: int) -> list[Tick]:
        """Prints with after_ms < time <= until_ms, in time order."""
        if until_ms <= after_ms:
            return []
        out: list[Tick] = []
        i = max(self._bar_at(after_ms), 0)
        while i < len(self.bars) and self._starts_ms[i] <= until_ms:
            for t in self.bar_ticks(i):
                if after_ms < t.t_ms <= until_ms:
                    out.append(t)
            i += 1
        return out

    def minute_bars(self, until_ms: int) -> list[MinuteBar]:
        """1-minute bars (oldest first) from prints with time <= ``until_ms``; minutes without prints
        have no bar. ``cum_value`` is the day's cumulative trading value at the end of the bar."""
        out: list[MinuteBar] = []
        cur: list[int] | None = None  # minute, open, high, low, close, volume
        value = 0
        for t in self.ticks_between(-1, until_ms):
            minute = t.t_ms // 60000 * 60
            if cur is not None and cur[0] != minute:
                out.append(MinuteBar(*cur, cum_value=value))
                cur = None
            value += t.price * t.volume
            if cur is None:
                cur = [minute, t.price, t.price, t.price, t.price, 0]
            cur[2] = max(cur[2], t.price)
            cur[3] = min(cur[3], t.price)
            cur[4] = t.price
            cur[5] += t.volume
        if cur is not None:
            out.append(MinuteBar(*cur, cum_value=value))
        return out

    def order_book(self, state: RunningState) -> OrderBook:
        """10-level book around the last print (deterministic per print count).

        If the last print was a buy it lifted the ask (ask1 = last, bid1 one tick below), else it hit
        the bid (bid1 = last, ask1 one tick above). Levels beyond the daily limits are 0 with 0 qty.
        """
        last = state.last if state.count else self.prev_close
        g = self.grid
        if not g.on_grid(last):
            last = g.floor(last)
        if state.count == 0 or state.last_side == SELL:
            bid1, ask1 = last, g.up(last)
        else:
            ask1, bid1 = last, g.down(last)
        rng = random.Random(f"{self.seed}:{self.date.isoformat()}:{self.code}:book:{state.count}")
        avg = max(1, state.volume // state.count) if state.count else 100
        asks, bids, aq, bq = [], [], [], []
        a, b = ask1, bid1
        for _ in range(10):
            ok_a = a <= self.upper_limit or self.upper_limit == 0
            ok_b = b >= self.lower_limit and b > 0
            asks.append(a if ok_a else 0)
            bids.append(b if ok_b else 0)
            aq.append(int(avg * rng.uniform(3, 40)) + 1 if ok_a else 0)
            bq.append(int(avg * rng.uniform(3, 40)) + 1 if ok_b else 0)
            a, b = g.up(a), g.down(b) if b > 1 else 0
        return OrderBook(tuple(asks), tuple(bids), tuple(aq), tuple(bq))


@dataclass
class ReplayMarket:
    """The replayed day for the whole universe (codes in universe order)."""

    date: dt.date
    tapes: dict[str, DayTape]
    history: dict[str, list[DailyBar]]
    synthetic: bool
    data_source: str
    ticks: TickTable = field(default_factory=TickTable)
    times: SessionTimes = REGULAR  # the replayed day's session (the sandbox calendar's)

    def tape(self, code: str) -> DayTape | None:
        return self.tapes.get(code)

    def today_bar(self, code: str, t_ms: int) -> DailyBar | None:
        """Today's partial daily bar from the prints so far (None before the first print)."""
        tape = self.tapes[code]
        st = tape.state_at(t_ms)
        if st.count == 0:
            return None
        return DailyBar(self.date, st.open, st.high, st.low, st.last, st.volume, st.value, "replay")

    def daily_rows(self, code: str, t_ms: int) -> list[DailyBar]:
        """Recorded daily history before the replay date plus today's partial bar, oldest first."""
        rows = list(self.history.get(code, []))
        today = self.today_bar(code, t_ms) if code in self.tapes else None
        if today is not None:
            rows.append(today)
        return rows


# --- building the market --------------------------------------------------------------------------

SYNTHETIC_UNIVERSE: tuple[tuple[str, str, str, int, int, int], ...] = (
    # code, name, market, listed shares, starting price, typical daily volume
    ("005930", "삼성전자", "KOSPI", 5_919_637_922, 70_000, 15_000_000),
    ("000660", "SK하이닉스", "KOSPI", 728_002_365, 130_000, 3_000_000),
    ("035420", "NAVER", "KOSPI", 158_437_008, 200_000, 600_000),
    ("035720", "카카오", "KOSPI", 442_300_000, 45_000, 2_000_000),
    ("005380", "현대차", "KOSPI", 204_757_766, 210_000, 700_000),
    ("247540", "에코프로비엠", "KOSDAQ", 97_801_344, 250_000, 500_000),
)
SYNTHETIC_HISTORY_DAYS = 260


def _weekdays_before(day: dt.date, count: int) -> list[dt.date]:
    out: list[dt.date] = []
    d = day
    while len(out) < count:
        d -= dt.timedelta(days=1)
        if d.weekday() < 5:
            out.append(d)
    return out[::-1]


def _synthetic_daily(rng: random.Random, grid: Grid, prev_close: int, base_volume: int) -> DailyBar:
    """One synthetic daily bar on the grid, inside the day's price limits."""
    day = grid.on
    upper, lower = grid.table.price_limits(prev_close, day, grid.market)

    def snap(x: float) -> int:
        return min(max(grid.floor(int(x)), lower), upper)

    o = snap(prev_close * (1 + rng.gauss(0, 0.006)))
    c = snap(o * (1 + rng.gauss(0, 0.015)))
    h = snap(max(o, c) * (1 + abs(rng.gauss(0, 0.006))))
    low = snap(min(o, c) * (1 - abs(rng.gauss(0, 0.006))))
    h, low = max(h, o, c), min(low, o, c)
    vol = max(1000, int(base_volume * rng.lognormvariate(0, 0.35)))
    return DailyBar(day, o, h, low, c, vol, 0, "synthetic")


def build_synthetic_market(config: SandboxConfig) -> ReplayMarket:
    """A seeded synthetic market on the tick grid (no recorded data)."""
    today = config.replay_date or _latest_weekday(dt.datetime.now(dt.UTC).date())
    times = replay_session_times(config, today)
    table = TickTable(config.tick_table_effective)
    tapes: dict[str, DayTape] = {}
    history: dict[str, list[DailyBar]] = {}
    for code, name, market, shares, start, base_vol in SYNTHETIC_UNIVERSE[: config.universe_size]:
        inst = Instrument(code, name, market, shares)
        rng = random.Random(f"{config.seed}:synthetic:{code}")
        bars: list[DailyBar] = []
        close = start
        for day in [*_weekdays_before(today, SYNTHETIC_HISTORY_DAYS), today]:
            bar = _synthetic_daily(rng, Grid(table, day, market), close, base_vol)
            bars.append(bar)
            close = bar.close
        today_bar = bars.pop()
        history[code] = bars
        grid = Grid(table, today, market)
        minute_bars = spread_daily_bar(today_bar, random.Random(f"{config.seed}:{today}:{code}:spread"), grid, times)
        tapes[code] = DayTape(
            inst,
            today,
            minute_bars,
            prev_close=bars[-1].close,
            prev_volume=bars[-1].volume,
            seed=config.seed,
            grid=grid,
            ticks_per_minute=config.ticks_per_minute,
            source="synthetic",
            times=times,
        )
    return ReplayMarket(today, tapes, history, True, "synthetic (no HOGA_DATA_DIR): seeded random walk", table, times)


def replay_session_times(config: SandboxConfig, day: dt.date) -> SessionTimes:
    """The replayed day's session from the sandbox calendar (regular hours when it calls the day closed)."""
    from apps.sandbox.calendar import SandboxCalendar

    return SandboxCalendar.from_config(config).session_times(day) or REGULAR


def _latest_weekday(day: dt.date) -> dt.date:
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return day


def build_market(config: SandboxConfig) -> ReplayMarket:
    """Build the replayed day from ``config.data_dir`` (synthetic when it is unset or missing)."""
    data_dir = config.data_dir
    if data_dir is None or not (data_dir / recorded.KRX_DAILY).is_file():
        if data_dir is not None:
            logger.warning("SYNTHETIC MARKET: data dir %s has no %s", data_dir, recorded.KRX_DAILY)
        return build_synthetic_market(config)
    return _build_recorded_market(config, data_dir)


def _build_recorded_market(config: SandboxConfig, data_dir: Path) -> ReplayMarket:
    krx = recorded.load_krx_daily(data_dir)
    day = config.replay_date or max(krx.ranked_codes)
    intraday: dict[tuple[str, dt.date], tuple[list[IntradayBar], str]] = {}
    in_krx_window = day in krx.ranked_codes
    if not in_krx_window or day < dt.date(2021, 1, 1):
        for key, bars in recorded.load_yahoo_5m(data_dir).items():
            intraday[key] = (bars, f"{recorded.YAHOO_5M_DIR}/*.csv (5-minute)")
        for key, bars in recorded.load_creon_minutes(data_dir).items():
            intraday[key] = (bars, f"{recorded.CREON_MINUTE} (1-minute)")
    intraday_codes = [code for (code, d) in intraday if d == day]
    if not in_krx_window and not intraday_codes:
        raise ValueError(f"no recorded data for replay date {day}; KRX daily dates end at {max(krx.ranked_codes)}")

    listing = recorded.load_listing(data_dir, day)
    order: list[str] = []
    for code in [
        *sorted(set(intraday_codes), key=lambda c: (c != "005930", c)),
        *(i.code for i in listing or []),
    ]:
        if code not in order:
            order.append(code)
    if listing is None:
        order.extend(c for c in krx.ranked_codes.get(day, []) if c not in order)
    order = order[: config.universe_size]

    instruments = dict(krx.instruments)
    for inst in listing or []:
        instruments[inst.code] = inst
    history_extra: dict[str, list[DailyBar]] = {}
    if day < min(krx.ranked_codes):
        creon = recorded.load_creon_daily(data_dir)
        for code in order:
            history_extra[code] = [b for b in creon.get(code, []) if b.date < day]
            known = {b.date for b in history_extra[code]}
            for (c, d), (bars, _src) in intraday.items():
                agg = recorded.daily_from_intraday(bars, d, "yahoo5m") if c == code and d < day else None
                if agg is not None and d not in known:
                    history_extra[code].append(agg)
            history_extra[code].sort(key=lambda b: b.date)

    table = TickTable(config.tick_table_effective)
    times = replay_session_times(config, day)
    tapes: dict[str, DayTape] = {}
    history: dict[str, list[DailyBar]] = {}
    sources: dict[str, list[str]] = {}
    for code in order:
        inst = instruments.get(code) or Instrument(code, code, "KOSPI", 0)
        past = [b for b in krx.bars.get(code, []) if b.date < day]
        past = sorted(history_extra.get(code, []) + past, key=lambda b: b.date)
        grid = Grid(table, day, inst.market)
        today_daily = next((b for b in krx.bars.get(code, []) if b.date == day), None)
        if (code, day) in intraday:
            bars, src = intraday[(code, day)]
        elif today_daily is not None:
            bars = spread_daily_bar(today_daily, random.Random(f"{config.seed}:{day}:{code}:spread"), grid, times)
            src = f"{recorded.KRX_DAILY} (daily bar spread over the session)"
        else:
            continue
        prev = past[-1] if past else None
        history[code] = past
        tapes[code] = DayTape(
            inst,
            day,
            bars,
            prev_close=prev.close if prev else bars[0].open,
            prev_volume=prev.volume if prev else 0,
            seed=config.seed,
            grid=grid,
            ticks_per_minute=config.ticks_per_minute,
            source=src,
            times=times,
        )
        sources.setdefault(src, []).append(code)
    description = "; ".join(f"{src}: {len(codes)} codes" for src, codes in sources.items())
    return ReplayMarket(
        day, tapes, history, False, f"recorded {day.isoformat()} from {data_dir}: {description}", table, times
    )
