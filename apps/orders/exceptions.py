"""Order errors: each has a stable ``code`` the API returns as ``{"error": {"code", ...}}``."""

from __future__ import annotations

from apps.accounts.selectors import AccountNotFound
from apps.core.exceptions import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from apps.positions.services import InsufficientHolding

__all__ = [
    "AccountNotFound",
    "ClientOrderIdConflict",
    "InactiveStock",
    "InsufficientCash",
    "InsufficientHolding",
    "InvalidClientOrderId",
    "InvalidOrderType",
    "InvalidPrice",
    "InvalidQuantity",
    "InvalidSide",
    "MarketClockUnavailableError",
    "MarketClosed",
    "NoReferencePrice",
    "OrderNotCancellable",
    "OrderNotFound",
    "PriceOffTick",
    "PriceOutOfBand",
    "UnknownStock",
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
