"""Trigger rules of conditional orders (pure functions: no database, no Redis).

Direction (``TriggerDirection``) per type and side:

- STOP / STOP_LIMIT / TRAILING_STOP: a SELL fires at a print at or below its trigger (DOWN, it limits a loss
  on shares held), a BUY at or above (UP).
- TAKE_PROFIT: a SELL fires at or above (UP), a BUY at or below (DOWN).

A trailing stop's trigger follows the best print since it was armed (``anchor``: the highest for a sell, the
lowest for a buy) at a fixed distance (``trail_amount`` KRW, or ``trail_percent`` of the anchor), and only
ever moves in the order's favour: up for a sell, down for a buy. A print that fires the order does not move it.

The order fills from the tape once fired: a stop whose trigger a gap or a VI call jumped fills at the
print's price (or the book it walks), never at the trigger price.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from .models import Side, TriggerDirection, TriggerType


def direction_for(trigger_type: str, side: str) -> str:
    """The direction a print must move to fire an order of ``trigger_type`` and ``side``."""
    protective_up = trigger_type == TriggerType.TAKE_PROFIT
    if side == Side.SELL:
        return TriggerDirection.UP if protective_up else TriggerDirection.DOWN
    return TriggerDirection.DOWN if protective_up else TriggerDirection.UP


def fires(direction: str, trigger_price: int | None, price: int) -> bool:
    """Whether a print at ``price`` fires a trigger of ``direction`` at ``trigger_price``."""
    if trigger_price is None:
        return False
    return price >= trigger_price if direction == TriggerDirection.UP else price <= trigger_price


def trailing_trigger(direction: str, anchor: int, *, amount: int | None, percent: Decimal | None) -> int:
    """The trigger of a trailing stop whose best print so far is ``anchor``: ``anchor − distance`` for a sell
    (DOWN; rounded down), ``anchor + distance`` for a buy (UP; rounded up); never below 1 won."""
    if amount is not None:
        distance = Decimal(amount)
    elif percent is not None:
        distance = Decimal(anchor) * percent / 100
    else:
        raise ValueError("a trailing stop needs trail_amount or trail_percent")
    if direction == TriggerDirection.DOWN:
        return max(1, int((Decimal(anchor) - distance).to_integral_value(rounding=ROUND_FLOOR)))
    return int((Decimal(anchor) + distance).to_integral_value(rounding=ROUND_CEILING))


def ratchets(direction: str, anchor: int | None, price: int) -> bool:
    """Whether a print at ``price`` is a new best for a trailing stop (a higher print for a sell)."""
    if anchor is None:
        return False
    return price > anchor if direction == TriggerDirection.DOWN else price < anchor


def ratchet(
    direction: str, anchor: int, trigger_price: int, price: int, *, amount: int | None, percent: Decimal | None
) -> tuple[int, int]:
    """The (anchor, trigger) after a print at ``price`` that did not fire the order: the anchor moves to a new
    best print, and the trigger follows it only in the order's favour."""
    if not ratchets(direction, anchor, price):
        return anchor, trigger_price
    moved = trailing_trigger(direction, price, amount=amount, percent=percent)
    if direction == TriggerDirection.DOWN:
        return price, max(trigger_price, moved)
    return price, min(trigger_price, moved)
