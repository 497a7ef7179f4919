"""The sandbox market model: a replayed KRX day built from recorded bars.

Every replayed bar (a recorded 1-minute bar, a recorded 5-minute bar, or a minute bar derived from a
daily bar) is turned into trade prints by ``generate_bar_ticks`` and into order-book updates by
``DayTape``, seeded by ``seed:date:code:bar-index`` so the result does not depend on the order bars are
generated in. The market state at a sim time t is a pure function of t (the prints and book updates
with time <= t), which is what makes clock jumps and restarts trivial.

Print count and size (calibrated). The real KIS H0STCNT0 frames in ``ticks/`` carry the day's
cumulative volume (ACML_VOL), trading value (ACML_TR_PBMN) and trade counts (SELN_CNTG_CSNU +
SHNU_CNTG_CSNU). For 005930 they give (``CALIBRATION_FRAMES``):

    2023-03-24 11:26:16   9,694,968 shares /  41,725 prints = 232.35 shares a print at VWAP  62,700
    2026-07-24 11:52:14  11,701,513 shares / 216,795 prints =  53.98 shares a print at VWAP 257,549

(285 and 1,259 prints a minute on average since 09:00). The value of a print hardly moves (14.6 vs
13.9 million KRW) while the price quadruples, so the mean print size scales with the price:
``mean_print_size(p) = 232.35 × (p / 62,700)^-1.033``, the power law through both points (about 14
million KRW a print: 650 shares at 23,150, 74 at 190,100, 14 at 949,000). Print sizes are heavy-tailed:
1 + ⌊X⌋ with X lognormal (σ = ``PRINT_SIZE_SIGMA``, mean set so that the print mean is the calibrated
one), and ``ROUND_LOT_SHARE`` of the prints of 10 shares or more are rounded to a round lot (its leading
digit: 100, 200, 3,000). A bar's prints are drawn from that distribution until they cover its volume
and the last one is trimmed, so the NUMBER of prints follows from the volume: volume / mean size, e.g.
about 800 a minute for 005930 on 2026-02-20 (24.2 M shares at 190,100) and 7-120 for most of the other
top-50 names. ``TapeDensity`` scales the count (``scale``: 3 = three times as many, smaller prints) or
caps it (the light tape of the tests: about 20 a minute per stock at most). Each bar has at least one
print per anchor and per minute and at most one per share.

Prices. The bar's anchors are its open, its high and its low (in random order) and its close;
consecutive equal anchors are merged. The path walks monotonically from each anchor to the next through
grid prices strictly between them (repeats allowed), with ``BOUNCE`` of the in-between prints stepping one
tick back (the bid-ask bounce), so every print lies inside [low, high], the first print is the open, the
high and the low are each touched and the last print is the close. Recorded prices are authoritative:
an off-grid recorded high/low (57 half-tick values in the 2026 KRX window) is printed as recorded; every
generated in-between price is on the grid. A print above the previous one is a buy (it lifted the ask),
below it a sell (it hit the bid); at the same price the side repeats with probability ``SIDE_PERSISTENCE``.

Times, the open and the close. Print times are sorted random milliseconds inside [start, end) with at
least one print in every minute of a multi-minute bar. A bar starting at 09:00 opens with the opening
auction: one print at 09:00:00.000 carrying 40-70 % of the bar's first-minute volume. A single-print bar
(the 15:30 closing auction) is one print at 15:30:00.000. For a stock/day with only a daily bar,
``spread_daily_bar`` first derives 380 continuous minute bars (09:00–15:19) plus a 15:30 closing-auction
print: minute closes follow a bridge from the open to the close on the grid inside [low, high], the
minute whose prices come nearest the day's high (low) gets the day's high (low), and volumes follow
``intraday_profile``, the U-shape fitted to the recorded Yahoo 5-minute bars (10 names × 42 days: the
first ten minutes trade about 4× and the last ten 2.4× the midday rate), plus 1-2.5 % of the day in the
first minute for the opening auction (the recorded CREON 1-minute day has 3.3 % of its volume in the
first minute) and 3-8 % in the closing auction (each minute >= 4 shares, exact sum). Re-aggregating those
minute bars gives the recorded daily bar exactly. Since the print count follows the volume, the print
rate has the same U-shape. Bars with zero volume produce no prints (Yahoo's first 5-minute bar of each
day is such a bar).

The order book. Ten levels a side on the grid (0/0 beyond the daily limits), level quantities drawn
lognormal around ``BOOK_DEPTH_SHARE`` of the day's volume (the real H0STASP0/H0STCNT0 frames show
0.2-2.9 % of the volume traded by noon per level). The book changes on every print (the print takes its
volume from the touched level, refilled when it runs out) and between prints: every gap between two
prints carries one or two quote updates (``QUOTE_EXTRA``; 1.5 per print on average, and one more after
a bar's last print, so quote updates without a trade are at least as frequent as prints). A quote update
adds to or cancels part of one level; the last one before a print moves the touch where the print needs
it. Every published book brackets the last print (best bid <= last <= best ask), a buy prints at the
best ask and a sell at the best bid, and the spread is one tick unless the price jumps several ticks
between two prints (then the bid stays at the last print until the buy).

Memory. Per bar the tape keeps its end state, end book and minute aggregates; the prints and book
updates themselves live in a small per-stock cache (``BAR_CACHE``) and are regenerated on demand.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import logging
import math
import random
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from apps.core.krx.rules import TickTable
from apps.sandbox import data as recorded
from apps.sandbox.calendar import SandboxCalendar
from apps.sandbox.clock import OPEN_S, REGULAR, SessionTimes
from apps.sandbox.config import REAL_TAPE, SandboxConfig, TapeDensity
from apps.sandbox.data import DailyBar, Instrument, IntradayBar

logger = logging.getLogger("apps.sandbox")

BUY = "1"
SELL = "5"
SESSION_MINUTES = REGULAR.minutes  # 380 on a regular day

# --- calibration ----------------------------------------------------------------------------------

#: Real H0STCNT0 records of 005930 (``ticks/kis_websocket_real_frames_005930.txt``): time, ACML_VOL,
#: SELN_CNTG_CSNU + SHNU_CNTG_CSNU and ACML_TR_PBMN. The tests check these against the file.
CALIBRATION_FRAMES: tuple[tuple[str, int, int, int], ...] = (
    ("2023-03-24 11:26:16", 9_694_968, 25_807 + 15_918, 607_878_273_600),
    ("2026-07-24 11:52:14", 11_701_513, 113_664 + 103_131, 3_013_709_268_750),
)
_CAL = [(value / volume, volume / count) for _t, volume, count, value in CALIBRATION_FRAMES]
#: (VWAP, mean shares a print) of the first frame, and the power law through both frames.
CAL_PRICE, CAL_MEAN_SIZE = _CAL[0]
PRINT_SIZE_EXPONENT = math.log(_CAL[0][1] / _CAL[1][1]) / math.log(_CAL[1][0] / _CAL[0][0])  # 1.033
#: Lognormal shape of the print sizes (mean / median = e^(σ²/2) = 3.6): most prints are small, a few are
#: blocks 30× the mean. The frames fix only the mean; the shape is the usual heavy right tail.
PRINT_SIZE_SIGMA = 1.6
#: Share of the prints of >= 10 shares that are round lots (100, 200, 3,000 ...).
ROUND_LOT_SHARE = 0.35
#: Share of the in-between prints that step one tick back (bid-ask bounce).
BOUNCE = 0.3
#: Probability that a print at the previous print's price has the previous print's side.
SIDE_PERSISTENCE = 0.6
#: The opening auction print's share of the first minute's volume of a bar starting at 09:00.
OPENING_PRINT_SHARE = (0.4, 0.7)
#: Extra opening-auction volume in the first minute of a spread daily bar (share of the continuous volume).
OPENING_AUCTION_SHARE = (0.01, 0.025)
#: Closing-auction volume of a spread daily bar (share of the day).
CLOSING_AUCTION_SHARE = (0.03, 0.08)
#: Probability of a second quote update in a gap between prints (1 + this per print on average).
QUOTE_EXTRA = 0.5
#: Mean shares per book level as a share of the day's volume, and the lognormal spread of a level.
BOOK_DEPTH_SHARE = 0.008
BOOK_DEPTH_SIGMA = 0.7
#: Quote updates hit level k with probability ~ e^(-0.4 k) (the top of the book moves most).
BOOK_LEVEL_DECAY = 0.4
#: Bars whose prints and book updates a tape keeps in memory (the rest is regenerated on demand).
BAR_CACHE = 8
#: End points of recent ``events`` calls a tape remembers (each WebSocket listener resumes from its own).
RESUME_POINTS = 4
#: Longest random end of the closing call auction, whole seconds (krx-rules §3.5: up to 30 s).
CLOSING_RANDOM_END_S = 30
#: A running-state checkpoint every this many prints of a bar (``state_at`` applies at most this many).
CHECKPOINT_EVERY = 64


def intraday_profile(minute: int, session_minutes: int = SESSION_MINUTES) -> float:
    """Relative volume rate of continuous-session minute ``minute`` (0 = the open, ``session_minutes`` - 1 = the
    last continuous minute: 379 = 15:19 on a regular day; a shifted day keeps the shape over its own session).

    Least-squares fit to the mean 5-minute slot shares of the recorded Yahoo 5-minute bars (10 names,
    42 days): 1 + 5.4·e^(−m/10) + 3.2·e^(−m/100) + 3.6·e^(−(379−m)/80)."""
    return (
        1.0
        + 5.4 * math.exp(-minute / 10.0)
        + 3.2 * math.exp(-minute / 100.0)
        + 3.6 * math.exp(-(session_minutes - 1 - minute) / 80.0)
    )


def mean_print_size(price: float, density: TapeDensity = REAL_TAPE) -> float:
    """Calibrated mean shares per print at ``price`` (>= 1), scaled by ``density``."""
    if price <= 0:
        return 1.0
    return max(1.0, CAL_MEAN_SIZE * (price / CAL_PRICE) ** -PRINT_SIZE_EXPONENT / density.scale)


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

    def above(self, price: int) -> int:
        """The nearest grid price strictly above ``price`` (on or off the grid)."""
        return self.table.ceil(price + 1, self.on, self.market)

    def below(self, price: int) -> int:
        """The nearest grid price strictly below ``price`` (on or off the grid; never below 1)."""
        return self.table.floor(price - 1, self.on, self.market) if price > 1 else 1

    def on_grid(self, price: int) -> bool:
        return self.table.on_grid(price, self.on, self.market)

    def between(self, low: int, high: int) -> list[int]:
        return self.table.grid_between(low, high, self.on, self.market)


#: A print as a tape keeps it: (t_ms, price, volume, side). Tapes keep prints and books as plain tuples of
#: plain values, which the garbage collector stops tracking: with named tuples or dataclasses the
#: hundreds of thousands of cached prints and books made each full collection a 100-200 ms pause of the
#: send loop. The readers hand out ``Tick`` and ``OrderBook`` (named tuples with the same fields).
RawPrint = tuple[int, int, int, str]
RawBook = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], int, int]


class Tick(NamedTuple):
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
        # Positional construction: several times faster than dataclasses.replace (it runs once per flush).
        return RunningState(
            self.count,
            self.open,
            self.high,
            self.low,
            self.last,
            self.open_ms,
            self.high_ms,
            self.low_ms,
            self.last_ms,
            self.last_side,
            self.last_volume,
            self.volume,
            self.value,
            self.buy_volume,
            self.sell_volume,
            self.buy_count,
            self.sell_count,
            self.first_volume,
        )

    def apply(self, tick: Tick | RawPrint) -> None:
        """Fold one print into the state (prints must come in time order)."""
        t_ms, price, volume, side = tick
        if self.count == 0:
            self.open = self.high = self.low = price
            self.open_ms = self.high_ms = self.low_ms = t_ms
            self.first_volume = volume
        if price > self.high:
            self.high, self.high_ms = price, t_ms
        if price < self.low:
            self.low, self.low_ms = price, t_ms
        self.count += 1
        self.last, self.last_ms, self.last_side, self.last_volume = price, t_ms, side, volume
        self.volume += volume
        self.value += price * volume
        if side == BUY:
            self.buy_volume += volume
            self.buy_count += 1
        else:
            self.sell_volume += volume
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


class OrderBook(NamedTuple):
    """10 levels per side; level 1 is the best price; 0/0 beyond the daily limits. ``total_ask`` and
    ``total_bid`` are the sums of the quantities (kept, since every record of the book needs them)."""

    asks: tuple[int, ...]
    bids: tuple[int, ...]
    ask_qty: tuple[int, ...]
    bid_qty: tuple[int, ...]
    total_ask: int
    total_bid: int


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


def print_sizes(total: int, mean: float, rng: random.Random) -> list[int]:
    """Print sizes drawn from the calibrated distribution until they cover ``total`` (exact sum).

    A size is 1 + ⌊X⌋ with X lognormal of mean ``mean`` − 0.5 (so the sizes average ``mean``); sizes of
    10 or more become round lots with probability ``ROUND_LOT_SHARE``; the last size is trimmed."""
    if total <= 0:
        return []
    mean = max(1.0, mean)
    mu = math.log(mean - 0.5) - PRINT_SIZE_SIGMA * PRINT_SIZE_SIGMA / 2
    draw = rng.lognormvariate
    uniform = rng.random
    sizes: list[int] = []
    covered = 0
    while covered < total:
        size = 1 + int(draw(mu, PRINT_SIZE_SIGMA))
        if size >= 10 and uniform() < ROUND_LOT_SHARE:
            unit = 10 ** (len(str(size)) - 1)
            size = max(unit, (size + unit // 2) // unit * unit)
        sizes.append(size)
        covered += size
    sizes[-1] -= covered - total
    return sizes


def _split_to(sizes: list[int], count: int) -> None:
    """Split the largest sizes in place until there are ``count`` of them (sum unchanged)."""
    while len(sizes) < count:
        k = max(range(len(sizes)), key=sizes.__getitem__)
        if sizes[k] < 2:
            return
        half = sizes[k] // 2
        sizes[k] -= half
        sizes.insert(k + 1, half)


def _bar_mean_size(bar: IntradayBar, density: TapeDensity) -> float:
    mean = mean_print_size((bar.open + bar.high + bar.low + bar.close) / 4, density)
    if density.max_per_minute > 0:
        minutes = max(bar.end_s - bar.start_s, 60) / 60
        mean = max(mean, bar.volume / (density.max_per_minute * minutes))
    return mean


def _path(anchors: list[int], n: int, rng: random.Random, grid: Grid) -> list[int]:
    """``n`` prices from anchor to anchor (module docstring: monotone walk plus one-tick bounces)."""
    if len(anchors) == 1:
        return [anchors[0]] * n
    segments = len(anchors) - 1
    weights = [abs(anchors[i + 1] - anchors[i]) + 1 for i in range(segments)]
    counts = [0] * segments
    for i in rng.choices(range(segments), weights=weights, k=n - len(anchors)):
        counts[i] += 1
    prices: list[int] = []
    for i in range(segments):
        a, b = anchors[i], anchors[i + 1]
        lo, hi = min(a, b), max(a, b)
        prices.append(a)
        if not counts[i]:
            continue
        inner = [p for p in grid.between(lo, hi) if lo < p < hi]
        picks = rng.choices([a, *inner], k=counts[i])
        picks.sort(reverse=b < a)
        for k, p in enumerate(picks):
            if rng.random() < BOUNCE:
                back = grid.below(p) if b > a else grid.above(p)
                if lo <= back <= hi:
                    picks[k] = back
        prices.extend(picks)
    prices.append(anchors[-1])
    return prices


def generate_bar_ticks(
    bar: IntradayBar,
    rng: random.Random,
    grid: Grid,
    density: TapeDensity = REAL_TAPE,
    *,
    prev_price: int | None = None,
    open_s: int = OPEN_S,
) -> list[Tick]:
    """Prints for one bar; see the module docstring for the method and the invariants.

    ``prev_price`` is the price of the print before this bar (the previous close at the day's start): the
    first print's side follows from it. ``open_s``: the day's open (a bar starting there opens with the
    opening auction print)."""
    return [Tick(*p) for p in bar_prints(bar, rng, grid, density, prev_price=prev_price, open_s=open_s)]


def bar_prints(
    bar: IntradayBar,
    rng: random.Random,
    grid: Grid,
    density: TapeDensity = REAL_TAPE,
    *,
    prev_price: int | None = None,
    open_s: int = OPEN_S,
) -> list[RawPrint]:
    """``generate_bar_ticks`` as the plain tuples a tape keeps."""
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
    if duration_ms <= 0:
        # A single-price call (the closing auction): one print per anchor at the bar's time.
        vols = _allocate(volume, [rng.expovariate(1.0) for _ in anchors], 1)
        prices = list(anchors)
        offsets = [0] * len(prices)
    else:
        need = min(volume, max(len(anchors), minutes if minutes > 1 else 1))
        mean = _bar_mean_size(bar, density)
        opening = bar.start_s == open_s
        if opening:
            first_minute = volume * min(1.0, 60000 / duration_ms)
            v_open = max(1, min(int(first_minute * rng.uniform(*OPENING_PRINT_SHARE)), volume - (need - 1)))
            vols = [v_open, *print_sizes(volume - v_open, mean, rng)]
        else:
            vols = print_sizes(volume, mean, rng)
        _split_to(vols, need)
        n = len(vols)
        prices = _path(anchors, n, rng, grid)
        offsets = [rng.randrange(0, duration_ms) for _ in range(n)]
        if minutes > 1 and n >= minutes:
            for m in range(minutes):
                offsets[m] = rng.randrange(m * 60000, min((m + 1) * 60000, duration_ms))
        offsets.sort()
        offsets[0] = 0 if opening else min(offsets[0], rng.randrange(0, min(2000, duration_ms)))
    start_ms = bar.start_s * 1000
    ticks: list[RawPrint] = []
    side = BUY if rng.random() < 0.5 else SELL
    prev = prev_price
    for price, vol, off in zip(prices, vols, offsets, strict=True):
        if prev is None or price == prev:
            if rng.random() >= SIDE_PERSISTENCE:
                side = SELL if side == BUY else BUY
        else:
            side = BUY if price > prev else SELL
        ticks.append((start_ms + off, price, vol, side))
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
    auction = int(total * rng.uniform(*CLOSING_AUCTION_SHARE)) if total >= 4 * (session_minutes + 1) else 0
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
    profile = [intraday_profile(slots[m], session_minutes) * rng.lognormvariate(0.0, 0.5) for m in range(k)]
    profile[0] += sum(profile) * rng.uniform(*OPENING_AUCTION_SHARE)
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


# --- one stock's day ------------------------------------------------------------------------------


@dataclass(slots=True)
class BarTape:
    """The prints and book updates of one bar, in time order.

    ``ev_*`` are the events: a print (``ev_tick`` = its index in ``ticks``) or a quote update (-1), each
    with the book after it. ``checkpoints[c]`` is the running state after the first c·CHECKPOINT_EVERY
    prints (``checkpoints[0]`` the state before the bar)."""

    ticks: list[RawPrint]
    tick_t: list[int]
    checkpoints: list[RunningState]
    ev_t: list[int]
    ev_tick: list[int]
    ev_book: list[RawBook]
    end_state: RunningState
    end_touch: tuple[int, int, RawBook]
    minutes: list[list[int]]  # [minute_s, open, high, low, close, volume, value] per minute with prints


class TapeEvent(NamedTuple):
    """One event of the replayed tape for the WebSocket listeners. ``state`` is the running state after
    it (a shared, mutable object: read it at once); ``prev_book`` the book before it."""

    t_ms: int
    tick: Tick | None
    state: RunningState
    book: OrderBook
    prev_book: OrderBook


class DayTape:
    """One stock's replayed day: bars, lazily generated prints and book updates, cumulative states.

    Invariants: bars are sorted and non-overlapping; the events of bar i lie in [start_i, end_i) (a
    single-print bar at start_i); bars are first generated in order, so ``_end_states[i]`` is the state
    after every print of bars 0..i and ``_end_touch[i]`` the book after bar i's last event (or the one
    before it). A bar dropped from the cache is regenerated identically from those and its seed.
    """

    def __init__(
        self,
        instrument: Instrument,
        date: dt.date,
        bars: list[IntradayBar],
        *,
        prev_close: int,
        prev_volume: int,
        prev_value: int = 0,
        seed: int,
        grid: Grid,
        density: TapeDensity = REAL_TAPE,
        source: str,
        times: SessionTimes = REGULAR,
        random_end_s: int = CLOSING_RANDOM_END_S,
    ) -> None:
        self.instrument = instrument
        self.times = times
        self.code = instrument.code
        self.date = date
        #: The closing print's time: the close plus the closing auction's random end (0 to ``random_end_s``
        #: whole seconds, seeded per stock and day; krx-rules §3.5).
        self.closing_print_ms = times.close_s * 1000
        if random_end_s > 0 and bars and bars[-1].start_s == bars[-1].end_s == times.close_s:
            shift = random.Random(f"{seed}:{date.isoformat()}:{instrument.code}:random-end").randint(0, random_end_s)
            last = bars[-1]
            bars = [*bars[:-1], dataclasses.replace(last, start_s=last.start_s + shift, end_s=last.end_s + shift)]
            self.closing_print_ms = (times.close_s + shift) * 1000
        self.bars = bars
        self.prev_close = prev_close
        self.prev_volume = prev_volume
        #: The previous session's traded value (KRW); its volume × its close where the daily bar has no amount.
        self.prev_value = prev_value or prev_volume * prev_close
        self.seed = seed
        self.grid = grid
        self.density = density
        self.source = source
        self.upper_limit, self.lower_limit = grid.table.price_limits(prev_close, date, instrument.market)
        self.depth = max(1.0, BOOK_DEPTH_SHARE * sum(b.volume for b in bars))
        self._starts_ms = [b.start_s * 1000 for b in bars]
        self._end_states: list[RunningState] = []
        self._end_touch: list[tuple[int, int, RawBook]] = []
        self._minutes: list[list[list[int]]] = []
        self._last_tick_ms: list[int] = []
        self._counts: list[tuple[int, int]] = []
        self._cache: OrderedDict[int, BarTape] = OrderedDict()
        self._asks: dict[int, tuple[int, ...]] = {}
        self._bids: dict[int, tuple[int, ...]] = {}
        self._above: dict[int, int] = {}
        self._below: dict[int, int] = {}
        self._preopen: tuple[int, int, RawBook] | None = None
        self._resume: OrderedDict[int, tuple[RunningState, OrderBook]] = OrderedDict()
        #: Called with (bar index, its prints) when a bar is generated for the first time, in bar order (the VI
        #: scan of ``apps.sandbox.day`` reads each bar once, inside the generation's time budget).
        self.bar_listeners: list[Callable[[int, list[RawPrint]], None]] = []

    # --- book ladders -------------------------------------------------------------------------------
    def _ask_ladder(self, ask1: int) -> tuple[int, ...]:
        ladder = self._asks.get(ask1)
        if ladder is None:
            out, p, upper = [], ask1, self.upper_limit
            for _ in range(10):
                out.append(p if p > 0 and (upper == 0 or p <= upper) else 0)
                p = self.grid.above(p)
            ladder = self._asks[ask1] = tuple(out)
        return ladder

    def _bid_ladder(self, bid1: int) -> tuple[int, ...]:
        ladder = self._bids.get(bid1)
        if ladder is None:
            out, p, lower = [], bid1, self.lower_limit
            for _ in range(10):
                ok = p > 0 and p >= lower
                out.append(p if ok else 0)
                p = self.grid.below(p) if ok and p > 1 else 0
            ladder = self._bids[bid1] = tuple(out)
        return ladder

    def _touch_for(self, price: int, side: str, last: int | None) -> tuple[int, int]:
        """(best ask, best bid) just before a print at ``price``: a buy at the ask, a sell at the bid, the
        last print bracketed."""
        if side == BUY:
            if last is not None and last < price:
                return price, last
            below = self._below.get(price)
            if below is None:
                below = self._below[price] = self.grid.below(price)
            return price, below
        if last is not None and last > price:
            return last, price
        above = self._above.get(price)
        if above is None:
            above = self._above[price] = self.grid.above(price)
        return above, price

    def _preopen_touch(self) -> tuple[int, int, RawBook]:
        """The book before the first print: bid at the previous close, one tick of spread."""
        if self._preopen is None:
            rng = random.Random(f"{self.seed}:{self.date.isoformat()}:{self.code}:preopen")
            base = self.prev_close if self.grid.on_grid(self.prev_close) else self.grid.floor(self.prev_close)
            ask1, bid1 = self.grid.above(base), base
            asks, bids = self._ask_ladder(ask1), self._bid_ladder(bid1)
            aq = tuple(self._fresh(rng) if p else 0 for p in asks)
            bq = tuple(self._fresh(rng) if p else 0 for p in bids)
            self._preopen = (ask1, bid1, (asks, bids, aq, bq, sum(aq), sum(bq)))
        return self._preopen

    def _fresh(self, rng: random.Random) -> int:
        return int(self.depth * rng.lognormvariate(0.0, BOOK_DEPTH_SIGMA)) + 1

    # --- generation ---------------------------------------------------------------------------------
    def _generate(self, index: int) -> BarTape:
        """Bar ``index`` from its seed and the end state/book of bar ``index - 1`` (which must exist)."""
        bar = self.bars[index]
        before = self._end_states[index - 1] if index > 0 else RunningState()
        key = f"{self.seed}:{self.date.isoformat()}:{self.code}:{index}"
        ticks = bar_prints(
            bar,
            random.Random(key),
            self.grid,
            self.density,
            prev_price=before.last if before.count else self.prev_close,
            open_s=self.times.open_s,
        )
        state = before.copy()
        checkpoints = [state.copy()]
        minutes: list[list[int]] = []
        for n, t in enumerate(ticks, 1):
            state.apply(t)
            if n % CHECKPOINT_EVERY == 0:
                checkpoints.append(state.copy())
            t_ms, price, volume, _side = t
            minute = t_ms // 60000 * 60
            if minutes and minutes[-1][0] == minute:
                agg = minutes[-1]
                if price > agg[2]:
                    agg[2] = price
                if price < agg[3]:
                    agg[3] = price
                agg[4] = price
                agg[5] += volume
                agg[6] += price * volume
            else:
                minutes.append([minute, price, price, price, price, volume, price * volume])
        start_touch = self._end_touch[index - 1] if index > 0 else self._preopen_touch()
        ev_t, ev_tick, ev_book, end_touch = self._book_events(
            bar, ticks, random.Random(key + ":book"), start_touch, before.last if before.count else None
        )
        return BarTape(ticks, [t[0] for t in ticks], checkpoints, ev_t, ev_tick, ev_book, state, end_touch, minutes)

    def _book_events(
        self,
        bar: IntradayBar,
        ticks: list[RawPrint],
        rng: random.Random,
        start: tuple[int, int, RawBook],
        last: int | None,
    ) -> tuple[list[int], list[int], list[RawBook], tuple[int, int, RawBook]]:
        """The book after every print and every quote update of one bar (module docstring)."""
        ask1, bid1, book = start
        asks, bids = book[0], book[1]
        aq, bq = list(book[2]), list(book[3])
        ev_t: list[int] = []
        ev_tick: list[int] = []
        ev_book: list[RawBook] = []
        rand = rng.random
        fresh = self._fresh

        def move(new_ask: int, new_bid: int) -> None:
            nonlocal ask1, bid1, asks, bids, aq, bq
            if new_ask != ask1:
                old = dict(zip(asks, aq, strict=True))
                ask1, asks = new_ask, self._ask_ladder(new_ask)
                aq = [(old.get(p) or fresh(rng)) if p else 0 for p in asks]
            if new_bid != bid1:
                old = dict(zip(bids, bq, strict=True))
                bid1, bids = new_bid, self._bid_ladder(new_bid)
                bq = [(old.get(p) or fresh(rng)) if p else 0 for p in bids]

        def change() -> None:
            """Add to or cancel part of one level (the top levels most often)."""
            qty, ladder = (aq, asks) if rand() < 0.5 else (bq, bids)
            level = min(9, int(rng.expovariate(BOOK_LEVEL_DECAY)))
            if not ladder[level]:
                level = 0
                if not ladder[0]:
                    qty, ladder = (bq, bids) if qty is aq else (aq, asks)
                    if not ladder[0]:
                        return
            if rand() < 0.5:
                qty[level] += 1 + int(fresh(rng) * rng.uniform(0.05, 0.5))
            else:
                qty[level] = max(1, qty[level] - 1 - int(qty[level] * rng.uniform(0.05, 0.6)))

        def emit(t_ms: int, tick_index: int) -> None:
            ev_t.append(t_ms)
            ev_tick.append(tick_index)
            ask_qty, bid_qty = tuple(aq), tuple(bq)
            ev_book.append((asks, bids, ask_qty, bid_qty, sum(ask_qty), sum(bid_qty)))

        continuous = bar.end_s > bar.start_s
        prev_t = bar.start_s * 1000
        for j, (tick_ms, price, volume, side) in enumerate(ticks):
            target = self._touch_for(price, side, last)
            opening = j == 0 and tick_ms == self.times.open_s * 1000
            if continuous and not opening:
                count = 2 if rand() < QUOTE_EXTRA else 1
                span = tick_ms - prev_t + 1
                times = sorted(prev_t + int(rand() * span) for _ in range(count))
                for k, t_ms in enumerate(times):
                    if k == count - 1 and target != (ask1, bid1):
                        move(*target)
                    else:
                        change()
                    emit(t_ms, -1)
            move(*target)
            qty = aq if side == BUY else bq
            if qty[0]:
                qty[0] -= volume
                if qty[0] <= 0:
                    qty[0] = 1 + int(fresh(rng) * rng.uniform(0.1, 0.5))  # a new order rests at the price
            emit(tick_ms, j)
            last = price
            prev_t = tick_ms
        if continuous and ticks:
            change()
            emit(rng.randint(prev_t, bar.end_s * 1000 - 1), -1)
        end = (ask1, bid1, ev_book[-1]) if ev_book else start
        return ev_t, ev_tick, ev_book, end

    def prepare(self, index: int) -> None:
        """Generate bars up to ``index`` once (end states, end books, minute aggregates)."""
        index = min(index, len(self.bars) - 1)
        while len(self._end_states) <= index:
            i = len(self._end_states)
            tape = self._generate(i)
            self._end_states.append(tape.end_state)
            self._end_touch.append(tape.end_touch)
            self._minutes.append(tape.minutes)
            self._last_tick_ms.append(tape.tick_t[-1] if tape.tick_t else -1)
            self._counts.append((len(tape.ticks), len(tape.ev_t) - len(tape.ticks)))
            self._remember(i, tape)
            for listener in self.bar_listeners:
                listener(i, tape.ticks)

    @property
    def prepared(self) -> int:
        """How many bars (from the first) have been generated at least once."""
        return len(self._end_states)

    def _remember(self, index: int, tape: BarTape) -> None:
        self._cache[index] = tape
        self._cache.move_to_end(index)
        while len(self._cache) > BAR_CACHE:
            self._cache.popitem(last=False)

    def bar_tape(self, index: int) -> BarTape:
        """The prints and book updates of bar ``index`` (from the cache or regenerated)."""
        tape = self._cache.get(index)
        if tape is not None:
            self._cache.move_to_end(index)
            return tape
        if len(self._end_states) <= index:
            self.prepare(index)
            return self._cache[index]
        tape = self._generate(index)
        self._remember(index, tape)
        return tape

    # --- reading ------------------------------------------------------------------------------------
    def bar_ticks(self, index: int) -> list[Tick]:
        """The prints of bar ``index``."""
        return [Tick(*p) for p in self.bar_tape(index).ticks]

    def all_ticks(self) -> list[Tick]:
        """Every print of the day."""
        return [Tick(*p) for i in range(len(self.bars)) for p in self.bar_tape(i).ticks]

    def counts(self) -> tuple[int, int]:
        """(prints, quote updates without a print) of the whole day."""
        self.prepare(len(self.bars) - 1)
        return sum(c[0] for c in self._counts), sum(c[1] for c in self._counts)

    def _bar_at(self, t_ms: int) -> int:
        return bisect.bisect_right(self._starts_ms, t_ms) - 1

    def bar_index(self, t_ms: int) -> int:
        """Index of the bar whose events include ``t_ms`` (the last bar starting at or before it; -1 before
        the first)."""
        return self._bar_at(t_ms)

    def ready_for(self, t_ms: int) -> bool:
        """True when every bar up to ``t_ms`` has been generated once (reading up to it costs little)."""
        return self.prepared > min(self._bar_at(t_ms), len(self.bars) - 1)

    def state_at(self, t_ms: int) -> RunningState:
        """State after every print with time <= ``t_ms`` (a fresh copy)."""
        i = self._bar_at(t_ms)
        if i < 0:
            return RunningState()
        tape = self.bar_tape(i)
        j = bisect.bisect_right(tape.tick_t, t_ms)
        c = j // CHECKPOINT_EVERY
        state = tape.checkpoints[c].copy()
        for t in tape.ticks[c * CHECKPOINT_EVERY : j]:
            state.apply(t)
        return state

    def order_book_at(self, t_ms: int) -> OrderBook:
        """The book in force at ``t_ms`` (after every event with time <= ``t_ms``)."""
        i = self._bar_at(t_ms)
        if i < 0:
            return OrderBook(*self._preopen_touch()[2])
        tape = self.bar_tape(i)
        k = bisect.bisect_right(tape.ev_t, t_ms)
        if k:
            return OrderBook(*tape.ev_book[k - 1])
        return OrderBook(*(self._end_touch[i - 1][2] if i > 0 else self._preopen_touch()[2]))

    def events(self, after_ms: int, until_ms: int) -> Iterator[TapeEvent]:
        """Prints and quote updates with after_ms < time <= until_ms, in order (see ``TapeEvent``)."""
        if until_ms <= after_ms:
            return
        resume = self._resume.get(after_ms)
        if resume is not None:
            state, prev_book = resume[0].copy(), resume[1]
        else:
            state, prev_book = self.state_at(after_ms), self.order_book_at(after_ms)
        i = max(self._bar_at(after_ms), 0)
        while i < len(self.bars) and self._starts_ms[i] <= until_ms:
            tape = self.bar_tape(i)
            ev_t, ev_tick, ev_book, ticks = tape.ev_t, tape.ev_tick, tape.ev_book, tape.ticks
            first = bisect.bisect_right(ev_t, after_ms)
            end = bisect.bisect_right(ev_t, until_ms)
            for k in range(first, end):
                j = ev_tick[k]
                tick = Tick(*ticks[j]) if j >= 0 else None
                if tick is not None:
                    state.apply(tick)
                book = OrderBook(*ev_book[k])
                yield TapeEvent(ev_t[k], tick, state, book, prev_book)
                prev_book = book
            i += 1
        # The next call usually starts where this one ended (one per flush): keep that point.
        self._resume[until_ms] = (state.copy(), prev_book)
        while len(self._resume) > RESUME_POINTS:
            self._resume.popitem(last=False)

    def ticks_between(self, after_ms: int, until_ms: int) -> list[Tick]:
        """Prints with after_ms < time <= until_ms, in time order."""
        if until_ms <= after_ms:
            return []
        out: list[Tick] = []
        i = max(self._bar_at(after_ms), 0)
        while i < len(self.bars) and self._starts_ms[i] <= until_ms:
            tape = self.bar_tape(i)
            lo = bisect.bisect_right(tape.tick_t, after_ms)
            hi = bisect.bisect_right(tape.tick_t, until_ms)
            out.extend(Tick(*p) for p in tape.ticks[lo:hi])
            i += 1
        return out

    def minute_bars(self, until_ms: int) -> list[MinuteBar]:
        """1-minute bars (oldest first) from prints with time <= ``until_ms``; minutes without prints
        have no bar. ``cum_value`` is the day's cumulative trading value at the end of the bar."""
        last = self._bar_at(until_ms)
        if last < 0:
            return []
        self.prepare(last)
        merged: list[list[int]] = []
        for i in range(last + 1):
            if self._last_tick_ms[i] <= until_ms:
                rows = self._minutes[i]
            else:
                rows = []
                for t_ms, price, volume, _side in self.bar_tape(i).ticks:
                    if t_ms > until_ms:
                        break
                    minute = t_ms // 60000 * 60
                    if rows and rows[-1][0] == minute:
                        row = rows[-1]
                        row[2], row[3], row[4] = max(row[2], price), min(row[3], price), price
                        row[5] += volume
                        row[6] += price * volume
                    else:
                        rows.append([minute, price, price, price, price, volume, price * volume])
            for row in rows:
                if merged and merged[-1][0] == row[0]:
                    cur = merged[-1]
                    cur[2], cur[3], cur[4] = max(cur[2], row[2]), min(cur[3], row[3]), row[4]
                    cur[5] += row[5]
                    cur[6] += row[6]
                else:
                    merged.append(list(row))
        out: list[MinuteBar] = []
        value = 0
        for minute, o, h, low, c, vol, val in merged:
            value += val
            out.append(MinuteBar(minute, o, h, low, c, vol, value))
        return out


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
            prev_value=bars[-1].amount,
            seed=config.seed,
            grid=grid,
            density=config.tape_density,
            source="synthetic",
            times=times,
        )
    return ReplayMarket(today, tapes, history, True, "synthetic (no HOGA_DATA_DIR): seeded random walk", table, times)


def replay_session_times(config: SandboxConfig, day: dt.date) -> SessionTimes:
    """The replayed day's session from the sandbox calendar (regular hours when it calls the day closed)."""

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
    creon = recorded.load_creon_daily(data_dir)
    if day >= min(krx.ranked_codes):
        # The history reaches back through every recorded day: the CREON daily bars (1999-2022, adjusted prices)
        # before each code's first KRX bar, then the KRX windows.
        for code in order:
            first_krx = next((b.date for b in krx.bars.get(code, [])), day)
            history_extra[code] = [b for b in creon.get(code, []) if b.date < first_krx]
    else:
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
            prev_value=prev.amount if prev else 0,
            seed=config.seed,
            grid=grid,
            density=config.tape_density,
            source=src,
            times=times,
        )
        sources.setdefault(src, []).append(code)
    description = "; ".join(f"{src}: {len(codes)} codes" for src, codes in sources.items())
    return ReplayMarket(
        day, tapes, history, False, f"recorded {day.isoformat()} from {data_dir}: {description}", table, times
    )
