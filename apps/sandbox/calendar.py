"""The sandbox broker's own KRX calendar: what its 국내휴장일조회 (CTCA0903R) answers and the session times of
the replayed day.

It is the KRX facts Hoga ships (the package layer of ``apps.core.krx.calendar``: the announced 2025-2026
special days, exchange_calendars for other years; no database) plus the closures configured with
``SANDBOX_CLOSED_DAYS``, so an operator can rehearse an ad-hoc closure (or a calendar the package gets
wrong) and watch Hoga take the broker's word for it.

Response fields per date (kis-api.md §5.9): ``bass_dt``, ``wday_dvsn_cd`` (01 Sunday .. 07 Saturday, as a
captured real response shows), ``bzdy_yn``, ``tr_day_yn``, ``opnd_yn``, ``sttl_day_yn``. How KIS sets the
three flags besides ``opnd_yn`` on a KRX-only closure is UNCONFIRMED: here a weekday KRX closes is neither a
business, trading nor settlement day, and weekends answer like the captured response (``tr_day_yn`` Y).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from apps.core.krx.calendar import KrxCalendar
from apps.sandbox.clock import SessionTimes
from apps.sandbox.config import SandboxConfig


def _seconds(moment: dt.datetime) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def weekday_code(day: dt.date) -> str:
    """``wday_dvsn_cd``: 01 Sunday, 02 Monday, ..., 07 Saturday."""
    return f"{(day.weekday() + 1) % 7 + 1:02d}"


@dataclass(frozen=True)
class SandboxCalendar:
    closed_days: frozenset[dt.date] = frozenset()

    @classmethod
    def from_config(cls, config: SandboxConfig) -> SandboxCalendar:
        return cls(frozenset(config.closed_days))

    def session_times(self, day: dt.date) -> SessionTimes | None:
        """The session of ``day`` in seconds of day, or None when KRX is closed."""

        if day in self.closed_days:
            return None
        session = KrxCalendar().package_session(day)
        if session is None:
            return None
        return SessionTimes(open_s=_seconds(session.open), close_s=_seconds(session.close))

    def row(self, day: dt.date) -> dict[str, str]:
        """One ``output`` row of CTCA0903R for ``day``."""
        is_open = self.session_times(day) is not None
        weekend = day.weekday() >= 5
        yes = "Y" if is_open else "N"
        return {
            "bass_dt": day.strftime("%Y%m%d"),
            "wday_dvsn_cd": weekday_code(day),
            "bzdy_yn": yes,
            "tr_day_yn": "Y" if weekend else yes,
            "opnd_yn": yes,
            "sttl_day_yn": yes,
        }

    def rows(self, start: dt.date, count: int) -> list[dict[str, str]]:
        return [self.row(start + dt.timedelta(days=i)) for i in range(count)]
