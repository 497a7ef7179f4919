"""KIS trading TRs of the sandbox (kis-api.md §5.7, §5.8): cash orders, balance, daily orders and fills.

- ``order-cash``: buy ``TTTC0012U`` / sell ``TTTC0011U`` (paper ``VTTC0012U``/``VTTC0011U``), and the legacy ids
  ``TTTC0802U``/``TTTC0801U`` that older clients (python-kis 2.1) still send; a missing ``EXCG_ID_DVSN_CD`` is KRX
  (the legacy body has none). Answer ``output`` with UPPER-case keys ``KRX_FWDG_ORD_ORGNO``, ``ODNO``, ``ORD_TMD``;
  success ``APBK0013`` "주문 전송 완료 되었습니다." (real; reference [COM], UNCONFIRMED) or ``40600000``
  "모의투자 매수주문이 완료 되었습니다." / "모의투자 매도주문이 완료 되었습니다." (paper; UNCONFIRMED).
- ``inquire-balance`` ``TTTC8434R``/``VTTC8434R``: ``output1`` holdings, ``output2`` one summary row; pages of 50
  rows (real) / 20 (paper) with ``ctx_area_fk100``/``ctx_area_nk100`` and ``tr_cont`` M (more) / D (last).
- ``order-rvsecncl`` ``TTTC0013U``/``VTTC0013U`` (kis-api.md §5.7; body UNCONFIRMED, see ``orders.py``).
- ``inquire-daily-ccld`` ``TTTC0081R`` (legacy ``TTTC8001R``; paper ``V…``): the account's orders of the replayed
  day (the only day the sandbox has), newest first, filtered by ``SLL_BUY_DVSN_CD``, ``PDNO``, ``CCLD_DVSN``
  (00 all / 01 filled / 02 open), ``ODNO`` and ``EXCG_ID_DVSN_CD``; pages of ``CCLD_PAGE_ROWS`` (UNCONFIRMED).
  A modify/cancel order is a row of its own (``orgn_odno`` its original, ``cncl_yn`` Y for a cancel); an order's
  ``cnc_cfrm_qty`` is what its modify/cancel orders took off the book (UNCONFIRMED).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from apps.sandbox.data import ymd_date
from apps.sandbox.orders import BRANCH, BUY_CODE, SELL_CODE, OrderRefused, SandboxOrder

if TYPE_CHECKING:
    from apps.sandbox.server import SandboxCore

BALANCE_PAGE_ROWS = {"real": 50, "paper": 20}
CCLD_PAGE_ROWS = 100
REAL_ORDER_OK = ("APBK0013", "주문 전송 완료 되었습니다.")
ORDER_OK = {
    "real": {BUY_CODE: REAL_ORDER_OK, SELL_CODE: REAL_ORDER_OK},
    "paper": {
        BUY_CODE: ("40600000", "모의투자 매수주문이 완료 되었습니다."),
        SELL_CODE: ("40600000", "모의투자 매도주문이 완료 되었습니다."),
    },
}
#: The answer's message of a modify / cancel (codes and texts UNCONFIRMED).
REVISE_OK = {
    "real": {"modify": REAL_ORDER_OK, "cancel": REAL_ORDER_OK},
    "paper": {
        "modify": ("40640000", "모의투자 정정주문이 완료 되었습니다."),
        "cancel": ("40650000", "모의투자 취소주문이 완료 되었습니다."),
    },
}
BUY_TRS = ("TTC0012U", "TTC0802U")
#: ``excg_dvsn_cd`` of an inquiry row: 01 KOSPI, 02 KOSDAQ (python-kis maps both to KRX).
EXCHANGE_CODE = {"KOSPI": "01", "KOSDAQ": "02"}


def _bad(field: str) -> OrderRefused:
    return OrderRefused("OPSQ2002", f"ERROR INVALID INPUT [{field}]")


def _page_start(params: dict[str, str]) -> int:
    """Row offset of the asked page (``CTX_AREA_NK100`` holds the next offset, zero-padded)."""
    if params.get("_TR_CONT", "").strip().upper() != "N":
        return 0
    key = params.get("CTX_AREA_NK100", "").strip()
    if not key.isdigit():
        raise _bad("CTX_AREA_NK100")
    return int(key)


def _paged(rows: list[dict[str, str]], start: int, size: int, search: str) -> dict[str, object]:
    page = rows[start : start + size]
    more = start + size < len(rows)
    return {
        "ctx_area_fk100": search.ljust(100),
        "ctx_area_nk100": (f"{start + size:010d}" if more else "").ljust(100),
        "output1": page,
        "_tr_cont": "M" if more else "D",
    }


class TradingApi:
    """The trading TRs of one REST listener (``mode`` real or paper)."""

    def __init__(self, core: SandboxCore, mode: str) -> None:
        self.core = core
        self.mode = mode

    @property
    def keeper(self):  # type: ignore[no-untyped-def]
        return self.core.orders

    def order_cash(self, params: dict[str, str]) -> dict[str, object]:
        side = BUY_CODE if params["_TR_ID"][1:] in BUY_TRS else SELL_CODE
        if side == SELL_CODE and params.get("SLL_TYPE", "01") not in ("", "01", "02", "05"):
            raise _bad("SLL_TYPE")
        now_ms = self.core.clock.now_ms()
        order = self.keeper.place(
            appkey=params["_APPKEY"], mode=self.mode, tr_id=params["_TR_ID"], side=side, params=params, now_ms=now_ms
        )
        s = order.accepted_ms // 1000
        return {
            "output": {
                "KRX_FWDG_ORD_ORGNO": BRANCH,
                "ODNO": order.number,
                "ORD_TMD": f"{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}",
            },
            "_msg": ORDER_OK[self.mode][side],
        }

    def order_rvsecncl(self, params: dict[str, str]) -> dict[str, object]:
        """Modify/cancel (``TTTC0013U``/``VTTC0013U``): the answer names the modify/cancel order like a cash order's
        (``KRX_FWDG_ORD_ORGNO``, ``ODNO``, ``ORD_TMD``); its message text is UNCONFIRMED."""
        now_ms = self.core.clock.now_ms()
        record = self.keeper.revise(
            appkey=params["_APPKEY"], mode=self.mode, tr_id=params["_TR_ID"], params=params, now_ms=now_ms
        )
        s = record.accepted_ms // 1000
        return {
            "output": {
                "KRX_FWDG_ORD_ORGNO": BRANCH,
                "ODNO": record.number,
                "ORD_TMD": f"{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}",
            },
            "_msg": REVISE_OK[self.mode][record.kind],
        }

    def balance(self, params: dict[str, str]) -> dict[str, object]:
        for key, allowed in (
            ("AFHR_FLPR_YN", ("N", "Y", "X")),
            ("INQR_DVSN", ("01", "02")),
            ("UNPR_DVSN", ("01",)),
            ("FUND_STTL_ICLD_YN", ("N", "Y")),
            ("FNCG_AMT_AUTO_RDPT_YN", ("N", "Y")),
            ("PRCS_DVSN", ("00", "01")),
        ):
            if params.get(key, "") not in allowed:
                raise _bad(key)
        now_ms = self.core.clock.now_ms()
        self.keeper.advance(now_ms)
        acct = self.keeper.account(params["_APPKEY"], self.mode, params.get("CANO", ""), params.get("ACNT_PRDT_CD", ""))
        market = self.core.market
        rows: list[dict[str, str]] = []
        total_eval = total_cost = 0
        for code, held in acct.holdings.items():
            tape = market.tape(code)
            if tape is None or (held.quantity == 0 and not held.bought_today and not held.sold_today):
                continue
            st = tape.state_at(now_ms)
            price = st.last if st.count else tape.prev_close
            evlu = price * held.quantity
            cost = held.cost
            total_eval += evlu
            total_cost += cost
            open_sells = self.keeper.open_sell_quantity(acct, params["_APPKEY"], self.mode, code)
            avg = cost / held.quantity if held.quantity else 0.0
            rows.append(
                {
                    "pdno": code,
                    "prdt_name": tape.instrument.name,
                    "trad_dvsn_name": "현금",
                    "bfdy_buy_qty": "0",
                    "bfdy_sll_qty": "0",
                    "thdt_buyqty": str(held.bought_today),
                    "thdt_sll_qty": str(held.sold_today),
                    "hldg_qty": str(held.quantity),
                    "ord_psbl_qty": str(max(0, held.quantity - open_sells)),
                    "pchs_avg_pric": f"{avg:.4f}",
                    "pchs_amt": str(cost),
                    "prpr": str(price),
                    "evlu_amt": str(evlu),
                    "evlu_pfls_amt": str(evlu - cost),
                    "evlu_pfls_rt": f"{(evlu - cost) / cost * 100:.2f}" if cost else "0.00",
                    "evlu_erng_rt": f"{(evlu - cost) / cost * 100:.8f}" if cost else "0.00000000",
                    "loan_dt": "",
                    "loan_amt": "0",
                    "stln_slng_chgs": "0",
                    "expd_dt": "",
                    "fltt_rt": f"{(price - tape.prev_close) / tape.prev_close * 100:.8f}" if tape.prev_close else "0",
                    "bfdy_cprs_icdc": str(price - tape.prev_close),
                    "item_mgna_rt_name": "",
                    "grta_rt_name": "",
                    "sbst_pric": "0",
                    "stck_loan_unpr": "0",
                }
            )
        open_reserved = sum(o.reserved for o in self.keeper.orders_of(params["_APPKEY"], self.mode, acct.number))
        deposit = acct.cash + open_reserved
        summary = {
            "dnca_tot_amt": str(deposit),
            "nxdy_excc_amt": str(deposit),
            "prvs_rcdl_excc_amt": str(deposit),
            "cma_evlu_amt": "0",
            "bfdy_buy_amt": "0",
            "thdt_buy_amt": str(acct.buy_amount_today),
            "nxdy_auto_rdpt_amt": "0",
            "bfdy_sll_amt": "0",
            "thdt_sll_amt": str(acct.sell_amount_today),
            "d2_auto_rdpt_amt": "0",
            "bfdy_tlex_amt": "0",
            "thdt_tlex_amt": "0",
            "tot_loan_amt": "0",
            "scts_evlu_amt": str(total_eval),
            "tot_evlu_amt": str(deposit + total_eval),
            "nass_amt": str(deposit + total_eval),
            "fncg_gld_auto_rdpt_yn": "",
            "pchs_amt_smtl_amt": str(total_cost),
            "evlu_amt_smtl_amt": str(total_eval),
            "evlu_pfls_smtl_amt": str(total_eval - total_cost),
            "tot_stln_slng_chgs": "0",
            "bfdy_tot_asst_evlu_amt": str(self.keeper.deposit),
            "asst_icdc_amt": str(deposit + total_eval - self.keeper.deposit),
            "asst_icdc_erng_rt": "0.00000000",
        }
        out = _paged(rows, _page_start(params), BALANCE_PAGE_ROWS[self.mode], params.get("CTX_AREA_FK100", ""))
        out["output2"] = [summary]
        return out

    def daily_ccld(self, params: dict[str, str]) -> dict[str, object]:
        day = self.core.market.date
        try:
            start = ymd_date(params.get("INQR_STRT_DT", ""))
            end = ymd_date(params.get("INQR_END_DT", ""))
        except ValueError as exc:
            raise _bad("INQR_STRT_DT") from exc
        if start > end:
            raise _bad("INQR_STRT_DT")
        side = params.get("SLL_BUY_DVSN_CD", "00")
        ccld = params.get("CCLD_DVSN", "00")
        if side not in ("00", "01", "02"):
            raise _bad("SLL_BUY_DVSN_CD")
        if ccld not in ("00", "01", "02"):
            raise _bad("CCLD_DVSN")
        venue = (params.get("EXCG_ID_DVSN_CD", "") or "KRX").upper()
        if venue not in ("KRX", "NXT", "SOR", "ALL"):
            raise _bad("EXCG_ID_DVSN_CD")
        now_ms = self.core.clock.now_ms()
        self.keeper.advance(now_ms)
        acct = self.keeper.account(params["_APPKEY"], self.mode, params.get("CANO", ""), params.get("ACNT_PRDT_CD", ""))
        code, odno = params.get("PDNO", "").strip(), params.get("ODNO", "").strip()
        orders: list[SandboxOrder] = []
        if start <= day <= end:
            for o in reversed(self.keeper.orders_of(params["_APPKEY"], self.mode, acct.number)):
                if side != "00" and o.side != side:
                    continue
                if (code and o.code != code) or (odno and o.number.lstrip("0") != odno.lstrip("0")):
                    continue
                if (ccld == "01" and not o.fills) or (ccld == "02" and o.remaining == 0):
                    continue
                if venue != "ALL" and o.venue != venue:
                    continue
                orders.append(o)
        rows = [self._ccld_row(o, day) for o in orders]
        out = _paged(rows, _page_start(params), CCLD_PAGE_ROWS, params.get("CTX_AREA_FK100", ""))
        filled_qty = sum(o.filled for o in orders)
        filled_amt = sum(o.filled_value for o in orders)
        out["output2"] = {
            "tot_ord_qty": str(sum(o.quantity for o in orders)),
            "tot_ccld_qty": str(filled_qty),
            "tot_ccld_amt": str(filled_amt),
            "prsm_tlex_smtl": "0",
            "pchs_avg_pric": f"{filled_amt / filled_qty:.4f}" if filled_qty else "0.0000",
        }
        return out

    def _ccld_row(self, o: SandboxOrder, day: dt.date) -> dict[str, str]:
        tape = self.core.market.tape(o.code)
        market = tape.instrument.market if tape is not None else "KOSPI"
        s = o.accepted_ms // 1000
        avg = o.filled_value // o.filled if o.filled else 0
        return {
            "ord_dt": day.strftime("%Y%m%d"),
            "ord_gno_brno": BRANCH,
            "odno": o.number,
            "orgn_odno": o.original,
            "ord_dvsn_name": "지정가" if o.ord_dvsn == "00" else "시장가",
            "sll_buy_dvsn_cd": o.side,
            "sll_buy_dvsn_cd_name": "현금매수" if o.is_buy else "현금매도",
            "pdno": o.code,
            "prdt_name": o.name,
            "ord_qty": str(o.quantity),
            "ord_unpr": str(o.price),
            "ord_tmd": f"{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}",
            "tot_ccld_qty": str(o.filled),
            "avg_prvs": str(avg),
            "cncl_yn": "Y" if o.kind == "cancel" else "N",
            "tot_ccld_amt": str(o.filled_value),
            "loan_dt": "",
            "ordr_empno": "",
            "ord_dvsn_cd": o.ord_dvsn,
            "cnc_cfrm_qty": str(o.cancelled),
            "rmn_qty": str(o.remaining),
            "rjct_qty": "0",
            "ccld_cndt_name": "없음",
            "inqr_ip_addr": "",
            "cpbc_ordp_ord_rcit_dvsn_cd": "",
            "cpbc_ordp_infm_mthd_dvsn_cd": "",
            "infm_tmd": "",
            "ctac_tlno": "",
            "prdt_type_cd": "300",
            "excg_dvsn_cd": EXCHANGE_CODE.get(market, "01"),
            "cpbc_ordp_mtrl_dvsn_cd": "",
            "ord_orgno": "",
            "rsvn_ord_end_dt": "",
            "excg_id_dvsn_cd": o.venue,
            "stpm_cndt_pric": "0",
            "stpm_efct_occr_dtmd": "",
        }
