"""The sandbox serves KIS's stock master files, built from the recorded listing, over its REST listeners; Hoga's
parser (apps.brokers.kis.master) reads them back."""

from __future__ import annotations

import asyncio
import csv

import httpx
import pytest

from apps.brokers.kis import master
from apps.sandbox.master import isin_for, listing_file

from .conftest import TODAY, base_config, recorded_data_dir, requires_data, rest_url


@pytest.mark.parametrize("mode", ["real", "paper"])
def test_every_listed_stock_is_in_its_markets_master(sandbox, mode):
    data_dir = requires_data()
    path = listing_file(data_dir, TODAY)
    with path.open(encoding="utf-8") as handle:
        recorded = {row["Code"]: row for row in csv.DictReader(handle)}

    masters = asyncio.run(master.fetch_masters(f"{rest_url(sandbox, mode)}/common/master"))

    rows = {row.code: row for market_rows in masters.values() for row in market_rows}
    assert {m: len(r) for m, r in masters.items()} == {"KOSPI": 950, "KOSDAQ": 1821, "KONEX": 111}
    assert set(rows) == set(recorded)
    samsung = rows["005930"]
    assert (samsung.name, samsung.market, samsung.isin, samsung.security_group) == (
        "삼성전자", "KOSPI", "KR7005930003", "ST",
    )  # fmt: skip
    # The replayed stocks' base is their previous close (what inquire-price says); the others the listing's close.
    tape = sandbox.server.core.market.tape("005930")
    assert samsung.base_price == tape.prev_close
    outside = next(c for c in rows if sandbox.server.core.market.tape(c) is None and rows[c].prev_volume > 0)
    assert rows[outside].base_price == int(recorded[outside]["Close"])
    # 거래정지 is derived: no trade recorded on the listing day.
    halted = {c for c, r in recorded.items() if int(r["Volume"]) == 0}
    assert {c for c, r in rows.items() if r.halted} == halted and len(halted) == 118
    assert rows["035420"].market_cap == int(recorded["035420"]["Marcap"]) // 10**8 * 10**8


def test_an_unknown_master_file_is_a_404(sandbox):
    response = httpx.get(f"{rest_url(sandbox, 'real')}/common/master/etf_code.mst.zip", timeout=10)
    assert response.status_code == 404


def test_without_recorded_data_the_synthetic_universe_is_listed():
    from apps.sandbox.server import SandboxThread

    cfg = base_config(data_dir=None)
    with SandboxThread(cfg) as sandbox:
        masters = asyncio.run(master.fetch_masters(f"{rest_url(sandbox, 'paper')}/common/master"))
        tapes = sandbox.server.core.market.tapes
    listed = {row.code: row for rows in masters.values() for row in rows}
    assert set(listed) == set(tapes)
    assert all(listed[c].base_price == tapes[c].prev_close for c in tapes)
    assert masters["KONEX"] == []


@pytest.mark.parametrize(("code", "isin"), [("005930", "KR7005930003"), ("000660", "KR7000660001")])
def test_isin_check_digits(code, isin):
    assert isin_for(code) == isin


def test_the_listing_file_is_the_newest_not_after_the_replay_day(tmp_path):
    folder = tmp_path / "listing"
    folder.mkdir()
    for day in ("2025-02-11", "2026-02-20"):
        (folder / f"krx_all_listed_{day}.csv").write_text("Date\n")
    import datetime as dt

    assert listing_file(tmp_path, dt.date(2025, 12, 1)).name == "krx_all_listed_2025-02-11.csv"
    assert listing_file(tmp_path, dt.date(2026, 3, 1)).name == "krx_all_listed_2026-02-20.csv"
    assert listing_file(tmp_path, dt.date(2024, 1, 1)).name == "krx_all_listed_2025-02-11.csv"
    assert listing_file(None, dt.date(2026, 3, 1)) is None
    assert recorded_data_dir() is None or listing_file(recorded_data_dir(), TODAY) is not None
