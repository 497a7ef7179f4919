"""Investor flows (수급) and financial statements (재무제표): result types and pure parsers of KIS JSON.

No I/O here (the TR calls are :class:`apps.brokers.kis.client.AsyncKisClient` methods). Sources of the field names:

- ``FHKST01010900`` 주식현재가 투자자 (``…/quotations/inquire-investor``): kis-api.md §5.6 [OFF] lists the fields
  ``stck_bsop_date, stck_clpr, prdy_vrss, prdy_vrss_sign`` and, for ``prsn``/``frgn``/``orgn``, ``_ntby_qty,
  _ntby_tr_pbmn, _shnu_vol, _shnu_tr_pbmn, _seln_vol, _seln_tr_pbmn``; today's row is blank until the close [OFF].
- ``FHPTJ04160001`` 종목별 투자자매매동향(일별) (``…/quotations/investor-trade-by-stock-daily``): kis-api.md §5.6
  names the TR and its query (``FID_INPUT_DATE_1``, ``FID_ORG_ADJ_PRC``, ``FID_ETC_CLS_CODE``); the ``output2``
  field names used here (``frgn_ntby_qty``, ``prsn_ntby_qty``, ``orgn_ntby_qty``, ``etc_corp_ntby_vol``, their
  ``_ntby_tr_pbmn`` values and the institutional subtypes ``scrt``/``ivtr``/``pe_fund``/``bank``/``insu``/
  ``mrbn``/``fund``/``etc_orgt``) are NOT in the reference: they follow the sandbox (``apps/sandbox/rest.py``),
  which follows KIS's published samples. Assumptions.
- ``HHPTJ04160200`` 종목별 외인기관 추정가집계 (``…/quotations/investor-trend-estimate``, query
  ``MKSC_SHRN_ISCD``; ``output2`` rows ``bsop_hour_gb`` 1..5 = input at 09:30/10:00/11:20/13:20/14:30,
  ``frgn_fake_ntby_qty``, ``orgn_fake_ntby_qty``, ``sum_fake_ntby_qty``): not in the reference; from KIS's
  open-trading-api samples. The broker's staff enter these running totals during the session: estimates, never
  the day's figures. Assumption throughout (path and query are settings).
- Value fields (``*_tr_pbmn``) are in 백만원 (million KRW) per the sandbox and community code (UNCONFIRMED): the
  parsers return them in the broker's unit (``*_value_units``) and the service multiplies by the setting
  ``KIS_INVESTOR_VALUE_UNIT``.
- Statements ``FHKST66430100`` balance sheet, ``…0200`` income statement, ``…0300`` financial ratios, ``…0400``
  profitability, ``…0600`` stability, ``…0800`` growth (``/uapi/domestic-stock/v1/finance/<name>``, query
  ``FID_DIV_CLS_CODE`` 0 = annual, 1 = quarterly, ``fid_cond_mrkt_div_code`` J, ``fid_input_iscd``): the TR ids
  come from the issue, paths and row fields (``stac_yymm`` + the figures) from the sandbox; not in the reference.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..base import BrokerProtocolError
from .parsing import is_empty_row, parse_date, parse_decimal, parse_int

#: Investor types of the flows, in display order: 개인, 외국인, 기관계, 기타법인.
INVESTOR_TYPES = ("individual", "foreign", "institution", "other_corp")
_KIS_PREFIX = {"individual": "prsn", "foreign": "frgn", "institution": "orgn", "other_corp": "etc_corp"}
#: Institutional subtypes of FHPTJ04160001 (증권, 투신, 사모, 은행, 보험, 종금, 기금, 기타금융).
INSTITUTION_SUBTYPES = ("scrt", "ivtr", "pe_fund", "bank", "insu", "mrbn", "fund", "etc_orgt")
#: ``bsop_hour_gb`` of HHPTJ04160200 → the KST time of the input (foreigners 09:30, institutions 10:00, both 11:20,
#: 13:20, 14:30; "사정에 따라 변동될 수 있습니다" per KIS's sample docstring).
ESTIMATE_SLOTS = {1: dt.time(9, 30), 2: dt.time(10, 0), 3: dt.time(11, 20), 4: dt.time(13, 20), 5: dt.time(14, 30)}

#: Statement kinds: (tr_id, path name under /uapi/domestic-stock/v1/finance/).
STATEMENT_TRS = {
    "balance": ("FHKST66430100", "balance-sheet"),
    "income": ("FHKST66430200", "income-statement"),
    "ratio": ("FHKST66430300", "financial-ratio"),
    "profit": ("FHKST66430400", "profit-ratio"),
    "stability": ("FHKST66430600", "stability-ratio"),
    "growth": ("FHKST66430800", "growth-ratio"),
}


@dataclass(frozen=True, slots=True)
class InvestorFlowDay:
    """One day's flows of one stock from one TR. Quantities in shares (signed nets), values in the broker's unit.

    ``None`` = the TR does not carry the figure (FHKST01010900 has no 기타법인 and no subtypes; FHPTJ04160001 no
    buys/sells). ``net_qty``/``net_value_units`` are keyed by :data:`INVESTOR_TYPES`."""

    code: str
    date: dt.date
    close: int
    tr_id: str
    net_qty: Mapping[str, int | None]
    net_value_units: Mapping[str, int | None]
    buy_qty: Mapping[str, int | None] = field(default_factory=dict)
    sell_qty: Mapping[str, int | None] = field(default_factory=dict)
    institution_detail_qty: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InvestorEstimate:
    """One intraday input of HHPTJ04160200: running net-buy estimates (shares) at ``slot`` (``bsop_hour_gb``)."""

    code: str
    slot: int
    at: dt.time | None
    foreign_qty: int | None
    institution_qty: int | None
    total_qty: int | None


@dataclass(frozen=True, slots=True)
class StatementRow:
    """One period of one statement TR. ``period`` is ``stac_yymm`` (YYYYMM of the period's end), ``values`` every
    other field as a Decimal (in the broker's unit: 억원 for amounts, percent for ratios; UNCONFIRMED)."""

    code: str
    kind: str
    annual: bool
    period: str
    values: Mapping[str, Decimal]


def _opt_int(row: Mapping[str, Any], key: str) -> int | None:
    if key not in row or not str(row.get(key) or "").strip():
        return None
    return parse_int(row.get(key), field=key)


def parse_investor_rows(code: str, rows: Iterable[Any]) -> list[InvestorFlowDay]:
    """FHKST01010900 ``output`` (newest first) → flows; rows whose investor fields are blank (today before the
    close, kis-api.md §5.6) are skipped."""
    out: list[InvestorFlowDay] = []
    for row in rows:
        if is_empty_row(row, "stck_bsop_date") or is_empty_row(row, "frgn_ntby_qty"):
            continue
        net, value, buy, sell = {}, {}, {}, {}
        for who in ("individual", "foreign", "institution"):
            p = _KIS_PREFIX[who]
            net[who] = _opt_int(row, f"{p}_ntby_qty")
            value[who] = _opt_int(row, f"{p}_ntby_tr_pbmn")
            buy[who] = _opt_int(row, f"{p}_shnu_vol")
            sell[who] = _opt_int(row, f"{p}_seln_vol")
        net["other_corp"] = value["other_corp"] = None
        out.append(
            InvestorFlowDay(
                code=code,
                date=parse_date(row.get("stck_bsop_date")),
                close=parse_int(row.get("stck_clpr"), field="stck_clpr"),
                tr_id="FHKST01010900",
                net_qty=net,
                net_value_units=value,
                buy_qty=buy,
                sell_qty=sell,
            )
        )
    return out


def parse_investor_daily_rows(code: str, rows: Iterable[Any]) -> list[InvestorFlowDay]:
    """FHPTJ04160001 ``output2`` (newest first) → flows with 기타법인 and the institutional subtypes; rows without
    investor fields (today before the close) are skipped."""
    out: list[InvestorFlowDay] = []
    for row in rows:
        if is_empty_row(row, "stck_bsop_date") or is_empty_row(row, "frgn_ntby_qty"):
            continue
        net = {
            "individual": _opt_int(row, "prsn_ntby_qty"),
            "foreign": _opt_int(row, "frgn_ntby_qty"),
            "institution": _opt_int(row, "orgn_ntby_qty"),
            "other_corp": _opt_int(row, "etc_corp_ntby_vol"),
        }
        value = {who: _opt_int(row, f"{_KIS_PREFIX[who]}_ntby_tr_pbmn") for who in INVESTOR_TYPES}
        detail: dict[str, int] = {}
        for name in INSTITUTION_SUBTYPES:
            qty = _opt_int(row, f"{name}_ntby_qty")
            if qty is None:
                qty = _opt_int(row, f"{name}_ntby_vol")
            if qty is not None:
                detail[name] = qty
        out.append(
            InvestorFlowDay(
                code=code,
                date=parse_date(row.get("stck_bsop_date")),
                close=parse_int(row.get("stck_clpr"), field="stck_clpr"),
                tr_id="FHPTJ04160001",
                net_qty=net,
                net_value_units=value,
                institution_detail_qty=detail,
            )
        )
    return out


def parse_estimate_rows(code: str, rows: Iterable[Any]) -> list[InvestorEstimate]:
    """HHPTJ04160200 ``output2`` → estimates ordered by slot; rows without ``bsop_hour_gb`` are skipped."""
    out: list[InvestorEstimate] = []
    for row in rows:
        if is_empty_row(row, "bsop_hour_gb"):
            continue
        slot = parse_int(row.get("bsop_hour_gb"), field="bsop_hour_gb")
        if slot < 0:
            raise BrokerProtocolError(f"bsop_hour_gb is negative: {slot}")
        out.append(
            InvestorEstimate(
                code=code,
                slot=slot,
                at=ESTIMATE_SLOTS.get(slot),
                foreign_qty=_opt_int(row, "frgn_fake_ntby_qty"),
                institution_qty=_opt_int(row, "orgn_fake_ntby_qty"),
                total_qty=_opt_int(row, "sum_fake_ntby_qty"),
            )
        )
    return sorted(out, key=lambda e: e.slot)


def parse_statement_rows(code: str, kind: str, annual: bool, rows: Iterable[Any]) -> list[StatementRow]:
    """A statement TR's ``output`` (newest first) → one :class:`StatementRow` per ``stac_yymm``."""
    out: list[StatementRow] = []
    for row in rows:
        if is_empty_row(row, "stac_yymm"):
            continue
        period = str(row["stac_yymm"]).strip()
        if len(period) != 6 or not period.isdigit() or not 1 <= int(period[4:]) <= 12:
            raise BrokerProtocolError(f"stac_yymm is not YYYYMM: {period!r}")
        values = {
            str(k): parse_decimal(v, field=str(k))
            for k, v in row.items()
            if k != "stac_yymm" and isinstance(v, str | int | float)
        }
        out.append(StatementRow(code=code, kind=kind, annual=annual, period=period, values=values))
    return out
