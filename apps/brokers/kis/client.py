"""The KIS REST client: httpx (async core) + a synchronous facade for Celery tasks.

Every request goes through, in this order:

1. the shared circuit breaker (fail fast with :class:`CircuitOpen` when open; a single-attempt probe
   when half-open),
2. the shared access token (in-process cache → TokenStore; issued under the store's cross-process lock),
3. the shared Redis rate limiter (a reserved slot; bounded wait),
4. the HTTP request, classified into a result or a typed :class:`BrokerError`,
5. retries: at most ``max_retries`` more attempts, exponential back-off with jitter, only for
   :class:`BrokerTransientError` (network, timeout, 5xx, EGW00201); EGW00123/EGW00121 drop the token,
   re-issue it once and retry at once; everything else is raised immediately.

Invariants: the client never touches the ORM (the token store is injected); it never logs the app
key, secret or token (only ``key_id``, the first 12 hex digits of the key's sha256); every wait is
bounded (HTTP timeout, limiter ``rate_max_wait``, token ``token_lock_timeout``, back-off ``backoff_max``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..base import (
    KST,
    AccessToken,
    BrokerAuthError,
    BrokerBusinessError,
    BrokerError,
    BrokerProtocolError,
    BrokerRateLimited,
    BrokerTokenRateLimited,
    BrokerTokenRejected,
    BrokerTransientError,
    DailyBar,
    MarketDay,
    MinuteBar,
    Quote,
    UnknownSymbol,
)
from ..rest import RestClient, RestResponse, SyncClient, token_request
from . import fundamentals, orders, parsing
from .config import KisConfig, tr_id_for

logger = logging.getLogger(__name__)

QUOTE_BASE = "/uapi/domestic-stock/v1/quotations"
TR_PRICE = "FHKST01010100"
TR_DAILY_PRICE = "FHKST01010400"
TR_DAILY_CHART = "FHKST03010100"
TR_MINUTE_CHART = "FHKST03010200"
TR_HOLIDAY = "CTCA0903R"  # 국내휴장일조회; paper sends VTCA0903R (§3.1), which KIS may refuse (EGW02006)
HOLIDAY_MAX_PAGES = 20  # a page holds about 24 dates (observed): 20 pages are more than a year
DAILY_CHART_MAX_ROWS = 100
MINUTE_CHART_MAX_ROWS = 30
TR_INVESTOR = "FHKST01010900"  # 주식현재가 투자자 (kis-api.md §5.6)
TR_INVESTOR_DAILY = "FHPTJ04160001"  # 종목별 투자자매매동향(일별) (named in §5.6)
TR_INVESTOR_ESTIMATE = (
    "HHPTJ04160200"  # 종목별 외인기관 추정가집계 (not in the reference: apps.brokers.kis.fundamentals)
)
FINANCE_BASE = "/uapi/domestic-stock/v1/finance"
TRADE_BASE = "/uapi/domestic-stock/v1/trading"
TR_DAILY_CCLD = "TTTC0081R"  # 주식일별주문체결조회 (kis-api.md §5.8; paper VTTC0081R by the §3.1 rule)
TR_BALANCE = "TTTC8434R"  # 주식잔고조회 (kis-api.md §5.8; paper VTTC8434R by the §3.1 rule)
BALANCE_MAX_PAGES = 50
INVESTOR_DAILY_MAX_PAGES = 40  # about 30 sessions a page (UNCONFIRMED): 40 pages are more than four years
SESSION_OPEN = dt.time(9, 0)
SESSION_CLOSE = dt.time(15, 30)

RATE_LIMIT_CODES = frozenset({"EGW00201"})
TOKEN_REJECTED_CODES = frozenset({"EGW00121", "EGW00123"})
TOKEN_RATE_CODES = frozenset({"EGW00133"})
#: Invalid app key / secret, no permission, and the OAuth "invalid client" family.
AUTH_CODES = frozenset({"EGW00102", "EGW00103", "EGW00104", "EGW00105", "EGW00106", "EGW00206"})
#: A TR the environment does not offer ("모의투자 TR 이 아닙니다."; seen with HTTP 500, UNCONFIRMED): a business
#: answer, never retried and never counted against the breaker.
UNSUPPORTED_CODES = frozenset({"EGW02006"})


@dataclass(frozen=True, slots=True)
class KisResponse(RestResponse):
    """A successful KIS response; ``tr_cont`` says whether more pages follow."""

    @property
    def tr_cont(self) -> str:
        return str(self.headers.get("tr_cont", ""))


def classify(status: int, body: Any) -> BrokerError | None:
    """The typed error for an HTTP status and decoded body, or None when the response is a success.

    Codes win over statuses: a 500 carrying EGW00201 is a rate limit, a 500 carrying EGW00123 a
    token problem, a 500 carrying EGW00103 bad credentials (none of which a retry alone would fix,
    except the rate limit).
    """
    data = body if isinstance(body, Mapping) else {}
    msg_cd = str(data.get("msg_cd") or data.get("error_code") or "").strip()
    msg1 = str(data.get("msg1") or data.get("error_description") or "").strip()
    detail = f"{msg_cd} {msg1}".strip() or f"HTTP {status}"
    if msg_cd in RATE_LIMIT_CODES:
        return BrokerRateLimited(f"rate limited by the broker: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if msg_cd in TOKEN_REJECTED_CODES:
        return BrokerTokenRejected(f"token rejected: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if msg_cd in TOKEN_RATE_CODES:
        return BrokerTokenRateLimited(f"token issuance refused: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if msg_cd in AUTH_CODES:
        return BrokerAuthError(f"credentials refused: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if msg_cd in UNSUPPORTED_CODES:
        return BrokerBusinessError(f"not offered here: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if status >= 500:
        return BrokerTransientError(f"broker error: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if status == 429:
        return BrokerRateLimited(f"rate limited: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if status in (401, 403):
        return BrokerAuthError(f"refused: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if status >= 400:
        return BrokerBusinessError(f"request refused: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    if not isinstance(body, Mapping):
        return BrokerProtocolError(f"HTTP {status} without a JSON object body", http_status=status)
    rt_cd = data.get("rt_cd")
    if rt_cd is not None and str(rt_cd).strip() != "0":
        return BrokerBusinessError(f"broker refused: {detail}", msg_cd=msg_cd, msg1=msg1, http_status=status)
    return None


class AsyncKisClient(RestClient[KisConfig, KisResponse]):
    """Asynchronous KIS REST client for one app key. Use ``async with`` or call :meth:`aclose`.

    One instance per event loop (its httpx and Redis connections belong to the loop that created them).
    """

    broker = "kis"
    response_type = KisResponse
    label_field = "tr_id"
    max_connections = (50, 20)
    classify = staticmethod(classify)

    # --- public API ---------------------------------------------------------------------------------

    async def current_price(self, code: str, *, market: str = "J") -> Quote:
        """Current price (FHKST01010100). Raises :class:`UnknownSymbol` for an unknown code."""
        code = parsing.normalize_code(code)
        resp = await self.get(
            f"{QUOTE_BASE}/inquire-price",
            TR_PRICE,
            {"FID_COND_MRKT_DIV_CODE": market, "FID_INPUT_ISCD": code},
        )
        return parsing.parse_quote(code, resp.body.get("output"), fetched_at=dt.datetime.now(KST))

    async def daily_prices(
        self, code: str, *, period: str = "D", adjusted: bool = False, market: str = "J"
    ) -> list[DailyBar]:
        """The last 30 days/weeks/months (FHKST01010400), oldest first. ``FID_ORG_ADJ_PRC``: 1 = adjusted here."""
        code = parsing.normalize_code(code)
        resp = await self.get(
            f"{QUOTE_BASE}/inquire-daily-price",
            TR_DAILY_PRICE,
            {
                "FID_COND_MRKT_DIV_CODE": market,
                "FID_INPUT_ISCD": code,
                "FID_PERIOD_DIV_CODE": period,
                "FID_ORG_ADJ_PRC": "1" if adjusted else "0",
            },
        )
        bars = parsing.parse_daily_price_rows(code, parsing.rows_of(resp.body, "output"))
        return sorted({b.date: b for b in bars}.values(), key=lambda b: b.date)

    async def daily_bars(
        self,
        code: str,
        start: dt.date,
        end: dt.date,
        *,
        period: str = "D",
        adjusted: bool = True,
        market: str = "J",
    ) -> list[DailyBar]:
        """Bars from ``start`` to ``end`` inclusive (FHKST03010100), oldest first, any range length.

        Pages backwards (≤100 rows per call, newest first) with ``FID_INPUT_DATE_2`` = oldest date
        returned − 1 day until the range is covered or a page is short (fewer than 100 rows in the range: the
        broker has nothing older, e.g. a recently listed stock). ``FID_ORG_ADJ_PRC``: 0 = adjusted
        in this TR (the opposite of FHKST01010400). Duplicate dates are dropped.
        """
        code = parsing.normalize_code(code)
        if start > end:
            raise ValueError("start must not be after end")
        collected: dict[dt.date, DailyBar] = {}
        cursor = end
        max_pages = (end - start).days + 2  # every page moves the cursor back by at least one day
        for _ in range(max_pages):
            resp = await self.get(
                f"{QUOTE_BASE}/inquire-daily-itemchartprice",
                TR_DAILY_CHART,
                {
                    "FID_COND_MRKT_DIV_CODE": market,
                    "FID_INPUT_ISCD": code,
                    "FID_INPUT_DATE_1": start.strftime("%Y%m%d"),
                    "FID_INPUT_DATE_2": cursor.strftime("%Y%m%d"),
                    "FID_PERIOD_DIV_CODE": period,
                    "FID_ORG_ADJ_PRC": "0" if adjusted else "1",
                },
            )
            page = [
                b
                for b in parsing.parse_chart_daily_rows(code, parsing.rows_of(resp.body, "output2"))
                if start <= b.date <= cursor
            ]
            if not page:
                if not collected:
                    self._raise_if_unknown(code, resp.body.get("output1"))
                break
            for bar in page:
                collected.setdefault(bar.date, bar)
            oldest = min(b.date for b in page)
            if oldest <= start or len(page) < DAILY_CHART_MAX_ROWS:  # a short page: nothing older in the range
                break
            cursor = oldest - dt.timedelta(days=1)
        return sorted(collected.values(), key=lambda b: b.date)

    async def minute_bars_today(
        self,
        code: str,
        *,
        until: dt.time | None = None,
        since: dt.time = SESSION_OPEN,
        market: str = "J",
    ) -> list[MinuteBar]:
        """Today's 1-minute bars from ``since`` up to ``until`` (FHKST03010200), oldest first.

        Pages back through the day (≤30 rows per call, newest first): the next ``FID_INPUT_HOUR_1`` is
        the oldest bar's time − 1 minute; stops at ``since`` (09:00 by default), on an empty page or when
        a page makes no progress. ``until=None`` asks for "now": the later of the KST wall time and
        15:30 (KIS treats a future time as now). Duplicate minutes are dropped.
        """
        code = parsing.normalize_code(code)
        if until is None:
            now = dt.datetime.now(KST).time().replace(microsecond=0)
            until = max(now, SESSION_CLOSE)
        collected: dict[dt.datetime, MinuteBar] = {}
        cursor = until
        previous_oldest: dt.datetime | None = None
        for _ in range(24 * 60 // MINUTE_CHART_MAX_ROWS + 2):
            resp = await self.get(
                f"{QUOTE_BASE}/inquire-time-itemchartprice",
                TR_MINUTE_CHART,
                {
                    "FID_COND_MRKT_DIV_CODE": market,
                    "FID_INPUT_ISCD": code,
                    "FID_INPUT_HOUR_1": cursor.strftime("%H%M%S"),
                    "FID_PW_DATA_INCU_YN": "Y",
                    "FID_ETC_CLS_CODE": "",
                },
            )
            page = [
                b
                for b in parsing.parse_minute_rows(code, parsing.rows_of(resp.body, "output2"))
                if since <= b.at.time() <= cursor
            ]
            if not page:
                if not collected:
                    self._raise_if_unknown(code, resp.body.get("output1"))
                break
            for bar in page:
                collected.setdefault(bar.at, bar)
            oldest = min(b.at for b in page)
            if oldest.time() <= since or (previous_oldest is not None and oldest >= previous_oldest):
                break
            previous_oldest = oldest
            cursor = (oldest - dt.timedelta(minutes=1)).time()
        return sorted(collected.values(), key=lambda b: b.at)

    async def market_days(self, since: dt.date, *, days: int = 90) -> list[MarketDay]:
        """KIS 국내휴장일조회 (CTCA0903R) from ``since`` for at least ``days`` days, oldest first.

        KIS asks callers to query it about once a day (its ledger service answers it). Pages follow the
        official sample: header ``tr_cont: N`` and ``CTX_AREA_FK``/``CTX_AREA_NK`` copied from the body's
        ``ctx_area_fk``/``ctx_area_nk``, while the response's ``tr_cont`` is F/M. Stops once the horizon is
        covered, on the last page, when a page adds no new date, or after ``HOLIDAY_MAX_PAGES``.
        """
        horizon = since + dt.timedelta(days=max(days, 1) - 1)
        collected: dict[dt.date, MarketDay] = {}
        fk = nk = ""
        tr_cont = ""
        for _ in range(HOLIDAY_MAX_PAGES):
            resp = await self.get(
                f"{QUOTE_BASE}/chk-holiday",
                TR_HOLIDAY,
                {"BASS_DT": since.strftime("%Y%m%d"), "CTX_AREA_FK": fk, "CTX_AREA_NK": nk},
                tr_cont=tr_cont,
            )
            page = parsing.parse_market_days(parsing.rows_of(resp.body, "output"))
            fresh = [d for d in page if d.date >= since and d.date not in collected]
            for day in fresh:
                collected[day.date] = day
            if not fresh or not parsing.is_more(resp.tr_cont) or max(collected) >= horizon:
                break
            fk = str(resp.body.get("ctx_area_fk") or "")
            nk = str(resp.body.get("ctx_area_nk") or "")
            tr_cont = "N"
        return sorted(collected.values(), key=lambda d: d.date)

    # --- investor flows and financial statements (apps.brokers.kis.fundamentals) ----------------------

    async def investor_flows(self, code: str, *, market: str = "J") -> list[fundamentals.InvestorFlowDay]:
        """The last ~30 days of 개인/외국인/기관 buys, sells and nets (FHKST01010900), oldest first. Today's row is
        left out until the broker fills it after the close (kis-api.md §5.6)."""
        code = parsing.normalize_code(code)
        resp = await self.get(
            f"{QUOTE_BASE}/inquire-investor", TR_INVESTOR, {"FID_COND_MRKT_DIV_CODE": market, "FID_INPUT_ISCD": code}
        )
        rows = fundamentals.parse_investor_rows(code, parsing.rows_of(resp.body, "output"))
        return sorted({r.date: r for r in rows}.values(), key=lambda r: r.date)

    async def investor_flows_by_type(
        self, code: str, start: dt.date, end: dt.date, *, market: str = "J"
    ) -> list[fundamentals.InvestorFlowDay]:
        """Nets by investor type with 기타법인 and the institutional subtypes (FHPTJ04160001) from ``start`` to
        ``end``, oldest first. Pages back with ``FID_INPUT_DATE_1`` = the oldest date returned - 1 day (a page holds
        about 30 sessions, newest first) until ``start`` is covered or a page brings nothing new."""
        code = parsing.normalize_code(code)
        if start > end:
            raise ValueError("start must not be after end")
        collected: dict[dt.date, fundamentals.InvestorFlowDay] = {}
        cursor = end
        for _ in range(INVESTOR_DAILY_MAX_PAGES):
            resp = await self.get(
                f"{QUOTE_BASE}/investor-trade-by-stock-daily",
                TR_INVESTOR_DAILY,
                {
                    "FID_COND_MRKT_DIV_CODE": market,
                    "FID_INPUT_ISCD": code,
                    "FID_INPUT_DATE_1": cursor.strftime("%Y%m%d"),
                    "FID_ORG_ADJ_PRC": "",
                    "FID_ETC_CLS_CODE": "",
                },
            )
            page = [
                r
                for r in fundamentals.parse_investor_daily_rows(code, parsing.rows_of(resp.body, "output2"))
                if start <= r.date <= cursor and r.date not in collected
            ]
            if not page:
                break
            for row in page:
                collected[row.date] = row
            oldest = min(r.date for r in page)
            if oldest <= start:
                break
            cursor = oldest - dt.timedelta(days=1)
        return sorted(collected.values(), key=lambda r: r.date)

    async def investor_estimates(self, code: str, *, path: str | None = None) -> list[fundamentals.InvestorEstimate]:
        """Today's intraday 외국인/기관 net-buy estimates (HHPTJ04160200), by input slot. ``path`` overrides the
        assumed ``…/quotations/investor-trend-estimate`` (setting ``KIS_INVESTOR_ESTIMATE_PATH``)."""
        code = parsing.normalize_code(code)
        resp = await self.get(
            path or f"{QUOTE_BASE}/investor-trend-estimate", TR_INVESTOR_ESTIMATE, {"MKSC_SHRN_ISCD": code}
        )
        return fundamentals.parse_estimate_rows(code, parsing.rows_of(resp.body, "output2"))

    async def financial_statement(
        self, code: str, kind: str, *, annual: bool, market: str = "J"
    ) -> list[fundamentals.StatementRow]:
        """One statement TR (``kind``: balance, income, ratio, profit, stability, growth; FHKST664301/02/03/04/06/08
        00), annual (``FID_DIV_CLS_CODE`` 0) or quarterly (1), newest period first."""
        code = parsing.normalize_code(code)
        if kind not in fundamentals.STATEMENT_TRS:
            raise ValueError(f"unknown statement kind {kind!r}")
        tr_id, name = fundamentals.STATEMENT_TRS[kind]
        resp = await self.get(
            f"{FINANCE_BASE}/{name}",
            tr_id,
            {"FID_DIV_CLS_CODE": "0" if annual else "1", "FID_COND_MRKT_DIV_CODE": market, "FID_INPUT_ISCD": code},
        )
        return fundamentals.parse_statement_rows(code, kind, annual, parsing.rows_of(resp.body, "output"))

    # --- orders at the broker (apps.brokers.kis.orders) ------------------------------------------------------

    async def order_cash(
        self,
        *,
        account: str,
        product: str,
        side: str,
        code: str,
        quantity: int,
        price: int | None,
        venue: str = "KRX",
    ) -> orders.OrderAck:
        """A cash order (kis-api.md §5.7): limit (``ORD_DVSN`` 00) at ``price``, or market (01) when ``price`` is
        None. Not idempotent at the broker: build the client with ``max_retries=0`` so that a timeout is never
        sent twice (the order's fate is then read back from :meth:`daily_orders`)."""
        code = parsing.normalize_code(code)
        if side not in orders.ORDER_TR or venue not in orders.VENUES or quantity <= 0:
            raise ValueError("side must be 01/02, venue KRX/NXT/SOR, quantity positive")
        body = {
            "CANO": account,
            "ACNT_PRDT_CD": product,
            "PDNO": code,
            "ORD_DVSN": "01" if price is None else "00",
            "ORD_QTY": str(quantity),
            "ORD_UNPR": "0" if price is None else str(price),
            "EXCG_ID_DVSN_CD": venue,
            "SLL_TYPE": "01" if side == orders.SELL else "",
            "CNDT_PRIC": "",
        }
        resp = await self.request("POST", f"{TRADE_BASE}/order-cash", orders.ORDER_TR[side], json=body)
        out = resp.body.get("output") or {}
        if not isinstance(out, Mapping) or not str(out.get("ODNO") or "").strip():
            raise BrokerProtocolError("order answer without ODNO")
        tmd = str(out.get("ORD_TMD") or "").strip()
        return orders.OrderAck(
            order_no=str(out["ODNO"]).strip(),
            branch=str(out.get("KRX_FWDG_ORD_ORGNO") or "").strip(),
            accepted_at=parsing.parse_hhmmss(tmd, field="ORD_TMD") if tmd else None,
        )

    async def order_revise_cancel(
        self,
        *,
        account: str,
        product: str,
        branch: str,
        original_order_no: str,
        cancel: bool = True,
        quantity: int | None = None,
        price: int | None = None,
        venue: str = "KRX",
    ) -> orders.RevisionAck:
        """Cancel (or modify: ``cancel=False`` with the new ``price``, None = market) an order's remainder at the
        broker (``order-rvsecncl``, kis-api.md §5.7; the body's names are UNCONFIRMED, see ``orders.RVSECNCL``).
        ``quantity`` None: all of the remainder (``QTY_ALL_ORD_YN`` Y). Not idempotent: ``max_retries=0``."""
        if venue not in orders.VENUES or (quantity is not None and quantity <= 0):
            raise ValueError("venue KRX/NXT/SOR, quantity positive or None")
        if not original_order_no.strip():
            raise ValueError("the original order number is required")
        spec = orders.RVSECNCL
        body = {
            "CANO": account,
            "ACNT_PRDT_CD": product,
            "KRX_FWDG_ORD_ORGNO": branch,
            "ORGN_ODNO": original_order_no,
            "ORD_DVSN": "00" if cancel or price is not None else "01",
            "RVSE_CNCL_DVSN_CD": spec["cancel"] if cancel else spec["modify"],
            "ORD_QTY": "0" if quantity is None else str(quantity),
            "ORD_UNPR": "0" if cancel or price is None else str(price),
            "QTY_ALL_ORD_YN": spec["all"] if quantity is None else spec["part"],
            "EXCG_ID_DVSN_CD": venue,
        }
        resp = await self.request("POST", f"{TRADE_BASE}/{spec['path']}", spec["tr"], json=body)
        out = resp.body.get("output") or {}
        if not isinstance(out, Mapping) or not str(out.get("ODNO") or "").strip():
            raise BrokerProtocolError("modify/cancel answer without ODNO")
        tmd = str(out.get("ORD_TMD") or "").strip()
        return orders.RevisionAck(
            order_no=str(out["ODNO"]).strip(),
            original_order_no=original_order_no,
            branch=str(out.get("KRX_FWDG_ORD_ORGNO") or "").strip(),
            accepted_at=parsing.parse_hhmmss(tmd, field="ORD_TMD") if tmd else None,
        )

    async def daily_orders(
        self, *, account: str, product: str, day: dt.date, venue: str = "ALL"
    ) -> list[orders.BrokerOrderRow]:
        """The account's orders of ``day`` with their filled quantity (``inquire-daily-ccld``, kis-api.md §5.8),
        following ``tr_cont`` pages (§3.3)."""
        rows: list[orders.BrokerOrderRow] = []
        fk = nk = ""
        tr_cont = ""
        for _ in range(50):
            resp = await self.get(
                f"{TRADE_BASE}/inquire-daily-ccld",
                TR_DAILY_CCLD,
                {
                    "CANO": account, "ACNT_PRDT_CD": product, "INQR_STRT_DT": day.strftime("%Y%m%d"),
                    "INQR_END_DT": day.strftime("%Y%m%d"), "SLL_BUY_DVSN_CD": "00", "INQR_DVSN": "00", "PDNO": "",
                    "CCLD_DVSN": "00", "ORD_GNO_BRNO": "", "ODNO": "", "INQR_DVSN_3": "00", "INQR_DVSN_1": "",
                    "EXCG_ID_DVSN_CD": venue, "CTX_AREA_FK100": fk, "CTX_AREA_NK100": nk,
                },
                tr_cont=tr_cont,
            )  # fmt: skip
            for row in parsing.rows_of(resp.body, "output1"):
                if parsing.is_empty_row(row, "odno"):
                    continue
                rows.append(
                    orders.BrokerOrderRow(
                        order_no=str(row["odno"]).strip(),
                        code=str(row.get("pdno") or "").strip(),
                        side=str(row.get("sll_buy_dvsn_cd") or "").strip(),
                        quantity=parsing.parse_int(row.get("ord_qty"), field="ord_qty"),
                        price=parsing.parse_int(row.get("ord_unpr"), field="ord_unpr"),
                        filled_qty=parsing.parse_int(row.get("tot_ccld_qty"), field="tot_ccld_qty"),
                        filled_value=parsing.parse_int(row.get("tot_ccld_amt"), field="tot_ccld_amt"),
                        avg_price=parsing.parse_int(row.get("avg_prvs"), field="avg_prvs"),
                        remaining=parsing.parse_int(row.get("rmn_qty"), field="rmn_qty"),
                        cancelled=str(row.get("cncl_yn") or "").strip().upper() == "Y",
                        original_order_no=str(row.get("orgn_odno") or "").strip(),
                        cancelled_qty=parsing.parse_int(row.get("cnc_cfrm_qty") or "0", field="cnc_cfrm_qty"),
                    )
                )
            if not parsing.is_more(resp.tr_cont):
                break
            fk = str(resp.body.get("ctx_area_fk100") or "")
            nk = str(resp.body.get("ctx_area_nk100") or "")
            tr_cont = "N"
        return rows

    async def balance(self, *, account: str, product: str) -> orders.AccountBalance:
        """The account's deposit and holdings (``inquire-balance``, kis-api.md §5.8), following ``tr_cont`` pages
        (§3.3); the summary (``output2``) is read from the last page. Rows of a stock sold out today (quantity 0)
        are kept out."""
        holdings: list[orders.BrokerHolding] = []
        summary: Mapping[str, Any] = {}
        fk = nk = ""
        tr_cont = ""
        for _ in range(BALANCE_MAX_PAGES):
            resp = await self.get(
                f"{TRADE_BASE}/inquire-balance",
                TR_BALANCE,
                {
                    "CANO": account, "ACNT_PRDT_CD": product, "AFHR_FLPR_YN": "N", "OFL_YN": "", "INQR_DVSN": "02",
                    "UNPR_DVSN": "01", "FUND_STTL_ICLD_YN": "N", "FNCG_AMT_AUTO_RDPT_YN": "N", "PRCS_DVSN": "00",
                    "CTX_AREA_FK100": fk, "CTX_AREA_NK100": nk,
                },
                tr_cont=tr_cont,
            )  # fmt: skip
            for row in parsing.rows_of(resp.body, "output1"):
                if parsing.is_empty_row(row, "pdno"):
                    continue
                quantity = parsing.parse_int(row.get("hldg_qty"), field="hldg_qty")
                if quantity == 0:
                    continue
                holdings.append(
                    orders.BrokerHolding(
                        code=str(row["pdno"]).strip(),
                        name=str(row.get("prdt_name") or "").strip(),
                        quantity=quantity,
                        orderable=parsing.parse_int(row.get("ord_psbl_qty"), field="ord_psbl_qty"),
                        avg_price=str(parsing.parse_decimal(row.get("pchs_avg_pric"), field="pchs_avg_pric")),
                        purchase_amount=parsing.parse_int(row.get("pchs_amt"), field="pchs_amt"),
                        price=parsing.parse_int(row.get("prpr"), field="prpr"),
                        value=parsing.parse_int(row.get("evlu_amt"), field="evlu_amt"),
                    )
                )
            summaries = parsing.rows_of(resp.body, "output2")
            if summaries:
                summary = summaries[0]
            if not parsing.is_more(resp.tr_cont):
                break
            fk = str(resp.body.get("ctx_area_fk100") or "")
            nk = str(resp.body.get("ctx_area_nk100") or "")
            tr_cont = "N"
        if "dnca_tot_amt" not in summary:
            raise BrokerProtocolError("balance answer without output2.dnca_tot_amt")
        return orders.AccountBalance(
            cash=parsing.parse_int(summary.get("dnca_tot_amt"), field="dnca_tot_amt"),
            securities_value=parsing.parse_int(summary.get("scts_evlu_amt"), field="scts_evlu_amt"),
            total_value=parsing.parse_int(summary.get("tot_evlu_amt"), field="tot_evlu_amt"),
            holdings=tuple(holdings),
        )

    async def approval_key(self) -> str:
        """A WebSocket approval key (POST /oauth2/Approval; note the body field ``secretkey``)."""
        resp = await self.request(
            "POST",
            "/oauth2/Approval",
            None,
            json={
                "grant_type": "client_credentials",
                "appkey": self.config.app_key,
                "secretkey": self.config.app_secret,
            },
            auth=False,
        )
        key = str(resp.body.get("approval_key") or "").strip()
        if not key:
            raise BrokerProtocolError("approval response without approval_key")
        return key

    async def get(self, path: str, tr_id: str, params: Mapping[str, str], *, tr_cont: str = "") -> KisResponse:
        """A GET data call with the full retry/limit/breaker treatment."""
        return await self.request("GET", path, tr_id, params=params, tr_cont=tr_cont)

    async def request(
        self,
        method: str,
        path: str,
        tr_id: str | None,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        tr_cont: str = "",
        auth: bool = True,
    ) -> KisResponse:
        """Any KIS call. ``tr_id`` is given in its real form; the paper rule (§3.1) is applied here."""
        sent_tr_id = tr_id_for(self.config.env, tr_id) if tr_id else None
        return await self.call(
            sent_tr_id or path,
            lambda: self._attempt(method, path, sent_tr_id, params, json, tr_cont, auth),
            renewable=auth,
        )

    # --- internals ----------------------------------------------------------------------------------

    async def _attempt(
        self,
        method: str,
        path: str,
        tr_id: str | None,
        params: Mapping[str, str] | None,
        json: Mapping[str, Any] | None,
        tr_cont: str,
        auth: bool,
    ) -> KisResponse:
        headers = {"content-type": "application/json; charset=utf-8"}
        token: AccessToken | None = None
        if auth:
            token = await self._access_token()
            headers.update(
                {
                    "authorization": f"Bearer {token.token}",
                    "appkey": self.config.app_key,
                    "appsecret": self.config.app_secret,
                    "custtype": self.config.custtype,
                    "tr_cont": tr_cont,
                }
            )
            if tr_id:
                headers["tr_id"] = tr_id
        return await self.exchange(
            lambda: self._http.request(method, path, params=params, json=json, headers=headers),
            label=path,
            counted=tr_id,
            token=token,
        )

    # --- tokens -------------------------------------------------------------------------------------

    def _issue_token(self, last_issued_at: dt.datetime | None) -> AccessToken:
        """POST /oauth2/tokenP (synchronous: it runs in the token store's thread, under its lock).

        EGW00133 (issued less than a minute ago) is answered by waiting out the interval since the
        last issuance we know of, then asking again; the total wait is bounded by
        ``token_issue_interval + 15 s``. Never hammers: at most one request per computed wait.
        """
        cfg = self.config
        deadline = time.monotonic() + cfg.token_issue_interval + 15.0
        payload = {"grant_type": "client_credentials", "appkey": cfg.app_key, "appsecret": cfg.app_secret}
        with self._token_http() as http:
            while True:
                requested_at, response, body = token_request(
                    http, "/oauth2/tokenP", payload, {"content-type": "application/json"}
                )
                error = classify(response.status_code, body)
                if isinstance(error, BrokerTokenRateLimited):
                    since = (requested_at - last_issued_at).total_seconds() if last_issued_at else 0.0
                    wait = min(max(1.0, cfg.token_issue_interval - since + 1.0), cfg.token_issue_interval + 1.0)
                    if time.monotonic() + wait > deadline:
                        raise error
                    logger.warning(
                        "broker token issuance deferred",
                        extra={**self._log, "error_code": error.code, "wait_s": round(wait, 1)},
                    )
                    time.sleep(wait)
                    last_issued_at = None  # afterwards, only the back-stop interval applies
                    continue
                if error is not None:
                    raise error
                token, expires_at = parsing.parse_token(body, now=requested_at)
                logger.info(
                    "broker token issued",
                    extra={**self._log, "expires_at": expires_at.isoformat()},
                )
                return AccessToken(token=token, expires_at=expires_at, issued_at=requested_at)

    def _raise_if_unknown(self, code: str, output1: Any) -> None:
        """Chart TRs answer an unknown code with a zeroed ``output1`` and ``[{}]`` (kis-api.md §3.2)."""
        if isinstance(output1, Mapping) and parsing.parse_int(output1.get("stck_prpr"), field="stck_prpr") <= 0:
            raise UnknownSymbol(f"unknown stock code {code}", msg_cd="NO_DATA")


class SyncKisClient(SyncClient[AsyncKisClient]):
    """Blocking facade of :class:`AsyncKisClient` for Celery tasks and scripts (one per thread)."""

    async_type = AsyncKisClient

    @property
    def config(self) -> KisConfig:
        return self._client.config

    def current_price(self, code: str, **kwargs: Any) -> Quote:
        return self._run(self._client.current_price(code, **kwargs))

    def daily_prices(self, code: str, **kwargs: Any) -> list[DailyBar]:
        return self._run(self._client.daily_prices(code, **kwargs))

    def daily_bars(self, code: str, start: dt.date, end: dt.date, **kwargs: Any) -> list[DailyBar]:
        return self._run(self._client.daily_bars(code, start, end, **kwargs))

    def minute_bars_today(self, code: str, **kwargs: Any) -> list[MinuteBar]:
        return self._run(self._client.minute_bars_today(code, **kwargs))

    def market_days(self, since: dt.date, **kwargs: Any) -> list[MarketDay]:
        return self._run(self._client.market_days(since, **kwargs))

    def investor_flows(self, code: str, **kwargs: Any) -> list[fundamentals.InvestorFlowDay]:
        return self._run(self._client.investor_flows(code, **kwargs))

    def investor_flows_by_type(
        self, code: str, start: dt.date, end: dt.date, **kwargs: Any
    ) -> list[fundamentals.InvestorFlowDay]:
        return self._run(self._client.investor_flows_by_type(code, start, end, **kwargs))

    def investor_estimates(self, code: str, **kwargs: Any) -> list[fundamentals.InvestorEstimate]:
        return self._run(self._client.investor_estimates(code, **kwargs))

    def financial_statement(self, code: str, kind: str, **kwargs: Any) -> list[fundamentals.StatementRow]:
        return self._run(self._client.financial_statement(code, kind, **kwargs))

    def approval_key(self) -> str:
        return self._run(self._client.approval_key())

    def request(self, method: str, path: str, tr_id: str | None, **kwargs: Any) -> KisResponse:
        return self._run(self._client.request(method, path, tr_id, **kwargs))


__all__ = ["AsyncKisClient", "KisResponse", "SyncKisClient", "classify"]
