"""Kiwoom OpenAPI+ (KOA) → Redis bridge for Hoga (protocol: docs/koa-bridge.md, version 1).

Runs on Windows with 32-bit Python, PyQt5 and the OpenAPI+ module installed (kiwoom-api.md §B1):

    py -3-32 tools\\koa_bridge\\bridge.py --redis-url redis://:password@hoga-host:6379/0 --prefix koa

It logs in (CommConnect; the login dialog or the saved auto-login), then every second reads what Hoga wants
from ``<prefix>:want`` and registers exactly those stocks (SetRealReg, opt "0" on a screen's first call, "1"
to add) and real-time conditions (GetConditionLoad, SendCondition(..., 1)); it publishes every
OnReceiveRealData (FIDs read with GetCommRealData) and OnReceiveRealCondition, and a heartbeat every 2 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import socket
import sys

import redis
from PyQt5.QAxContainer import QAxWidget
from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QApplication

KST = dt.timezone(dt.timedelta(hours=9))
VERSION = 1
#: FIDs read per real type (kiwoom-api.md §A6 / §B3); the values are published as GetCommRealData returns them.
TICK_FIDS = ("20", "10", "11", "12", "27", "28", "15", "13", "14", "16", "17", "18", "25", "26", "228", "290")
BOOK_FIDS = ("21", *(str(f) for f in range(41, 81)), "121", "122", "125", "126", "13", "215")
REAL_TYPES = {"주식체결": ("tick", TICK_FIDS), "주식호가잔량": ("book", BOOK_FIDS)}
#: FIDs registered with SetRealReg (one of each real type is enough to receive the whole type).
REG_FIDS = "20;41"
CODES_PER_SCREEN = 100  # SetRealReg: at most 100 codes per call / screen (§B2)
STOCK_SCREENS = [f"{5000 + i}" for i in range(10)]
CONDITION_SCREEN_BASE = 9000

log = logging.getLogger("koa_bridge")


def now() -> dt.datetime:
    return dt.datetime.now(KST)


class Bridge:
    def __init__(self, ocx: QAxWidget, rds: redis.Redis, prefix: str) -> None:
        self.ocx, self.redis, self.prefix = ocx, rds, prefix
        self.screens: dict[str, set[str]] = {s: set() for s in STOCK_SCREENS}
        self.conditions: dict[int, tuple[str, str]] = {}  # index -> (seq as Hoga sent it, name)
        self.catalog: dict[int, str] = {}  # index -> name, from GetConditionNameList
        ocx.OnEventConnect.connect(self.on_connect)
        ocx.OnReceiveRealData.connect(self.on_real_data)
        ocx.OnReceiveConditionVer.connect(self.on_condition_ver)
        ocx.OnReceiveTrCondition.connect(lambda *args: None)  # the initial list; Hoga resyncs on its own
        ocx.OnReceiveRealCondition.connect(self.on_real_condition)

    # --- publishing -----------------------------------------------------------------------------------------
    def publish(self, channel: str, message: dict) -> None:
        message = {"v": VERSION, **message, "sent_at": now().isoformat(timespec="milliseconds")}
        try:
            self.redis.publish(f"{self.prefix}:{channel}", json.dumps(message, ensure_ascii=False))
        except redis.RedisError as exc:  # keep the OpenAPI+ session; the next message retries the connection
            log.warning("redis publish failed: %r", exc)

    def heartbeat(self) -> None:
        self.publish("heartbeat", {
            "type": "heartbeat",
            "connected": int(self.ocx.dynamicCall("GetConnectState()")) == 1,
            "codes": sorted(c for codes in self.screens.values() for c in codes),
            "conditions": sorted(seq for seq, _name in self.conditions.values()),
            "bridge": socket.gethostname(),
        })  # fmt: skip

    # --- OpenAPI+ events ------------------------------------------------------------------------------------
    def on_connect(self, err_code: int) -> None:
        log.info("OnEventConnect %s", err_code)
        if err_code == 0:
            self.ocx.dynamicCall("GetConditionLoad()")

    def on_condition_ver(self, ret: int, msg: str) -> None:
        raw = self.ocx.dynamicCall("GetConditionNameList()") or ""
        self.catalog = {int(i): n for i, _, n in (e.partition("^") for e in raw.split(";") if e)}
        log.info("conditions loaded (%s): %s", ret, self.catalog)

    def on_real_data(self, code: str, real_type: str, real_data: str) -> None:
        kind = REAL_TYPES.get(real_type)
        if kind is None:
            return
        name, fids = kind
        values = {fid: self.ocx.dynamicCall("GetCommRealData(QString, int)", code, int(fid)).strip() for fid in fids}
        self.publish(f"{name}:{code}", {"type": name, "code": code, "fids": values})

    def on_real_condition(self, code: str, kind: str, cond_name: str, cond_index: str) -> None:
        seq = self.conditions.get(int(cond_index), (cond_index, ""))[0]
        self.publish("condition", {"type": "condition", "seq": seq, "name": cond_name, "code": code,
                                   "kind": kind, "time": now().strftime("%H%M%S")})  # fmt: skip

    # --- applying what Hoga wants ---------------------------------------------------------------------------
    def poll_want(self) -> None:
        try:
            raw = self.redis.get(f"{self.prefix}:want")
            want = json.loads(raw) if raw else None
        except (redis.RedisError, ValueError) as exc:
            log.warning("want not read: %r", exc)
            return
        if not isinstance(want, dict) or want.get("v") != VERSION:
            return  # no Hoga (or another version): keep what is registered
        if int(self.ocx.dynamicCall("GetConnectState()")) != 1:
            return
        self.apply_codes({str(c) for c in want.get("codes", [])})
        self.apply_conditions({str(s) for s in want.get("conditions", [])})

    def apply_codes(self, wanted: set[str]) -> None:
        for screen, codes in self.screens.items():
            for code in sorted(codes - wanted):
                self.ocx.dynamicCall("SetRealRemove(QString, QString)", screen, code)
                codes.discard(code)
        registered = {c for codes in self.screens.values() for c in codes}
        missing = sorted(wanted - registered)
        for screen, codes in self.screens.items():
            if not missing:
                break
            room = CODES_PER_SCREEN - len(codes)
            batch, missing = missing[:room], missing[room:]
            if batch:
                opt = "1" if codes else "0"  # "0" replaces the screen's registrations: only for its first call
                self.ocx.dynamicCall("SetRealReg(QString, QString, QString, QString)", screen, ";".join(batch),
                                     REG_FIDS, opt)  # fmt: skip
                codes.update(batch)
        if missing:
            log.warning("%s codes not registered: all screens are full", len(missing))

    def apply_conditions(self, wanted: set[str]) -> None:
        by_index = {int(seq): seq for seq in wanted if seq.isdigit()}
        for index in sorted(set(self.conditions) - set(by_index)):
            _seq, name = self.conditions.pop(index)
            self.ocx.dynamicCall("SendConditionStop(QString, QString, int)", str(CONDITION_SCREEN_BASE + index),
                                 name, index)  # fmt: skip
        for index in sorted(set(by_index) - set(self.conditions)):
            name = self.catalog.get(index)
            if name is None:
                continue  # not (yet) loaded, or not a condition of this account
            ok = self.ocx.dynamicCall("SendCondition(QString, QString, int, int)", str(CONDITION_SCREEN_BASE + index),
                                      name, index, 1)  # fmt: skip
            if ok == 1:
                self.conditions[index] = (by_index[index], name)
            else:
                log.warning("SendCondition %s %s refused (%s)", index, name, ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True, help="Redis Hoga reads (KOA_REDIS_URL)")
    parser.add_argument("--prefix", default="koa", help="channel prefix (KOA_CHANNEL_PREFIX)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    app = QApplication(sys.argv)
    ocx = QAxWidget("KHOPENAPI.KHOpenAPICtrl.1")
    rds = redis.Redis.from_url(args.redis_url, socket_connect_timeout=2, socket_timeout=5)
    bridge = Bridge(ocx, rds, args.prefix)
    ocx.dynamicCall("CommConnect()")
    timers = []
    for interval_ms, action in ((2000, bridge.heartbeat), (1000, bridge.poll_want)):
        timer = QTimer()
        timer.timeout.connect(action)
        timer.start(interval_ms)
        timers.append(timer)
    return app.exec_()


if __name__ == "__main__":
    sys.exit(main())
