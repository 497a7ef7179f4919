"""Order errors: each has a stable ``code`` the API returns as ``{"error": {"code", ...}}``."""

from __future__ import annotations

from apps.core.exceptions import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from apps.trading.accounts.selectors import AccountNotFound
from apps.trading.positions.services import InsufficientHolding

__all__ = [
    "AccountNotFound",
    "AfterHoursOutOfRange",
    "ClientOrderIdConflict",
    "InactiveStock",
    "InsufficientCash",
    "InsufficientHolding",
    "InvalidBracket",
    "InvalidClientOrderId",
    "InvalidOrderType",
    "InvalidPrice",
    "InvalidQuantity",
    "InvalidRoute",
    "InvalidSide",
    "InvalidTrigger",
    "MarketClockUnavailableError",
    "MarketClosed",
    "NoReferencePrice",
    "NxtNotEligible",
    "OrderNotCancellable",
    "OrderNotFound",
    "PhaseRejectsOrderType",
    "PriceOffTick",
    "PriceOutOfBand",
    "StockHalted",
    "TriggerOffTick",
    "TriggerOutOfBand",
    "UnknownStock",
    "VenueNotOpen",
]


class UnknownStock(ValidationFailed):
    default_code = "unknown_stock"


class InactiveStock(ValidationFailed):
    default_code = "inactive_stock"


class InvalidSide(ValidationFailed):
    default_code = "invalid_side"


class InvalidOrderType(ValidationFailed):
    default_code = "invalid_order_type"


class InvalidQuantity(ValidationFailed):
    default_code = "invalid_quantity"


class InvalidPrice(ValidationFailed):
    default_code = "invalid_price"


class InvalidClientOrderId(ValidationFailed):
    default_code = "invalid_client_order_id"


class PriceOffTick(ValidationFailed):
    default_code = "price_off_tick"


class PriceOutOfBand(ValidationFailed):
    default_code = "price_out_of_band"


class NoReferencePrice(ValidationFailed):
    default_code = "no_reference_price"


class InsufficientCash(ValidationFailed):
    default_code = "insufficient_cash"


class MarketClosed(ValidationFailed):
    default_code = "market_closed"


class MarketClockUnavailableError(ServiceUnavailable):
    default_code = "market_clock_unavailable"


class OrderNotFound(NotFound):
    default_code = "order_not_found"


class OrderNotCancellable(Conflict):
    default_code = "order_not_cancellable"


class ClientOrderIdConflict(Conflict):
    default_code = "client_order_id_conflict"


class InvalidRoute(ValidationFailed):
    default_code = "invalid_route"


class PhaseRejectsOrderType(ValidationFailed):
    """The venue's current phase does not take this order type (the message names the phase and when the
    order type is taken next)."""

    default_code = "phase_rejects_order_type"


class VenueNotOpen(ValidationFailed):
    """The order's venue takes no orders now (NXT outside its sessions, or paused during KRX's auctions)."""

    default_code = "venue_not_open"


class StockHalted(ValidationFailed):
    """The stock is halted (거래정지): it accepts cancels only."""

    default_code = "stock_halted"


class NxtNotEligible(ValidationFailed):
    default_code = "nxt_not_eligible"


class AfterHoursOutOfRange(ValidationFailed):
    """An after-hours single-price limit outside ±10 % of today's close (krx-rules §3.3)."""

    default_code = "after_hours_out_of_range"


class InvalidTrigger(ValidationFailed):
    """A conditional order's trigger type, trigger price or trailing distance is missing or malformed."""

    default_code = "invalid_trigger"


class TriggerOffTick(ValidationFailed):
    default_code = "trigger_off_tick"


class TriggerOutOfBand(ValidationFailed):
    """A trigger outside the day's ±30 % band: no print of the day can reach it."""

    default_code = "trigger_out_of_band"


class InvalidBracket(ValidationFailed):
    """A bracket's entry or legs do not make a bracket (a buy entry, take-profit above stop-loss, around the
    entry's limit)."""

    default_code = "invalid_bracket"
