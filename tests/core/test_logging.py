import json
import logging

from apps.core.logging import JsonFormatter, KeyValueFormatter, RoleFilter


def _record(message="order filled", **extra):
    record = logging.LogRecord("apps.trading.orders", logging.INFO, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    RoleFilter(role="feed").filter(record)
    return record


def test_key_value_line_has_role_logger_message_and_extras():
    line = KeyValueFormatter().format(_record(order_id=42, code="005930"))

    assert "\n" not in line
    assert ' INFO role=feed logger=apps.trading.orders msg="order filled" order_id=42 code="005930"' in line


def test_json_line_is_one_object():
    payload = json.loads(JsonFormatter().format(_record("틱 수신", ticks=3)))

    assert payload["role"] == "feed"
    assert payload["msg"] == "틱 수신"
    assert payload["ticks"] == 3
