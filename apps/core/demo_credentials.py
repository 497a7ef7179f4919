"""Deterministic demo credentials the sandbox always accepts (one app key pair per mode).

The rest of Hoga uses these when ``MARKET_BROKER=sandbox``. They are derived from fixed strings, so
they are stable across runs and machines, and have the brokers' shapes: for KIS a 36-character app key
and a 180-character app secret, for Kiwoom two 43-character keys (one pair per mode, real and mock).
"""

from __future__ import annotations

import base64
import hashlib


def _derive(label: str, length: int) -> str:
    """``length`` URL-safe characters derived from ``label`` (stable, no padding characters)."""
    out = ""
    counter = 0
    while len(out) < length:
        digest = hashlib.sha512(f"hoga-sandbox:{label}:{counter}".encode()).digest()
        out += base64.b64encode(digest).decode().replace("+", "").replace("/", "").replace("=", "")
        counter += 1
    return out[:length]


DEMO_REAL_APP_KEY: str = "PS" + _derive("real-appkey", 34)
DEMO_REAL_APP_SECRET: str = _derive("real-appsecret", 180)
DEMO_PAPER_APP_KEY: str = "PS" + _derive("paper-appkey", 34)
DEMO_PAPER_APP_SECRET: str = _derive("paper-appsecret", 180)

#: (appkey, appsecret, mode) for both demo pairs.
DEMO_CREDENTIALS: tuple[tuple[str, str, str], ...] = (
    (DEMO_REAL_APP_KEY, DEMO_REAL_APP_SECRET, "real"),
    (DEMO_PAPER_APP_KEY, DEMO_PAPER_APP_SECRET, "paper"),
)


#: Kiwoom demo pairs (appkey, secretkey, mode "real" | "mock"); Kiwoom issues different keys per mode.
KIWOOM_DEMO_REAL_APP_KEY: str = _derive("kiwoom-real-appkey", 43)
KIWOOM_DEMO_REAL_SECRET_KEY: str = _derive("kiwoom-real-secretkey", 43)
KIWOOM_DEMO_MOCK_APP_KEY: str = _derive("kiwoom-mock-appkey", 43)
KIWOOM_DEMO_MOCK_SECRET_KEY: str = _derive("kiwoom-mock-secretkey", 43)
KIWOOM_DEMO_CREDENTIALS: tuple[tuple[str, str, str], ...] = (
    (KIWOOM_DEMO_REAL_APP_KEY, KIWOOM_DEMO_REAL_SECRET_KEY, "real"),
    (KIWOOM_DEMO_MOCK_APP_KEY, KIWOOM_DEMO_MOCK_SECRET_KEY, "mock"),
)


def kiwoom_demo_credentials(mode: str) -> tuple[str, str]:
    """(appkey, secretkey) of the Kiwoom demo pair for ``mode`` ("real" or "mock")."""
    for appkey, secretkey, pair_mode in KIWOOM_DEMO_CREDENTIALS:
        if pair_mode == mode:
            return appkey, secretkey
    raise ValueError(f"unknown Kiwoom mode {mode!r} (real or mock)")


def demo_credentials(mode: str) -> tuple[str, str]:
    """(appkey, appsecret) of the demo pair for ``mode`` ("real" or "paper")."""
    if mode == "real":
        return DEMO_REAL_APP_KEY, DEMO_REAL_APP_SECRET
    if mode == "paper":
        return DEMO_PAPER_APP_KEY, DEMO_PAPER_APP_SECRET
    raise ValueError(f"unknown mode {mode!r}")
