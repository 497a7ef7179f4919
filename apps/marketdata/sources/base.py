"""Second sources of daily bars (no ORM: rows in, dataclasses out)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol


@dataclass(frozen=True)
class SourceBar:
    """A daily bar as a source reports it. ``adjusted``: prices adjusted for corporate actions."""

    code: str
    date: date
    open: int
    high: int
    low: int
    close: int
    volume: int
    adjusted: bool
    value: int | None = None


class SourceUnavailable(Exception):
    """The source cannot be reached or read (network down, file missing); the reason is in the message."""


class DailySource(Protocol):
    name: str

    def daily_bars(self, code: str, start: date, end: date) -> list[SourceBar]: ...
