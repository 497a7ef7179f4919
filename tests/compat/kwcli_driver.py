"""Drives the sandbox's Kiwoom listeners with Kiwoom's own client (``kiwoom`` package of PyPI ``kwcli``), unmodified.

Runs under the Python 3.13 venv of tests/compat/test_kiwoom_client.py, never under Hoga's. The client's base URLs
come from its own settings (``MOCK`` / ``W_MOCK``); the key pair from ``KWCLI_APPKEY`` / ``KWCLI_SECRETKEY``.
Prints one JSON document: what the client parsed, decoded with its own FID tables.
"""

import asyncio
import json
import os
import sys

from kiwoom import KiwoomAuth, KiwoomClient, KiwoomWebSocketClient
from kiwoom.core.secrets import StaticSecretProvider
from kiwoom.core.token_store import MemoryTokenStore
from kiwoom.realtime import build_reg_packet, decode_realtime_message_named
from kiwoom.realtime.schemas import get_realtime_schema

CODE = "005930"
WANT_ENTRIES = 5


def rest(client: KiwoomClient, day: str) -> dict:
    info = client.request(api_id="ka10001", path="/api/dostk/stkinfo", body={"stk_cd": CODE}).body
    daily_body = {"stk_cd": CODE, "base_dt": day, "upd_stkpc_tp": "1"}
    daily = list(client.iterate_pages(api_id="ka10081", path="/api/dostk/chart", body=daily_body, max_pages=3))
    minute_body = {"stk_cd": CODE, "tic_scope": "1", "upd_stkpc_tp": "1"}
    minute = list(client.iterate_pages(api_id="ka10080", path="/api/dostk/chart", body=minute_body, max_pages=3))
    return {
        "ka10001": {k: info.get(k) for k in ("stk_cd", "stk_nm", "cur_prc", "return_code")},
        "ka10081": [
            {"cont_yn": p.continuation.cont_yn, "next_key": p.continuation.next_key,
             "dates": [r["dt"] for r in p.body["stk_dt_pole_chart_qry"]]}
            for p in daily
        ],
        "ka10080": [
            {"cont_yn": p.continuation.cont_yn, "next_key": p.continuation.next_key,
             "times": [r["cntr_tm"] for r in p.body["stk_min_pole_chart_qry"]]}
            for p in minute
        ],
    }  # fmt: skip


async def realtime(auth: KiwoomAuth) -> dict:
    ws = KiwoomWebSocketClient(auth, timeout_seconds=10)
    await ws.connect(api_url="/api/dostk/websocket")
    try:
        await ws.send(build_reg_packet([CODE], ["0B", "0D"]))
        reg = await asyncio.wait_for(ws.recv(), 10)
        entries: dict[str, list[dict]] = {"0B": [], "0D": []}
        while min(len(v) for v in entries.values()) < WANT_ENTRIES:
            msg = await asyncio.wait_for(ws.recv(), 10)
            if msg.get("trnm") != "REAL":
                continue
            for entry in decode_realtime_message_named(msg)["data"]:
                entries[entry["type"]].append(entry)
        await ws.send({"trnm": "CNSRLST"})
        while True:
            conditions = await asyncio.wait_for(ws.recv(), 10)
            if conditions.get("trnm") == "CNSRLST":
                break
    finally:
        await ws.close()
    schema = {t: [f["name"] for f in get_realtime_schema(t)["fields"].values()] for t in entries}
    return {"reg": reg, "entries": entries, "schema": schema, "cnsrlst": conditions}


def main() -> None:
    auth = KiwoomAuth(
        "demo", StaticSecretProvider(os.environ["KWCLI_APPKEY"], os.environ["KWCLI_SECRETKEY"]), MemoryTokenStore()
    )
    out = {"token": auth.get_access_token()}
    out.update(rest(KiwoomClient(auth), sys.argv[1]))
    out["realtime"] = asyncio.run(realtime(auth))
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
