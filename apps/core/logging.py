"""One log line per event, tagged with the process role (web, worker, feed, beat, flower, sandbox).

Extra fields passed with ``logger.info("...", extra={...})`` are rendered as ``key=value`` pairs (text)
or as JSON keys. Values that look like secrets are never logged: callers pass ids, not credentials.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "role"}


class RoleFilter(logging.Filter):
    def __init__(self, role: str = "web"):
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "role"):
            record.role = self.role
        return True


def _extras(record: logging.LogRecord) -> dict:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")


class KeyValueFormatter(logging.Formatter):
    """``2026-01-02T00:00:00.000+00:00 INFO role=web logger=apps.x msg="..." key=value``"""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().replace("\n", " ")
        parts = [
            _timestamp(record),
            record.levelname,
            f"role={getattr(record, 'role', '-')}",
            f"logger={record.name}",
            f"msg={json.dumps(message, ensure_ascii=False)}",
        ]
        for key, value in _extras(record).items():
            text = value if isinstance(value, int | float) else json.dumps(str(value), ensure_ascii=False)
            parts.append(f"{key}={text}")
        line = " ".join(parts)
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info), ensure_ascii=False)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "role": getattr(record, "role", "-"),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update({k: v if isinstance(v, int | float | bool) else str(v) for k, v in _extras(record).items()})
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)
