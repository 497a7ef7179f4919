"""The paper-trading fixtures of tests/trading/orders (funded account, open market, trade ticks)."""

from tests.trading.orders.conftest import tick  # noqa: F401
