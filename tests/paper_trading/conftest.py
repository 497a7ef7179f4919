"""The paper-trading fixtures of tests/orders (funded account, open market, trade ticks)."""

from tests.orders.conftest import tick  # noqa: F401
