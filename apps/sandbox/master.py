"""KIS stock master files served by the sandbox (``GET /common/master/{kospi,kosdaq,konex}_code.mst.zip``).

KIS publishes them at ``https://new.real.download.dws.co.kr/common/master/``; the sandbox serves the same files,
in the same layout, built from the recorded listing (``listing/krx_all_listed_<date>.csv`` in ``HOGA_DATA_DIR``:
Date,Rank,Code,Name,Market,Close,Marcap,Stocks,Volume,Amount; the newest one not after the replay date), or from
the synthetic universe without recorded data.

Layout (KIS's structs ``stocks_info/종목마스터정보(코스피).h`` / ``(코스닥).h`` and the parsers
``stocks_info/kis_{kospi,kosdaq,konex}_code_mst.py`` of github.com/koreainvestment/open-trading-api): cp949 text,
one line a security: 단축코드 (9), 표준코드 (12), 한글종목명 (variable), then a fixed-width ASCII tail of 227
(KOSPI), 221 (KOSDAQ) or 184 (KONEX) characters. Lines end with CRLF.

What the recorded listing does not hold is DERIVED or left blank, and said so here:
- 표준코드: ``KR7`` + code + ``00`` + the ISIN check digit (right for common stocks; KRX numbers preferred shares
  differently, so theirs are not the real ISIN);
- 주식 기준가: the replayed day's base for the stocks the sandbox replays (their previous close), else the listing
  day's close;
- 거래정지: ``Y`` when the listing recorded no trade that day (volume 0), else ``N``;
- 관리종목, 정리매매, 시장경고: not recorded: ``N`` / ``00``;
- 지수업종 codes, KOSPI200 sector, 상장일자 and the company accounts: blank (zeros).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from apps.sandbox.server import SandboxCore

logger = logging.getLogger(__name__)

LISTING_GLOB = "krx_all_listed_*.csv"
FILES: dict[str, str] = {"kospi_code.mst.zip": "KOSPI", "kosdaq_code.mst.zip": "KOSDAQ", "konex_code.mst.zip": "KONEX"}
MARKETS = {"KOSPI": "KOSPI", "KOSDAQ": "KOSDAQ", "KOSDAQ GLOBAL": "KOSDAQ", "KONEX": "KONEX"}

# Tail widths in order (see the module docstring); the index of each field the sandbox fills.
TAIL_WIDTHS: dict[str, tuple[int, ...]] = {
    "KOSPI": (2, 1, 4, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9, 5, 5,
              1, 1, 1, 2, 1, 1, 1, 2, 2, 2, 3, 1, 3, 12, 12, 8, 15, 21, 2, 7, 1, 1, 1, 1, 1, 9, 9, 9, 5, 9, 8, 9, 3,
              1, 1, 1),
    "KOSDAQ": (2, 1, 4, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9, 5, 5, 1, 1, 1, 2,
               1, 1, 1, 2, 2, 2, 3, 1, 3, 12, 12, 8, 15, 21, 2, 7, 1, 1, 1, 1, 9, 9, 9, 5, 9, 8, 9, 3, 1, 1, 1),
    "KONEX": (2, 9, 5, 5, 1, 1, 1, 2, 1, 1, 1, 2, 2, 2, 3, 1, 3, 12, 12, 8, 15, 21, 2, 7, 1, 1, 1, 1, 9, 9, 9, 5, 9,
              8, 9, 1, 1, 1),
}  # fmt: skip
FIELD_INDEX: dict[str, dict[str, int]] = {
    # scrt_grp_cls_code, stck_sdpr, frml_mrkt_deal_qty_unit, trht_yn, sltr_yn, mang_issu_yn, mrkt_alrm_cls_code,
    # prdy_vol, lstn_stcn, prdy_avls_scal
    "KOSPI": {"grp": 0, "sdpr": 31, "unit": 32, "trht": 34, "sltr": 35, "mang": 36, "alrm": 37, "vol": 47,
              "stcn": 50, "avls": 65},
    "KOSDAQ": {"grp": 0, "sdpr": 26, "unit": 27, "trht": 29, "sltr": 30, "mang": 31, "alrm": 32, "vol": 42,
               "stcn": 45, "avls": 59},
    "KONEX": {"grp": 0, "sdpr": 1, "unit": 2, "trht": 4, "sltr": 5, "mang": 6, "alrm": 7, "vol": 17, "stcn": 20,
              "avls": 34},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Listed:
    code: str
    name: str
    market: str
    close: int
    volume: int
    shares: int
    marcap: int


def isin_for(code: str) -> str:
    """``KR7`` + code + ``00`` + the ISIN check digit (ISO 6166: letters as 10..35, then Luhn)."""
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


def listing_file(data_dir: Path | None, on: dt.date) -> Path | None:
    """The newest recorded all-listed file not after ``on`` (else the oldest one), or None."""
    folder = data_dir / "listing" if data_dir else None
    if folder is None or not folder.is_dir():
        return None
    files = sorted(folder.glob(LISTING_GLOB))
    before = [p for p in files if p.stem.rsplit("_", 1)[-1] <= on.isoformat()]
    picked = before or files[:1]
    return picked[-1] if picked else None


def read_listing(path: Path) -> list[Listed]:
    out: list[Listed] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            market = MARKETS.get((row.get("Market") or "").strip())
            code = (row.get("Code") or "").strip()
            if market is None or len(code) != 6:
                continue
            out.append(
                Listed(
                    code=code,
                    name=row["Name"].strip(),
                    market=market,
                    close=int(float(row["Close"] or 0)),
                    volume=int(float(row["Volume"] or 0)),
                    shares=int(float(row["Stocks"] or 0)),
                    marcap=int(float(row["Marcap"] or 0)),
                )
            )
    return out


def _field(value: str | int, width: int, numeric: bool) -> str:
    text = str(value)
    if len(text) > width:
        text = text[-width:] if numeric else text[:width]
    return text.rjust(width, "0") if numeric else text.ljust(width)


def master_line(item: Listed, base_price: int) -> str:
    """One master line (without the line break) for ``item`` in its market's layout."""
    widths = TAIL_WIDTHS[item.market]
    index = FIELD_INDEX[item.market]
    values: dict[int, str | int] = {
        index["grp"]: "ST",
        index["sdpr"]: base_price,
        index["unit"]: 1,
        index["trht"]: "Y" if item.volume == 0 else "N",
        index["sltr"]: "N",
        index["mang"]: "N",
        index["alrm"]: "00",
        index["vol"]: item.volume,
        index["stcn"]: item.shares // 1000,
        index["avls"]: item.marcap // 100_000_000,
    }
    blank: dict[int, str | int] = {i: (0 if w > 1 else " ") for i, w in enumerate(widths)}  # zeros, or a space
    tail = "".join(
        _field(value, widths[i], numeric=isinstance(value, int)) for i, value in ({**blank, **values}).items()
    )
    return f"{item.code:<9}{isin_for(item.code):<12}{item.name}{tail}"


def build_zip(market: str, lines: list[str]) -> bytes:
    member = f"{market.lower()}_code.mst"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, "".join(f"{line}\r\n" for line in lines).encode("cp949", errors="replace"))
    return buffer.getvalue()


def listed_for(core: SandboxCore) -> tuple[list[Listed], str]:
    """What the master lists: the recorded listing, else the replayed (synthetic) universe."""
    path = listing_file(core.config.data_dir, core.market.date)
    if path is not None:
        return read_listing(path), str(path.name)
    items = []
    for code, tape in core.market.tapes.items():
        inst = tape.instrument
        items.append(Listed(code, inst.name, inst.market, tape.prev_close, tape.prev_volume, inst.listed_shares, 0))
    return items, "the replayed synthetic universe"


class MasterFiles:
    """The three zips, built once per sandbox (the listing does not change while it runs)."""

    _by_core: weakref.WeakKeyDictionary[SandboxCore, MasterFiles] = weakref.WeakKeyDictionary()

    def __init__(self, core: SandboxCore) -> None:
        self.core = core
        self._zips: dict[str, bytes] | None = None

    @classmethod
    def of(cls, core: SandboxCore) -> MasterFiles:
        """The one instance of ``core`` (shared by its real and paper listeners)."""
        if core not in cls._by_core:
            cls._by_core[core] = cls(core)
        return cls._by_core[core]

    def zips(self) -> dict[str, bytes]:
        if self._zips is None:
            items, source = listed_for(self.core)
            by_market: dict[str, list[str]] = {"KOSPI": [], "KOSDAQ": [], "KONEX": []}
            for item in items:
                tape = self.core.market.tape(item.code)
                base = tape.prev_close if tape is not None else item.close
                by_market[item.market].append(master_line(item, base))
            self._zips = {f"{m.lower()}_code.mst.zip": build_zip(m, lines) for m, lines in by_market.items()}
            logger.info("stock master files built from %s: %d stocks", source, len(items))
        return self._zips

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info.get("name", "")
        if name not in FILES:
            raise web.HTTPNotFound(text="no such master file")
        return web.Response(body=self.zips()[name], content_type="application/zip")
