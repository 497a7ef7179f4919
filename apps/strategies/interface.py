"""The strategy interface: what an operator-deployed strategy class implements, and what it may call.

A strategy is a class with a ``key``, a ``label``, declared ``params`` and four callbacks. The engine
(``engine.Engine``) calls them in market-time order, the same way in a backtest over stored bars and in a live
run on the tick stream::

    class MyStrategy(Strategy):
        key = "my_rule"
        label = "My rule"
        params = {"window": IntParam(default=20, low=2, high=500)}

        def on_bar(self, ctx, bar):      # a completed bar (minute or day) of one of the strategy's stocks
            ...
        def on_tick(self, ctx, tick):    # a trade print (live runs only; backtests have bars, not prints)
            ...
        def on_condition_event(self, ctx, event):  # a Kiwoom condition IN/OUT alert (live runs)
            ...
        def on_fill(self, ctx, fill):    # one execution of an order this strategy placed
            ...

Rules:
- Orders only through ``ctx.buy`` / ``ctx.sell``: the engine derives the idempotent client order id from the
  signal, checks the risk limits, records the signal with its ``inputs`` in the audit trail, and places the
  order through the same services as the API (live) or the paper fill model (backtest). A strategy never
  touches the ORM, Redis or a broker.
- Keep everything that must survive a worker restart in ``self.state`` (a JSON-able dict): the live host
  stores it with the position in the tick stream after each batch, and gives it back on restart.
- ``self.params`` holds the validated parameters (``validate_params``).

Operators deploy packages of such classes and list them in ``HOGA_STRATEGY_PACKAGES`` (dotted module paths);
every ``Strategy`` subclass with a ``key`` found in those modules can then be chosen by users. Users never
upload code.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from apps.core.exceptions import ValidationFailed


class InvalidParams(ValidationFailed):
    default_code = "invalid_strategy_params"


@dataclass(frozen=True)
class IntParam:
    default: int
    low: int = 0
    high: int = 10**12
    help: str = ""
    required: bool = False

    def clean(self, name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().lstrip("-").isdecimal() and len(value.strip()) <= 15:
                value = int(value.strip())
            else:
                raise InvalidParams(f"{name} must be a whole number.", fields={name: ["Not a whole number."]})
        if not self.low <= value <= self.high:
            raise InvalidParams(
                f"{name} must be between {self.low} and {self.high}.", fields={name: [f"{self.low}-{self.high}."]}
            )
        return value


@dataclass(frozen=True)
class FloatParam:
    default: float
    low: float = 0.0
    high: float = 1e9
    help: str = ""
    required: bool = False

    def clean(self, name: str, value: Any) -> float:
        try:
            number = float(value) if not isinstance(value, bool) and isinstance(value, int | float | str) else None
        except ValueError:
            number = None
        if number is None or number != number or not self.low <= number <= self.high:  # NaN fails too
            raise InvalidParams(
                f"{name} must be a number between {self.low} and {self.high}.",
                fields={name: [f"{self.low}-{self.high}."]},
            )
        return number


@dataclass(frozen=True)
class ChoiceParam:
    default: str
    choices: tuple[str, ...] = ()
    help: str = ""
    required: bool = False

    def clean(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in self.choices:
            raise InvalidParams(f"{name} must be one of {', '.join(self.choices)}.", fields={name: ["Invalid choice."]})
        return value


Param = IntParam | FloatParam | ChoiceParam

MAX_PARAMS = 32


@dataclass(frozen=True, slots=True)
class Bar:
    """A completed bar of one stock: ``ts`` is the aware start of its minute (minute bars) or the day's
    session open (daily bars)."""

    code: str
    ts: dt.datetime
    open: int
    high: int
    low: int
    close: int
    volume: int


@dataclass(frozen=True, slots=True)
class TickEvent:
    code: str
    at: dt.datetime
    price: int
    volume: int
    stream_id: str


@dataclass(frozen=True, slots=True)
class ConditionSignal:
    """A condition alert: ``kind`` IN (the stock entered the condition) or OUT."""

    event_id: int
    code: str
    kind: str
    at: dt.datetime
    price: int | None


@dataclass(frozen=True, slots=True)
class Fill:
    code: str
    side: str
    price: int
    quantity: int
    commission: int
    tax: int
    at: dt.datetime
    client_order_id: str


class Context(Protocol):
    """What a strategy sees of the engine."""

    params: dict[str, Any]
    now: dt.datetime | None

    def position(self, code: str) -> int: ...

    def buy(
        self,
        code: str,
        *,
        quantity: int | None = None,
        amount: int | None = None,
        inputs: dict[str, Any] | None = None,
        bracket: dict[str, Any] | None = None,
    ) -> None: ...

    def sell(self, code: str, *, quantity: int | None = None, inputs: dict[str, Any] | None = None) -> None: ...


class Strategy:
    """Base class of strategies (see the module docstring)."""

    key: ClassVar[str] = ""
    label: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    #: True: the rule needs a Kiwoom condition (its IN/OUT alerts drive it) rather than a list of stocks.
    uses_condition: ClassVar[bool] = False

    def __init__(self, params: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        self.p = params
        self.state: dict[str, Any] = state if state is not None else {}

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Checks across parameters (each one alone is checked by its declaration): raise ``InvalidParams``."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:  # noqa: B027 - optional callback
        pass

    def on_tick(self, ctx: Context, tick: TickEvent) -> None:  # noqa: B027 - optional callback
        pass

    def on_condition_event(self, ctx: Context, event: ConditionSignal) -> None:  # noqa: B027 - optional callback
        pass

    def on_fill(self, ctx: Context, fill: Fill) -> None:  # noqa: B027 - optional callback
        pass


def validate_params(cls: type[Strategy], raw: Any) -> dict[str, Any]:
    """The parameters of ``cls`` from client input: unknown names, wrong types or out-of-range values raise
    ``invalid_strategy_params`` (400) naming the field; missing ones take their defaults."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict) or len(raw) > MAX_PARAMS:
        raise InvalidParams("params must be an object of at most 32 names.", fields={"params": ["Not an object."]})
    unknown = sorted(str(k)[:40] for k in raw if k not in cls.params)
    if unknown:
        raise InvalidParams(
            f"Unknown parameter(s) for {cls.key}: {', '.join(unknown)}.", fields={k: ["Unknown."] for k in unknown}
        )
    cleaned: dict[str, Any] = {}
    for name, spec in cls.params.items():
        if name in raw and raw[name] not in (None, ""):
            cleaned[name] = spec.clean(name, raw[name])
        elif spec.required:
            raise InvalidParams(f"{name} is required.", fields={name: ["Required."]})
        else:
            cleaned[name] = spec.default
    cls.check_params(cleaned)
    return cleaned
