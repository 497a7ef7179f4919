"""Frame layouts: the real recorded KIS frames parse with the field maps the sandbox emits."""

from __future__ import annotations

import pytest

from apps.sandbox import data
from apps.sandbox.layouts import H0STASP0_FIELDS, H0STCNT0_FIELDS, LAYOUTS, FrameError, build_frame, parse_frame

from .conftest import requires_data


def test_field_counts_and_order() -> None:
    assert len(H0STCNT0_FIELDS) == 46 and len(H0STASP0_FIELDS) == 59
    assert H0STCNT0_FIELDS[:3] == ("MKSC_SHRN_ISCD", "STCK_CNTG_HOUR", "STCK_PRPR")
    assert H0STCNT0_FIELDS[21] == "CCLD_DVSN" and H0STCNT0_FIELDS[33] == "BSOP_DATE"
    assert H0STCNT0_FIELDS[43] == "HOUR_CLS_CODE" and H0STCNT0_FIELDS[45] == "VI_STND_PRC"
    assert H0STASP0_FIELDS[3] == "ASKP1" and H0STASP0_FIELDS[13] == "BIDP1"
    assert H0STASP0_FIELDS[23] == "ASKP_RSQN1" and H0STASP0_FIELDS[33] == "BIDP_RSQN1"
    assert H0STASP0_FIELDS[43] == "TOTAL_ASKP_RSQN" and H0STASP0_FIELDS[58] == "STCK_DEAL_CLS_CODE"


# kis-api.md §6.7, the 26 fields of H0STCNI0/H0STCNI9 in order.
NOTICE_FIELDS = (
    "CUST_ID ACNT_NO ODER_NO OODER_NO SELN_BYOV_CLS RCTF_CLS ODER_KIND ODER_COND STCK_SHRN_ISCD CNTG_QTY CNTG_UNPR "
    "STCK_CNTG_HOUR RFUS_YN CNTG_YN ACPT_YN BRNC_NO ODER_QTY ACNT_NAME ORD_COND_PRC ORD_EXG_GB POPUP_YN FILLER "
    "CRDT_CLS CRDT_LOAN_DATE CNTG_ISNM40 ODER_PRC"
).split()


def test_the_new_frame_types_follow_the_reference_layouts() -> None:
    """kis-api.md §6.6: H0NXASP0/H0UNASP0 are H0STASP0's 59 fields plus six mid-price fields; §7: H0NXCNT0/H0UNCNT0
    are H0STCNT0's 46 with field 21 named CNTG_CLS_CODE; §6.7: the 26 notice fields; H0STMKO0 has 11 fields."""
    for tr in ("H0NXASP0", "H0UNASP0"):
        assert LAYOUTS[tr][:59] == H0STASP0_FIELDS
        assert LAYOUTS[tr][59:] == ("KMID_PRC", "KMID_TOTAL_RSQN", "KMID_CLS_CODE", "NMID_PRC", "NMID_TOTAL_RSQN",
                                    "NMID_CLS_CODE")  # fmt: skip
    for tr in ("H0NXCNT0", "H0UNCNT0"):
        assert len(LAYOUTS[tr]) == 46 and LAYOUTS[tr][21] == "CNTG_CLS_CODE"
        assert LAYOUTS[tr][:21] == H0STCNT0_FIELDS[:21] and LAYOUTS[tr][22:] == H0STCNT0_FIELDS[22:]
    assert LAYOUTS["H0STCNI0"] == LAYOUTS["H0STCNI9"] == tuple(NOTICE_FIELDS)
    assert len(LAYOUTS["H0STMKO0"]) == 11 and LAYOUTS["H0STMKO0"][0] == "MKSC_SHRN_ISCD"
    assert len(LAYOUTS["H0STANC0"]) == 46
    for tr, fields in LAYOUTS.items():  # every type round-trips a multi-record frame and refuses a short record
        records = [[f"{tr}{i}:{n}" for n in range(len(fields))] for i in range(2)]
        frame = build_frame(tr, records)
        assert [list(r.values()) for r in parse_frame(frame).records] == records
        with pytest.raises(FrameError):
            build_frame(tr, [records[0][:-1]])


def test_real_kis_frames_parse_with_the_shared_layouts() -> None:
    frames = data.load_real_frames(requires_data())
    parsed = [parse_frame(f) for f in frames]
    assert [p.tr_id for p in parsed] == ["H0STCNT0", "H0STCNT0", "H0STASP0", "H0STASP0"]
    t1 = parsed[0].records[0]
    assert (t1["STCK_CNTG_HOUR"], t1["STCK_PRPR"], t1["CNTG_VOL"], t1["ACML_VOL"]) == (
        "112616",
        "62700",
        "125",
        "9694968",
    )
    assert (t1["BSOP_DATE"], t1["NEW_MKOP_CLS_CODE"], t1["HOUR_CLS_CODE"], t1["CCLD_DVSN"]) == (
        "20230324",
        "20",
        "0",
        "1",
    )
    assert t1["PRDY_VRSS_SIGN"] == "2" and t1["PRDY_VRSS"] == "400" and t1["PRDY_CTRT"] == "0.64"
    b1 = parsed[2].records[0]
    assert (b1["ASKP1"], b1["BIDP1"], b1["ASKP10"], b1["BIDP10"]) == ("77900", "77800", "78800", "76900")
    assert b1["TOTAL_ASKP_RSQN"] == "1760795" and b1["ACML_VOL"] == "10358640"
    for frame in parsed:
        rebuilt = build_frame(frame.tr_id, [list(r.values()) for r in frame.records])
        assert rebuilt == next(f for f in frames if f.split("|")[1] == frame.tr_id and f == rebuilt)


def test_multi_record_round_trip_and_rejection() -> None:
    rec = [str(i) for i in range(46)]
    frame = build_frame("H0STCNT0", [rec, rec, rec])
    assert frame.startswith("0|H0STCNT0|003|")
    assert len(frame.split("|", 3)[3].split("^")) == 3 * 46
    assert parse_frame(frame).count == 3
    with pytest.raises(FrameError):
        parse_frame("0|H0STCNT0|002|" + "^".join(rec))
    with pytest.raises(FrameError):
        build_frame("H0STASP0", [rec])
