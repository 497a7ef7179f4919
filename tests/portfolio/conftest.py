from tests.trading.orders.conftest import _empty_redis, account, make_stock, market, place, stock, tick  # noqa: F401
