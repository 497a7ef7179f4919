"""KIS stock master files (종목정보 파일): download and parse, no ORM.

KIS publishes one zip a market, refreshed before each session, at
``https://new.real.download.dws.co.kr/common/master/{kospi,kosdaq,konex}_code.mst.zip`` (no key needed). Each
zip holds one ``*_code.mst`` text file in cp949, one line a security:

- a variable-length head: 단축코드 (9 characters, the 6-character code left-aligned), 표준코드 (12, the ISIN) and
  the Korean name (한글종목명, its length varies);
- a fixed-width tail of ASCII fields (KOSPI 227 characters, KOSDAQ 221, KONEX 184), read from the END of the line.

The layouts below are KIS's own: the C structs ``stocks_info/종목마스터정보(코스피).h`` and ``(코스닥).h`` and the
parsers ``stocks_info/kis_kospi_code_mst.py`` (tail 228, field widths), ``kis_kosdaq_code_mst.py`` (tail 222) and
``kis_konex_code_mst.py`` (tail 184) of github.com/koreainvestment/open-trading-api. KIS's KOSPI and KOSDAQ
scripts cut ``row[-228:]`` / ``row[-222:]`` from lines read WITH their line break: their field widths sum to 227
and 221, the lengths used here on lines without it. Every field is listed by width so that each offset stays
exact; Hoga reads the ones named in :class:`MasterRow`.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpx

from ..base import BrokerProtocolError, BrokerTransientError

#: Official location of the master files (KIS developers FAQ "종목정보 다운로드(국내)").
KIS_MASTER_URL = "https://new.real.download.dws.co.kr/common/master"

#: market -> file name inside the zip (the zip is ``<name>.zip``).
MASTER_FILES: dict[str, str] = {"KOSPI": "kospi_code.mst", "KOSDAQ": "kosdaq_code.mst", "KONEX": "konex_code.mst"}

HEAD_CODE = 9  # 단축코드 field width (SZ_SHRNCODE)
HEAD_ISIN = 12  # 표준코드 field width (SZ_STNDCODE)

# (field, width) of the tail, in order. Names follow the KIS structs; "_" fields are skipped.
KOSPI_TAIL: tuple[tuple[str, int], ...] = (
    ("scrt_grp_cls_code", 2), ("avls_scal_cls_code", 1), ("bstp_larg_div_code", 4), ("bstp_medm_div_code", 4),
    ("bstp_smal_div_code", 4), ("mnin_cls_code_yn", 1), ("low_current_yn", 1), ("sprn_strr_nmix_issu_yn", 1),
    ("kospi200_apnt_cls_code", 1), ("kospi100_issu_yn", 1), ("kospi50_issu_yn", 1), ("krx_issu_yn", 1),
    ("etp_prod_cls_code", 1), ("elw_pblc_yn", 1), ("krx100_issu_yn", 1), ("krx_car_yn", 1), ("krx_smcn_yn", 1),
    ("krx_bio_yn", 1), ("krx_bank_yn", 1), ("etpr_undt_objt_co_yn", 1), ("krx_enrg_chms_yn", 1),
    ("krx_stel_yn", 1), ("short_over_cls_code", 1), ("krx_medi_cmnc_yn", 1), ("krx_cnst_yn", 1),
    ("krx_fnnc_svc_yn", 1), ("krx_scrt_yn", 1), ("krx_ship_yn", 1), ("krx_insu_yn", 1), ("krx_trnp_yn", 1),
    ("sri_nmix_yn", 1), ("stck_sdpr", 9), ("frml_mrkt_deal_qty_unit", 5), ("ovtm_mrkt_deal_qty_unit", 5),
    ("trht_yn", 1), ("sltr_yn", 1), ("mang_issu_yn", 1), ("mrkt_alrm_cls_code", 2), ("mrkt_alrm_risk_adnt_yn", 1),
    ("insn_pbnt_yn", 1), ("byps_lstn_yn", 1), ("flng_cls_code", 2), ("fcam_mod_cls_code", 2), ("icic_cls_code", 2),
    ("marg_rate", 3), ("crdt_able", 1), ("crdt_days", 3), ("prdy_vol", 12), ("stck_fcam", 12),
    ("stck_lstn_date", 8), ("lstn_stcn", 15), ("cpfn", 21), ("stac_month", 2), ("po_prc", 7), ("prst_cls_code", 1),
    ("ssts_hot_yn", 1), ("stange_runup_yn", 1), ("krx300_issu_yn", 1), ("kospi_issu_yn", 1), ("sale_account", 9),
    ("bsop_prfi", 9), ("op_prfi", 9), ("thtr_ntin", 5), ("roe", 9), ("base_date", 8), ("prdy_avls_scal", 9),
    ("grp_code", 3), ("co_crdt_limt_over_yn", 1), ("secu_lend_able_yn", 1), ("stln_able_yn", 1),
)  # fmt: skip
KOSDAQ_TAIL: tuple[tuple[str, int], ...] = (
    ("scrt_grp_cls_code", 2), ("avls_scal_cls_code", 1), ("bstp_larg_div_code", 4), ("bstp_medm_div_code", 4),
    ("bstp_smal_div_code", 4), ("vntr_issu_yn", 1), ("low_current_yn", 1), ("krx_issu_yn", 1),
    ("etp_prod_cls_code", 1), ("krx100_issu_yn", 1), ("krx_car_yn", 1), ("krx_smcn_yn", 1), ("krx_bio_yn", 1),
    ("krx_bank_yn", 1), ("etpr_undt_objt_co_yn", 1), ("krx_enrg_chms_yn", 1), ("krx_stel_yn", 1),
    ("short_over_cls_code", 1), ("krx_medi_cmnc_yn", 1), ("krx_cnst_yn", 1), ("invt_alrm_nmix_yn", 1),
    ("krx_scrt_yn", 1), ("krx_ship_yn", 1), ("krx_insu_yn", 1), ("krx_trnp_yn", 1), ("ksq150_nmix_yn", 1),
    ("stck_sdpr", 9), ("frml_mrkt_deal_qty_unit", 5), ("ovtm_mrkt_deal_qty_unit", 5), ("trht_yn", 1),
    ("sltr_yn", 1), ("mang_issu_yn", 1), ("mrkt_alrm_cls_code", 2), ("mrkt_alrm_risk_adnt_yn", 1),
    ("insn_pbnt_yn", 1), ("byps_lstn_yn", 1), ("flng_cls_code", 2), ("fcam_mod_cls_code", 2), ("icic_cls_code", 2),
    ("marg_rate", 3), ("crdt_able", 1), ("crdt_days", 3), ("prdy_vol", 12), ("stck_fcam", 12),
    ("stck_lstn_date", 8), ("lstn_stcn", 15), ("cpfn", 21), ("stac_month", 2), ("po_prc", 7), ("prst_cls_code", 1),
    ("ssts_hot_yn", 1), ("stange_runup_yn", 1), ("krx300_issu_yn", 1), ("sale_account", 9), ("bsop_prfi", 9),
    ("op_prfi", 9), ("thtr_ntin", 5), ("roe", 9), ("base_date", 8), ("prdy_avls_scal", 9), ("grp_code", 3),
    ("co_crdt_limt_over_yn", 1), ("secu_lend_able_yn", 1), ("stln_able_yn", 1),
)  # fmt: skip
KONEX_TAIL: tuple[tuple[str, int], ...] = (
    ("scrt_grp_cls_code", 2), ("stck_sdpr", 9), ("frml_mrkt_deal_qty_unit", 5), ("ovtm_mrkt_deal_qty_unit", 5),
    ("trht_yn", 1), ("sltr_yn", 1), ("mang_issu_yn", 1), ("mrkt_alrm_cls_code", 2), ("mrkt_alrm_risk_adnt_yn", 1),
    ("insn_pbnt_yn", 1), ("byps_lstn_yn", 1), ("flng_cls_code", 2), ("fcam_mod_cls_code", 2), ("icic_cls_code", 2),
    ("marg_rate", 3), ("crdt_able", 1), ("crdt_days", 3), ("prdy_vol", 12), ("stck_fcam", 12),
    ("stck_lstn_date", 8), ("lstn_stcn", 15), ("cpfn", 21), ("stac_month", 2), ("po_prc", 7), ("prst_cls_code", 1),
    ("ssts_hot_yn", 1), ("stange_runup_yn", 1), ("krx300_issu_yn", 1), ("sale_account", 9), ("bsop_prfi", 9),
    ("op_prfi", 9), ("thtr_ntin", 5), ("roe", 9), ("base_date", 8), ("prdy_avls_scal", 9),
    ("co_crdt_limt_over_yn", 1), ("secu_lend_able_yn", 1), ("stln_able_yn", 1),
)  # fmt: skip
TAILS: dict[str, tuple[tuple[str, int], ...]] = {"KOSPI": KOSPI_TAIL, "KOSDAQ": KOSDAQ_TAIL, "KONEX": KONEX_TAIL}
TAIL_LENGTHS: dict[str, int] = {market: sum(w for _n, w in tail) for market, tail in TAILS.items()}

#: KOSPI200 섹터업종 (kospi200_apnt_cls_code, changed 2011-04-01), from the KOSPI struct's comment.
KOSPI200_SECTORS: dict[str, str] = {
    "1": "건설", "2": "중공업", "3": "철강소재", "4": "에너지화학", "5": "정보통신", "6": "금융",
    "7": "필수소비재", "8": "자유소비재", "9": "산업재", "A": "건강관리", "B": "커뮤니케이션서비스",
}  # fmt: skip
#: 시장경고구분코드 (mrkt_alrm_cls_code): 00 해당없음, 01 투자주의, 02 투자경고, 03 투자위험.
WARNINGS: dict[str, str] = {"00": "", "01": "caution", "02": "warning", "03": "risk"}


@dataclass(frozen=True, slots=True)
class MasterRow:
    """One security of a master file. Prices in KRW; ``market_cap`` in KRW (the file gives 억원)."""

    code: str
    isin: str
    name: str
    market: str
    security_group: str  # ST 주권, FS 외국주권, RT 리츠, EF ETF, ...
    base_price: int  # 주식 기준가 (stck_sdpr)
    halted: bool  # 거래정지 (trht_yn)
    liquidation: bool  # 정리매매 (sltr_yn)
    administrative: bool  # 관리종목 (mang_issu_yn)
    warning: str  # "" | caution | warning | risk (mrkt_alrm_cls_code)
    industry_code: str  # 지수업종 대분류 (KOSPI, KOSDAQ); "" for KONEX
    sector: str  # KOSPI200 sector name where the file gives one
    listed_shares: int  # 상장 주수 (the file gives thousands)
    prev_volume: int  # 전일 거래량
    market_cap: int | None  # 전일기준 시가총액
    listed_on: dt.date | None  # 주식 상장 일자


def _int(text: str, field: str, line_no: int) -> int:
    text = text.strip()
    if not text:
        return 0
    if not text.lstrip("-").isdigit():
        raise BrokerProtocolError(f"master line {line_no}: {field} is not a number: {text!r}")
    return int(text)


def _date(text: str) -> dt.date | None:
    text = text.strip()
    if len(text) != 8 or not text.isdigit() or text == "00000000":
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def parse_line(line: str, market: str, *, line_no: int = 0) -> MasterRow:
    """One decoded master line (without its line break) → :class:`MasterRow`; BrokerProtocolError when malformed."""
    tail_len = TAIL_LENGTHS[market]
    if len(line) < HEAD_CODE + HEAD_ISIN + 1 + tail_len:
        raise BrokerProtocolError(f"master line {line_no}: {len(line)} characters, shorter than the {market} layout")
    head, tail = line[:-tail_len], line[-tail_len:]
    if not tail.isascii():
        raise BrokerProtocolError(f"master line {line_no}: the fixed-width tail is not ASCII (misaligned line)")
    fields: dict[str, str] = {}
    at = 0
    for name, width in TAILS[market]:
        fields[name] = tail[at : at + width]
        at += width
    code = head[:HEAD_CODE].strip()
    name = head[HEAD_CODE + HEAD_ISIN :].strip()
    if len(code) != 6 or not code.isalnum() or not name:
        raise BrokerProtocolError(f"master line {line_no}: bad code {code!r} or empty name")
    warning_code = fields["mrkt_alrm_cls_code"].strip() or "00"
    if warning_code not in WARNINGS:
        raise BrokerProtocolError(f"master line {line_no}: unknown market warning code {warning_code!r}")
    cap_eok = _int(fields["prdy_avls_scal"], "prdy_avls_scal", line_no)
    return MasterRow(
        code=code.upper(),
        isin=head[HEAD_CODE : HEAD_CODE + HEAD_ISIN].strip(),
        name=name,
        market=market,
        security_group=fields["scrt_grp_cls_code"].strip(),
        base_price=_int(fields["stck_sdpr"], "stck_sdpr", line_no),
        halted=fields["trht_yn"] == "Y",
        liquidation=fields["sltr_yn"] == "Y",
        administrative=fields["mang_issu_yn"] == "Y",
        warning=WARNINGS[warning_code],
        industry_code=fields.get("bstp_larg_div_code", "").strip(),
        sector=KOSPI200_SECTORS.get(fields.get("kospi200_apnt_cls_code", "").strip(), ""),
        listed_shares=_int(fields["lstn_stcn"], "lstn_stcn", line_no) * 1000,
        prev_volume=_int(fields["prdy_vol"], "prdy_vol", line_no),
        market_cap=cap_eok * 100_000_000 if cap_eok else None,
        listed_on=_date(fields["stck_lstn_date"]),
    )


def parse_master(data: bytes, market: str) -> list[MasterRow]:
    """The text of one ``*_code.mst`` file (cp949 bytes) → rows; BrokerProtocolError on any malformed line."""
    if market not in TAILS:
        raise ValueError(f"unknown market {market!r}")
    try:
        text = data.decode("cp949")
    except UnicodeDecodeError as exc:
        raise BrokerProtocolError(f"{market} master is not cp949 text: {exc}") from exc
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            rows.append(parse_line(line, market, line_no=line_no))
    return rows


def unzip_master(blob: bytes, market: str) -> bytes:
    """The ``*_code.mst`` member of a downloaded master zip; BrokerProtocolError when it is not there."""
    member = MASTER_FILES[market]
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            names = archive.namelist()
            if member not in names:
                raise BrokerProtocolError(f"{member} not in the master zip (it holds {names[:5]})")
            info = archive.getinfo(member)
            if info.file_size > MAX_MASTER_BYTES:
                raise BrokerProtocolError(f"{member} is {info.file_size} bytes, over {MAX_MASTER_BYTES}")
            return archive.read(member)
    except zipfile.BadZipFile as exc:
        raise BrokerProtocolError(f"{market} master is not a zip: {exc}") from exc


#: A master file is ~1 MB (KOSPI with ETFs); anything far larger is not one (and is not unpacked).
MAX_MASTER_BYTES = 32 * 1024 * 1024


def master_url(base_url: str, market: str) -> str:
    return f"{base_url.rstrip('/')}/{MASTER_FILES[market]}.zip"


async def fetch_masters(
    base_url: str, *, markets: Sequence[str] = ("KOSPI", "KOSDAQ", "KONEX"), timeout: float = 30.0
) -> dict[str, list[MasterRow]]:
    """Download and parse the master file of each market. Network failures raise BrokerTransientError, bad
    content BrokerProtocolError (nothing is returned half-read)."""
    out: dict[str, list[MasterRow]] = {}
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
        for market in markets:
            url = master_url(base_url, market)
            try:
                response = await client.get(url)
            except httpx.HTTPError as exc:
                raise BrokerTransientError(f"{url}: {type(exc).__name__}: {exc}") from exc
            if response.status_code >= 500:
                raise BrokerTransientError(f"{url}: HTTP {response.status_code}", http_status=response.status_code)
            if response.status_code != 200:
                raise BrokerProtocolError(f"{url}: HTTP {response.status_code}", http_status=response.status_code)
            out[market] = parse_master(unzip_master(response.content, market), market)
    return out


def stocks_only(rows: Iterable[MasterRow], groups: Iterable[str]) -> list[MasterRow]:
    """The rows whose 증권그룹구분코드 is one of ``groups`` (e.g. stocks and REITs, not ETFs or warrants)."""
    wanted = set(groups)
    return [row for row in rows if row.security_group in wanted]
