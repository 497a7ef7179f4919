"""The KRX trading calendar: exchange_calendars' XKRX as the base layer, operator overrides on top.

No ORM here: overrides are passed in (see ``selectors.calendar_overrides``). Times are Asia/Seoul.
XKRX knows the late open on the first trading day of the year and the CSAT-day shift for the years it
lists; a release can lag KRX announcements, so an override row always wins for its date.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle  # noqa: S403 (the calendar cache below)
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from time import monotonic
from zoneinfo import ZoneInfo

logger = logging.getLogger(__name__)

KST = ZoneInfo("Asia/Seoul")
REGULAR_OPEN = time(9, 0)
REGULAR_CLOSE = time(15, 30)
CLOSING_AUCTION_MINUTES = 10  # 15:20-15:30 closing call auction (종가 단일가)


@dataclass(frozen=True)
class Override:
    closed: bool
    open_time: time | None = None
    close_time: time | None = None


@dataclass(frozen=True)
class Session:
    """One trading day: continuous matching from ``open`` to ``auction_start``, then the closing auction,
    whose single print is stamped at ``close``."""

    day: date
    open: datetime
    close: datetime

    @property
    def auction_start(self) -> datetime:
        return self.close - timedelta(minutes=CLOSING_AUCTION_MINUTES)

    def minute_labels(self) -> list[datetime]:
        """Start of every minute that can carry a bar: continuous session minutes plus the closing print.

        A regular day has 380 continuous minutes (09:00..15:19) and the 15:30 closing bar: 381 bars.
        """
        minutes = []
        current = self.open
        while current < self.auction_start:
            minutes.append(current)
            current += timedelta(minutes=1)
        minutes.append(self.close)
        return minutes

    def contains(self, moment: datetime) -> bool:
        return self.open <= moment <= self.close


def _cache_dir() -> Path:
    from django.conf import settings

    return Path(settings.HOGA_CACHE_DIR)


class UnsafeCacheDir(OSError):
    """The cache directory or file could be written by someone else: nothing in it is unpickled."""


def _private_dir(directory: Path) -> Path:
    """Create ``directory`` (0700) if missing and check it is ours and writable by no one else.

    Unpickling runs code, so only a file this user wrote into a directory only this user can write is ever
    loaded; anything else (a shared temporary directory, a group-writable folder) is refused with the reason.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafeCacheDir(f"{directory} is not a plain directory")
    if info.st_uid != os.geteuid():
        raise UnsafeCacheDir(f"{directory} belongs to uid {info.st_uid}, not to this user")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeCacheDir(f"{directory} is writable by other users (mode {stat.S_IMODE(info.st_mode):o})")
    return directory


def _load_private(path: Path):
    with path.open("rb") as handle:
        info = os.fstat(handle.fileno())
        if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UnsafeCacheDir(f"{path} was not written by this user alone")
        return pickle.load(handle)  # noqa: S301 (written by this user into its private directory)


@functools.cache
def _xkrx():
    """XKRX, once per process. Building it computes decades of lunisolar holidays (about 10 s here), so a
    pickled copy per library version and day is kept in ``HOGA_CACHE_DIR`` (it loads in about 0.3 s), a
    directory private to this user (see ``_private_dir``); a missing, unreadable, unwritable or unsafe cache
    only costs the build."""
    import exchange_calendars

    try:
        directory = _private_dir(_cache_dir())
    except Exception as exc:  # unsafe or unwritable directory, or settings not configured (a plain script)
        logger.warning("calendar cache unusable (%s); building the calendar without it", exc)
        directory = None
    path = None
    if directory is not None:
        path = directory / f"xkrx-{exchange_calendars.__version__}-{date.today().isoformat()}.pickle"  # noqa: DTZ011
        try:
            return _load_private(path)
        except FileNotFoundError:
            pass
        except Exception as exc:
            logger.warning("unreadable calendar cache %s (%s); rebuilding", path, exc)
    started = monotonic()
    calendar = exchange_calendars.get_calendar("XKRX")
    logger.info("built the XKRX calendar in %.1f s", monotonic() - started)
    if directory is None or path is None:
        return calendar
    try:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pickle.dumps(calendar))
        tmp.replace(path)  # atomic: concurrent processes never read half a file
        for old in directory.glob("xkrx-*.pickle"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("calendar cache not written to %s: %s", directory, exc)
    return calendar


def calendar_warm_in_background() -> None:
    """Load XKRX in a daemon thread now, so a process's first request or task does not wait for it."""
    import threading

    threading.Thread(target=_xkrx, name="warm-krx-calendar", daemon=True).start()


class KrxCalendar:
    def __init__(self, overrides: Mapping[date, Override] | None = None):
        self.overrides = dict(overrides or {})

    def session(self, day: date) -> Session | None:
        """The session on ``day``, or None when KRX is closed."""
        import pandas as pd

        override = self.overrides.get(day)
        if override is not None and override.closed:
            return None
        cal = _xkrx()
        label = pd.Timestamp(day)
        if cal.first_session <= label <= cal.last_session and cal.is_session(label):
            open_at = cal.session_open(label).tz_convert(KST).to_pydatetime()
            close_at = cal.session_close(label).tz_convert(KST).to_pydatetime()
        elif override is not None or (label > cal.last_session and day.weekday() < 5):
            # An override opens a day XKRX closes; weekdays beyond XKRX's range are assumed regular.
            open_at = datetime.combine(day, REGULAR_OPEN, tzinfo=KST)
            close_at = datetime.combine(day, REGULAR_CLOSE, tzinfo=KST)
        else:
            return None
        if override is not None:
            if override.open_time:
                open_at = datetime.combine(day, override.open_time, tzinfo=KST)
            if override.close_time:
                close_at = datetime.combine(day, override.close_time, tzinfo=KST)
        return Session(day=day, open=open_at, close=close_at)

    def is_trading_day(self, day: date) -> bool:
        return self.session(day) is not None

    def sessions_between(self, start: date, end: date) -> list[Session]:
        sessions = []
        day = start
        while day <= end:
            session = self.session(day)
            if session is not None:
                sessions.append(session)
            day += timedelta(days=1)
        return sessions

    def previous_trading_day(self, day: date) -> date:
        candidate = day - timedelta(days=1)
        for _ in range(30):
            if self.is_trading_day(candidate):
                return candidate
            candidate -= timedelta(days=1)
        raise ValueError(f"no trading day in the 30 days before {day}")

    def trading_days_back(self, day: date, count: int) -> list[date]:
        """The ``count`` trading days ending at ``day`` (inclusive when it is one), oldest first."""
        days: list[date] = []
        candidate = day
        while len(days) < count:
            if self.is_trading_day(candidate):
                days.append(candidate)
            candidate -= timedelta(days=1)
        return sorted(days)


def now_kst() -> datetime:
    return datetime.now(tz=KST)
