"""KRX special days of 2025 and 2026 as KRX and the government announced them: full-day closures, the first
trading day's 10:00 open, the CSAT-day shift and the year-end closure. Pure data, no ORM.

Why a table in the code: exchange_calendars (XKRX) is the base layer for every other year, but a release
lags KRX's announcements. Checked against 4.13.2 (the pinned release): it opens on 2026-06-03 (local
elections) and 2026-07-17 (Constitution Day, a public holiday again from 2026) and keeps the regular
09:00-15:30 hours on the CSAT days 2025-11-13 and 2026-11-19. Each row names its source; the broker's
holiday query (CTCA0903R, stored daily) and operator overrides in the admin still win over this table.

KRX's own rule (global.krx.co.kr, "Trading Days and Holidays"; krx-rules.md §3.7): trading days are
Monday to Friday except public holidays (including election days and temporary holidays), Workers' Day
(May 1) and December 31 (or the last weekday before it when it is a holiday).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time


@dataclass(frozen=True)
class SpecialDay:
    day: date
    closed: bool
    reason: str
    source: str
    open_time: time | None = None  # KST; None = the regular 09:00
    close_time: time | None = None  # KST; None = the regular 15:30


# Sources (each row below names one):
LIST_2025 = "hola0829.tistory.com 2025 국내 주식시장 휴장일 (KRX list published at the 2024-12-30 close)"
LIST_2026 = "b83.nicesongtoyou.com/?p=10145 2026년 국내증시 휴장일 (KRX list); fdn7500.tistory.com/4166 (2026-01-07)"
KRX_RULE = "global.krx.co.kr Trading Days and Holidays: Workers' Day and December 31 are closed"
CSAT_HOURS = (
    "KRX shifts every time one hour on CSAT day (10:00-16:30): en.yna.co.kr AEN20191104003800320 (2019), "
    "businesspost.co.kr 258094 (2021), khan.co.kr 202211161242001 (2022), etoday.co.kr 2298674 (2023), "
    "edaily.co.kr 05520246642365064 (2025)"
)

SPECIAL_DAYS: tuple[SpecialDay, ...] = (
    # --- 2025 -------------------------------------------------------------------------------------------
    SpecialDay(date(2025, 1, 1), True, "신정 New Year's Day", LIST_2025),
    # kukinews.com kuk202412170092 (2024-12-17): the 2025 market opens 2025-01-02 at 10:00, closes 15:30.
    SpecialDay(
        date(2025, 1, 2),
        False,
        "새해 첫 거래일 (개장식) first trading day",
        "kukinews.com kuk202412170092",
        open_time=time(10, 0),
    ),  # fmt: skip
    # segye.com 20250117509139 (2025-01-17): KRX closes on the temporary holiday 2025-01-27.
    SpecialDay(date(2025, 1, 27), True, "임시공휴일 temporary holiday", "m.segye.com/ampView/20250117509139"),
    SpecialDay(date(2025, 1, 28), True, "설날 연휴 Seollal", LIST_2025),
    SpecialDay(date(2025, 1, 29), True, "설날 Seollal", LIST_2025),
    SpecialDay(date(2025, 1, 30), True, "설날 연휴 Seollal", LIST_2025),
    SpecialDay(date(2025, 3, 3), True, "삼일절 대체공휴일 substitute holiday", LIST_2025),
    SpecialDay(date(2025, 5, 1), True, "근로자의 날 Workers' Day", LIST_2025),
    SpecialDay(date(2025, 5, 5), True, "어린이날·부처님오신날 Children's Day, Buddha's Birthday", LIST_2025),
    SpecialDay(date(2025, 5, 6), True, "대체공휴일 substitute holiday", LIST_2025),
    # ajunews.com 20250520140948096 (2025-05-20): KRX closes on the presidential election day.
    SpecialDay(
        date(2025, 6, 3), True, "제21대 대통령 선거 presidential election", "ajunews.com/view/20250520140948096"
    ),
    SpecialDay(date(2025, 6, 6), True, "현충일 Memorial Day", LIST_2025),
    SpecialDay(date(2025, 8, 15), True, "광복절 Liberation Day", LIST_2025),
    SpecialDay(date(2025, 10, 3), True, "개천절 National Foundation Day", LIST_2025),
    SpecialDay(date(2025, 10, 6), True, "추석 Chuseok", LIST_2025),
    SpecialDay(date(2025, 10, 7), True, "추석 연휴 Chuseok", LIST_2025),
    SpecialDay(date(2025, 10, 8), True, "추석 대체공휴일 substitute holiday", "fdn7500.tistory.com/4054"),
    SpecialDay(date(2025, 10, 9), True, "한글날 Hangul Day", LIST_2025),
    # edaily.co.kr 05520246642365064 (2025-11-12) and donga.com 20251113/132759579: 10:00-16:30 on CSAT day.
    SpecialDay(
        date(2025, 11, 13),
        False,
        "수능 CSAT day: every time one hour later",
        "edaily.co.kr/News/Read?newsId=05520246642365064",
        open_time=time(10, 0),
        close_time=time(16, 30),
    ),  # fmt: skip
    SpecialDay(date(2025, 12, 25), True, "성탄절 Christmas", LIST_2025),
    # wowtv.co.kr 2025121825891 (2025-12-18): 2025-12-31 is the year-end closure.
    SpecialDay(
        date(2025, 12, 31),
        True,
        "연말 휴장일 year-end closure",
        "wowtv.co.kr/NewsCenter/News/Read?articleId=2025121825891",
    ),
    # --- 2026 -------------------------------------------------------------------------------------------
    SpecialDay(date(2026, 1, 1), True, "신정 New Year's Day", LIST_2026),
    # wowtv.co.kr 2025121825891 (2025-12-18): the first 2026 session opens at 10:00, the close is unchanged.
    SpecialDay(
        date(2026, 1, 2),
        False,
        "새해 첫 거래일 (개장식) first trading day",
        "wowtv.co.kr/NewsCenter/News/Read?articleId=2025121825891",
        open_time=time(10, 0),
    ),  # fmt: skip
    SpecialDay(date(2026, 2, 16), True, "설날 연휴 Seollal", LIST_2026),
    SpecialDay(date(2026, 2, 17), True, "설날 Seollal", LIST_2026),
    SpecialDay(date(2026, 2, 18), True, "설날 연휴 Seollal", LIST_2026),
    SpecialDay(date(2026, 3, 2), True, "삼일절 대체공휴일 substitute holiday", LIST_2026),
    SpecialDay(date(2026, 5, 1), True, "근로자의 날 Workers' Day", LIST_2026),
    SpecialDay(date(2026, 5, 5), True, "어린이날 Children's Day", LIST_2026),
    SpecialDay(date(2026, 5, 25), True, "부처님오신날 대체공휴일 substitute holiday", LIST_2026),
    # fdn7500.tistory.com/4166 (2026-01-07) and the 2026 KRX list: closed on the 9th local elections.
    SpecialDay(date(2026, 6, 3), True, "제9회 전국동시지방선거 local elections", LIST_2026),
    # m.segye.com 20260204501613 (2026-02-04) and gndnews1.com 1166215 (2026-02-05): the cabinet approved the
    # amended Public Holidays Act; Constitution Day is a public holiday again from 2026, so KRX closes.
    SpecialDay(
        date(2026, 7, 17),
        True,
        "제헌절 Constitution Day (public holiday again)",
        "m.segye.com/view/20260204501613; gndnews1.com/mobile/article.html?no=1166215",
    ),  # fmt: skip
    SpecialDay(date(2026, 8, 17), True, "광복절 대체공휴일 substitute holiday", LIST_2026),
    SpecialDay(date(2026, 9, 24), True, "추석 연휴 Chuseok", LIST_2026),
    SpecialDay(date(2026, 9, 25), True, "추석 Chuseok", LIST_2026),
    SpecialDay(date(2026, 10, 5), True, "개천절 대체공휴일 substitute holiday", LIST_2026),
    SpecialDay(date(2026, 10, 9), True, "한글날 Hangul Day", LIST_2026),
    # news1.kr/society/education/5511338 (2024-08-15): the 2027 CSAT is held on 2026-11-19; KRX shifts the
    # session on every CSAT day (CSAT_HOURS). KRX publishes the day's detail about a week before.
    SpecialDay(
        date(2026, 11, 19),
        False,
        "수능 CSAT day: every time one hour later",
        "news1.kr/amp/society/education/5511338; " + CSAT_HOURS,
        open_time=time(10, 0),
        close_time=time(16, 30),
    ),  # fmt: skip
    SpecialDay(date(2026, 12, 25), True, "성탄절 Christmas", LIST_2026),
    SpecialDay(date(2026, 12, 31), True, "연말 휴장일 year-end closure", LIST_2026 + "; " + KRX_RULE),
)

SPECIAL_BY_DATE: dict[date, SpecialDay] = {row.day: row for row in SPECIAL_DAYS}
#: The years this table covers completely (every closure and every shifted session of the year).
COVERED_YEARS = frozenset({2025, 2026})
