"""KIS-shaped payloads built from the replayed market (kis-api.md §5, §6.5, §6.6).

Every value is a string. Sign codes (``prdy_vrss_sign``): 1 upper limit, 2 up, 3 unchanged,
4 lower limit, 5 down; changes are signed ("-500"). Fields the recorded data cannot supply
(foreign ownership, PER/PBR/EPS, program trading, credit) are "0"/"0.00"/"".
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from apps.sandbox.auction import STEP_S, expected_at
from apps.sandbox.data import DailyBar
from apps.sandbox.replay import DayTape, MinuteBar, OrderBook, ReplayMarket, RunningState, Tick
from apps.sandbox.venues import nxt_book, venue_book


def sign_code(price: int, prev: int, upper: int = 0, lower: int = 0) -> str:
    """KIS prdy_vrss_sign for ``price`` against ``prev`` (limits give 1/4)."""
    if price > prev:
        return "1" if upper and price >= upper else "2"
    if price < prev:
        return "4" if lower and price <= lower else "5"
    return "3"


def rel_sign(a: int, b: int) -> str:
    """2 / 3 / 5 for a above / equal / below b."""
    return "2" if a > b else "5" if a < b else "3"


def pct(num: float, den: float) -> str:
    """num/den in percent with 2 decimals ('0.00' when den is 0; never '-0.00')."""
    if not den:
        return "0.00"
    value = round(num / den * 100, 2)
    return f"{value + 0.0:.2f}"


def ratio(num: float, den: float) -> str:
    """num/den with 2 decimals ('0.00' when den is 0)."""
    return f"{round(num / den, 2) + 0.0:.2f}" if den else "0.00"


def hhmmss(t_ms: int) -> str:
    return _hhmmss(t_ms // 1000)


@functools.lru_cache(maxsize=4096)
def _hhmmss(s: int) -> str:
    """HHMMSS of a second of the day (cached: every replayed record carries one)."""
    return f"{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}"


def ymd(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


@dataclass(frozen=True, slots=True)
class Quote:
    """Price fields of one stock at one time; ``price`` is the previous close before the first print."""

    tape: DayTape
    state: RunningState

    @property
    def price(self) -> int:
        return self.state.last if self.state.count else self.tape.prev_close

    @property
    def change(self) -> int:
        return self.price - self.tape.prev_close

    @property
    def sign(self) -> str:
        return sign_code(self.price, self.tape.prev_close, self.tape.upper_limit, self.tape.lower_limit)

    @property
    def rate(self) -> str:
        return pct(self.change, self.tape.prev_close)


def _window(rows: list[DailyBar], since: dt.date) -> list[DailyBar]:
    return [r for r in rows if r.date >= since and r.high > 0]


def _extreme(rows: list[DailyBar], high: bool) -> tuple[int, str]:
    if not rows:
        return 0, ""
    best = max(rows, key=lambda r: r.high) if high else min(rows, key=lambda r: r.low)
    return (best.high if high else best.low), ymd(best.date)


def inquire_price_output(market: ReplayMarket, tape: DayTape, state: RunningState, now_ms: int) -> dict[str, str]:
    """``output`` of FHKST01010100 (about 80 fields, per the official example's field list);
    ``state`` is the tape's state at ``now_ms``, the quoted ask/bid the book in force then."""
    q = Quote(tape, state)
    inst = tape.instrument
    rows = market.daily_rows(tape.code, now_ms)
    day = market.date
    w52 = _window(rows, day - dt.timedelta(days=364))
    d250 = rows[-250:]
    year = _window(rows, dt.date(day.year, 1, 1))
    w52h, w52hd = _extreme(w52, True)
    w52l, w52ld = _extreme(w52, False)
    d250h, d250hd = _extreme(d250, True)
    d250l, d250ld = _extreme(d250, False)
    yh, yhd = _extreme(year, True)
    yl, yld = _extreme(year, False)
    price = q.price
    book = tape.order_book_at(now_ms)
    avg = state.value / state.volume if state.volume else 0
    return {
        "iscd_stat_cls_code": "55",
        "marg_rate": "20.00",
        "rprs_mrkt_kor_name": "KOSPI200" if inst.market == "KOSPI" else inst.market,
        "new_hgpr_lwpr_cls_code": "",
        "bstp_kor_isnm": "",
        "temp_stop_yn": "N",
        "oprc_rang_cont_yn": "N",
        "clpr_rang_cont_yn": "N",
        "crdt_able_yn": "Y",
        "grmn_rate_cls_code": "40",
        "elw_pblc_yn": "N",
        "stck_prpr": str(price),
        "prdy_vrss": str(q.change),
        "prdy_vrss_sign": q.sign,
        "prdy_ctrt": q.rate,
        "acml_tr_pbmn": str(state.value),
        "acml_vol": str(state.volume),
        "prdy_vrss_vol_rate": pct(state.volume, tape.prev_volume),
        "stck_oprc": str(state.open),
        "stck_hgpr": str(state.high),
        "stck_lwpr": str(state.low),
        "stck_mxpr": str(tape.upper_limit),
        "stck_llam": str(tape.lower_limit),
        "stck_sdpr": str(tape.prev_close),
        "wghn_avrg_stck_prc": f"{avg:.2f}",
        "hts_frgn_ehrt": "0.00",
        "frgn_ntby_qty": "0",
        "pgtr_ntby_qty": "0",
        "pvt_scnd_dmrs_prc": "0",
        "pvt_frst_dmrs_prc": "0",
        "pvt_pont_val": "0",
        "pvt_frst_dmsp_prc": "0",
        "pvt_scnd_dmsp_prc": "0",
        "dmrs_val": "0",
        "dmsp_val": "0",
        "cpfn": "0",
        "rstc_wdth_prc": str(tape.upper_limit - tape.prev_close),
        "stck_fcam": "0",
        "stck_sspr": "0",
        "aspr_unit": str(tape.grid.tick(price)) if price > 0 else "0",
        "hts_deal_qty_unit_val": "1",
        "lstn_stcn": str(inst.listed_shares),
        "hts_avls": str(price * inst.listed_shares // 100_000_000),
        "per": "0.00",
        "pbr": "0.00",
        "stac_month": "12",
        "vol_tnrt": pct(state.volume, inst.listed_shares),
        "eps": "0.00",
        "bps": "0.00",
        "d250_hgpr": str(d250h),
        "d250_hgpr_date": d250hd,
        "d250_hgpr_vrss_prpr_rate": pct(price - d250h, d250h),
        "d250_lwpr": str(d250l),
        "d250_lwpr_date": d250ld,
        "d250_lwpr_vrss_prpr_rate": pct(price - d250l, d250l),
        "stck_dryy_hgpr": str(yh),
        "dryy_hgpr_vrss_prpr_rate": pct(price - yh, yh),
        "dryy_hgpr_date": yhd,
        "stck_dryy_lwpr": str(yl),
        "dryy_lwpr_vrss_prpr_rate": pct(price - yl, yl),
        "dryy_lwpr_date": yld,
        "w52_hgpr": str(w52h),
        "w52_hgpr_vrss_prpr_ctrt": pct(price - w52h, w52h),
        "w52_hgpr_date": w52hd,
        "w52_lwpr": str(w52l),
        "w52_lwpr_vrss_prpr_ctrt": pct(price - w52l, w52l),
        "w52_lwpr_date": w52ld,
        "whol_loan_rmnd_rate": "0.00",
        "ssts_yn": "Y",
        "stck_shrn_iscd": tape.code,
        "fcam_cnnm": "0",
        "cpfn_cnnm": "0",
        "frgn_hldn_qty": "0",
        "vi_cls_code": "N",
        "ovtm_vi_cls_code": "N",
        "last_ssts_cntg_qty": "0",
        "invt_caful_yn": "N",
        "mrkt_warn_cls_code": "00",
        "short_over_yn": "N",
        "sltr_yn": "N",
        "askp": str(book.asks[0]),
        "bidp": str(book.bids[0]),
    }


def product_info(tape: DayTape) -> dict[str, str]:
    """``output`` of CTPF1604R 상품기본조회 for a listed stock. English names are not in the recorded data (left
    empty); the listing date is unknown (empty)."""
    inst = tape.instrument
    return {
        "pdno": f"{tape.code:<12}",
        "prdt_type_cd": "300",
        "prdt_name": inst.name,
        "prdt_name120": inst.name,
        "prdt_abrv_name": inst.name,
        "prdt_eng_name": "",
        "prdt_eng_name120": "",
        "prdt_eng_abrv_name": "",
        "std_pdno": isin(tape.code),
        "shtn_pdno": tape.code,
        "prdt_sale_stat_cd": "",
        "prdt_risk_grad_cd": "",
        "prdt_clsf_cd": "",
        "prdt_clsf_name": "주권",
        "sale_strt_dt": "",
        "sale_end_dt": "",
        "wrap_asst_type_cd": "",
        "ivst_prdt_type_cd": "",
        "ivst_prdt_type_cd_name": "",
        "frst_erlm_dt": "",
    }


def isin(code: str) -> str:
    """The KRX ISIN of an ordinary share: KR7 + code + 00 + the ISO 6166 check digit."""
    body = f"KR7{code}00"
    digits = "".join(str(int(ch, 36)) for ch in body)
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 0:
            n *= 2
            n = n - 9 if n > 9 else n
        total += n
    return body + str((10 - total % 10) % 10)


def zero_output(template: dict[str, str]) -> dict[str, str]:
    """The same keys with zero values (unknown symbol, per kis-api.md §3.2)."""
    return {k: ("" if k.endswith(("_date", "_name", "isnm", "_yn", "_code")) else "0") for k in template}


# --- daily rows ------------------------------------------------------------------------------------


def aggregate(rows: list[DailyBar], period: str) -> list[DailyBar]:
    """Daily rows grouped per period (D/W/M/Y), oldest first. A period row is dated with the FIRST
    trading date of the period (so "next DATE_2 = oldest date − 1" never repeats a period)."""
    if period == "D":
        return list(rows)

    def key(day: dt.date) -> tuple[int, ...]:
        if period == "W":
            iso = day.isocalendar()
            return (iso[0], iso[1])
        if period == "M":
            return (day.year, day.month)
        return (day.year,)

    out: list[DailyBar] = []
    group: list[DailyBar] = []
    for row in [*rows, None]:
        if group and (row is None or key(row.date) != key(group[0].date)):
            traded = [r for r in group if r.high > 0] or group
            out.append(
                DailyBar(
                    group[0].date,
                    traded[0].open,
                    max(r.high for r in traded),
                    min(r.low for r in traded),
                    group[-1].close,
                    sum(r.volume for r in group),
                    sum(amount(r) for r in group),
                    group[-1].source,
                )
            )
            group = []
        if row is not None:
            group.append(row)
    return out


def amount(row: DailyBar) -> int:
    """Recorded trading value, or typical price × volume when the source has none (CREON, Yahoo)."""
    if row.amount:
        return row.amount
    return (row.open + row.high + row.low + row.close) * row.volume // 4


def daily_price_rows(rows: list[DailyBar], tape_code: str) -> list[dict[str, str]]:
    """``output`` rows of FHKST01010400 for ``rows`` (oldest first in, newest first out)."""
    out: list[dict[str, str]] = []
    for i, row in enumerate(rows):
        prev = rows[i - 1] if i > 0 else None
        prev_close = prev.close if prev else row.close
        out.append(
            {
                "stck_bsop_date": ymd(row.date),
                "stck_oprc": str(row.open),
                "stck_hgpr": str(row.high),
                "stck_lwpr": str(row.low),
                "stck_clpr": str(row.close),
                "acml_vol": str(row.volume),
                "prdy_vrss_vol_rate": pct(row.volume - prev.volume, prev.volume) if prev else "0.00",
                "prdy_vrss": str(row.close - prev_close),
                "prdy_vrss_sign": sign_code(row.close, prev_close),
                "prdy_ctrt": pct(row.close - prev_close, prev_close),
                "hts_frgn_ehrt": "0.00",
                "frgn_ntby_qty": "0",
                "flng_cls_code": "00",
                "acml_prtt_rate": "0.00",
            }
        )
    return out[::-1]


def chart_rows(rows: list[DailyBar], prev_of_first: DailyBar | None) -> list[dict[str, str]]:
    """``output2`` rows of FHKST03010100 (oldest first in, newest first out)."""
    out: list[dict[str, str]] = []
    prev = prev_of_first
    for row in rows:
        prev_close = prev.close if prev else row.close
        out.append(
            {
                "stck_bsop_date": ymd(row.date),
                "stck_clpr": str(row.close),
                "stck_oprc": str(row.open),
                "stck_hgpr": str(row.high),
                "stck_lwpr": str(row.low),
                "acml_vol": str(row.volume),
                "acml_tr_pbmn": str(amount(row)),
                "flng_cls_code": "00",
                "prtt_rate": "0.00",
                "mod_yn": "N",
                "prdy_vrss_sign": sign_code(row.close, prev_close),
                "prdy_vrss": str(row.close - prev_close),
                "revl_issu_reas": "",
            }
        )
        prev = row
    return out[::-1]


def chart_output1(tape: DayTape, state: RunningState, now_ms: int) -> dict[str, str]:
    """``output1`` snapshot of FHKST03010100 (``state`` and the book at ``now_ms``)."""
    q = Quote(tape, state)
    book = tape.order_book_at(now_ms)
    inst = tape.instrument
    return {
        "prdy_vrss": str(q.change),
        "prdy_vrss_sign": q.sign,
        "prdy_ctrt": q.rate,
        "stck_prdy_clpr": str(tape.prev_close),
        "acml_vol": str(state.volume),
        "acml_tr_pbmn": str(state.value),
        "hts_kor_isnm": inst.name,
        "stck_prpr": str(q.price),
        "stck_shrn_iscd": tape.code,
        "prdy_vol": str(tape.prev_volume),
        "stck_mxpr": str(tape.upper_limit),
        "stck_llam": str(tape.lower_limit),
        "stck_oprc": str(state.open),
        "stck_hgpr": str(state.high),
        "stck_lwpr": str(state.low),
        "stck_prdy_oprc": "0",
        "stck_prdy_hgpr": "0",
        "stck_prdy_lwpr": "0",
        "askp": str(book.asks[0]),
        "bidp": str(book.bids[0]),
        "prdy_vrss_vol": str(state.volume - tape.prev_volume),
        "vol_tnrt": pct(state.volume, inst.listed_shares),
        "stck_fcam": "0",
        "lstn_stcn": str(inst.listed_shares),
        "cpfn": "0",
        "hts_avls": str(q.price * inst.listed_shares // 100_000_000),
        "per": "0.00",
        "eps": "0.00",
        "pbr": "0.00",
        "itewhol_loan_rmnd_ratem": "0.00",
    }


def time_chart_output1(tape: DayTape, state: RunningState) -> dict[str, str]:
    """``output1`` of FHKST03010200."""
    q = Quote(tape, state)
    return {
        "prdy_vrss": str(q.change),
        "prdy_vrss_sign": q.sign,
        "prdy_ctrt": q.rate,
        "stck_prdy_clpr": str(tape.prev_close),
        "acml_vol": str(state.volume),
        "acml_tr_pbmn": str(state.value),
        "hts_kor_isnm": tape.instrument.name,
        "stck_prpr": str(q.price),
    }


def minute_row(day: dt.date, bar: MinuteBar) -> dict[str, str]:
    """One ``output2`` row of FHKST03010200 (the bar is labelled with its minute's start)."""
    return {
        "stck_bsop_date": ymd(day),
        "stck_cntg_hour": hhmmss(bar.minute_s * 1000),
        "stck_prpr": str(bar.close),
        "stck_oprc": str(bar.open),
        "stck_hgpr": str(bar.high),
        "stck_lwpr": str(bar.low),
        "cntg_vol": str(bar.volume),
        "acml_tr_pbmn": str(bar.cum_value),
    }


# --- websocket records -----------------------------------------------------------------------------


def cnt0_record(
    tape: DayTape,
    tick: Tick,
    st: RunningState,
    book: OrderBook,
    *,
    mkop: str = "20",
    hour_cls: str = "0",
    vi_reference: int | None = None,
    halted: bool = False,
) -> list[str]:
    """One H0STCNT0 record (46 fields, §6.5 order) for ``tick``; ``st`` includes the tick. Built straight
    in field order (it runs once per replayed print); the tests check it against ``H0STCNT0_FIELDS``.

    ``mkop``: NEW_MKOP_CLS_CODE of the print's phase (``apps.sandbox.day.NEW_MKOP_BY_PHASE``); ``hour_cls``:
    HOUR_CLS_CODE; ``vi_reference``: VI_STND_PRC, the static VI reference (default the day's opening price);
    ``halted``: TRHT_YN."""
    prev_close = tape.prev_close
    price = tick.price
    session_ms = (tape.times.close_s - tape.times.open_s) * 1000
    elapsed = min(max(tick.t_ms - tape.times.open_s * 1000, 0), session_ms)
    prdy_same_hour = tape.prev_volume * elapsed // session_ms
    volume, buy_volume, sell_volume = st.volume, st.buy_volume, st.sell_volume
    ask_qty, bid_qty = book.ask_qty, book.bid_qty
    return [
        tape.code,  # MKSC_SHRN_ISCD
        hhmmss(tick.t_ms),  # STCK_CNTG_HOUR
        str(price),  # STCK_PRPR
        sign_code(price, prev_close, tape.upper_limit, tape.lower_limit),  # PRDY_VRSS_SIGN
        str(price - prev_close),  # PRDY_VRSS
        pct(price - prev_close, prev_close),  # PRDY_CTRT
        f"{st.value / volume:.2f}",  # WGHN_AVRG_STCK_PRC
        str(st.open),  # STCK_OPRC
        str(st.high),  # STCK_HGPR
        str(st.low),  # STCK_LWPR
        str(book.asks[0]),  # ASKP1
        str(book.bids[0]),  # BIDP1
        str(tick.volume),  # CNTG_VOL
        str(volume),  # ACML_VOL
        str(st.value),  # ACML_TR_PBMN
        str(st.sell_count),  # SELN_CNTG_CSNU
        str(st.buy_count),  # SHNU_CNTG_CSNU
        str(st.buy_count - st.sell_count),  # NTBY_CNTG_CSNU
        pct(buy_volume, sell_volume),  # CTTR
        str(sell_volume),  # SELN_CNTG_SMTN
        str(buy_volume),  # SHNU_CNTG_SMTN
        tick.side,  # CCLD_DVSN
        ratio(buy_volume, volume),  # SHNU_RATE
        pct(volume, tape.prev_volume),  # PRDY_VOL_VRSS_ACML_VOL_RATE
        hhmmss(st.open_ms),  # OPRC_HOUR
        rel_sign(price, st.open),  # OPRC_VRSS_PRPR_SIGN
        str(price - st.open),  # OPRC_VRSS_PRPR
        hhmmss(st.high_ms),  # HGPR_HOUR
        rel_sign(price, st.high),  # HGPR_VRSS_PRPR_SIGN
        str(price - st.high),  # HGPR_VRSS_PRPR
        hhmmss(st.low_ms),  # LWPR_HOUR
        rel_sign(price, st.low),  # LWPR_VRSS_PRPR_SIGN
        str(price - st.low),  # LWPR_VRSS_PRPR
        ymd(tape.date),  # BSOP_DATE
        mkop,  # NEW_MKOP_CLS_CODE
        "Y" if halted else "N",  # TRHT_YN
        str(ask_qty[0]),  # ASKP_RSQN1
        str(bid_qty[0]),  # BIDP_RSQN1
        str(book.total_ask),  # TOTAL_ASKP_RSQN
        str(book.total_bid),  # TOTAL_BIDP_RSQN
        pct(volume, tape.instrument.listed_shares),  # VOL_TNRT
        str(prdy_same_hour),  # PRDY_SMNS_HOUR_ACML_VOL
        pct(volume, prdy_same_hour),  # PRDY_SMNS_HOUR_ACML_VOL_RATE
        hour_cls,  # HOUR_CLS_CODE
        "",  # MRKT_TRTM_CLS_CODE (UNCONFIRMED meaning: left empty)
        str(st.open if vi_reference is None else vi_reference),  # VI_STND_PRC
    ]


def asp0_record(
    tape: DayTape,
    t_ms: int,
    st: RunningState,
    book: OrderBook,
    prev_book: OrderBook | None,
    ladders: dict[tuple[int, ...], list[str]] | None = None,
    *,
    expected: tuple[str, int, int] | None = None,
) -> list[str]:
    """One H0STASP0 record (59 fields, §6.6 order), built straight in field order. During the continuous
    session the expected (auction) price is 0, so its change is −previous close, sign 5, −100.00%, as
    real frames show. The increases compare with ``prev_book``, the book before this update. ``ladders``
    caches the price strings of a ladder (consecutive books mostly share theirs).

    ``expected``: (HOUR_CLS_CODE, expected price, expected quantity) while a call builds (the opening or
    closing auction, a VI, an after-hours call): ANTC_CNPR / ANTC_CNQN carry them (kis-api.md §6.6)."""
    cache = ladders if ladders is not None else {}
    asks = cache.get(book.asks)
    if asks is None:
        asks = cache[book.asks] = [str(p) for p in book.asks]
    bids = cache.get(book.bids)
    if bids is None:
        bids = cache[book.bids] = [str(p) for p in book.bids]
    total_ask, total_bid = book.total_ask, book.total_bid
    if expected is not None:
        hour_cls, antc, antc_qty = expected
        prev = tape.prev_close
        antc_fields = [
            str(antc),  # ANTC_CNPR
            str(antc_qty),  # ANTC_CNQN
            str(antc_qty),  # ANTC_VOL
            str(antc - prev),  # ANTC_CNTG_VRSS
            sign_code(antc, prev, tape.upper_limit, tape.lower_limit),  # ANTC_CNTG_VRSS_SIGN
            pct(antc - prev, prev),  # ANTC_CNTG_PRDY_CTRT
        ]
    else:
        hour_cls = "0"
        antc_fields = ["0", "0", str(st.first_volume), str(-tape.prev_close), "5", "-100.00"]
    return [
        tape.code,  # MKSC_SHRN_ISCD
        hhmmss(t_ms),  # BSOP_HOUR
        hour_cls,  # HOUR_CLS_CODE
        *asks,  # ASKP1..10
        *bids,  # BIDP1..10
        *map(str, book.ask_qty),  # ASKP_RSQN1..10
        *map(str, book.bid_qty),  # BIDP_RSQN1..10
        str(total_ask),  # TOTAL_ASKP_RSQN
        str(total_bid),  # TOTAL_BIDP_RSQN
        "0",  # OVTM_TOTAL_ASKP_RSQN
        "0",  # OVTM_TOTAL_BIDP_RSQN
        *antc_fields,  # ANTC_CNPR, ANTC_CNQN, ANTC_VOL, ANTC_CNTG_VRSS, ANTC_CNTG_VRSS_SIGN, ANTC_CNTG_PRDY_CTRT
        str(st.volume),  # ACML_VOL
        str(total_ask - prev_book.total_ask) if prev_book else "0",  # TOTAL_ASKP_RSQN_ICDC
        str(total_bid - prev_book.total_bid) if prev_book else "0",  # TOTAL_BIDP_RSQN_ICDC
        "0",  # OVTM_TOTAL_ASKP_ICDC
        "0",  # OVTM_TOTAL_BIDP_ICDC
        "0",  # STCK_DEAL_CLS_CODE
    ]


# --- order book and expected price (FHKST01010200) ------------------------------------------------------


def asking_price_outputs(tape: DayTape, state: RunningState, now_ms: int, session: str) -> dict[str, object]:
    """``output1`` (the book in force at ``now_ms``) and ``output2`` (expected price and the day so far) of
    FHKST01010200. The expected price comes from ``apps.sandbox.auction`` while an auction builds, else 0."""

    book = tape.order_book_at(now_ms)
    prev_book = tape.order_book_at(max(0, now_ms - 1000))
    out1: dict[str, str] = {"aspr_acpt_hour": hhmmss(now_ms)}
    for i in range(10):
        out1[f"askp{i + 1}"] = str(book.asks[i])
    for i in range(10):
        out1[f"bidp{i + 1}"] = str(book.bids[i])
    for i in range(10):
        out1[f"askp_rsqn{i + 1}"] = str(book.ask_qty[i])
    for i in range(10):
        out1[f"bidp_rsqn{i + 1}"] = str(book.bid_qty[i])
    for i in range(10):
        out1[f"askp_rsqn_icdc{i + 1}"] = str(book.ask_qty[i] - prev_book.ask_qty[i])
    for i in range(10):
        out1[f"bidp_rsqn_icdc{i + 1}"] = str(book.bid_qty[i] - prev_book.bid_qty[i])
    out1.update(
        {
            "total_askp_rsqn": str(book.total_ask),
            "total_bidp_rsqn": str(book.total_bid),
            "total_askp_rsqn_icdc": str(book.total_ask - prev_book.total_ask),
            "total_bidp_rsqn_icdc": str(book.total_bid - prev_book.total_bid),
            "ovtm_total_askp_icdc": "0",
            "ovtm_total_bidp_icdc": "0",
            "ovtm_total_askp_rsqn": "0",
            "ovtm_total_bidp_rsqn": "0",
            "ntby_aspr_rsqn": str(book.total_bid - book.total_ask),
            "new_mkop_cls_code": mkop_code(session),
        }
    )
    q = Quote(tape, state)
    exp = expected_at(tape, now_ms)
    antc = exp.price if exp else 0
    out2 = {
        "antc_mkop_cls_code": "311" if exp else "112",
        "stck_prpr": str(q.price),
        "stck_oprc": str(state.open),
        "stck_hgpr": str(state.high),
        "stck_lwpr": str(state.low),
        "stck_sdpr": str(tape.prev_close),
        "antc_cnpr": str(antc),
        "antc_cntg_vrss_sign": sign_code(antc, tape.prev_close, tape.upper_limit, tape.lower_limit) if antc else "3",
        "antc_cntg_vrss": str(antc - tape.prev_close) if antc else "0",
        "antc_cntg_prdy_ctrt": pct(antc - tape.prev_close, tape.prev_close) if antc else "0.00",
        "antc_vol": str(exp.quantity if exp else 0),
        "stck_shrn_iscd": tape.code,
        "vi_cls_code": "N",
    }
    return {"output1": out1, "output2": out2}


#: NEW_MKOP_CLS_CODE / new_mkop_cls_code per session: first character 1 pre-open, 2 regular, 3 after the close
#: (kis-api.md §6.5); the second character is UNCONFIRMED ("0" throughout here).
MKOP_CODES = {"pre_open": "10", "continuous": "20", "closing_auction": "20", "closed": "30"}


def mkop_code(session: str) -> str:
    return MKOP_CODES.get(session, "20")


# --- NXT / integrated books, expected prices, market operation (WebSocket) ----------------------------------


def nx_asp0_record(
    tape: DayTape, t_ms: int, krx_state: RunningState, nxt_state: RunningState, book: OrderBook, venue: str
) -> list[str]:
    """One H0NXASP0 / H0UNASP0 record (65 fields): the venue's book (``apps.sandbox.venues``, synthetic for NXT)
    plus the mid-price fields: KMID/NMID_PRC the KRX/NXT mid price (0 when it falls between two ticks: a
    mid-price order needs a grid price), KMID/NMID_TOTAL_RSQN the quantity at the touch on both sides,
    KMID/NMID_CLS_CODE 1 when a mid price exists, else 0 (codes UNCONFIRMED)."""

    shown = venue_book(book, "NXT" if venue == "NXT" else "UN" if venue == "UN" else "KRX")
    volume = nxt_state.volume if venue == "NXT" else krx_state.volume + nxt_state.volume
    fields = asp0_record(tape, t_ms, krx_state, shown, None)
    fields[53] = str(volume)  # ACML_VOL of the venue
    mids: list[str] = []
    for side_book in (book, nxt_book(book)):
        ask, bid = side_book.asks[0], side_book.bids[0]
        mid2 = ask + bid
        mid = mid2 // 2 if ask and bid and mid2 % 2 == 0 and tape.grid.on_grid(mid2 // 2) else 0
        mids += [str(mid), str(side_book.ask_qty[0] + side_book.bid_qty[0]), "1" if mid else "0"]
    return fields + mids


def anc0_records(tape: DayTape, after_ms: int, until_ms: int) -> list[list[str]]:
    """H0STANC0 records (46 fields, the H0STCNT0 columns) for every expected-price update of the auction model
    (``apps.sandbox.auction``) in (after_ms, until_ms]. STCK_PRPR is the expected price, CNTG_VOL/ACML_VOL the
    expected quantity; HOUR_CLS_CODE B before the open, C in the closing auction (kis-api.md §6.5)."""

    out: list[list[str]] = []
    step = STEP_S * 1000
    t = (after_ms // step + 1) * step
    while t <= until_ms:
        exp = expected_at(tape, t)
        if exp is not None and exp.t_ms == t:
            book = tape.order_book_at(t)
            st = tape.state_at(t)
            prev = tape.prev_close
            record = [
                tape.code,
                hhmmss(t),
                str(exp.price),
                sign_code(exp.price, prev, tape.upper_limit, tape.lower_limit),
                str(exp.price - prev),
                pct(exp.price - prev, prev),
                f"{exp.price:.2f}",
                str(st.open),
                str(st.high),
                str(st.low),
                str(book.asks[0]),
                str(book.bids[0]),
                str(exp.quantity),
                str(st.volume + exp.quantity),
                str(st.value + exp.price * exp.quantity),
                "0",
                "0",
                "0",
                "0.00",
                "0",
                "0",
                "1",
                "0.00",
                pct(st.volume + exp.quantity, tape.prev_volume),
                hhmmss(st.open_ms) if st.count else "000000",
                rel_sign(exp.price, st.open) if st.count else "3",
                str(exp.price - st.open) if st.count else "0",
                hhmmss(st.high_ms) if st.count else "000000",
                rel_sign(exp.price, st.high) if st.count else "3",
                str(exp.price - st.high) if st.count else "0",
                hhmmss(st.low_ms) if st.count else "000000",
                rel_sign(exp.price, st.low) if st.count else "3",
                str(exp.price - st.low) if st.count else "0",
                ymd(tape.date),
                "10" if exp.auction == "open" else "20",
                "N",
                str(book.ask_qty[0]),
                str(book.bid_qty[0]),
                str(book.total_ask),
                str(book.total_bid),
                pct(st.volume + exp.quantity, tape.instrument.listed_shares),
                "0",
                "0.00",
                "B" if exp.auction == "open" else "C",
                "",
                str(tape.prev_close if exp.auction == "open" else st.last),
            ]
            out.append(record)
        t += step
    return out


#: MKOP_CLS_CODE (장운영 구분 코드) per session phase. Live frames show 3-character codes such as "112"; the
#: meaning of each value is UNCONFIRMED: the sandbox's choice is this table.
MKOP_CLS_CODES = {"pre_open": "110", "continuous": "112", "closing_auction": "121", "closed": "129"}


def mko0_records(tape: DayTape, after_ms: int, until_ms: int) -> list[list[str]]:
    """H0STMKO0 records (11 fields) for every session change in (after_ms, until_ms]: the opening auction's order
    entry (08:30), the open, the closing auction and the close. No VI is modelled (VI_CLS_CODE N)."""
    times = tape.times
    changes = [
        (8 * 3600 + 30 * 60, "pre_open", "112"),
        (times.open_s, "continuous", "112"),
        (times.continuous_end_s, "closing_auction", "129"),
        (times.close_s, "closed", "129"),
    ]
    out = []
    for at_s, phase, expected in changes:
        if after_ms < at_s * 1000 <= until_ms:
            out.append([tape.code, "N", "", MKOP_CLS_CODES[phase], expected, "", "", "55", "N", "N", ""])
    return out
