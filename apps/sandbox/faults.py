"""Run-time fault injection (admin ``POST/GET/DELETE /sandbox/faults``).

Request body of ``POST /sandbox/faults``: ``{"fault": <name>, ...options}``:

- ``ws_drop``: close every open WS connection now (one-shot).
- ``ws_stall`` [``seconds``]: WS connections stay open but receive nothing (no data, no PINGPONG)
  until cleared or for ``seconds``.
- ``rate_limit`` ``count`` | ``seconds``: the next ``count`` data calls, or every data call for
  ``seconds``, get EGW00201 (HTTP 500).
- ``server_error`` ``count`` | ``seconds`` [``status`` = 500]: the next REST calls (any path but the
  admin ones) get a bare gateway error with that status and a text body.
- ``expire_tokens``: every live access token expires now (one-shot; data calls get EGW00123).
- ``latency`` ``seconds`` [``duration``]: every REST response is delayed by ``seconds``, until
  cleared or for ``duration`` seconds.
- ``kiwoom_mute_conditions`` ``seconds``: Kiwoom conditions keep being evaluated but no ``REAL`` type
  ``02`` alert is sent for ``seconds`` (entries/exits in that window are missed by the stream).

``ws_drop``, ``ws_stall``, ``rate_limit``, ``server_error``, ``expire_tokens`` and ``latency`` act on the
Kiwoom listeners too. The fault name may be given as ``fault`` or ``name``.

``DELETE /sandbox/faults`` clears every standing fault; ``GET /sandbox/faults`` shows them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

FAULT_NAMES = (
    "ws_drop",
    "ws_stall",
    "rate_limit",
    "server_error",
    "expire_tokens",
    "latency",
    "kiwoom_mute_conditions",
)


class FaultError(ValueError):
    """A malformed fault request."""


@dataclass(slots=True)
class Burst:
    """Active for the next ``remaining`` uses and/or until ``until`` (monotonic)."""

    remaining: int | None = None
    until: float | None = None

    def active(self, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        return self.remaining is None or self.remaining > 0

    def consume(self, now: float) -> bool:
        """True (and one use consumed) when active."""
        if not self.active(now):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


def _number(body: dict[str, object], key: str, kind: type[float] | type[int]) -> float | int | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        number = kind(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise FaultError(f"{key} must be a number") from exc
    if number <= 0:
        raise FaultError(f"{key} must be > 0")
    return number


@dataclass
class FaultState:
    """Standing faults; one-shot faults are executed by the server and not stored."""

    clock: Callable[[], float] = time.monotonic
    ws_stall: Burst | None = None
    rate_limit: Burst | None = None
    server_error: Burst | None = None
    server_error_status: int = 500
    latency_s: float = 0.0
    latency_until: float | None = None
    kiwoom_mute: Burst | None = None
    history: list[str] = field(default_factory=list)

    def _burst(self, body: dict[str, object], *, need_limit: bool) -> Burst:
        count = _number(body, "count", int)
        seconds = _number(body, "seconds", float)
        if need_limit and count is None and seconds is None:
            raise FaultError("give count or seconds")
        return Burst(
            remaining=int(count) if count is not None else None,
            until=self.clock() + float(seconds) if seconds is not None else None,
        )

    def apply(self, body: dict[str, object]) -> str:
        """Record a standing fault from a request body; returns the fault name. One-shot faults
        (ws_drop, expire_tokens) are validated and returned for the caller to execute."""
        name = body.get("fault", body.get("name"))
        if name not in FAULT_NAMES:
            raise FaultError(f"fault must be one of {', '.join(FAULT_NAMES)}")
        if name == "ws_stall":
            self.ws_stall = self._burst(body, need_limit=False)
        elif name == "rate_limit":
            self.rate_limit = self._burst(body, need_limit=True)
        elif name == "server_error":
            status = int(body.get("status", 500))  # type: ignore[call-overload]
            if not 500 <= status <= 599:
                raise FaultError("status must be 5xx")
            self.server_error = self._burst(body, need_limit=True)
            self.server_error_status = status
        elif name == "latency":
            seconds = _number(body, "seconds", float)
            if seconds is None:
                raise FaultError("latency needs seconds")
            duration = _number(body, "duration", float)
            self.latency_s = float(seconds)
            self.latency_until = self.clock() + float(duration) if duration is not None else None
        elif name == "kiwoom_mute_conditions":
            seconds = _number(body, "seconds", float)
            if seconds is None:
                raise FaultError("kiwoom_mute_conditions needs seconds")
            self.kiwoom_mute = Burst(until=self.clock() + float(seconds))
        self.history.append(str(name))
        return str(name)

    def clear(self) -> None:
        self.ws_stall = self.rate_limit = self.server_error = self.kiwoom_mute = None
        self.latency_s, self.latency_until = 0.0, None

    def stalled(self) -> bool:
        return self.ws_stall is not None and self.ws_stall.active(self.clock())

    def conditions_muted(self) -> bool:
        """True while ``kiwoom_mute_conditions`` holds back REAL 02 alerts."""
        return self.kiwoom_mute is not None and self.kiwoom_mute.active(self.clock())

    def take_rate_limit(self) -> bool:
        return self.rate_limit is not None and self.rate_limit.consume(self.clock())

    def take_server_error(self) -> int | None:
        if self.server_error is not None and self.server_error.consume(self.clock()):
            return self.server_error_status
        return None

    def latency(self) -> float:
        if self.latency_until is not None and self.clock() >= self.latency_until:
            self.latency_s, self.latency_until = 0.0, None
        return self.latency_s

    def describe(self) -> dict[str, object]:
        """JSON view of the standing faults."""
        now = self.clock()

        def burst(b: Burst | None) -> dict[str, object] | None:
            if b is None or not b.active(now):
                return None
            return {
                "remaining": b.remaining,
                "seconds_left": round(b.until - now, 3) if b.until is not None else None,
            }

        error = burst(self.server_error)
        if error is not None:
            error["status"] = self.server_error_status
        out: dict[str, object] = {
            "ws_stall": burst(self.ws_stall),
            "rate_limit": burst(self.rate_limit),
            "server_error": error,
            "latency": {
                "seconds": self.latency(),
                "seconds_left": (round(self.latency_until - now, 3) if self.latency_until is not None else None),
            }
            if self.latency() > 0
            else None,
        }
        mute = burst(self.kiwoom_mute)
        if mute is not None:  # listed only while active, so the KIS view keeps its shape
            out["kiwoom_mute_conditions"] = mute
        return out
