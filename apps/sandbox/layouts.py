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

#: NXT / integrated order books (kis-api.md §6.6): the 59 KRX fields plus the KRX and NXT mid-price fields.
H0NXASP0_FIELDS: tuple[str, ...] = H0STASP0_FIELDS + (
    "KMID_PRC",
    "KMID_TOTAL_RSQN",
    "KMID_CLS_CODE",
    "NMID_PRC",
    "NMID_TOTAL_RSQN",
    "NMID_CLS_CODE",
)
#: NXT / integrated trades: the H0STCNT0 layout with field 21 named CNTG_CLS_CODE (kis-api.md §7).
H0NXCNT0_FIELDS: tuple[str, ...] = tuple("CNTG_CLS_CODE" if f == "CCLD_DVSN" else f for f in H0STCNT0_FIELDS)
#: 실시간예상체결 (KRX): the H0STCNT0 columns (the official sample's column list for exp_ccnl_krx).
H0STANC0_FIELDS: tuple[str, ...] = H0STCNT0_FIELDS
#: 장운영정보 (KRX), 11 fields (official sample market_status_krx; sent on session changes and VI on/off).
H0STMKO0_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD",
    "TRHT_YN",
    "TR_SUSP_REAS_CNTT",
    "MKOP_CLS_CODE",
    "ANTC_MKOP_CLS_CODE",
    "MRKT_TRTM_CLS_CODE",
    "DIVI_APP_CLS_CODE",
    "ISCD_STAT_CLS_CODE",
    "VI_CLS_CODE",
    "OVTM_VI_CLS_CODE",
    "EXCH_CLS_CODE",
)
#: 실시간체결통보, 26 fields (kis-api.md §6.7), sent encrypted.
H0STCNI0_FIELDS: tuple[str, ...] = (
    "CUST_ID",
    "ACNT_NO",
    "ODER_NO",
    "OODER_NO",
    "SELN_BYOV_CLS",
    "RCTF_CLS",
    "ODER_KIND",
    "ODER_COND",
    "STCK_SHRN_ISCD",
    "CNTG_QTY",
    "CNTG_UNPR",
    "STCK_CNTG_HOUR",
    "RFUS_YN",
    "CNTG_YN",
    "ACPT_YN",
    "BRNC_NO",
    "ODER_QTY",
    "ACNT_NAME",
    "ORD_COND_PRC",
    "ORD_EXG_GB",
    "POPUP_YN",
    "FILLER",
    "CRDT_CLS",
    "CRDT_LOAN_DATE",
    "CNTG_ISNM40",
    "ODER_PRC",
)

LAYOUTS: dict[str, tuple[str, ...]] = {
    "H0STCNT0": H0STCNT0_FIELDS,
    "H0STASP0": H0STASP0_FIELDS,
    "H0NXCNT0": H0NXCNT0_FIELDS,
    "H0UNCNT0": H0NXCNT0_FIELDS,
    "H0NXASP0": H0NXASP0_FIELDS,
    "H0UNASP0": H0NXASP0_FIELDS,
    "H0STANC0": H0STANC0_FIELDS,
    "H0STMKO0": H0STMKO0_FIELDS,
    "H0STCNI0": H0STCNI0_FIELDS,
    "H0STCNI9": H0STCNI0_FIELDS,
    # Off-hours trades / book (kis-api.md §7 names them; their layouts are not in the reference): the sandbox
    # sends the H0STCNT0 and H0STASP0 layouts (UNCONFIRMED).
    "H0STOUP0": H0STCNT0_FIELDS,
    "H0STOAA0": H0STASP0_FIELDS,
}

assert len(H0STCNT0_FIELDS) == 46 and len(set(H0STCNT0_FIELDS)) == 46
assert len(H0STASP0_FIELDS) == 59 and len(set(H0STASP0_FIELDS)) == 59
assert len(H0NXASP0_FIELDS) == 65 and len(set(H0NXASP0_FIELDS)) == 65
assert len(H0STMKO0_FIELDS) == 11 and len(H0STCNI0_FIELDS) == 26 and len(set(H0STCNI0_FIELDS)) == 26


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


def encrypt_payload(payload: str, key: str, iv: str) -> str:
    """base64(AES-256-CBC(key, iv, PKCS7(payload))) with the UTF-8 key and iv of the subscribe ack (§6.4)."""
    import base64

    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    padder = padding.PKCS7(128).padder()
    data = padder.update(payload.encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(key.encode()), modes.CBC(iv.encode())).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


def decrypt_payload(text: str, key: str, iv: str) -> str:
    """The inverse of ``encrypt_payload`` (what a client does with an encrypted frame)."""
    import base64

    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    dec = Cipher(algorithms.AES(key.encode()), modes.CBC(iv.encode())).decryptor()
    raw = dec.update(base64.b64decode(text)) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(raw) + unpadder.finalize()).decode()


def parse_frame(text: str, key: str | None = None, iv: str | None = None) -> DataFrame:
    """Parse a data frame with the shared layouts (rejects counts that do not divide). An encrypted frame
    (``1|``) needs the ``key`` and ``iv`` of its subscribe ack."""
    parts = text.split("|", 3)
    if len(parts) != 4 or parts[0] not in ("0", "1"):
        raise FrameError("not a data frame")
    enc, tr_id, count_s, payload = parts
    if enc == "1":
        if key is None or iv is None:
            raise FrameError("an encrypted frame needs the key and iv of its subscribe ack")
        payload = decrypt_payload(payload, key, iv)
    layout = LAYOUTS.get(tr_id)
    if layout is None:
        raise FrameError(f"unknown tr_id {tr_id}")
    count = int(count_s)
    fields = payload.split("^")
    width = len(layout)
    if len(fields) % width != 0 or len(fields) // width != count:
        raise FrameError(f"{tr_id}: {len(fields)} fields for count {count} (N={width})")
    records = [dict(zip(layout, fields[i * width : (i + 1) * width], strict=True)) for i in range(count)]
    return DataFrame(encrypted=enc == "1", tr_id=tr_id, count=count, records=records)
