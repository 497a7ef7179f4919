"""KIS stock master files (kospi/kosdaq/konex_code.mst): the fixed-width layout of KIS's published parsers, the
status flags, and malformed files refused whole."""

from __future__ import annotations

import io
import zipfile

import pytest

from apps.brokers.base import BrokerProtocolError
from apps.brokers.kis import master

# The field widths of KIS's own parsers (github.com/koreainvestment/open-trading-api, stocks_info/
# kis_kospi_code_mst.py and kis_kosdaq_code_mst.py), copied as published: the oracle of the layout.
KIS_KOSPI_WIDTHS = [2, 1, 4, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9, 5,
                    5, 1, 1, 1, 2, 1, 1, 1, 2, 2, 2, 3, 1, 3, 12, 12, 8, 15, 21, 2, 7, 1, 1, 1, 1, 1, 9, 9, 9, 5, 9,
                    8, 9, 3, 1, 1, 1]  # fmt: skip
KIS_KOSDAQ_WIDTHS = [2, 1, 4, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9, 5, 5, 1, 1, 1,
                     2, 1, 1, 1, 2, 2, 2, 3, 1, 3, 12, 12, 8, 15, 21, 2, 7, 1, 1, 1, 1, 9, 9, 9, 5, 9, 8, 9, 3, 1, 1,
                     1]  # fmt: skip
# KIS's KONEX parser slices from the end of the line: row[-184:-182] is the group code ... row[-1:] 대주가능여부.
KONEX_FROM_END = {"scrt_grp_cls_code": (-184, -182), "stck_sdpr": (-182, -173), "trht_yn": (-163, -162),
                  "mang_issu_yn": (-161, -160), "mrkt_alrm_cls_code": (-160, -158), "prdy_vol": (-142, -130),
                  "lstn_stcn": (-110, -95), "prdy_avls_scal": (-12, -3)}  # fmt: skip


def _line(market: str, widths: list[int], values: dict[int, str], *, code="005930", name="삼성전자") -> str:
    """A master line: head + a tail whose field ``i`` is ``values[i]`` (blank otherwise), by KIS's widths."""
    tail = "".join(values.get(i, " " * w).rjust(w) if i in values else " " * w for i, w in enumerate(widths))
    return f"{code:<9}{'KR7005930003':<12}{name}{tail}"


def test_the_layouts_are_kis_published_widths():
    assert [w for _n, w in master.KOSPI_TAIL] == KIS_KOSPI_WIDTHS
    assert [w for _n, w in master.KOSDAQ_TAIL] == KIS_KOSDAQ_WIDTHS
    # KIS's scripts cut 228 / 222 characters from lines that still carry their "\n".
    assert master.TAIL_LENGTHS == {"KOSPI": 227, "KOSDAQ": 221, "KONEX": 184}
    offsets, at = {}, -184
    for name, width in master.KONEX_TAIL:
        offsets[name] = (at, at + width if at + width < 0 else None)
        at += width
    for name, (start, end) in KONEX_FROM_END.items():
        assert offsets[name] == (start, end), name


def test_a_kospi_line_gives_the_stock_its_sector_and_flags():
    # indexes into KIS_KOSPI_WIDTHS: 0 group, 2 업종대분류, 8 KOSPI200 sector, 31 기준가, 34 거래정지, 35 정리매매,
    # 36 관리종목, 37 시장경고, 47 전일거래량, 49 상장일자, 50 상장주수(천), 65 시가총액(억)
    values = {0: "ST", 2: "0013", 8: "5", 31: "000190100", 34: "N", 35: "N", 36: "Y", 37: "02", 47: "24213880",
              49: "19750611", 50: "5919638", 65: "11253231"}  # fmt: skip
    line = _line("KOSPI", KIS_KOSPI_WIDTHS, values)
    data = ("\r\n".join([line, line.replace("005930", "000660", 1).replace("삼성전자", "SK하이닉스")]) + "\r\n").encode(
        "cp949"
    )

    rows = master.parse_master(data, "KOSPI")

    first = rows[0]
    assert (first.code, first.isin, first.name, first.market, first.security_group) == (
        "005930", "KR7005930003", "삼성전자", "KOSPI", "ST",
    )  # fmt: skip
    assert (first.base_price, first.halted, first.liquidation, first.administrative, first.warning) == (
        190_100, False, False, True, "warning",
    )  # fmt: skip
    assert (first.industry_code, first.sector) == ("0013", "정보통신")
    assert (first.prev_volume, first.listed_shares, first.market_cap) == (24_213_880, 5_919_638_000, 11_253_231 * 10**8)
    assert first.listed_on.isoformat() == "1975-06-11"
    assert [r.code for r in rows] == ["005930", "000660"] and rows[1].name == "SK하이닉스"


def test_kosdaq_and_konex_lines_read_their_own_layouts():
    kosdaq = _line("KOSDAQ", KIS_KOSDAQ_WIDTHS, {0: "ST", 26: "000171300", 29: "Y", 32: "03"}, code="086520",
                   name="에코프로")  # fmt: skip
    row = master.parse_master(kosdaq.encode("cp949"), "KOSDAQ")[0]
    assert (row.code, row.base_price, row.halted, row.warning, row.sector) == ("086520", 171_300, True, "risk", "")

    tail = [" "] * 184
    for name, text in {"scrt_grp_cls_code": "ST", "stck_sdpr": "000401000", "trht_yn": "N", "mang_issu_yn": "N",
                       "mrkt_alrm_cls_code": "01"}.items():  # fmt: skip
        start, end = KONEX_FROM_END[name]
        tail[184 + start : 184 + end if end else None] = list(text)
    konex = f"{'496320':<9}{'KR7496320003':<12}본시스템즈{''.join(tail)}"
    row = master.parse_master(konex.encode("cp949"), "KONEX")[0]
    assert (row.code, row.name, row.base_price, row.warning, row.industry_code) == (
        "496320", "본시스템즈", 401_000, "caution", "",
    )  # fmt: skip


def test_only_the_configured_security_groups_are_stocks():
    etf = _line("KOSPI", KIS_KOSPI_WIDTHS, {0: "EF"}, code="069500", name="KODEX 200")
    stock = _line("KOSPI", KIS_KOSPI_WIDTHS, {0: "ST"})
    rows = master.parse_master(f"{etf}\n{stock}\n".encode("cp949"), "KOSPI")

    assert [r.code for r in master.stocks_only(rows, ["ST", "RT"])] == ["005930"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("005930   KR7005930003삼성전자 ST".encode("cp949"), "shorter than the KOSPI layout"),
        (b"\xff\xfe\xff" * 100, "not cp949"),
        (_line("KOSPI", KIS_KOSPI_WIDTHS, {37: "09"}).encode("cp949"), "unknown market warning code"),
        (_line("KOSPI", KIS_KOSPI_WIDTHS, {31: "00001A000"}).encode("cp949"), "stck_sdpr is not a number"),
        (_line("KOSPI", KIS_KOSPI_WIDTHS, {}, code="00593").encode("cp949") + "가".encode("cp949"), "not ASCII"),
        (_line("KOSPI", KIS_KOSPI_WIDTHS, {}, code="", name="").encode("cp949") + b"x", "bad code"),
    ],
)
def test_a_malformed_master_is_refused_whole(data, message):
    good = _line("KOSPI", KIS_KOSPI_WIDTHS, {0: "ST"}).encode("cp949") + b"\n"

    with pytest.raises(BrokerProtocolError, match=message):
        master.parse_master(good + data, "KOSPI")


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_the_zip_must_hold_the_markets_file():
    data = _line("KOSPI", KIS_KOSPI_WIDTHS, {0: "ST"}).encode("cp949")
    assert master.unzip_master(_zip({"kospi_code.mst": data}), "KOSPI") == data
    with pytest.raises(BrokerProtocolError, match="kospi_code.mst not in the master zip"):
        master.unzip_master(_zip({"kosdaq_code.mst": data}), "KOSPI")
    with pytest.raises(BrokerProtocolError, match="not a zip"):
        master.unzip_master(b"<html>maintenance</html>", "KOSPI")
    assert master.master_url("http://h/common/master/", "KONEX") == "http://h/common/master/konex_code.mst.zip"
