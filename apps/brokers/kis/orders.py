"""Orders at the broker: result types, the execution notices' AES decryption and their 26-field parsing (pure).

From the reference (kis-api.md):
- §5.7 cash order ``order-cash``: buy ``TTTC0012U`` / sell ``TTTC0011U`` (paper ``VTTC…`` by the §3.1 rule), body
  ``CANO, ACNT_PRDT_CD, PDNO, ORD_DVSN, ORD_QTY, ORD_UNPR, EXCG_ID_DVSN_CD`` (KRX/NXT/SOR; paper: KRX only),
  ``SLL_TYPE``; answer ``output`` with UPPER-case ``KRX_FWDG_ORD_ORGNO, ODNO, ORD_TMD``.
- §5.8 daily fills ``inquire-daily-ccld`` ``TTTC0081R``: rows ``odno, pdno, ord_qty, tot_ccld_qty, avg_prvs,
  rmn_qty, sll_buy_dvsn_cd`` … (the row field names beyond the TR are the sandbox's, following python-kis:
  assumptions).
- §5.8 balance ``inquire-balance`` ``TTTC8434R`` (paper ``VTTC8434R``): query ``CANO, ACNT_PRDT_CD, AFHR_FLPR_YN,
  OFL_YN, INQR_DVSN, UNPR_DVSN, FUND_STTL_ICLD_YN, FNCG_AMT_AUTO_RDPT_YN, PRCS_DVSN, CTX_AREA_FK100/NK100``;
  ``output1`` holdings ``pdno, prdt_name, hldg_qty, ord_psbl_qty, pchs_avg_pric, pchs_amt, prpr, evlu_amt``;
  ``output2`` one summary row ``dnca_tot_amt, scts_evlu_amt, tot_evlu_amt``. Paged by ``tr_cont`` (50 rows real, 20
  paper).
- §6.4 encrypted frames ``1|H0STCNI0|001|<base64>``: AES-256-CBC with the ack's key (32 chars) and iv (16 chars) as
  UTF-8 bytes, PKCS7 padding; the plaintext is ``^``-joined records.
- §6.7 ``H0STCNI0`` (real) / ``H0STCNI9`` (paper): 26 fields (current layout) or 23 (older), told apart by the
  count; ``CNTG_YN`` 1 = receipt (fields 9/10 are the order's qty/price), 2 = fill; ``RFUS_YN`` 1 = refused.
- §5.7 modify/cancel ``order-rvsecncl`` ``TTTC0013U`` (paper ``VTTC0013U``): only the TR is in the reference. Its
  body and answer are UNCONFIRMED (from the official ``order_rvsecncl`` sample's names, kept in :data:`RVSECNCL`
  so they can be changed in one place): ``CANO, ACNT_PRDT_CD, KRX_FWDG_ORD_ORGNO, ORGN_ODNO, ORD_DVSN,
  RVSE_CNCL_DVSN_CD`` (01 modify / 02 cancel), ``ORD_QTY, ORD_UNPR, QTY_ALL_ORD_YN`` (Y: all of the remainder),
  ``EXCG_ID_DVSN_CD``; the answer's ``output`` like the cash order's (``KRX_FWDG_ORD_ORGNO, ODNO, ORD_TMD``; ODNO is
  the new number of the modify/cancel order).
- §6.7 notices: ``OODER_NO`` (field 3) is the original order of a modify/cancel receipt, ``RCTF_CLS`` (field 5,
  정정구분) tells them apart: its codes 0 new / 1 modify / 2 cancel are UNCONFIRMED (:data:`REVISION`).
- Assumptions (not in the reference): the ``ORD_EXG_GB`` codes 1 KRX / 2 NXT / 3 SOR (the sandbox's); ``ACNT_NO``
  being CANO + product code (10 digits).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..base import BrokerProtocolError
from .parsing import parse_hhmmss, parse_int

SELL, BUY = "01", "02"
ORDER_TR = {BUY: "TTTC0012U", SELL: "TTTC0011U"}  # real ids; paper sends VTTC… (kis-api.md §3.1, §5.7)
VENUES = ("KRX", "NXT", "SOR")
NOTICE_VENUE = {"1": "KRX", "2": "NXT", "3": "SOR"}  # ORD_EXG_GB (UNCONFIRMED codes)
#: order-rvsecncl (kis-api.md §5.7 names only the TR; the body's names and codes are UNCONFIRMED).
RVSECNCL = {
    "path": "order-rvsecncl",
    "tr": "TTTC0013U",  # real; paper VTTC0013U (kis-api.md §5.7, §3.1)
    "modify": "01",  # RVSE_CNCL_DVSN_CD
    "cancel": "02",
    "all": "Y",  # QTY_ALL_ORD_YN: the whole remainder
    "part": "N",
}
#: RCTF_CLS (정정구분, notice field 5) → kind of receipt (codes UNCONFIRMED).
REVISION = {"0": "new", "1": "modify", "2": "cancel"}
NOTICE_FIELDS_CURRENT = 26
NOTICE_FIELDS_OLD = 23


@dataclass(frozen=True, slots=True)
class OrderAck:
    """The broker's answer to a cash order: its order number (``ODNO``), branch and acceptance time (HHMMSS)."""

    order_no: str
    branch: str
    accepted_at: dt.time | None


@dataclass(frozen=True, slots=True)
class RevisionAck:
    """The broker's answer to a modify/cancel: the number of the modify/cancel order (``ODNO``), the original's
    number as sent, branch and acceptance time. Acceptance is not confirmation: the cancelled quantity comes with the
    confirm notice (or the order inquiry)."""

    order_no: str
    original_order_no: str
    branch: str
    accepted_at: dt.time | None


@dataclass(frozen=True, slots=True)
class BrokerOrderRow:
    """One order of the broker's daily order inquiry (the broker's state of it)."""

    order_no: str
    code: str
    side: str
    quantity: int
    price: int
    filled_qty: int
    filled_value: int
    avg_price: int
    remaining: int
    cancelled: bool
    original_order_no: str = ""  # orgn_odno: a modify/cancel order's original
    cancelled_qty: int = 0  # cnc_cfrm_qty: shares of this order whose cancel was confirmed


@dataclass(frozen=True, slots=True)
class BrokerHolding:
    """One holding of the balance inquiry (``output1``)."""

    code: str
    name: str
    quantity: int
    orderable: int
    avg_price: str  # pchs_avg_pric as the broker sends it (a decimal string)
    purchase_amount: int
    price: int
    value: int


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """The broker's balance inquiry: the deposit (``dnca_tot_amt``), holdings' and total value, and holdings."""

    cash: int
    securities_value: int
    total_value: int
    holdings: tuple[BrokerHolding, ...]


@dataclass(frozen=True, slots=True)
class OrderNotice:
    """One execution notice record. ``is_fill`` (CNTG_YN 2): ``quantity``/``price`` are the fill's; otherwise a
    receipt (acknowledgement, modify, cancel or refusal) carrying the order's quantity/price. ``raw`` is the
    decrypted record as received (the exactly-once key of a fill)."""

    hts_id: str
    account_no: str
    order_no: str
    original_order_no: str
    side: str
    code: str
    quantity: int
    price: int
    at: dt.time
    refused: bool
    is_fill: bool
    accept_state: str
    order_qty: int
    venue: str | None
    raw: str
    revision: str = "new"  # RCTF_CLS: new, modify or cancel (REVISION)

    @property
    def is_cancel(self) -> bool:
        return self.revision == "cancel" and bool(self.original_order_no.strip("0 "))


def decrypt_notice(payload: str, key: str, iv: str) -> str:
    """base64 AES-256-CBC (PKCS7) → text (kis-api.md §6.4). A malformed payload is a protocol error."""
    if len(key.encode()) != 32 or len(iv.encode()) != 16:
        raise BrokerProtocolError("notice key/iv must be 32/16 bytes")
    try:
        data = base64.b64decode(payload, validate=True)
        decryptor = Cipher(algorithms.AES(key.encode()), modes.CBC(iv.encode())).decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return (unpadder.update(padded) + unpadder.finalize()).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BrokerProtocolError(f"notice payload does not decrypt: {type(exc).__name__}") from exc


def parse_notice_record(fields: list[str]) -> OrderNotice:
    """One record's fields (26, or the older 23) → :class:`OrderNotice` (kis-api.md §6.7 order)."""
    if len(fields) not in (NOTICE_FIELDS_CURRENT, NOTICE_FIELDS_OLD):
        raise BrokerProtocolError(f"a notice record has {len(fields)} fields, not 26 or 23")
    cntg_yn = fields[13].strip()
    if cntg_yn not in ("1", "2"):
        raise BrokerProtocolError(f"CNTG_YN is {cntg_yn!r}")
    side = fields[4].strip()
    if side not in (BUY, SELL):
        raise BrokerProtocolError(f"SELN_BYOV_CLS is {side!r}")
    venue = NOTICE_VENUE.get(fields[19].strip()) if len(fields) == NOTICE_FIELDS_CURRENT else None
    return OrderNotice(
        hts_id=fields[0].strip(),
        account_no=fields[1].strip(),
        order_no=fields[2].strip(),
        original_order_no=fields[3].strip(),
        side=side,
        code=fields[8].strip(),
        quantity=parse_int(fields[9], field="CNTG_QTY"),
        price=parse_int(fields[10], field="CNTG_UNPR"),
        at=parse_hhmmss(fields[11], field="STCK_CNTG_HOUR"),
        refused=fields[12].strip() == "1",
        is_fill=cntg_yn == "2",
        accept_state=fields[14].strip(),
        order_qty=parse_int(fields[16], field="ODER_QTY"),
        venue=venue,
        raw="^".join(fields),
        revision=REVISION.get(fields[5].strip(), "new"),
    )


def parse_notice_text(text: str, count: int) -> list[OrderNotice]:
    """A decrypted payload of ``count`` records (``^``-joined, fixed field count per record)."""
    fields = text.split("^")
    if count <= 0 or len(fields) % count:
        raise BrokerProtocolError(f"{len(fields)} fields do not split into {count} records")
    size = len(fields) // count
    return [parse_notice_record(fields[i * size : (i + 1) * size]) for i in range(count)]


def parse_notice_frame(frame: str, key: str, iv: str) -> tuple[str, list[OrderNotice]]:
    """A ``1|H0STCNI0|001|<base64>`` (or plain ``0|…``) frame → (tr_id, notices)."""
    parts = frame.split("|", 3)
    if len(parts) != 4 or parts[0] not in ("0", "1") or not parts[2].isdigit():
        raise BrokerProtocolError("not a data frame")
    text = decrypt_notice(parts[3], key, iv) if parts[0] == "1" else parts[3]
    return parts[1], parse_notice_text(text, int(parts[2]))
