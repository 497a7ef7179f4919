"""REST listeners (real and paper) of the sandbox broker: auth, quotations, clock and admin routes.

Error choices the reference leaves open (all UNCONFIRMED, kept in one place here):
- Gateway errors (EGW00103/00105/00121/00123 with ``token_error_status``, EGW00201 with 500) answer
  ``{"rt_cd":"1","msg_cd":..,"msg1":..}``.
- OAuth errors (tokenP/Approval/revokeP) answer KIS's OAuth shape ``{"error_code", "error_description"}``
  plus ``rt_cd/msg_cd/msg1`` so either style of client reads them.
- A tr_id that does not belong to the path: HTTP 200, ``OPSQ0002`` "없는 서비스 코드 입니다".
- A bad market code: HTTP 200, ``OPSQ2001`` "ERROR : INPUT INVALID_CHECK_MRKT_DIV_CODE".
- Any other malformed parameter (date format, DATE_1 > DATE_2, period code, adjusted flag, hour):
  HTTP 200, ``OPSQ2002`` "ERROR INVALID INPUT [<FIELD>]".
- The holiday query (CTCA0903R) on the paper listener: ``EGW02006`` "모의투자 TR 이 아닙니다." with HTTP 500
  (reported by KIS users; ``SANDBOX_PAPER_HOLIDAY=serve`` answers it instead). Its pages: ``tr_cont`` M
  with ``msg_cd`` KIOK0500 "조회가 계속됩니다..다음버튼을 Click 하십시오." while more follow, as a captured
  response shows, then the usual success; ``ctx_area_fk``/``ctx_area_nk`` are the page's first and last
  dates padded to 20 characters (captured); the next page starts after ``CTX_AREA_NK``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from apps.core.krx import phases as P
from apps.sandbox import fundamentals, quotes
from apps.sandbox.auth import DESC_TOKEN_RATE, MSG_INVALID, MSG_RATE, AuthError, format_kst
from apps.sandbox.calendar import SandboxCalendar
from apps.sandbox.clock import parse_hhmmss
from apps.sandbox.data import ymd_date
from apps.sandbox.day import NEW_MKOP_BY_PHASE, VI_CLS_CODES
from apps.sandbox.faults import FaultError
from apps.sandbox.fundamentals import SYNTHETIC_HEADER
from apps.sandbox.history import past_minute_bars
from apps.sandbox.master import MasterFiles
from apps.sandbox.orders import OrderRefused
from apps.sandbox.replay import DayTape, RunningState
from apps.sandbox.trading import TradingApi

if TYPE_CHECKING:
    from apps.sandbox.server import SandboxCore

logger = logging.getLogger("apps.sandbox")

QUOTE_BASE = "/uapi/domestic-stock/v1/quotations"
TRADE_BASE = "/uapi/domestic-stock/v1/trading"
FINANCE_BASE = "/uapi/domestic-stock/v1/finance"
#: 재무제표 TRs (path, tr_id, statement kind): all synthetic (``apps.sandbox.fundamentals``).
STATEMENTS = {
    "balance-sheet": ("FHKST66430100", "balance"),
    "income-statement": ("FHKST66430200", "income"),
    "financial-ratio": ("FHKST66430300", "ratio"),
    "profit-ratio": ("FHKST66430400", "profit"),
    "stability-ratio": ("FHKST66430600", "stability"),
    "growth-ratio": ("FHKST66430800", "growth"),
}
INVESTOR_ROWS = 30
VENUE_OF = {"J": "KRX", "NX": "NXT", "UN": "UN"}
PAPER_OK_MSG = "모의투자 조회가 완료되었습니다." + " " * 49
SUCCESS = {"real": ("MCA00000", "정상처리 되었습니다."), "paper": ("20310000", PAPER_OK_MSG)}
MARKET_CODES = ("J", "NX", "UN")
DAILY_PRICE_ROWS = 30
CHART_MAX_ROWS = 100
MINUTE_MAX_ROWS = 30
#: FHKST03010230 (minute bars of a given day): at most 120 rows a call; KIS keeps about a year of minute bars
#: (kis-api.md §5.5).
PAST_MINUTE_MAX_ROWS = 120
MINUTE_HISTORY_DAYS = 365
HOLIDAY_PATH = f"{QUOTE_BASE}/chk-holiday"
HOLIDAY_TR = {"real": "CTCA0903R", "paper": "VTCA0903R"}  # paper: the T/J/C -> V rule (kis-api.md §3.1)
HOLIDAY_MORE = ("KIOK0500", "조회가 계속됩니다..다음버튼을 Click 하십시오." + " " * 35)
PAPER_NOT_OFFERED = ("EGW02006", "모의투자 TR 이 아닙니다.")
#: "Nothing found" of the query TRs (UNCONFIRMED text and code).
NO_DATA = ("KIOK0560", "조회할 내용이 없습니다")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ParamError(Exception):
    """A malformed query parameter (or a refused request) -> business error envelope, HTTP ``status``."""

    def __init__(self, msg_cd: str, msg1: str, *, rt_cd: str = "1", status: int = 200) -> None:
        super().__init__(msg1)
        self.msg_cd = msg_cd
        self.msg1 = msg1
        self.rt_cd = rt_cd
        self.status = status


#: The response's media type as KIS sends it (kis-api.md §3.2: ``Content-Type``, capitalised). The charset's case
#: is UNCONFIRMED (the portal shows ``utf-8``, one capture ``UTF-8``): ``SANDBOX_KIS_CONTENT_TYPE``.
KIS_CONTENT_TYPE = "application/json; charset=utf-8"


def json_response(
    body: object,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = KIS_CONTENT_TYPE,
) -> web.Response:
    """Compact UTF-8 JSON with KIS's header names, in KIS's order and case (kis-api.md §3.2): ``Content-Type``
    capitalised first, then the lower-case TR headers (``tr_id``, ``tr_cont``, ``gt_uid``) of data answers.
    KIS's own sample client builds a named tuple from every all-lower-case header name, so no lower-case name
    here may hold a character a Python identifier cannot (``content-type`` would break it); aiohttp writes the
    names as given and adds ``Content-Length``, ``Date`` and ``Server`` after them."""
    out = {"Content-Type": content_type}
    out.update(headers or {})
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return web.Response(body=payload, status=status, headers=out)


def _bad(field: str) -> ParamError:
    return ParamError("OPSQ2002", f"ERROR INVALID INPUT [{field}]")


def _date(params: dict[str, str], key: str) -> dt.date:
    """A ``YYYYMMDD`` parameter; year 0000 (python-kis asks ``00000101`` for "from the first record") is the
    earliest date."""
    raw = params.get(key, "")
    if len(raw) == 8 and raw.isdigit() and raw[:4] == "0000":
        return dt.date.min
    try:
        return ymd_date(raw)
    except ValueError as exc:
        raise _bad(key) from exc


def _choice(params: dict[str, str], key: str, allowed: tuple[str, ...]) -> str:
    value = params.get(key, "")
    if value not in allowed:
        raise _bad(key)
    return value


class RestApi:
    """One REST listener (``mode`` real or paper) over the shared core."""

    def __init__(self, core: SandboxCore, mode: str) -> None:
        self.core = core
        self.mode = mode

    def respond(self, body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return json_response(body, status, headers, self.core.config.kis_content_type)

    # --- application -----------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._fault_middleware])
        app.router.add_post("/oauth2/tokenP", self.token)
        app.router.add_post("/oauth2/revokeP", self.revoke)
        app.router.add_post("/oauth2/Approval", self.approval)
        data_routes: dict[str, tuple[str, Callable[[dict[str, str]], dict[str, object]]]] = {
            f"{QUOTE_BASE}/inquire-price": ("FHKST01010100", self.inquire_price),
            f"{QUOTE_BASE}/inquire-daily-price": ("FHKST01010400", self.inquire_daily_price),
            f"{QUOTE_BASE}/inquire-daily-itemchartprice": ("FHKST03010100", self.daily_chart),
            f"{QUOTE_BASE}/inquire-time-itemchartprice": ("FHKST03010200", self.time_chart),
            f"{QUOTE_BASE}/inquire-time-dailychartprice": ("FHKST03010230", self.day_time_chart),
            f"{QUOTE_BASE}/inquire-asking-price-exp-ccn": ("FHKST01010200", self.asking_price),
            f"{QUOTE_BASE}/inquire-investor": ("FHKST01010900", self.inquire_investor),
            f"{QUOTE_BASE}/investor-trade-by-stock-daily": ("FHPTJ04160001", self.investor_daily),
        }
        for name, (tr_id, kind) in STATEMENTS.items():
            data_routes[f"{FINANCE_BASE}/{name}"] = (tr_id, self._statement(kind))
        for path, (tr_id, build) in data_routes.items():
            app.router.add_get(path, self._data_handler(tr_id, build))
        app.router.add_get(f"{QUOTE_BASE}/search-info", self._data_handler("CTPF1604R", self.search_info, market=False))
        app.router.add_get(
            HOLIDAY_PATH,
            self._data_handler(HOLIDAY_TR[self.mode], self.chk_holiday, market=False, paper_refusable=True),
        )
        trading = TradingApi(self.core, self.mode)
        v = "V" if self.mode == "paper" else "T"
        app.router.add_post(
            f"{TRADE_BASE}/order-cash",
            self._data_handler(
                (f"{v}TTC0012U", f"{v}TTC0011U", f"{v}TTC0802U", f"{v}TTC0801U"), trading.order_cash, market=False
            ),
        )
        app.router.add_post(
            f"{TRADE_BASE}/order-rvsecncl",
            self._data_handler(f"{v}TTC0013U", trading.order_rvsecncl, market=False),
        )
        app.router.add_get(
            f"{TRADE_BASE}/inquire-balance", self._data_handler(f"{v}TTC8434R", trading.balance, market=False)
        )
        app.router.add_get(
            f"{TRADE_BASE}/inquire-daily-ccld",
            self._data_handler(
                (
                    f"{v}TTC0081R",
                    f"{v}TTC8001R",
                    f"{'V' if v == 'V' else 'C'}TSC9115R",
                    f"{'V' if v == 'V' else 'C'}TSC9215R",
                ),
                trading.daily_ccld,
                market=False,
            ),
        )
        app.router.add_get("/common/master/{name}", MasterFiles.of(self.core).handle)  # KIS stock master files
        app.router.add_get("/sandbox/clock", self.clock_get)
        app.router.add_post("/sandbox/clock", self._admin(self.clock_post))
        app.router.add_post("/sandbox/vi", self._admin(self.vi_post))
        app.router.add_get("/sandbox/faults", self._admin(self.faults_get))
        app.router.add_post("/sandbox/faults", self._admin(self.faults_post))
        app.router.add_delete("/sandbox/faults", self._admin(self.faults_delete))
        return app

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/sandbox/"):
            return await handler(request)
        faults = self.core.faults
        delay = faults.latency()
        if delay > 0:
            await asyncio.sleep(delay)
        status = faults.take_server_error()
        if status is not None:
            logger.info("fault: %s %s answered with injected HTTP %s", self.mode, request.path, status)
            return web.Response(status=status, text=f"{status} gateway error (sandbox fault)")
        return await handler(request)

    # --- oauth ------------------------------------------------------------------------------------
    async def _json_body(self, request: web.Request) -> dict[str, object]:
        try:
            body = await request.json(loads=json.loads)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}
        return body if isinstance(body, dict) else {}

    def _oauth_error(self, err: AuthError, description: str | None = None) -> web.Response:
        body = {
            "error_code": err.msg_cd,
            "error_description": description or err.msg1,
            "rt_cd": "1",
            "msg_cd": err.msg_cd,
            "msg1": err.msg1,
        }
        return self.respond(body, status=err.status)

    async def token(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        try:
            tok, new = self.core.authority.issue_token(
                str(body.get("appkey", "")), str(body.get("appsecret", "")), self.mode
            )
        except AuthError as err:
            logger.info("token refused (%s): %s %s", self.mode, err.msg_cd, err.msg1)
            return self._oauth_error(err, DESC_TOKEN_RATE if err.msg_cd == "EGW00133" else None)
        if new:
            logger.info("token issued (%s) for appkey %s…", self.mode, tok.appkey[:8])
        return self.respond(
            {
                "access_token": tok.token,
                "access_token_token_expired": format_kst(tok.expires_at),
                "token_type": "Bearer",
                "expires_in": int(round(tok.expires_at - tok.issued_at)),
            }
        )

    async def revoke(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        try:
            done = self.core.authority.revoke(
                str(body.get("appkey", "")),
                str(body.get("appsecret", "")),
                str(body.get("token", "")),
                self.mode,
            )
        except AuthError as err:
            return self._oauth_error(err)
        if not done:
            err = AuthError("EGW00121", MSG_INVALID, self.core.config.token_error_status)
            return self._oauth_error(err)
        logger.info("token revoked (%s)", self.mode)
        return self.respond({"code": 200, "message": "접근토큰 폐기에 성공하였습니다"})

    async def approval(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        try:
            key = self.core.authority.approval_key(
                str(body.get("appkey", "")), str(body.get("secretkey", "")), self.mode
            )
        except AuthError as err:
            return self._oauth_error(err)
        return self.respond({"approval_key": key})

    # --- data calls --------------------------------------------------------------------------------
    def _data_handler(
        self,
        tr_id: str | tuple[str, ...],
        build: Callable[[dict[str, str]], dict[str, object]],
        *,
        market: bool = True,
        paper_refusable: bool = False,
    ) -> Handler:
        accepted = (tr_id,) if isinstance(tr_id, str) else tr_id

        async def handle(request: web.Request) -> web.Response:
            core = self.core
            h = request.headers
            headers = {"tr_id": h.get("tr_id", ""), "tr_cont": "", "gt_uid": secrets.token_hex(16)}
            try:
                cred = core.authority.check_request(
                    h.get("authorization", ""), h.get("appkey", ""), h.get("appsecret", ""), self.mode
                )
            except AuthError as err:
                logger.info("data call refused (%s %s): %s", self.mode, request.path, err.msg_cd)
                return self.respond({"rt_cd": "1", "msg_cd": err.msg_cd, "msg1": err.msg1}, err.status, headers)
            if core.faults.take_rate_limit() or not core.authority.take_rate(cred.appkey, self.mode):
                return self.respond({"rt_cd": "1", "msg_cd": "EGW00201", "msg1": MSG_RATE}, 500, headers)
            if h.get("tr_id", "") not in accepted:
                return self.respond(
                    {"rt_cd": "1", "msg_cd": "OPSQ0002", "msg1": "없는 서비스 코드 입니다"}, 200, headers
                )
            if paper_refusable and self.mode == "paper" and core.config.paper_holiday == "refuse":
                msg_cd, msg1 = PAPER_NOT_OFFERED
                return self.respond({"rt_cd": "1", "msg_cd": msg_cd, "msg1": msg1}, 500, headers)
            if request.method == "POST":
                raw = await self._json_body(request)
                params = {str(k).upper(): v if isinstance(v, str) else str(v) for k, v in raw.items()}
            else:
                params = {k.upper(): v for k, v in request.query.items()}
            params["_TR_CONT"] = h.get("tr_cont", "")
            params["_TR_ID"] = h.get("tr_id", "")
            params["_APPKEY"] = cred.appkey
            try:
                venue_code = params.get("FID_COND_MRKT_DIV_CODE", "")
                if market and (venue_code not in MARKET_CODES or (self.mode == "paper" and venue_code != "J")):
                    # The paper server has no NXT / integrated quotes (kis-api.md §7; its refusal text UNCONFIRMED).
                    raise ParamError("OPSQ2001", "ERROR : INPUT INVALID_CHECK_MRKT_DIV_CODE")
                payload = build(params)
            except ParamError as err:
                return self.respond({"rt_cd": err.rt_cd, "msg_cd": err.msg_cd, "msg1": err.msg1}, err.status, headers)
            except OrderRefused as err:
                logger.info("%s %s refused (%s): %s", self.mode, request.path, err.msg_cd, err.msg1)
                return self.respond({"rt_cd": "1", "msg_cd": err.msg_cd, "msg1": err.msg1}, 200, headers)
            synthetic = payload.pop("_synthetic", None)
            if synthetic:
                headers[SYNTHETIC_HEADER] = str(synthetic)
            tr_cont = str(payload.pop("_tr_cont", ""))
            headers["tr_cont"] = tr_cont
            msg_cd, msg1 = SUCCESS[self.mode]
            if payload.pop("_more", False):
                msg_cd, msg1 = HOLIDAY_MORE
            if "_msg" in payload:
                msg_cd, msg1 = payload.pop("_msg")  # type: ignore[misc]
            body: dict[str, object] = {"rt_cd": "0", "msg_cd": msg_cd, "msg1": msg1}
            body.update(payload)
            return self.respond(body, 200, headers)

        return handle

    def _tape_state(self, params: dict[str, str]) -> tuple[DayTape | None, RunningState, int]:
        code = params.get("FID_INPUT_ISCD", "")
        tape = self.core.market.tape(code)
        now_ms = self.core.clock.now_ms()
        state = tape.state_at(now_ms) if tape is not None else RunningState()
        return tape, state, now_ms

    def inquire_price(self, params: dict[str, str]) -> dict[str, object]:
        tape, state, now_ms = self._tape_state(params)
        if tape is None:
            any_tape = next(iter(self.core.market.tapes.values()))
            template = quotes.inquire_price_output(self.core.market, any_tape, any_tape.state_at(0), 0)
            return {"output": quotes.zero_output(template)}
        venue = VENUE_OF.get(params.get("FID_COND_MRKT_DIV_CODE", "J"), "KRX")
        if venue != "KRX":
            state = self.core.venues.state(tape, venue, now_ms)
        out = quotes.inquire_price_output(self.core.market, tape, state, now_ms)
        fund = fundamentals.trailing(self.company(tape), self.core.market.date)
        price = int(out["stck_prpr"])
        out.update(
            {
                "eps": f"{fund['eps']:.2f}",
                "bps": f"{fund['bps']:.2f}",
                "per": f"{price / fund['eps']:.2f}" if fund["eps"] > 0 else "0.00",
                "pbr": f"{price / fund['bps']:.2f}" if fund["bps"] > 0 else "0.00",
            }
        )
        day = self.core.days.day(tape.code)
        episode = day.vi_at(now_ms) if day is not None and day.has_vi(now_ms) else None
        if episode is not None:
            out["vi_cls_code"] = VI_CLS_CODES[episode.kind]  # the VI in force (UNCONFIRMED codes, apps.sandbox.day)
        label = "fundamentals" if venue == "KRX" else "fundamentals, nxt"
        return {"output": out, "_synthetic": label}

    def company(self, tape: DayTape) -> fundamentals.Company:
        """The synthetic company behind ``tape`` (statements up to the replay day's year)."""
        shares = tape.instrument.listed_shares
        return fundamentals.company(
            tape.code, shares, tape.prev_close * shares, self.core.config.seed, self.core.market.date.year
        )

    def _statement(self, kind: str) -> Callable[[dict[str, str]], dict[str, object]]:
        def build(params: dict[str, str]) -> dict[str, object]:
            div = params.get("FID_DIV_CLS_CODE", "")
            if div not in ("0", "1"):
                raise _bad("FID_DIV_CLS_CODE")
            tape = self.core.market.tape(params.get("FID_INPUT_ISCD", ""))
            if tape is None:
                return {"output": []}
            rows = fundamentals.statement_rows(self.company(tape), self.core.market.date, div == "0", kind)
            return {"output": rows, "_synthetic": "financial statements"}

        return build

    def _flow_rows(
        self, tape: DayTape, now_ms: int, until: dt.date | None = None
    ) -> list[tuple[quotes.DailyBar, object]]:
        """(daily bar, flows or None) newest first; today's flows exist only after the close."""
        rows = self.core.market.daily_rows(tape.code, now_ms)
        if until is not None:
            rows = [r for r in rows if r.date <= until]
        closed = self.core.clock.state() == "closed"
        out: list[tuple[quotes.DailyBar, object]] = []
        for row in rows[::-1][: INVESTOR_ROWS + 1]:
            today = row.date == self.core.market.date
            flows = None if today and not closed else fundamentals.day_flows(tape.code, row, self.core.config.seed)
            out.append((row, flows))
        return out

    def inquire_investor(self, params: dict[str, str]) -> dict[str, object]:
        """FHKST01010900 주식현재가 투자자: 30 daily rows newest first; 개인/외국인/기관 buys, sells and nets
        (synthetic, ``apps.sandbox.fundamentals``); today's investor fields stay empty until the close."""
        tape, _state, now_ms = self._tape_state(params)
        if tape is None:
            return {"output": []}
        pairs = self._flow_rows(tape, now_ms)
        out = []
        for i, (row, flows) in enumerate(pairs[:INVESTOR_ROWS]):
            prev = pairs[i + 1][0].close if i + 1 < len(pairs) else row.close
            rec = {
                "stck_bsop_date": quotes.ymd(row.date),
                "stck_clpr": str(row.close),
                "prdy_vrss": str(row.close - prev),
                "prdy_vrss_sign": quotes.sign_code(row.close, prev),
            }
            for who in ("prsn", "frgn", "orgn"):
                if flows is None:
                    values = dict.fromkeys(
                        ("ntby_qty", "ntby_tr_pbmn", "shnu_vol", "shnu_tr_pbmn", "seln_vol", "seln_tr_pbmn"), ""
                    )
                else:
                    b, s_, vwap = flows.buys[who], flows.sells[who], flows.vwap  # type: ignore[attr-defined]
                    values = {
                        "ntby_qty": str(b - s_),
                        "ntby_tr_pbmn": fundamentals.million(b - s_, vwap),
                        "shnu_vol": str(b),
                        "shnu_tr_pbmn": fundamentals.million(b, vwap),
                        "seln_vol": str(s_),
                        "seln_tr_pbmn": fundamentals.million(s_, vwap),
                    }
                rec.update({f"{who}_{k}": v for k, v in values.items()})
            out.append(rec)
        return {"output": out, "_synthetic": "investor flows"}

    def investor_daily(self, params: dict[str, str]) -> dict[str, object]:
        """FHPTJ04160001 종목별 투자자매매동향(일별): ``output1`` today's snapshot, ``output2`` about 30 sessions
        back from ``FID_INPUT_DATE_1`` with nets by investor type, institutions split by subtype (synthetic)."""
        until = _date(params, "FID_INPUT_DATE_1")
        _choice(params, "FID_ORG_ADJ_PRC", ("", "0", "1"))
        tape, state, now_ms = self._tape_state(params)
        if tape is None:
            return {"output1": {}, "output2": []}
        q = quotes.Quote(tape, state)
        out1 = {
            "stck_prpr": str(q.price),
            "prdy_vrss": str(q.change),
            "prdy_vrss_sign": q.sign,
            "prdy_ctrt": q.rate,
            "acml_vol": str(state.volume),
            "prdy_vol": str(tape.prev_volume),
            "rprs_mrkt_kor_name": tape.instrument.market,
        }
        pairs = self._flow_rows(tape, now_ms, until)
        out2 = []
        for i, (row, flows) in enumerate(pairs[:INVESTOR_ROWS]):
            prev = pairs[i + 1][0].close if i + 1 < len(pairs) else row.close
            rec = {
                "stck_bsop_date": quotes.ymd(row.date),
                "stck_clpr": str(row.close),
                "stck_oprc": str(row.open),
                "stck_hgpr": str(row.high),
                "stck_lwpr": str(row.low),
                "prdy_vrss": str(row.close - prev),
                "prdy_vrss_sign": quotes.sign_code(row.close, prev),
                "prdy_ctrt": quotes.pct(row.close - prev, prev),
                "acml_vol": str(row.volume),
                "acml_tr_pbmn": str(quotes.amount(row)),
            }
            if flows is None:
                out2.append(rec)
                continue
            vwap = flows.vwap  # type: ignore[attr-defined]
            nets = {who: flows.net(who) for who in ("prsn", "frgn", "orgn", "etc_corp")}  # type: ignore[attr-defined]
            rec.update(
                {
                    "frgn_ntby_qty": str(nets["frgn"]),
                    "frgn_reg_ntby_qty": str(nets["frgn"]),
                    "frgn_nreg_ntby_qty": "0",
                    "prsn_ntby_qty": str(nets["prsn"]),
                    "orgn_ntby_qty": str(nets["orgn"]),
                    "etc_corp_ntby_vol": str(nets["etc_corp"]),
                    "frgn_ntby_tr_pbmn": fundamentals.million(nets["frgn"], vwap),
                    "prsn_ntby_tr_pbmn": fundamentals.million(nets["prsn"], vwap),
                    "orgn_ntby_tr_pbmn": fundamentals.million(nets["orgn"], vwap),
                    "etc_corp_ntby_tr_pbmn": fundamentals.million(nets["etc_corp"], vwap),
                }
            )
            subs = list(flows.orgn_split.items())  # type: ignore[attr-defined]
            left = nets["orgn"]
            for k, (name, share) in enumerate(subs):
                qty = left if k == len(subs) - 1 else int(nets["orgn"] * share)
                left -= qty if k < len(subs) - 1 else 0
                suffix = "vol" if name in ("pe_fund", "etc_orgt") else "qty"
                rec[f"{name}_ntby_{suffix}"] = str(qty)
                rec[f"{name}_ntby_tr_pbmn"] = fundamentals.million(qty, vwap)
            out2.append(rec)
        return {"output1": out1, "output2": out2, "_synthetic": "investor flows"}

    def inquire_daily_price(self, params: dict[str, str]) -> dict[str, object]:
        period = _choice(params, "FID_PERIOD_DIV_CODE", ("D", "W", "M"))
        # FID_ORG_ADJ_PRC 0 = not adjusted, 1 = adjusted; the recorded KRX data is raw and there is no
        # corporate-action data, so adjusted == raw.
        _choice(params, "FID_ORG_ADJ_PRC", ("0", "1"))
        tape, _state, now_ms = self._tape_state(params)
        if tape is None:
            return {"output": []}
        rows = quotes.aggregate(self.core.market.daily_rows(tape.code, now_ms), period)
        window = rows[-(DAILY_PRICE_ROWS + 1) :]
        out = quotes.daily_price_rows(window, tape.code)
        return {"output": out[:DAILY_PRICE_ROWS]}

    def daily_chart(self, params: dict[str, str]) -> dict[str, object]:
        start = _date(params, "FID_INPUT_DATE_1")
        end = _date(params, "FID_INPUT_DATE_2")
        if start > end:
            raise _bad("FID_INPUT_DATE_1")
        period = _choice(params, "FID_PERIOD_DIV_CODE", ("D", "W", "M", "Y"))
        # Here 0 = adjusted, 1 = raw (opposite of FHKST01010400); both give the raw recorded prices.
        _choice(params, "FID_ORG_ADJ_PRC", ("0", "1"))
        tape, state, now_ms = self._tape_state(params)
        if tape is None:
            template = quotes.chart_output1(next(iter(self.core.market.tapes.values())), quotes.RunningState(), 0)
            return {"output1": quotes.zero_output(template), "output2": [{}]}
        rows = quotes.aggregate(self.core.market.daily_rows(tape.code, now_ms), period)
        idx = [i for i, r in enumerate(rows) if start <= r.date <= end]
        picked = idx[-CHART_MAX_ROWS:]
        more = len(idx) > CHART_MAX_ROWS
        out2: list[dict[str, str]] = []
        if picked:
            first = picked[0]
            out2 = quotes.chart_rows(rows[first : picked[-1] + 1], rows[first - 1] if first > 0 else None)
        return {
            "output1": quotes.chart_output1(tape, state, now_ms),
            "output2": out2,
            "_tr_cont": "M" if more else "D",
        }

    @staticmethod
    def _hour(params: dict[str, str]) -> int:
        """``FID_INPUT_HOUR_1`` (HHMMSS) in seconds of day."""
        raw = params.get("FID_INPUT_HOUR_1", "")
        try:
            if len(raw) != 6:
                raise ValueError(raw)
            return parse_hhmmss(raw)
        except ValueError as exc:
            raise _bad("FID_INPUT_HOUR_1") from exc

    def time_chart(self, params: dict[str, str]) -> dict[str, object]:
        hour_s = self._hour(params)
        tape, state, now_ms = self._tape_state(params)
        if tape is None:
            template = quotes.time_chart_output1(next(iter(self.core.market.tapes.values())), quotes.RunningState())
            return {"output1": quotes.zero_output(template), "output2": [{}]}
        # 000000 is "now": python-kis starts its paging with FID_INPUT_HOUR_1=000000 and reads the latest bars.
        cutoff_ms = now_ms if hour_s == 0 else min(hour_s * 1000 + 999, now_ms)
        bars = tape.minute_bars(now_ms)
        eligible = [b for b in bars if b.minute_s * 1000 <= cutoff_ms and b.minute_s >= tape.times.open_s]
        rows = [quotes.minute_row(self.core.market.date, b) for b in eligible[-MINUTE_MAX_ROWS:]][::-1]
        return {"output1": quotes.time_chart_output1(tape, state), "output2": rows}

    def day_time_chart(self, params: dict[str, str]) -> dict[str, object]:
        """FHKST03010230 주식일별분봉조회 (kis-api.md §5.5): the 1-minute bars of ``FID_INPUT_DATE_1`` at or before
        ``FID_INPUT_HOUR_1``, newest first, at most 120 a call (a client pages back by moving the hour). The
        replayed day answers its bars up to the sandbox clock (as FHKST03010200); an earlier recorded day answers
        the tape model's bars of its recorded daily bar (``history.past_minute_bars``, the same bars Kiwoom's
        ka10080 pages through); a day with no record, in the future or more than ``MINUTE_HISTORY_DAYS`` back
        answers no rows. ``000000`` is the end of the day (the replayed day: now). Whether
        ``FID_PW_DATA_INCU_YN`` Y continues into the day before is UNCONFIRMED: one day is answered either way;
        whether the paper server serves the TR is UNCONFIRMED too (served)."""
        day = _date(params, "FID_INPUT_DATE_1")
        hour_s = self._hour(params)
        if params.get("FID_PW_DATA_INCU_YN", "N") not in ("Y", "N", ""):
            raise _bad("FID_PW_DATA_INCU_YN")
        tape, state, now_ms = self._tape_state(params)
        if tape is None:
            template = quotes.time_chart_output1(next(iter(self.core.market.tapes.values())), quotes.RunningState())
            return {"output1": quotes.zero_output(template), "output2": [{}]}
        market = self.core.market
        if day == market.date:
            cutoff_ms = now_ms if hour_s == 0 else min(hour_s * 1000 + 999, now_ms)
            bars = [b for b in tape.minute_bars(now_ms) if b.minute_s * 1000 <= cutoff_ms]
            bars = [b for b in bars if b.minute_s >= tape.times.open_s]
        elif market.date - dt.timedelta(days=MINUTE_HISTORY_DAYS) <= day < market.date:
            row = next((r for r in market.history.get(tape.code, []) if r.date == day), None)
            cutoff_s = 24 * 3600 if hour_s == 0 else hour_s
            past = past_minute_bars(tape, row, self.core.config.seed) if row is not None else []
            bars = [b for b in past if b.minute_s <= cutoff_s]
        else:
            bars = []
        rows = [quotes.minute_row(day, b) for b in bars[-PAST_MINUTE_MAX_ROWS:]][::-1]
        return {"output1": quotes.time_chart_output1(tape, state), "output2": rows}

    def asking_price(self, params: dict[str, str]) -> dict[str, object]:
        """FHKST01010200 호가/예상체결: ``output1`` the 10-level book in force now, ``output2`` the expected
        (call-auction) price, which is published only while an auction runs (0 in continuous trading)."""
        tape, state, now_ms = self._tape_state(params)
        if tape is None:
            return {"output1": {}, "output2": {}}
        out = quotes.asking_price_outputs(tape, state, now_ms, self.core.clock.state())
        day = self.core.days.day(tape.code)
        found = day.expected_at(now_ms) if day is not None else None
        if found is not None and found[0] in (P.VI_AUCTION, P.AFTER_HOURS_SINGLE):
            # A VI's call or an after-hours call building (the opening/closing auctions are in the output already).
            phase, exp = found
            out2 = out["output2"]
            assert isinstance(out2, dict)
            prev = tape.prev_close
            out2.update(
                {
                    "antc_cnpr": str(exp.price),
                    "antc_vol": str(exp.quantity),
                    "antc_cntg_vrss": str(exp.price - prev),
                    "antc_cntg_vrss_sign": quotes.sign_code(exp.price, prev, tape.upper_limit, tape.lower_limit),
                    "antc_cntg_prdy_ctrt": quotes.pct(exp.price - prev, prev),
                    "vi_cls_code": VI_CLS_CODES[day.vi_at(now_ms).kind] if phase == P.VI_AUCTION else "N",  # type: ignore[union-attr]
                }
            )
        out["output1"]["new_mkop_cls_code"] = NEW_MKOP_BY_PHASE.get(  # type: ignore[index]
            day.krx_phase(now_ms) if day is not None else P.CONTINUOUS, "20"
        )
        return out

    def search_info(self, params: dict[str, str]) -> dict[str, object]:
        """CTPF1604R 상품기본조회 (``PDNO``, ``PRDT_TYPE_CD`` 300 = 주식). An unknown product answers ``rt_cd`` 7
        (python-kis treats 7 as "no data" and tries the next product type; msg_cd/msg1 UNCONFIRMED)."""
        code = params.get("PDNO", "").strip()
        if params.get("PRDT_TYPE_CD", "") not in ("300", "301", "302"):
            raise _bad("PRDT_TYPE_CD")
        tape = self.core.market.tape(code)
        if tape is None or params.get("PRDT_TYPE_CD") != "300":
            raise ParamError(*NO_DATA, rt_cd="7")
        return {"output": quotes.product_info(tape)}

    def chk_holiday(self, params: dict[str, str]) -> dict[str, object]:
        """CTCA0903R: the sandbox calendar from ``BASS_DT``, ``holiday_page_rows`` dates per page; a next
        page (request ``tr_cont`` N) continues after ``CTX_AREA_NK``. Dates end ``holiday_horizon_days``
        after ``BASS_DT``."""
        start = _date(params, "BASS_DT")
        config = self.core.config
        first = start
        if params.get("_TR_CONT", "").strip().upper() == "N":
            try:
                first = ymd_date(params.get("CTX_AREA_NK", "").strip()) + dt.timedelta(days=1)
            except (ValueError, OverflowError) as exc:
                raise _bad("CTX_AREA_NK") from exc
            if first <= start:
                raise _bad("CTX_AREA_NK")
        try:
            last_day = start + dt.timedelta(days=config.holiday_horizon_days - 1)
        except OverflowError:
            last_day = dt.date.max
        count = max(0, min(config.holiday_page_rows, (last_day - first).days + 1))
        rows = SandboxCalendar.from_config(config).rows(first, count)
        more = bool(rows) and (last_day - first).days >= count
        return {
            "ctx_area_nk": (rows[-1]["bass_dt"] if rows else "").ljust(20),
            "ctx_area_fk": first.strftime("%Y%m%d").ljust(20),
            "output": rows,
            "_tr_cont": "M" if more else "D",
            "_more": more,
        }

    # --- clock and admin -----------------------------------------------------------------------------
    async def clock_get(self, request: web.Request) -> web.Response:
        return self.respond(self.core.clock_status())

    def _admin(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            token = self.core.config.admin_token
            given = request.headers.get("X-Sandbox-Admin", "")
            if not token or not secrets.compare_digest(given, token):
                logger.warning("admin call refused (%s %s): bad X-Sandbox-Admin", request.method, request.path)
                return self.respond({"error": "forbidden: X-Sandbox-Admin"}, 403)
            return await handler(request)

        return guarded

    async def clock_post(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        try:
            if "speed" in body:
                self.core.clock.set_speed(float(body["speed"]))
            if body.get("action") == "restart":
                self.core.restart_session()
            elif "time" in body:
                self.core.jump_to(parse_hhmmss(str(body["time"])))
            elif "speed" not in body:
                raise ValueError('give {"action":"restart"}, {"time":"HH:MM:SS"} or {"speed":x}')
        except (TypeError, ValueError) as exc:
            return self.respond({"error": str(exc)}, 400)
        return self.respond(self.core.clock_status())

    async def vi_post(self, request: web.Request) -> web.Response:
        """Force a VI episode: ``{"code": "005930", "time": "HH:MM:SS", "kind": "dynamic"|"static"}`` starts one
        at the stock's first continuous print at or after that time (``apps.sandbox.day.DayModel.force_vi``)."""
        body = await self._json_body(request)
        try:
            code = str(body.get("code", ""))
            day = self.core.days.day(code)
            if day is None:
                raise ValueError(f"unknown code {code!r}")
            at_s = parse_hhmmss(str(body.get("time", "")))
            day.force_vi(at_s * 1000, str(body.get("kind", "dynamic")))
        except (TypeError, ValueError) as exc:
            return self.respond({"error": str(exc)}, 400)
        logger.warning("VI forced for %s at %s (%s)", code, body.get("time"), body.get("kind", "dynamic"))
        # The episodes known through the forced one's end (scanning no further: a whole day would hold the loop).
        episodes = day.episodes(at_s * 1000 + (day.rules.duration_s + day.rules.random_end_s + 1) * 1000)
        return self.respond(
            {
                "code": code,
                "episodes": [
                    {"start_ms": e.start_ms, "end_ms": e.end_ms, "kind": e.kind, "reference": e.reference,
                     "price": e.price, "volume": e.volume, "forced": e.forced}
                    for e in episodes
                ],
            }
        )  # fmt: skip

    async def faults_get(self, request: web.Request) -> web.Response:
        return self.respond(self.core.faults.describe())

    async def faults_post(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        try:
            name = self.core.faults.apply(body)
        except (FaultError, TypeError, ValueError) as exc:
            return self.respond({"error": str(exc)}, 400)
        detail = await self.core.run_fault(name, body)
        result = self.core.faults.describe()
        result["applied"] = name
        result.update(detail)
        return self.respond(result)

    async def faults_delete(self, request: web.Request) -> web.Response:
        self.core.faults.clear()
        logger.info("faults cleared")
        return self.respond(self.core.faults.describe())
