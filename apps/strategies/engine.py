"""One engine, two clocks: ``Engine`` runs a strategy's callbacks, turns its ``ctx.buy``/``ctx.sell`` calls into
signals, enforces the risk limits, and hands orders to a broker. A backtest (``backtest.py``) drives it with
stored bars and the paper fill model of ``SimBroker``; a live run (``live.py``) with bars built from the tick
stream and a broker that places real paper orders through ``apps.trading.orders.placement.order_place``. The
strategy code, the signal keys and client order ids, the risk checks and the bookkeeping are the same code.

Signals: every ``ctx.buy``/``ctx.sell`` is one signal, keyed by what triggered it (the bar's time, the condition
event, the print) plus the stock and side. Its client order id is ``<prefix>-<sha1(key)[:20]>``, so replaying
the same trigger after a restart asks for the same order (``order_place`` returns the existing one).

Risk limits (``RiskLimits``; 0 means no limit), checked by the engine before any order leaves it:
- ``capital``: cost of the positions plus open buys (at the reference price) plus the new buy;
- ``max_position_value``: shares held and being bought of one stock × price;
- ``max_order_value``: quantity × price of one order;
- ``daily_loss_limit``: equity (cash + positions at the last price) below the day's starting equity by more;
- ``max_orders_per_minute``: orders placed within the last 60 s of market time.
A breach stops the strategy with the reason; stopping cancels every order it still has open.

The paper fill model of backtests (``SimBroker``), and where live fills differ:
- an order placed on a bar's signal fills at the **open of the stock's next bar** (the first print after the
  signal). Live, the order enters the paper exchange after the print that completed the bar, so it fills at the
  first print after that one: a price within the next bar's range (low-high), not necessarily its open;
- a fill takes at most the next bar's volume, the rest waits for later bars (live: the printed volume of each
  print, shared with other paper orders); live MARKET orders may walk a stored order book;
- after an outage of the live host (a worker restart), it catches up on the backlog of prints faster than the
  fill engine books the fills of its orders, so during that catch-up a rule that looks at its position (the
  built-ins do) may see a fill later than the backtest would and decide differently;
- commission ``truncate(amount × rate)`` and the sell tax of the settlement date (``apps.trading.orders.pricing``);
- on minute bars orders are DAY orders: one still open when the day changes expires (as live DAY orders do at
  the close); on daily bars a signal on a day's close fills at the next session's open (a queued order).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from apps.core.krx.calendar import KST
from apps.portfolio.metrics import Point
from apps.trading.orders.pricing import commission_for, tax_for

from .interface import Bar, ConditionSignal, Fill, Strategy, TickEvent

PLACED, REFUSED, SKIPPED, RISK_STOP = "placed", "refused", "skipped", "risk_stop"


@dataclass(frozen=True)
class RiskLimits:
    capital: int
    max_position_value: int = 0
    max_order_value: int = 0
    daily_loss_limit: int = 0
    max_orders_per_minute: int = 0


@dataclass(frozen=True)
class OrderRequest:
    client_order_id: str
    code: str
    side: str
    quantity: int
    price: int  # the reference price of the signal (last close or print)
    at: dt.datetime
    bracket: dict[str, Any] | None = None


@dataclass(frozen=True)
class Submitted:
    ok: bool
    order_id: int | None = None
    code: str = ""
    reason: str = ""
    bracket: str = ""


@dataclass
class SignalRecord:
    key: str
    at: dt.datetime
    code: str
    side: str
    quantity: int
    inputs: dict[str, Any]
    client_order_id: str
    outcome: str
    reason: str = ""
    order_id: int | None = None


class Broker(Protocol):
    def submit(self, request: OrderRequest) -> Submitted: ...

    def cancel_all(self, reason: str) -> int: ...


def client_order_id(prefix: str, key: str) -> str:
    return f"{prefix}-{hashlib.sha1(key.encode()).hexdigest()[:20]}"  # noqa: S324 - an id, not a secret


@dataclass
class Ledger:
    """What the strategy holds and has open, in integer KRW."""

    cash: int
    positions: dict[str, list[int]] = field(default_factory=dict)  # code -> [quantity, cost incl. buy fees]
    pending: dict[str, list[Any]] = field(default_factory=dict)  # client id -> [code, side, remaining, price, day]
    order_times: list[float] = field(default_factory=list)  # epoch seconds (market time) of recent orders
    trades: list[int] = field(default_factory=list)  # net result of each sell
    day: str = ""
    day_start_equity: int = 0


class Engine:
    def __init__(
        self,
        strategy: Strategy,
        *,
        broker: Broker,
        limits: RiskLimits,
        prefix: str,
        record: Callable[[SignalRecord], None],
        on_stop: Callable[[str], None] | None = None,
        state: dict[str, Any] | None = None,
        price_of: Callable[[str], int | None] | None = None,
    ) -> None:
        self.strategy = strategy
        self.broker = broker
        self.limits = limits
        self.prefix = prefix
        self.record = record
        self.on_stop = on_stop
        self.price_of = price_of  # a stock's price when no bar or print of it was seen (live: its quote)
        self.params = strategy.p
        self.now: dt.datetime | None = None
        self.ledger = Ledger(cash=limits.capital)
        self.last_price: dict[str, int] = {}
        self.stopped: str = ""
        self.market_value = 0
        self.equity_points: list[Point] = []
        self.signals = 0
        self._trigger = ""
        self._keys: dict[str, int] = {}
        if state:
            self.load(state)

    # --- state (a live run stores it after each batch) --------------------------------------------------

    def dump(self) -> dict[str, Any]:
        return {"strategy": self.strategy.state, "ledger": asdict(self.ledger), "prices": self.last_price,
                "stopped": self.stopped}  # fmt: skip

    def load(self, state: dict[str, Any]) -> None:
        self.strategy.state = state.get("strategy", {})
        if "ledger" in state:
            self.ledger = Ledger(**state["ledger"])
        self.last_price = dict(state.get("prices", {}))
        self.stopped = state.get("stopped", "")
        self.market_value = sum(q * self.last_price.get(c, 0) for c, (q, _cost) in self.ledger.positions.items())

    # --- the strategy's view (interface.Context) ---------------------------------------------------------

    def position(self, code: str) -> int:
        held = self.ledger.positions.get(code)
        return held[0] if held else 0

    def buy(self, code: str, *, quantity: int | None = None, amount: int | None = None,
            inputs: dict[str, Any] | None = None, bracket: dict[str, Any] | None = None) -> None:  # fmt: skip
        self._signal(code, "BUY", quantity=quantity, amount=amount, inputs=inputs or {}, bracket=bracket)

    def sell(self, code: str, *, quantity: int | None = None, inputs: dict[str, Any] | None = None) -> None:
        self._signal(code, "SELL", quantity=quantity, amount=None, inputs=inputs or {}, bracket=None)

    # --- the clocks' entry points -----------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> None:
        self._price(bar.code, bar.close)
        self.mark(bar.ts)  # the daily loss limit first: a breach stops before the strategy sees the bar
        if self.stopped:
            return
        self.now = bar.ts
        self._trigger = ""  # "bar:<KST minute>", made when a signal needs it (``_key``)
        self.strategy.on_bar(self, bar)

    def on_tick(self, tick: TickEvent) -> None:
        self._price(tick.code, tick.price)
        self.mark(tick.at)
        if self.stopped:
            return
        self.now = tick.at
        self._trigger = f"tick:{tick.stream_id}"
        self.strategy.on_tick(self, tick)

    def on_condition_event(self, event: ConditionSignal) -> None:
        if event.price:
            self.last_price.setdefault(event.code, event.price)
        if self.stopped:
            return
        self.now = event.at
        self._trigger = f"event:{event.event_id}"
        self.strategy.on_condition_event(self, event)

    def on_fill(self, fill: Fill) -> None:
        led = self.ledger
        pending = led.pending.get(fill.client_order_id)
        if pending is not None:
            pending[2] -= fill.quantity
            if pending[2] <= 0:
                del led.pending[fill.client_order_id]
        amount = fill.price * fill.quantity
        held = led.positions.setdefault(fill.code, [0, 0])
        if fill.side == "BUY":
            held[0] += fill.quantity
            held[1] += amount + fill.commission
            led.cash -= amount + fill.commission
            self.market_value += fill.quantity * self.last_price.get(fill.code, fill.price)
        else:
            quantity = min(fill.quantity, held[0])
            removed = held[1] * quantity // held[0] if held[0] else 0
            held[0] -= quantity
            held[1] -= removed
            proceeds = amount - fill.commission - fill.tax
            led.cash += proceeds
            led.trades.append(proceeds - removed)
            self.market_value -= quantity * self.last_price.get(fill.code, fill.price)
            if held[0] == 0:
                del led.positions[fill.code]
        self.strategy.on_fill(self, fill)

    def order_closed(self, client_id: str) -> None:
        """An order ended without filling completely (cancelled, expired, rejected): it holds nothing now."""
        self.ledger.pending.pop(client_id, None)

    def mark(self, at: dt.datetime) -> None:
        """Equity at ``at``; the daily loss limit is checked against the day's starting equity."""
        led = self.ledger
        equity = led.cash + self.market_value
        if not self._day_begin <= at < self._day_end:
            day = at.astimezone(KST).date()
            self._day_begin = dt.datetime.combine(day, dt.time(0), tzinfo=KST)
            self._day_end = self._day_begin + dt.timedelta(days=1)
            iso = day.isoformat()
            if iso != led.day:
                if led.day:
                    self.equity_points.append(Point(dt.date.fromisoformat(led.day), self._day_close_equity))
                led.day, led.day_start_equity = iso, equity
        self._day_close_equity = equity
        limit = self.limits.daily_loss_limit
        if limit and not self.stopped and led.day_start_equity - equity >= limit:
            self.stop(f"daily_loss_limit: lost {led.day_start_equity - equity:,} KRW today (limit {limit:,})")

    def finish(self) -> None:
        if self.ledger.day:
            self.equity_points.append(Point(dt.date.fromisoformat(self.ledger.day), self._day_close_equity))

    def stop(self, reason: str) -> None:
        if self.stopped:
            return
        self.stopped = reason
        self.broker.cancel_all(reason)
        self.ledger.pending.clear()
        if self.on_stop is not None:
            self.on_stop(reason)

    @property
    def equity(self) -> int:
        return self.ledger.cash + self.market_value

    # --- signals ----------------------------------------------------------------------------------------

    _day_close_equity = 0
    _day_begin = _day_end = dt.datetime.min.replace(tzinfo=KST)

    def _price(self, code: str, price: int) -> None:
        held = self.ledger.positions.get(code)
        if held:
            self.market_value += held[0] * (price - self.last_price.get(code, price))
        self.last_price[code] = price

    def _signal(self, code: str, side: str, *, quantity: int | None, amount: int | None,
                inputs: dict[str, Any], bracket: dict[str, Any] | None) -> None:  # fmt: skip
        trigger = self._trigger
        if not trigger and self.now is not None:
            trigger = f"bar:{self.now.astimezone(KST):%Y%m%d%H%M}"
        base = f"{trigger}:{code}:{side}"
        n = self._keys.get(base, 0)
        self._keys[base] = n + 1
        key = base if n == 0 else f"{base}:{n}"
        if len(self._keys) > 1000:
            self._keys.clear()
        cid = client_order_id(self.prefix, key)
        at = self.now or dt.datetime.now(tz=KST)
        self.signals += 1

        def record(outcome: str, qty: int, reason: str = "", order_id: int | None = None) -> None:
            self.record(SignalRecord(key, at, code, side, qty, inputs, cid, outcome, reason, order_id))

        if self.stopped:
            return record(SKIPPED, quantity or 0, f"stopped: {self.stopped}")
        price = self.last_price.get(code)
        if not price and self.price_of is not None:
            price = self.price_of(code)
            if price:
                self._price(code, price)
        if not price:
            return record(REFUSED, quantity or 0, "no_price: no print or bar of the stock yet")
        led = self.ledger
        if side == "BUY":
            qty = quantity if quantity else (amount or 0) // price
            if qty <= 0:
                return record(SKIPPED, 0, "quantity: the amount buys less than one share")
        else:
            selling = sum(p[2] for p in led.pending.values() if p[0] == code and p[1] == "SELL")
            free = self.position(code) - selling
            qty = min(quantity or free, free)
            if qty <= 0:
                return record(SKIPPED, 0, "no_position: nothing held to sell")
        breach = self._breach(code, side, qty, price, at)
        if breach:
            record(RISK_STOP, qty, breach)
            self.stop(breach)
            return None
        result = self.broker.submit(OrderRequest(cid, code, side, qty, price, at, bracket))
        if not result.ok:
            return record(REFUSED, qty, f"{result.code}: {result.reason}" if result.code else result.reason)
        led.pending[cid] = [code, side, qty, price, at.astimezone(KST).date().isoformat()]
        led.order_times.append(at.timestamp())
        return record(PLACED, qty, result.bracket, result.order_id)

    def _breach(self, code: str, side: str, qty: int, price: int, at: dt.datetime) -> str:
        lim, led = self.limits, self.ledger
        if lim.max_orders_per_minute:
            since = at.timestamp() - 60
            led.order_times = [t for t in led.order_times if t > since]
            if len(led.order_times) >= lim.max_orders_per_minute:
                return f"max_orders_per_minute: {len(led.order_times)} orders in the last minute (limit " \
                       f"{lim.max_orders_per_minute})"  # fmt: skip
        value = qty * price
        if lim.max_order_value and value > lim.max_order_value:
            return f"max_order_value: {qty} x {price:,} = {value:,} KRW > {lim.max_order_value:,}"
        if side != "BUY":
            return ""
        buying = sum(p[2] for p in led.pending.values() if p[0] == code and p[1] == "BUY")
        stock_value = (self.position(code) + buying + qty) * price
        if lim.max_position_value and stock_value > lim.max_position_value:
            return f"max_position_value: {code} would be {stock_value:,} KRW > {lim.max_position_value:,}"
        committed = sum(cost for _q, cost in led.positions.values()) + sum(
            p[2] * p[3] for p in led.pending.values() if p[1] == "BUY"
        )
        if committed + value > lim.capital:
            return f"capital: {committed:,} committed + {value:,} > {lim.capital:,} KRW"
        return ""


class SimBroker:
    """The backtest's paper fill model (see the module docstring). ``tax_rate(market, day)``: the sell tax in
    force for a trade on ``day``."""

    def __init__(self, *, commission_rate: Decimal, tax_rate: Callable[[str, dt.date], Decimal],
                 markets: dict[str, str], keep_fills: int | None = None, day_orders: bool = True) -> None:  # fmt: skip
        self.commission_rate = commission_rate
        self.tax_rate = tax_rate
        self.markets = markets
        self.engine: Engine | None = None
        self.pending: dict[str, list[list[Any]]] = {}  # code -> [[request, remaining], ...]
        self.fills: list[Fill] = []  # the first ``keep_fills`` (all when None); ``fill_count`` counts them all
        self.fill_count = 0
        self.keep_fills = keep_fills
        #: Minute bars: DAY orders, expired when the day changes. Daily bars: a signal on a day's close is an order
        #: queued for the next session (as the paper account queues orders placed while the market is closed).
        self.day_orders = day_orders

    def submit(self, request: OrderRequest) -> Submitted:
        self.pending.setdefault(request.code, []).append([request, request.quantity])
        return Submitted(True)

    def cancel_all(self, reason: str) -> int:
        count = sum(len(v) for v in self.pending.values())
        self.pending.clear()
        return count

    def on_bar_open(self, bar: Bar) -> None:
        """Fill the stock's waiting orders at this bar's open (its first print), up to its volume."""
        waiting = self.pending.get(bar.code)
        if not waiting or self.engine is None:
            return
        day = bar.ts.astimezone(KST).date()
        volume = bar.volume
        keep = []
        for entry in waiting:
            request, remaining = entry
            if self.day_orders and request.at.astimezone(KST).date() < day:
                self.engine.order_closed(request.client_order_id)  # a DAY order: expired at its session's close
                continue
            take = min(remaining, volume)
            if take > 0:
                volume -= take
                amount = bar.open * take
                commission = commission_for(amount, self.commission_rate)
                tax = tax_for(amount, self.tax_rate(self.markets.get(bar.code, "KOSPI"), day)) if (
                    request.side == "SELL") else 0  # fmt: skip
                fill = Fill(bar.code, request.side, bar.open, take, commission, tax, bar.ts, request.client_order_id)
                self.fill_count += 1
                if self.keep_fills is None or len(self.fills) < self.keep_fills:
                    self.fills.append(fill)
                entry[1] -= take
                self.engine.on_fill(fill)
            if entry[1] > 0:
                keep.append(entry)
        if keep:
            self.pending[bar.code] = keep
        else:
            del self.pending[bar.code]


def run_bars(engine: Engine, broker: SimBroker, bars: Any, progress: Callable[[int], None] | None = None,
             every: int = 50_000) -> int:  # fmt: skip
    """Drive ``engine`` over ``bars`` (in time order): each bar first fills the orders waiting for it, then is
    shown to the strategy. Returns the number of bars."""
    broker.engine = engine
    count = 0
    on_open, on_bar = broker.on_bar_open, engine.on_bar
    pending = broker.pending
    for bar in bars:
        if pending:
            on_open(bar)
        on_bar(bar)
        count += 1
        if progress is not None and count % every == 0:
            progress(count)
    engine.finish()
    return count
