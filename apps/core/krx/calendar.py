"""The KRX trading calendar in three layers, the later winning for its date:

1. the package layer: KRX's announced special days of the years in ``krx_special_days`` (2025, 2026: every
   closure and shifted session, each with its source), exchange_calendars' XKRX for other years, and the
   Monday-to-Friday rule beyond XKRX's range;
2. the broker's answer (KIS 국내휴장일조회 CTCA0903R, stored daily by ``calendar_sync``): open or closed
   (``opnd_yn``); it carries no times, so a day it opens keeps the package layer's times;
3. operator overrides (the admin's *Calendar overrides*): closed, or open with its own times.

No ORM here: overrides and broker days are passed in (see ``selectors.krx_calendar``). Times are Asia/Seoul.
Everything the system derives from a session (minute labels, the closing auction, order sessions, the
collection windows) comes from ``Session``, so a late open or a shifted day moves all of it.
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

from apps.core.krx.special_days import COVERED_YEARS, SPECIAL_BY_DATE

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
    note: str = ""


@dataclass(frozen=True)
class BrokerDay:
    """The broker's answer for one date: ``is_open`` is KIS's ``opnd_yn`` (개장일여부: orders accepted)."""

    is_open: bool


@dataclass(frozen=True)
class CalendarNote:
    """A weekday that is not a regular 09:00-15:30 session: closed, or open at other times."""

    day: date
    closed: bool
    open: time | None
    close: time | None
    reason: str
    source: str  # override | broker | announced | exchange_calendars


@dataclass(frozen=True)
class Disagreement:
    """A date whose sources disagree on open/closed (None = that source has no answer for the date)."""

    day: date
    package_open: bool
    broker_open: bool | None
    override_open: bool | None
    effective_open: bool


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
    def __init__(
        self,
        overrides: Mapping[date, Override] | None = None,
        broker_days: Mapping[date, BrokerDay] | None = None,
    ):
        self.overrides = dict(overrides or {})
        self.broker_days = dict(broker_days or {})

    @staticmethod
    def _regular(day: date, open_time: time | None = None, close_time: time | None = None) -> Session:
        return Session(
            day=day,
            open=datetime.combine(day, open_time or REGULAR_OPEN, tzinfo=KST),
            close=datetime.combine(day, close_time or REGULAR_CLOSE, tzinfo=KST),
        )

    def package_session(self, day: date) -> Session | None:
        """The package layer alone: the announced special days, else XKRX, else the weekday rule."""
        special = SPECIAL_BY_DATE.get(day)
        if special is not None:
            return None if special.closed else self._regular(day, special.open_time, special.close_time)
        if day.year in COVERED_YEARS:  # the table lists every special day of these years
            return self._regular(day) if day.weekday() < 5 else None
        import pandas as pd

        cal = _xkrx()
        label = pd.Timestamp(day)
        if cal.first_session <= label <= cal.last_session:
            if not cal.is_session(label):
                return None
            return Session(
                day=day,
                open=cal.session_open(label).tz_convert(KST).to_pydatetime(),
                close=cal.session_close(label).tz_convert(KST).to_pydatetime(),
            )
        return self._regular(day) if day.weekday() < 5 else None  # beyond XKRX: weekdays assumed regular

    def session(self, day: date) -> Session | None:
        """The session on ``day``, or None when KRX is closed (override > broker > package)."""
        override = self.overrides.get(day)
        if override is not None and override.closed:
            return None
        package = self.package_session(day)
        broker = self.broker_days.get(day)
        if override is None:
            if broker is not None and not broker.is_open:
                return None
            if broker is None and package is None:
                return None
        session = package or self._regular(day)  # opened by the broker or an override: the package's times
        if override is not None and (override.open_time or override.close_time):
            session = Session(
                day=day,
                open=datetime.combine(day, override.open_time, tzinfo=KST) if override.open_time else session.open,
                close=datetime.combine(day, override.close_time, tzinfo=KST) if override.close_time else session.close,
            )
        return session

    def deciding_source(self, day: date) -> str:
        """Which layer decides ``day``: override, broker, announced (the special-day table) or exchange_calendars."""
        if day in self.overrides:
            return "override"
        if day in self.broker_days:
            return "broker"
        if day in SPECIAL_BY_DATE or day.year in COVERED_YEARS:
            return "announced"
        return "exchange_calendars"

    def notes_between(self, start: date, end: date) -> list[CalendarNote]:
        """Every weekday from ``start`` to ``end`` that is closed or not a regular 09:00-15:30 session."""
        notes = []
        day = start
        while day <= end:
            if day.weekday() < 5:
                session = self.session(day)
                regular = session is not None and (session.open.time(), session.close.time()) == (
                    REGULAR_OPEN,
                    REGULAR_CLOSE,
                )
                if not regular:
                    notes.append(self._note(day, session))
            day += timedelta(days=1)
        return notes

    def _note(self, day: date, session: Session | None) -> CalendarNote:
        source = self.deciding_source(day)
        special = SPECIAL_BY_DATE.get(day)
        override = self.overrides.get(day)
        if source == "override" and override is not None and override.note:
            reason = override.note
        elif special is not None and (special.closed == (session is None)):
            reason = special.reason
        elif source == "broker":
            reason = "휴장 (broker: opnd_yn=N)" if session is None else "개장 (broker: opnd_yn=Y)"
        else:
            reason = "휴장 closed" if session is None else "시간 변경 shifted session"
        return CalendarNote(
            day=day,
            closed=session is None,
            open=session.open.time() if session else None,
            close=session.close.time() if session else None,
            reason=reason,
            source=source,
        )

    def disagreements(self, days: list[date] | None = None) -> list[Disagreement]:
        """Dates (by default every date the broker answered or an override names) whose sources disagree."""
        out = []
        for day in sorted(set(days) if days is not None else set(self.broker_days) | set(self.overrides)):
            package_open = self.package_session(day) is not None
            broker = self.broker_days.get(day)
            override = self.overrides.get(day)
            answers = {package_open}
            if broker is not None:
                answers.add(broker.is_open)
            if override is not None:
                answers.add(not override.closed)
            if len(answers) > 1:
                out.append(
                    Disagreement(
                        day=day,
                        package_open=package_open,
                        broker_open=broker.is_open if broker is not None else None,
                        override_open=(not override.closed) if override is not None else None,
                        effective_open=self.session(day) is not None,
                    )
                )
        return out

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
