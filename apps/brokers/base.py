"""Broker-neutral result types and the typed exception hierarchy.

Invariants of every result dataclass:
- prices and volumes are ``int`` (KRW, shares); rates are :class:`~decimal.Decimal` percentages;
- datetimes are timezone-aware in Asia/Seoul (:data:`KST`);
- ``change`` / ``change_rate`` are signed from the broker's sign code (see :class:`PriceSign`).

Exception hierarchy::

    BrokerError
    ├── BrokerTransientError          retried (network, timeout, 5xx)
    │   └── BrokerRateLimited         EGW00201; retried with back-off
    │       └── LimiterTimeout        no limiter slot within rate_max_wait
    ├── BrokerAuthError               bad app key/secret, no permission: never retried
    │   ├── BrokerTokenRejected       EGW00123 / EGW00121: token dropped, re-issued once, call retried
    │   └── BrokerTokenRateLimited    EGW00133: issuance more often than 1/min
    ├── BrokerBusinessError           rt_cd != "0" or a 4xx: raised at once
    │   └── UnknownSymbol
    ├── BrokerProtocolError           a response that does not parse
    └── BrokerUnavailable             the broker cannot be used right now
        └── CircuitOpen               the shared circuit breaker is open
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

KST = ZoneInfo("Asia/Seoul")


class PriceSign(enum.IntEnum):
    """``prdy_vrss_sign`` (전일 대비 부호), kis-api.md §5.1."""

    UPPER_LIMIT = 1
    UP = 2
    UNCHANGED = 3
    LOWER_LIMIT = 4
    DOWN = 5

    @property
    def direction(self) -> int:
        """+1 for up/upper limit, -1 for down/lower limit, 0 for unchanged."""
        if self in (PriceSign.UPPER_LIMIT, PriceSign.UP):
            return 1
        if self in (PriceSign.LOWER_LIMIT, PriceSign.DOWN):
            return -1
        return 0


@dataclass(frozen=True, slots=True)
class Quote:
    """Current price snapshot (FHKST01010100). ``fetched_at`` is when the response arrived."""

    code: str
    price: int
    change: int
    sign: PriceSign
    change_rate: Decimal
    open: int
    high: int
    low: int
    volume: int
    trade_value: int
    upper_limit: int
    lower_limit: int
    base_price: int
    fetched_at: dt.datetime


@dataclass(frozen=True, slots=True)
class DailyBar:
    """One daily (or weekly/monthly/yearly) bar. ``trade_value`` is None where the TR has none (FHKST01010400)."""

    code: str
    date: dt.date
    open: int
    high: int
    low: int
    close: int
    volume: int
    trade_value: int | None
    change: int
    sign: PriceSign | None


@dataclass(frozen=True, slots=True)
class MinuteBar:
    """One 1-minute bar of today (FHKST03010200). ``at`` is the minute's timestamp (aware, KST)."""

    code: str
    at: dt.datetime
    open: int
    high: int
    low: int
    close: int
    volume: int
    cum_trade_value: int


@dataclass(frozen=True, slots=True)
class MarketDay:
    """One date of KIS 국내휴장일조회 (CTCA0903R). ``is_open`` (``opnd_yn``) says whether KRX trades and takes
    orders that day; the other flags are the broker's business (영업일), trading (거래일) and settlement
    (결제일) days. ``weekday_code`` is ``wday_dvsn_cd`` (01 Sunday .. 07 Saturday)."""

    date: dt.date
    weekday_code: str
    business_day: bool
    trading_day: bool
    is_open: bool
    settlement_day: bool


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An access token and its lifetime (aware datetimes). ``token`` is a secret: never log it."""

    token: str
    expires_at: dt.datetime
    issued_at: dt.datetime

    def __repr__(self) -> str:  # keeps the secret out of tracebacks and debug logs
        return f"AccessToken(expires_at={self.expires_at.isoformat()}, issued_at={self.issued_at.isoformat()})"


# --- Exceptions ------------------------------------------------------------------------------------


class BrokerError(Exception):
    """Base class. ``msg_cd`` / ``msg1`` are the broker's code and (stripped) message when it sent them."""

    def __init__(
        self, message: str, *, msg_cd: str = "", msg1: str = "", http_status: int | None = None, kind: str = ""
    ) -> None:
        super().__init__(message)
        self.msg_cd = msg_cd
        self.msg1 = msg1
        self.http_status = http_status
        self.kind = kind

    @property
    def code(self) -> str:
        """A short code for metrics: the broker's msg_cd, else ``http_<status>``, else ``kind`` or the class name."""
        if self.msg_cd:
            return self.msg_cd
        if self.http_status is not None:
            return f"http_{self.http_status}"
        return self.kind or type(self).__name__


class BrokerTransientError(BrokerError):
    """A failure worth retrying: network error, timeout, HTTP 5xx without a business code."""


class BrokerRateLimited(BrokerTransientError):
    """EGW00201 (초당 거래건수를 초과하였습니다) or the shared limiter could not grant a slot in time."""


class LimiterTimeout(BrokerRateLimited):
    """The shared limiter's queue is longer than ``rate_max_wait``: local congestion, not a broker failure."""


class BrokerAuthError(BrokerError):
    """Credentials were refused (EGW00103/EGW00105/EGW00206...). Not retried."""


class BrokerTokenRejected(BrokerAuthError):
    """EGW00123 (expired) / EGW00121 (invalid): the token is dropped, re-issued once, the call retried.

    ``rejected_token`` is the token that was refused (set by the client; never logged).
    """

    rejected_token: str | None = None


class BrokerTokenRateLimited(BrokerAuthError):
    """EGW00133: a token was issued for this app key less than a minute ago."""


class BrokerBusinessError(BrokerError):
    """The broker answered and refused (``rt_cd != "0"``) or the request was malformed (4xx)."""


class UnknownSymbol(BrokerBusinessError):
    """The stock code is malformed or the broker does not know it."""


class BrokerProtocolError(BrokerError):
    """The response does not follow the protocol (not JSON, missing fields, unparsable values)."""


class BrokerUnavailable(BrokerError):
    """The broker cannot be called right now (shared infrastructure missing, breaker open)."""


class CircuitOpen(BrokerUnavailable):
    """Fail-fast: the app key's circuit breaker is open for ``retry_after`` more seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


__all__ = [
    "KST",
    "AccessToken",
    "BrokerAuthError",
    "BrokerBusinessError",
    "BrokerError",
    "BrokerProtocolError",
    "BrokerRateLimited",
    "BrokerTokenRateLimited",
    "BrokerTokenRejected",
    "BrokerTransientError",
    "BrokerUnavailable",
    "CircuitOpen",
    "DailyBar",
    "LimiterTimeout",
    "MinuteBar",
    "PriceSign",
    "Quote",
    "UnknownSymbol",
]


# --- Real-time (WebSocket) results: kis-api.md §6.5 / §6.6 ---------------------------------------------


class TradeSide(enum.IntEnum):
    """``CCLD_DVSN`` of a real-time trade print: 1 = buyer-initiated, 5 = seller-initiated (§6.5)."""

    BUY = 1
    SELL = 5


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade print (H0STCNT0 record).

    ``at`` is the exchange time (BSOP_DATE + STCK_CNTG_HOUR, aware KST); ``received_at`` is when the
    frame arrived here (aware KST). ``volume`` is this trade's quantity (CNTG_VOL), ``cum_volume`` /
    ``cum_value`` the day's running totals (ACML_VOL / ACML_TR_PBMN). ``side`` is None when the broker
    sent a CCLD_DVSN other than 1/5. ``session`` is HOUR_CLS_CODE ("0" regular, "A"/"B"/"C"/"D" others).

    ``venue`` (KRX / NXT) and ``phase`` (``apps.core.krx.phases``: the phase the print happened in; a call
    phase's print is that call's single price) come from the TR and NEW_MKOP_CLS_CODE; ``halted`` is TRHT_YN;
    ``vi_reference`` is VI_STND_PRC (0 when the broker sends none).
    """

    code: str
    at: dt.datetime
    price: int
    change: int
    sign: PriceSign
    change_rate: Decimal
    volume: int
    cum_volume: int
    cum_value: int
    open: int
    high: int
    low: int
    ask1: int
    bid1: int
    side: TradeSide | None
    session: str
    received_at: dt.datetime
    venue: str = "KRX"
    phase: str = "continuous"
    halted: bool = False
    vi_reference: int = 0


@dataclass(frozen=True, slots=True)
class OrderBook:
    """A 10-level order book snapshot (H0STASP0 record).

    ``asks`` / ``bids`` always hold exactly 10 ``(price, qty)`` levels, best first (asks ascending,
    bids descending); an empty level is ``(0, 0)``. ``at`` combines BSOP_HOUR with the trading date
    (the frame has no date: the parser uses the last trade date it saw, else the reception date).
    """

    code: str
    at: dt.datetime
    asks: tuple[tuple[int, int], ...]
    bids: tuple[tuple[int, int], ...]
    total_ask_qty: int
    total_bid_qty: int
    cum_volume: int
    session: str
    received_at: dt.datetime
    #: The call's expected price and quantity while one builds (ANTC_CNPR / ANTC_CNQN; 0 otherwise).
    expected_price: int = 0
    expected_qty: int = 0
    #: The call building (``apps.core.krx.phases`` name) when ``expected_price`` is set, else "".
    phase: str = ""


@dataclass(frozen=True, slots=True)
class ExpectedTrade:
    """An expected-price update of a call auction (H0STANC0 record): the price and quantity if the call ended now."""

    code: str
    at: dt.datetime
    price: int
    quantity: int
    phase: str
    received_at: dt.datetime
    venue: str = "KRX"


@dataclass(frozen=True, slots=True)
class MarketStatus:
    """A market-operation record of one stock (H0STMKO0): its phase, whether it is halted, and its VI.

    ``vi`` is "" (none), "static" or "dynamic"; ``phase`` is "" when the code is not one Hoga knows."""

    code: str
    at: dt.datetime
    phase: str
    halted: bool
    vi: str
    received_at: dt.datetime
    venue: str = "KRX"


__all__ += ["ExpectedTrade", "MarketStatus", "OrderBook", "Tick", "TradeSide"]


# --- Condition search (Kiwoom 조건검색: kiwoom-api.md §A7, OpenAPI+ §B3) ------------------------------------------


@dataclass(frozen=True, slots=True)
class ConditionInfo:
    """One saved condition of the account (CNSRLST ``[seq, name]`` pair). ``seq`` is stripped of padding."""

    seq: str
    name: str


@dataclass(frozen=True, slots=True)
class ConditionHit:
    """One stock in a normal condition search result (CNSRREQ ``search_type`` 0).

    ``code`` is the 6-character stock code with the type prefix (``A``/``J``/``Q``) removed; ``price`` is the
    absolute current price (FID 10), ``change_rate`` the signed percentage (FID 12), ``volume`` FID 13.
    """

    code: str
    name: str
    price: int
    change_rate: Decimal
    volume: int


@dataclass(frozen=True, slots=True)
class ConditionAlert:
    """One real-time condition event: a ``REAL`` type ``02`` push, or an OpenAPI+ ``OnReceiveRealCondition``.

    ``kind`` is ``"IN"`` (FID 843 = ``I``, 편입) or ``"OUT"`` (843 = ``D``, 이탈); ``at`` is FID 20 (HHMMSS) on
    the trading date, aware KST; ``received_at`` is when it arrived here (aware KST).
    """

    seq: str
    code: str
    kind: str
    at: dt.datetime
    received_at: dt.datetime


__all__ += ["ConditionAlert", "ConditionHit", "ConditionInfo"]
