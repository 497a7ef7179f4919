"""CSV exports: executions and the yearly realized-P&L statement, with Korean (``ko``, default) or English
(``en``) headers. UTF-8 with a byte-order mark, so spreadsheet programs read Hangul correctly. No ORM here:
rows come from :mod:`.selectors`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from apps.core.krx.calendar import KST

EXECUTION_COLUMNS = [
    ("executed_at", "체결시각", "Executed at (KST)"),
    ("order", "주문번호", "Order"),
    ("code", "종목코드", "Code"),
    ("name", "종목명", "Name"),
    ("side", "매매구분", "Side"),
    ("price", "체결가", "Price (KRW)"),
    ("quantity", "체결수량", "Quantity"),
    ("amount", "체결금액", "Amount (KRW)"),
    ("commission", "수수료", "Commission (KRW)"),
    ("tax", "거래세", "Tax (KRW)"),
    ("realized_pnl", "실현손익", "Realized P&L (KRW, gross)"),
    ("source", "체결근거", "Priced from"),
]

PNL_COLUMNS = [
    ("code", "종목코드", "Code"),
    ("name", "종목명", "Name"),
    ("sold_quantity", "매도수량", "Quantity sold"),
    ("proceeds", "매도금액", "Proceeds (KRW)"),
    ("cost", "매입원가", "Cost basis (KRW)"),
    ("realized_pnl", "실현손익", "Realized P&L (KRW, gross)"),
    ("commission", "수수료", "Commission (KRW)"),
    ("tax", "거래세", "Tax (KRW)"),
    ("net_pnl", "순손익", "Net P&L (KRW)"),
]

SIDES = {"ko": {"BUY": "매수", "SELL": "매도"}, "en": {"BUY": "BUY", "SELL": "SELL"}}


def _table(columns, rows: Iterable[dict[str, Any]], lang: str, total: dict[str, Any] | None = None) -> str:
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([ko if lang == "ko" else en for _, ko, en in columns])
    for row in rows:
        writer.writerow([_cell(row.get(key, "")) for key, _, _ in columns])
    if total is not None:
        writer.writerow([_cell(total.get(key, "")) for key, _, _ in columns])
    return out.getvalue()


def _cell(value: Any) -> Any:
    # a text cell starting with = + - @ would be a formula in a spreadsheet (CSV injection): quote it
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def executions_csv(executions, lang: str) -> str:
    rows = (
        {
            "executed_at": e.executed_at.astimezone(KST).strftime("%Y-%m-%d %H:%M:%S"),
            "order": e.order_id,
            "code": e.stock.code,
            "name": e.stock.name,
            "side": SIDES[lang][e.side],
            "price": e.price,
            "quantity": e.quantity,
            "amount": e.amount,
            "commission": e.commission,
            "tax": e.tax,
            "realized_pnl": e.realized_pnl if e.side == "SELL" else "",
            "source": e.source,
        }
        for e in executions
    )
    return _table(EXECUTION_COLUMNS, rows, lang)


def realized_pnl_csv(rows: list[dict[str, Any]], lang: str, year: int) -> str:
    total = {"code": "합계" if lang == "ko" else "Total", "name": str(year)}
    for key in ("sold_quantity", "proceeds", "cost", "realized_pnl", "commission", "tax", "net_pnl"):
        total[key] = sum(r[key] for r in rows)
    return _table(PNL_COLUMNS, rows, lang, total)
