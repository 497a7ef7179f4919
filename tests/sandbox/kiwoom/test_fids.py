"""Every FID of Kiwoom's REAL 0B / 0D lists on the wire, read with a plain websockets client.

The expected lists are written out here from kiwoom-api.md (A6 meanings, B3 order; the REST spec has 852 where the
KOA list has 822, and 9081 at the end of 0B; 0D goes on with the KRX/NXT split 6044-6087 and the mid-price
fields 6100-6115), not taken from the sandbox's own tables.
"""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal

import pytest

from apps.sandbox.server import SandboxThread

from .conftest import login, recv_json, set_clock
from .test_ws import collect_real

pytestmark = pytest.mark.asyncio

EXPECTED_0B = (
    "20 10 11 12 27 28 15 13 14 16 17 18 25 26 29 30 31 32 228 311 290 691 567 568 851 1890 1891 1892 1030 1031 "
    "1032 1071 1072 1313 1315 1316 1314 1497 1498 620 732 852 9081"
).split()
EXPECTED_0D = [
    "21",
    *(str(base + i) for i in range(1, 11) for base in (40, 60, 80, 50, 70, 90)),
    *"121 122 125 126 23 24 128 129 138 139 200 201 238 291 292 293 294 295".split(),
    *(str(base + i) for i in range(10) for base in (621, 631)),
    *"13 299 215 216".split(),
    *(str(fid) for fid in range(6044, 6088)),
    *(str(fid) for fid in range(6100, 6116)),
]
TEXT_FIDS = {"851", "215", "216"}  # sent empty, as Kiwoom's own sample shows them
NUMBER = re.compile(r"^[+-]?\d+(\.\d\d)?$")
HHMMSS = re.compile(r"^([01]\d|2[0-3])[0-5]\d[0-5]\d$")


def num(text: str) -> Decimal:
    return Decimal(text)


def mag(text: str) -> int:
    """A signed Kiwoom price: the sign is a direction, the magnitude the price."""
    return abs(int(text))


def pct(a: int, b: int) -> str:
    return f"{a / b * 100:.2f}" if b else "0.00"


def sign_matches(code: str, change: str) -> bool:
    """25 / 238 / 6111 codes against a signed change: 1, 2 up; 3 flat; 4, 5 down."""
    value = num(change)
    return (code in "12" and value > 0) or (code == "3" and value == 0) or (code in "45" and value < 0)


async def _collect(kbox: SandboxThread) -> list[dict]:
    ws = await login(kbox)
    reg = {"trnm": "REG", "grp_no": "1", "data": [{"item": ["005930", "000660_NX"], "type": ["0B", "0D"]}]}
    await ws.send(json.dumps(reg))
    assert (await recv_json(ws))["return_code"] == 0
    entries = [e for f in await collect_real(ws, 3.0) for e in f["data"]]
    await ws.close()
    return entries


@pytest.fixture(scope="module")
def pushed(kbox: SandboxThread) -> dict[str, list[dict]]:
    set_clock(kbox, "10:30:00")
    entries = asyncio.run(_collect(kbox))
    out: dict[str, list[dict]] = {}
    for e in entries:
        out.setdefault(f"{e['item']}/{e['type']}", []).append(e["values"])
    assert set(out) == {"005930/0B", "005930/0D", "000660_NX/0B", "000660_NX/0D"}
    return out


async def test_every_fid_in_the_documented_order_and_parseable(pushed: dict[str, list[dict]]) -> None:
    for key, rows in pushed.items():
        expected = EXPECTED_0B if key.endswith("0B") else EXPECTED_0D
        assert len(expected) == (43 if key.endswith("0B") else 163)
        for values in rows:
            assert list(values) == expected, key
            assert all(isinstance(v, str) for v in values.values())
            for fid, text in values.items():
                if fid in TEXT_FIDS:
                    assert text == "", (key, fid)
                elif fid in ("20", "21", "567", "568", "1890", "1891", "1892"):
                    assert HHMMSS.match(text) or text == "000000", (key, fid, text)
                else:
                    assert NUMBER.match(text), (key, fid, text)


async def test_trades_are_internally_consistent(kbox: SandboxThread, pushed: dict[str, list[dict]]) -> None:
    market = kbox.server.core.market  # type: ignore[union-attr]
    for item, venue in (("005930", "1"), ("000660_NX", "2")):
        tape = market.tapes[item[:6]]
        listed = tape.instrument.listed_shares
        rows = pushed[f"{item}/0B"]
        assert len(rows) > 5
        before: dict | None = None
        for v in rows:
            price, volume = mag(v["10"]), abs(int(v["15"]))
            assert v["9081"] == venue and v["290"] == "2"
            # Signs: 10, 11, 12 and 25 agree; the sign of a price is its direction against the previous close.
            assert sign_matches(v["25"], v["11"]) and sign_matches(v["25"], v["12"] if v["12"] != "0.00" else v["11"])
            assert mag(v["10"]) - int(v["11"]) == tape.prev_close
            for fid in ("10", "16", "17", "18", "27", "28", "620"):
                p = mag(v[fid])
                assert v[fid] == (f"+{p}" if p > tape.prev_close else f"-{p}" if p < tape.prev_close else str(p))
            assert mag(v["18"]) <= price <= mag(v["17"]) and mag(v["28"]) < mag(v["27"])
            assert mag(v["18"]) <= mag(v["620"]) <= mag(v["17"])
            # Cumulative volume = sell + buy volumes; strength, ratio, net and counts from them.
            cum, sold, bought = int(v["13"]), int(v["1030"]), int(v["1031"])
            assert cum == sold + bought and int(v["1314"]) == bought - sold
            assert v["228"] == pct(bought, sold) and v["1032"] == pct(bought, sold + bought)
            assert int(v["26"]) == cum - tape.prev_volume and v["31"] == pct(cum, listed)
            assert v["30"].lstrip("+-") == pct(cum, tape.prev_volume)
            assert int(v["311"]) == price * listed // 100_000_000
            # This print: value, and its volume on the side of its sign.
            assert int(v["1313"]) == price * volume
            bought_now = v["15"].startswith("+")
            assert (v["1315"], v["1316"]) == (("0", str(volume)) if bought_now else (str(volume), "0"))
            assert v["1890"] <= v["20"] and v["1891"] <= v["20"] and v["1892"] <= v["20"]
            if before is not None:
                assert cum == int(before["13"]) + volume  # consecutive prints, 13 never goes back
                assert int(v["1071"]) + int(v["1072"]) == int(before["1071"]) + int(before["1072"]) + 1
                assert int(v["14"]) >= int(before["14"]) and v["20"] >= before["20"]
            before = v


async def test_books_are_internally_consistent(kbox: SandboxThread, pushed: dict[str, list[dict]]) -> None:
    market = kbox.server.core.market  # type: ignore[union-attr]
    for item in ("005930", "000660_NX"):
        prev_close = market.tapes[item[:6]].prev_close
        rows = pushed[f"{item}/0D"]
        assert len(rows) > 5
        before: dict | None = None
        for v in rows:
            asks = [int(v[str(61 + i)]) for i in range(10)]
            bids = [int(v[str(71 + i)]) for i in range(10)]
            assert int(v["121"]) == sum(asks) and int(v["125"]) == sum(bids)
            assert int(v["128"]) == sum(bids) - sum(asks) == -int(v["138"])
            assert v["129"] == pct(sum(bids), sum(asks)) and v["139"] == pct(sum(asks), sum(bids))
            # The KRX half of the split is the book; the NXT half, the LP and mid-price quantities are empty.
            assert [int(v[str(6044 + i)]) for i in range(10)] == asks
            assert [int(v[str(6054 + i)]) for i in range(10)] == bids
            assert (int(v["6064"]), int(v["6065"])) == (sum(asks), sum(bids))
            assert all(v[str(f)] == "0" for f in [*range(6066, 6088), *range(621, 641)])
            ask1, bid1 = mag(v["41"]), mag(v["51"])
            assert ask1 > bid1 > 0 and mag(v["6102"]) == (ask1 + bid1) // 2
            assert int(v["6110"]) == mag(v["6102"]) - prev_close and sign_matches(v["6111"], v["6110"])
            # Outside the auctions the expected-price fields are empty (sign 3).
            assert [v[f] for f in ("23", "24", "291", "292", "238", "293", "299")] == [
                "0",
                "0",
                "0",
                "0",
                "3",
                "3",
                "0.00",
            ]
            if before is not None:
                assert int(v["122"]) == int(v["121"]) - int(before["121"])
                assert int(v["126"]) == int(v["125"]) - int(before["125"])
                assert all(int(v[str(81 + i)]) == asks[i] - int(before[str(61 + i)]) for i in range(10))
                assert all(int(v[str(91 + i)]) == bids[i] - int(before[str(71 + i)]) for i in range(10))
                assert int(v["13"]) >= int(before["13"]) and v["21"] >= before["21"]
            before = v


async def test_expected_price_fields_follow_the_auction_model(kbox: SandboxThread) -> None:
    """23/24 and 291-295 carry the call auction's expected price while one runs (apps.sandbox.auction)."""
    from apps.sandbox.auction import expected_at
    from apps.sandbox.kiwoom.ws import book_values

    tape = kbox.server.core.market.tapes["005930"]  # type: ignore[union-attr]
    t_ms = tape.times.open_s * 1000 - 60_000  # 08:59, the opening auction
    exp = expected_at(tape, t_ms)
    assert exp is not None and exp.price > 0
    v = book_values(tape, t_ms, tape.state_at(t_ms), tape.order_book_at(t_ms), None)
    assert (v["23"], v["24"], v["291"], v["292"]) == (str(exp.price), str(exp.quantity)) * 2
    change = exp.price - tape.prev_close
    assert int(v["200"]) == int(v["294"]) == change and v["201"] == v["295"]
    assert v["238"] == v["293"] and sign_matches(v["238"], v["200"])
    assert v["299"] == pct(exp.quantity, tape.prev_volume)
    later = book_values(tape, t_ms + 3_600_000, tape.state_at(t_ms + 3_600_000), tape.order_book_at(t_ms), None)
    assert (later["23"], later["291"], later["293"]) == ("0", "0", "3")
