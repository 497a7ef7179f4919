"""Execution notices (H0STCNI0/H0STCNI9) built the way kis-api.md §6.4/§6.7 describes: AES-256-CBC with the
ack's 32-character key and 16-character iv (UTF-8 bytes, PKCS7), base64; 26 ``^``-joined fields per record."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from apps.brokers.base import BrokerProtocolError
from apps.brokers.kis.orders import decrypt_notice, parse_notice_frame, parse_notice_text

KEY = "abcdefghijklmnopqrstuvwxyzabcdef"  # the §6.2 example ack's key and iv
IV = "0123456789abcdef"
#: §6.7's constructed plaintext of a fill (26 fields; ORD_EXG_GB "1").
FILL = (
    "HTSID01^1234567801^0000012345^0000000000^02^0^00^0^005930^10^71500^093016^0^2^2^06010^10^HONG^0^1^N^^10^^"
    "SAMSUNG^71500"
)


def _encrypt(text: str, key: str = KEY, iv: str = IV) -> str:
    padder = padding.PKCS7(128).padder()
    data = padder.update(text.encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(key.encode()), modes.CBC(iv.encode())).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


def _record(**changes: str) -> str:
    fields = FILL.split("^")
    index = {"order_no": 2, "side": 4, "qty": 9, "price": 10, "time": 11, "refused": 12, "cntg_yn": 13, "acpt": 14,
             "venue": 19}  # fmt: skip
    for name, value in changes.items():
        fields[index[name]] = value
    return "^".join(fields)


def test_an_encrypted_fill_decrypts_and_parses_with_its_venue():
    frame = f"1|H0STCNI9|001|{_encrypt(FILL)}"

    tr_id, (notice,) = parse_notice_frame(frame, KEY, IV)

    assert tr_id == "H0STCNI9"
    assert (notice.hts_id, notice.account_no, notice.order_no, notice.side, notice.code) == (
        "HTSID01", "1234567801", "0000012345", "02", "005930")  # fmt: skip
    assert (notice.is_fill, notice.refused, notice.quantity, notice.price) == (True, False, 10, 71_500)
    assert (notice.at, notice.order_qty, notice.venue, notice.accept_state) == (dt.time(9, 30, 16), 10, "KRX", "2")
    assert notice.raw == FILL


def test_an_acknowledgement_carries_the_orders_quantity_and_price():
    ack = _record(cntg_yn="1", acpt="1", qty="25", price="70000", venue="2")
    (notice,) = parse_notice_text(decrypt_notice(_encrypt(ack), KEY, IV), 1)
    assert (notice.is_fill, notice.quantity, notice.price, notice.venue) == (False, 25, 70_000, "NXT")


def test_several_records_in_one_frame_and_the_older_23_field_layout():
    two = "^".join([_record(qty="3"), _record(qty="7", venue="3")])
    first, second = parse_notice_frame(f"1|H0STCNI0|002|{_encrypt(two)}", KEY, IV)[1]
    assert (first.quantity, second.quantity, second.venue) == (3, 7, "SOR")
    old = FILL.split("^")
    old23 = "^".join(old[:17] + ["HONG", "SAMSUNG", "10", "", "SAMSUNG", "71500"])
    (notice,) = parse_notice_text(old23, 1)
    assert (notice.is_fill, notice.quantity, notice.venue) == (True, 10, None)


def test_a_refused_order_is_flagged():
    (notice,) = parse_notice_text(_record(cntg_yn="1", refused="1"), 1)
    assert notice.refused and not notice.is_fill


@pytest.mark.parametrize(
    "frame",
    [
        f"1|H0STCNI9|001|{_encrypt(FILL, key='x' * 32)}",  # another connection's key
        "1|H0STCNI9|001|not base64!",
        f"1|H0STCNI9|002|{_encrypt(FILL)}",  # count does not match
        f"1|H0STCNI9|001|{_encrypt(FILL + '^extra')}",  # 27 fields
        f"1|H0STCNI9|001|{_encrypt(_record(cntg_yn='9'))}",
        '{"header":{}}',
    ],
)
def test_malformed_frames_are_protocol_errors(frame):
    with pytest.raises(BrokerProtocolError):
        parse_notice_frame(frame, KEY, IV)


def test_a_wrong_sized_key_is_refused():
    with pytest.raises(BrokerProtocolError):
        decrypt_notice(_encrypt(FILL), "short", IV)
