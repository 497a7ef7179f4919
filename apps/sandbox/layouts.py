"""Field layouts of the KIS real-time data frames (kis-api.md §6.4–§6.6).

One tuple of field names per TR; the sandbox builds records from these tuples and the tests parse
real KIS frames with the very same tuples, so a layout change shows up on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

H0STCNT0_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD",
    "STCK_CNTG_HOUR",
    "STCK_PRPR",
    "PRDY_VRSS_SIGN",
    "PRDY_VRSS",
    "PRDY_CTRT",
    "WGHN_AVRG_STCK_PRC",
    "STCK_OPRC",
    "STCK_HGPR",
    "STCK_LWPR",
    "ASKP1",
    "BIDP1",
    "CNTG_VOL",
    "ACML_VOL",
    "ACML_TR_PBMN",
    "SELN_CNTG_CSNU",
    "SHNU_CNTG_CSNU",
    "NTBY_CNTG_CSNU",
    "CTTR",
    "SELN_CNTG_SMTN",
    "SHNU_CNTG_SMTN",
    "CCLD_DVSN",
    "SHNU_RATE",
    "PRDY_VOL_VRSS_ACML_VOL_RATE",
    "OPRC_HOUR",
    "OPRC_VRSS_PRPR_SIGN",
    "OPRC_VRSS_PRPR",
    "HGPR_HOUR",
    "HGPR_VRSS_PRPR_SIGN",
    "HGPR_VRSS_PRPR",
    "LWPR_HOUR",
    "LWPR_VRSS_PRPR_SIGN",
    "LWPR_VRSS_PRPR",
    "BSOP_DATE",
    "NEW_MKOP_CLS_CODE",
    "TRHT_YN",
    "ASKP_RSQN1",
    "BIDP_RSQN1",
    "TOTAL_ASKP_RSQN",
    "TOTAL_BIDP_RSQN",
    "VOL_TNRT",
    "PRDY_SMNS_HOUR_ACML_VOL",
    "PRDY_SMNS_HOUR_ACML_VOL_RATE",
    "HOUR_CLS_CODE",
    "MRKT_TRTM_CLS_CODE",
    "VI_STND_PRC",
)

H0STASP0_FIELDS: tuple[str, ...] = (
    ("MKSC_SHRN_ISCD", "BSOP_HOUR", "HOUR_CLS_CODE")
    + tuple(f"ASKP{i}" for i in range(1, 11))
    + tuple(f"BIDP{i}" for i in range(1, 11))
    + tuple(f"ASKP_RSQN{i}" for i in range(1, 11))
    + tuple(f"BIDP_RSQN{i}" for i in range(1, 11))
    + (
        "TOTAL_ASKP_RSQN",
        "TOTAL_BIDP_RSQN",
        "OVTM_TOTAL_ASKP_RSQN",
        "OVTM_TOTAL_BIDP_RSQN",
        "ANTC_CNPR",
        "ANTC_CNQN",
        "ANTC_VOL",
        "ANTC_CNTG_VRSS",
        "ANTC_CNTG_VRSS_SIGN",
        "ANTC_CNTG_PRDY_CTRT",
        "ACML_VOL",
        "TOTAL_ASKP_RSQN_ICDC",
        "TOTAL_BIDP_RSQN_ICDC",
        "OVTM_TOTAL_ASKP_ICDC",
        "OVTM_TOTAL_BIDP_ICDC",
        "STCK_DEAL_CLS_CODE",
    )
)

LAYOUTS: dict[str, tuple[str, ...]] = {"H0STCNT0": H0STCNT0_FIELDS, "H0STASP0": H0STASP0_FIELDS}

assert len(H0STCNT0_FIELDS) == 46 and len(set(H0STCNT0_FIELDS)) == 46
assert len(H0STASP0_FIELDS) == 59 and len(set(H0STASP0_FIELDS)) == 59


class FrameError(ValueError):
    """A data frame that does not match its TR's layout."""


@dataclass(frozen=True, slots=True)
class DataFrame:
    """A parsed ``<enc>|<tr_id>|<count>|<payload>`` frame."""

    encrypted: bool
    tr_id: str
    count: int
    records: list[dict[str, str]]


def build_frame(tr_id: str, records: list[list[str]]) -> str:
    """Join records into one plain data frame; every record must have the TR's field count."""
    width = len(LAYOUTS[tr_id])
    if not 1 <= len(records) <= 999:
        raise FrameError(f"record count {len(records)} out of 1..999")
    for rec in records:
        if len(rec) != width:
            raise FrameError(f"{tr_id} record has {len(rec)} fields, expected {width}")
    payload = "^".join("^".join(rec) for rec in records)
    return f"0|{tr_id}|{len(records):03d}|{payload}"


def parse_frame(text: str) -> DataFrame:
    """Parse a plain data frame with the shared layouts (rejects counts that do not divide)."""
    parts = text.split("|", 3)
    if len(parts) != 4 or parts[0] not in ("0", "1"):
        raise FrameError("not a data frame")
    enc, tr_id, count_s, payload = parts
    if enc == "1":
        raise FrameError("encrypted frames are not supported by this parser")
    layout = LAYOUTS.get(tr_id)
    if layout is None:
        raise FrameError(f"unknown tr_id {tr_id}")
    count = int(count_s)
    fields = payload.split("^")
    width = len(layout)
    if len(fields) % width != 0 or len(fields) // width != count:
        raise FrameError(f"{tr_id}: {len(fields)} fields for count {count} (N={width})")
    records = [dict(zip(layout, fields[i * width : (i + 1) * width], strict=True)) for i in range(count)]
    return DataFrame(encrypted=False, tr_id=tr_id, count=count, records=records)
