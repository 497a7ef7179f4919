"""The Kiwoom REST listener (kiwoom-api.md A2–A5): token, api-id routing, paging, charts, basic info.

- Every TR is ``POST`` + JSON body; the ``api-id`` header picks the TR, the path is its group.
  Missing api-id -> 1501, an api-id of another group -> 1504, an unknown one -> 1505.
- Response headers ``api-id`` (echo), ``cont-yn`` and ``next-key``; the next page is asked with the
  identical body plus request headers ``cont-yn: Y`` and ``next-key``. ``next-key`` is the date (ka10081)
  or ``YYYYMMDDHHMMSS`` (ka10080) of the first row of the next page.
- Check order: token (8005/8031) -> api-id -> rate limit (1700, HTTP ``kiwoom_rate_status``) -> body
  (1511 missing field, 1517 bad format, 1901 market, 1902 unknown stock).
- ka10081 rows are the recorded daily bars the KIS quotation TRs use plus today's bar so far, newest
  first, prices unsigned as in the reference sample; ka10080 rows are the replayed day's prints up to the
  sandbox clock and then every earlier recorded day's modelled minute bars (``history.past_minute_bars``),
  aggregated per ``tic_scope`` minutes from the session's open, labelled with the bar's first minute like
  the KIS minute chart (label convention UNCONFIRMED), prices signed.
- The sandbox clock and fault admin routes (``/sandbox/clock``, ``/sandbox/faults``) are served here too.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from apps.sandbox import fundamentals
from apps.sandbox.clock import KST, OPEN_S
from apps.sandbox.data import DailyBar, ymd_date
from apps.sandbox.history import past_minute_bars
from apps.sandbox.kiwoom import formats
from apps.sandbox.kiwoom.auth import RATE_LIMITED, KiwoomError, declared_mode, input_error
from apps.sandbox.kiwoom.formats import sign_code
from apps.sandbox.quotes import amount, ymd
from apps.sandbox.replay import DayTape, MinuteBar
from apps.sandbox.rest import RestApi

if TYPE_CHECKING:
    from apps.sandbox.server import SandboxCore

logger = logging.getLogger("apps.sandbox")

OK_MSG = "정상적으로 처리되었습니다"
TIC_SCOPES = ("1", "3", "5", "10", "15", "30", "45", "60")
#: Known api-ids and their path group (only the ones with a handler are answered with data).
API_GROUPS: dict[str, str] = {
    "ka10001": "stkinfo",
    "ka10059": "stkinfo",
    "ka10079": "chart",
    "ka10080": "chart",
    "ka10081": "chart",
    "ka10082": "chart",
    "ka10083": "chart",
    "ka10094": "chart",
    "ka10060": "chart",
    "kt00001": "acnt",
    "kt00004": "acnt",
    "kt00005": "acnt",
    "kt00018": "acnt",
    "kt10000": "ordr",
    "kt10001": "ordr",
    "kt10002": "ordr",
    "kt10003": "ordr",
}

Body = dict[str, object]
Page = tuple[dict[str, object], str]  # payload, next-key ("" = last page)


#: Kiwoom's media type (kiwoom-api.md A3: ``Content-Type: application/json;charset=UTF-8``, no space).
KIWOOM_CONTENT_TYPE = "application/json;charset=UTF-8"


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Compact JSON with ``Content-Type`` first, then the lower-case TR headers ``api-id``, ``cont-yn``,
    ``next-key`` (A3)."""
    out = {"Content-Type": KIWOOM_CONTENT_TYPE}
    out.update(headers or {})
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return web.Response(body=payload, status=status, headers=out)


def _required(body: Body, key: str) -> str:
    value = body.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise input_error(1511, f"요소명={key}")
    if not isinstance(value, str):
        raise input_error(1517, f"요소명={key}")
    return value.strip()


class KiwoomRestApi:
    """One listener for real and mock keys over the shared core."""

    def __init__(self, core: SandboxCore) -> None:
        self.core = core
        self.admin = RestApi(core, "real")  # clock/fault admin handlers and the fault middleware
        self.handlers: dict[str, Callable[[Body, str], Page]] = {
            "ka10001": self.basic_info,
            "ka10080": self.minute_chart,
            "ka10081": self.daily_chart,
        }

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self.admin._fault_middleware])
        app.router.add_post("/oauth2/token", self.token)
        app.router.add_post("/oauth2/revoke", self.revoke)
        app.router.add_post("/api/dostk/{group}", self.data_call)
        app.router.add_get("/sandbox/clock", self.admin.clock_get)
        app.router.add_post("/sandbox/clock", self.admin._admin(self.admin.clock_post))
        app.router.add_get("/sandbox/faults", self.admin._admin(self.admin.faults_get))
        app.router.add_post("/sandbox/faults", self.admin._admin(self.admin.faults_post))
        app.router.add_delete("/sandbox/faults", self.admin._admin(self.admin.faults_delete))
        return app

    async def _body(self, request: web.Request) -> Body | None:
        try:
            body = await request.json(loads=json.loads)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    # --- oauth ------------------------------------------------------------------------------------
    async def token(self, request: web.Request) -> web.Response:
        headers = {"api-id": "au10001", "cont-yn": "N", "next-key": ""}
        body = await self._body(request) or {}
        try:
            tok = self.core.kiwoom_auth.issue(body, declared_mode(request.host))
        except KiwoomError as err:
            logger.info("kiwoom token refused: %s", err.code)
            return json_response(err.body(), 200, headers)
        logger.info("kiwoom token issued (%s) for appkey %s…", tok.mode, tok.appkey[:6])
        expires = dt.datetime.fromtimestamp(tok.expires_at, KST)
        return json_response(
            {
                "expires_dt": expires.strftime("%Y%m%d%H%M%S"),
                "token_type": "Bearer",
                "token": tok.token,
                "return_code": 0,
                "return_msg": OK_MSG,
            },
            200,
            headers,
        )

    async def revoke(self, request: web.Request) -> web.Response:
        headers = {"api-id": "au10002", "cont-yn": "N", "next-key": ""}
        body = await self._body(request) or {}
        try:
            self.core.kiwoom_auth.revoke(body)
        except KiwoomError as err:
            return json_response(err.body(), 200, headers)
        logger.info("kiwoom token revoked")
        return json_response({"return_code": 0, "return_msg": OK_MSG}, 200, headers)

    # --- data calls --------------------------------------------------------------------------------
    async def data_call(self, request: web.Request) -> web.Response:
        core = self.core
        group = request.match_info["group"]
        api_id = request.headers.get("api-id", "").strip()
        headers = {"api-id": api_id, "cont-yn": "N", "next-key": ""}
        try:
            tok = core.kiwoom_auth.check_header(request.headers.get("authorization", ""), declared_mode(request.host))
            if not api_id:
                raise input_error(1501)
            if api_id not in API_GROUPS:
                raise input_error(1505, f"API ID={api_id}")
            if API_GROUPS[api_id] != group or api_id not in self.handlers:
                raise input_error(1504, f"API ID={api_id}")
            category = "order" if api_id.startswith("kt1") else "query"
            if core.faults.take_rate_limit() or not core.kiwoom_auth.take_rate(tok.appkey, category):
                raise KiwoomError(RATE_LIMITED, 1700, f"API ID={api_id}")
            body = await self._body(request)
            if body is None:
                raise input_error(1517, "JSON body")
            cont = request.headers.get("cont-yn", "").upper() == "Y"
            next_key = request.headers.get("next-key", "").strip() if cont else ""
            payload, more_key = self.handlers[api_id](body, next_key)
        except KiwoomError as err:
            status = core.config.kiwoom_rate_status if err.code == 1700 else 200
            if err.code != 8005:
                logger.info("kiwoom %s %s: %s", api_id or "-", request.path, err.message)
            return json_response(err.body(), status, headers)
        if more_key:
            headers.update({"cont-yn": "Y", "next-key": more_key})
        if api_id == "ka10001":
            headers["X-Sandbox-Synthetic"] = "fundamentals"
        out: dict[str, object] = dict(payload)
        out.update({"return_code": 0, "return_msg": OK_MSG})
        return json_response(out, 200, headers)

    # --- TRs -----------------------------------------------------------------------------------------
    def _tape(self, body: Body) -> DayTape:
        raw = _required(body, "stk_cd")
        code, _, venue = raw.partition("_")
        if venue and venue not in ("NX", "AL"):
            raise input_error(1901, f"stk_cd={raw}")
        tape = self.core.market.tape(code)
        if tape is None or len(code) != 6:
            raise input_error(1902, f"stk_cd={raw}")
        return tape

    def basic_info(self, body: Body, next_key: str) -> Page:
        """ka10001 주식기본정보요청: flat fields, price fields signed (A4)."""
        tape = self._tape(body)
        market = self.core.market
        now_ms = self.core.clock.now_ms()
        st = tape.state_at(now_ms)
        prev = tape.prev_close
        last = st.last if st.count else prev
        rows = market.daily_rows(tape.code, now_ms)
        d250 = [r for r in rows[-250:] if r.high > 0]
        year = [r for r in rows if r.date.year == market.date.year and r.high > 0]
        shares = tape.instrument.listed_shares

        def extreme(sample: list[DailyBar], high: bool) -> tuple[int, str]:
            if not sample:
                return 0, ""
            best = max(sample, key=lambda r: r.high) if high else min(sample, key=lambda r: r.low)
            return (best.high if high else best.low), ymd(best.date)

        h250, h250d = extreme(d250, True)
        l250, l250d = extreme(d250, False)
        yh, _ = extreme(year, True)
        yl, _ = extreme(year, False)
        p = formats.price
        fund = self._fundamentals(tape, last)
        payload = {
            "stk_cd": str(body.get("stk_cd")),
            "stk_nm": tape.instrument.name,
            "setl_mm": "12",
            "fav": "0",
            "cap": "0",
            "flo_stk": str(shares // 1000),
            "crd_rt": "0.00",
            "oyr_hgst": p(yh, prev),
            "oyr_lwst": p(yl, prev),
            "mac": str(last * shares // 100_000_000),
            "mac_wght": fund["mac_wght"],
            "for_exh_rt": "0.00",
            "repl_pric": "0",
            "per": fund["per"],
            "eps": fund["eps"],
            "roe": fund["roe"],
            "pbr": fund["pbr"],
            "ev": fund["ev"],
            "bps": fund["bps"],
            "sale_amt": fund["sale_amt"],
            "bus_pro": fund["bus_pro"],
            "cup_nga": fund["cup_nga"],
            "250hgst": p(h250, prev),
            "250lwst": p(l250, prev),
            "high_pric": p(st.high, prev),
            "open_pric": p(st.open, prev),
            "low_pric": p(st.low, prev),
            "upl_pric": p(tape.upper_limit, prev),
            "lst_pric": p(tape.lower_limit, prev),
            "base_pric": str(prev),
            "exp_cntr_pric": "0",
            "exp_cntr_qty": "0",
            "250hgst_pric_dt": h250d,
            "250hgst_pric_pre_rt": formats.rate(last - h250, h250),
            "250lwst_pric_dt": l250d,
            "250lwst_pric_pre_rt": formats.rate(last - l250, l250),
            "cur_prc": p(last, prev),
            "pre_sig": sign_code(last, prev, tape.upper_limit, tape.lower_limit),
            "pred_pre": formats.signed(last - prev),
            "flu_rt": formats.rate(last - prev, prev),
            "trde_qty": str(st.volume),
            "trde_pre": formats.rate(st.volume - tape.prev_volume, tape.prev_volume),
            "fav_unit": "1",
            "dstr_stk": str(shares // 1000),
            "dstr_rt": "100.00",
        }
        return payload, ""

    def _fundamentals(self, tape: DayTape, last: int) -> dict[str, str]:
        """ka10001's fundamentals from the synthetic company model (``apps.sandbox.fundamentals``; the answer says
        so in its ``X-Sandbox-Synthetic`` header): PER/PBR at ``last``, EPS/BPS/ROE trailing, 매출액/영업이익/
        당기순이익 of the latest published year in 억원, EV/EBITDA-style ``ev`` as market cap over operating income,
        and ``mac_wght`` the stock's share of the sandbox universe's market cap (the universe stands in for the
        market: UNCONFIRMED how Kiwoom weighs it)."""

        market = self.core.market
        shares = tape.instrument.listed_shares
        co = fundamentals.company(tape.code, shares, tape.prev_close * shares, self.core.config.seed, market.date.year)
        trail = fundamentals.trailing(co, market.date)
        years = fundamentals.statement_periods(co, market.date, annual=True)
        revenue = operating = net = 0.0
        if years:
            covered = years[0][1]
            revenue = sum(q.revenue for q in covered)
            operating = sum(q.operating_income for q in covered)
            net = sum(q.net_income for q in covered)
        universe = sum(t.prev_close * t.instrument.listed_shares for t in market.tapes.values()) or 1
        mcap = last * shares
        return {
            "per": f"{last / trail['eps']:.2f}" if trail["eps"] > 0 else "",
            "eps": str(int(trail["eps"])),
            "roe": f"{trail['roe']:.2f}",
            "pbr": f"{last / trail['bps']:.2f}" if trail["bps"] > 0 else "",
            "bps": str(int(trail["bps"])),
            "ev": f"{mcap / (operating * fundamentals.EOK):.2f}" if operating > 0 else "",
            "sale_amt": str(int(revenue)),
            "bus_pro": str(int(operating)),
            "cup_nga": str(int(net)),
            "mac_wght": f"{mcap / universe * 100:.2f}",
        }

    def daily_chart(self, body: Body, next_key: str) -> Page:
        """ka10081 주식일봉차트조회요청: newest first from ``base_dt``, paged backwards (A4)."""
        tape = self._tape(body)
        base_raw = _required(body, "base_dt")
        if _required(body, "upd_stkpc_tp") not in ("0", "1"):
            raise input_error(1517, "요소명=upd_stkpc_tp")
        try:
            base = ymd_date(base_raw)
            start = ymd_date(next_key) if next_key else base
        except ValueError as exc:
            raise input_error(1517, "요소명=base_dt" if not next_key else "next-key") from exc
        rows = self.core.market.daily_rows(tape.code, self.core.clock.now_ms())
        prev_close = {rows[i].date: rows[i - 1].close for i in range(1, len(rows))}
        eligible = [r for r in rows if r.date <= min(base, start)][::-1]
        size = self.core.config.kiwoom_daily_rows
        page, rest = eligible[:size], eligible[size:]
        shares = tape.instrument.listed_shares
        out = []
        for row in page:
            pc = prev_close.get(row.date, row.close)
            out.append(
                {
                    "cur_prc": str(row.close),
                    "trde_qty": str(row.volume),
                    "trde_prica": str(amount(row) // 1_000_000),
                    "dt": ymd(row.date),
                    "open_pric": str(row.open),
                    "high_pric": str(row.high),
                    "low_pric": str(row.low),
                    "pred_pre": formats.signed(row.close - pc),
                    "pred_pre_sig": sign_code(row.close, pc),
                    "trde_tern_rt": formats.rate(row.volume, shares) if shares else "0.00",
                }
            )
        return {"stk_cd": str(body.get("stk_cd")), "stk_dt_pole_chart_qry": out}, (ymd(rest[0].date) if rest else "")

    def minute_chart(self, body: Body, next_key: str) -> Page:
        """ka10080 주식분봉차트조회요청: the replayed day's bars up to the sandbox clock, then each earlier recorded
        day's, newest first, from ``base_dt`` or the continuation key."""
        tape = self._tape(body)
        scope = _required(body, "tic_scope")
        if scope not in TIC_SCOPES:
            raise input_error(1517, "요소명=tic_scope")
        if _required(body, "upd_stkpc_tp") not in ("0", "1"):
            raise input_error(1517, "요소명=upd_stkpc_tp")
        day = self.core.market.date
        base_raw = body.get("base_dt")
        base = day
        if isinstance(base_raw, str) and base_raw.strip():
            try:
                base = ymd_date(base_raw.strip())
            except ValueError as exc:
                raise input_error(1517, "요소명=base_dt") from exc
        if next_key and (len(next_key) != 14 or not next_key.isdigit()):
            raise input_error(1517, "next-key")
        # Rows newest first from ``base_dt`` (or the continuation key) back through every recorded day: the replayed
        # day's bars up to the sandbox clock, then each earlier day's minute bars from the tape model
        # (``history.past_minute_bars``: the recorded daily bar spread over the session, deterministic).
        cursor = next_key or ymd(base) + "235959"
        size = self.core.config.kiwoom_minute_rows
        rows: list[dict[str, str]] = []
        history = [r for r in self.core.market.daily_rows(tape.code, self.core.clock.now_ms()) if r.date < day]
        prev_close = {history[i].date: history[i - 1].close for i in range(1, len(history))}
        days: list[tuple[dt.date, list[MinuteBar], int]] = []
        if ymd(day) <= cursor[:8]:
            today_bars = tape.minute_bars(self.core.clock.now_ms())
            days.append((day, today_bars, tape.prev_close))
        past = [r for r in history if ymd(r.date) <= cursor[:8]][::-1]
        more_after = ""
        for row in past:
            if len(rows) > size:
                break
            days.append(
                (row.date, past_minute_bars(tape, row, self.core.config.seed), prev_close.get(row.date, row.open))
            )
            for date_, bars, pc in days:
                rows.extend(self._minute_rows(tape, date_, bars, int(scope), pc, cursor))
            days = []
        for date_, bars, pc in days:
            rows.extend(self._minute_rows(tape, date_, bars, int(scope), pc, cursor))
        page, rest = rows[:size], rows[size:]
        more_after = rest[0]["cntr_tm"] if rest else ""
        return {"stk_cd": str(body.get("stk_cd")), "stk_min_pole_chart_qry": page}, more_after

    def _minute_rows(
        self, tape: DayTape, day: dt.date, bars: list[MinuteBar], scope: int, pc: int, cursor: str
    ) -> list[dict[str, str]]:
        """One day's ``scope``-minute rows newest first, at or before ``cursor`` (YYYYMMDDHHMMSS)."""
        prefix = ymd(day)
        upper, lower = tape.grid.table.price_limits(pc, day, tape.instrument.market)
        out: list[dict[str, str]] = []
        cumulative = 0
        for bar in aggregate_minutes(bars, scope, open_s=tape.times.open_s):
            cumulative += bar.volume
            out.append(
                {
                    "cur_prc": formats.price(bar.close, pc),
                    "trde_qty": str(bar.volume),
                    "cntr_tm": formats.ymd_hms(prefix, bar.minute_s),
                    "open_pric": formats.price(bar.open, pc),
                    "high_pric": formats.price(bar.high, pc),
                    "low_pric": formats.price(bar.low, pc),
                    "acc_trde_qty": str(cumulative),
                    "pred_pre": formats.signed(bar.close - pc),
                    "pred_pre_sig": sign_code(bar.close, pc, upper, lower),
                }
            )
        return [r for r in out[::-1] if r["cntr_tm"] <= cursor]


def aggregate_minutes(bars: list[MinuteBar], scope: int, *, open_s: int = OPEN_S) -> list[MinuteBar]:
    """1-minute bars (oldest first) grouped into ``scope``-minute bars counted from the open (``open_s``); each is
    labelled with its window's first minute. A bar outside the continuous session (the 15:30 closing
    print) falls into the window that contains it."""
    if scope == 1:
        return list(bars)
    out: list[MinuteBar] = []
    width = scope * 60
    for bar in bars:
        start = open_s + (bar.minute_s - open_s) // width * width
        if out and out[-1].minute_s == start:
            last = out[-1]
            out[-1] = MinuteBar(
                start,
                last.open,
                max(last.high, bar.high),
                min(last.low, bar.low),
                bar.close,
                last.volume + bar.volume,
                bar.cum_value,
            )
        else:
            out.append(MinuteBar(start, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.cum_value))
    return out
