"""JSON from untrusted clients (API bodies, WebSocket frames), parsed with bounds.

``json.loads`` recurses once per nesting level: ``[`` × 5000 raises ``RecursionError`` (not a
``ValueError``), which used to surface as a 500 or a WebSocket closed with 1011. ``loads_bounded`` first
measures the nesting depth with a linear scan that skips string contents, refuses anything deeper than
``max_depth`` before parsing, and after parsing refuses strings (keys and values) holding NUL or other
control characters, which PostgreSQL cannot store (NUL) or which no field of Hoga expects.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Nesting a Hoga client never needs more than a handful of; 32 leaves room for any sane payload.
DEFAULT_MAX_DEPTH = 32
#: C0 controls (tab, newline and carriage return excepted) and DEL.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: Every C0 control and DEL, for one-line values (query parameters, codes, names).
ANY_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class UnsafeJSON(ValueError):
    """Refused client JSON; ``code`` is the stable error code shown to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def nesting_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of ``text`` (string contents and escapes skipped); linear time."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif char in "]}":
            depth -= 1
    return deepest


def _check_strings(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if CONTROL_RE.search(item):
                raise UnsafeJSON("invalid_characters", "text must not contain NUL or other control characters")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _no_constant(name: str) -> Any:
    raise UnsafeJSON("invalid_json", f"{name} is not valid JSON")


def loads_bounded(text: str | bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse client JSON; ``UnsafeJSON`` (never RecursionError) for anything malformed, too deep or with
    control characters in its strings. ``NaN``/``Infinity`` are refused (not JSON)."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafeJSON("invalid_json", "the body is not UTF-8") from None
    if nesting_depth(text) > max_depth:
        raise UnsafeJSON("json_too_deep", f"JSON nested deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except UnsafeJSON:
        raise
    except (ValueError, RecursionError):
        raise UnsafeJSON("invalid_json", "not valid JSON") from None
    _check_strings(value)
    return value
