"""Client control flow with a scripted transport: retries, token renewal, paging cursors, paper tr_ids.

(The integration tests in test_kis_sandbox.py cover the same paths over real HTTP.)
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import httpx
import pytest
from django.conf import settings

from apps.brokers.base import (
    BrokerBusinessError,
    BrokerProtocolError,
    BrokerRateLimited,
    BrokerTokenRejected,
    BrokerTransientError,
)
from apps.brokers.kis.client import AsyncKisClient
from apps.brokers.kis.config import KisConfig
from apps.brokers.metrics import read_metrics
from apps.brokers.tokens import MemoryTokenStore

OK = {"rt_cd": "0", "msg_cd": "20310000", "msg1": "모의투자 조회가 완료되었습니다.   "}


class Broker:
    """A scripted KIS: ``script`` maps a path to a list of responses (the last one repeats)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.tokens = 0
        self.script: dict[str, list[httpx.Response]] = {}
        self.routes: dict[str, Callable[[httpx.Request], httpx.Response]] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/oauth2/tokenP":
            self.tokens += 1
            return httpx.Response(
                200,
                json={
                    "access_token": f"tok{self.tokens}",
                    "token_type": "Bearer",
                    "expires_in": 86400,
                    "access_token_token_expired": (dt.datetime.now() + dt.timedelta(days=1)).strftime(
                        "%Y-%m-%d %H:%M:%S"
                    ),
                },
            )
        if request.url.path in self.routes:
            return self.routes[request.url.path](request)
        queue = self.script[request.url.path]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def data_calls(self) -> list[httpx.Request]:
        return [r for r in self.requests if not r.url.path.startswith("/oauth2")]


@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
def make_client(broker, redis_prefix):
    clients: list[AsyncKisClient] = []

    def make(**overrides) -> AsyncKisClient:
        values = {"backoff_base": 0.01, "backoff_max": 0.05, "rate_limit": 1000.0, "redis_prefix": redis_prefix}
        values.update(overrides)
        config = KisConfig(
            env=values.pop("env", "paper"),
            rest_url="http://kis.test",
            ws_url="ws://kis.test",
            app_key="PS" + "k" * 34,
            app_secret="s" * 180,
            **values,
        )
        client = AsyncKisClient(
            config,
            token_store=MemoryTokenStore(),
            redis_url=settings.REDIS_URL,
            transport=httpx.MockTransport(broker.handler),
        )
        clients.append(client)
        return client

    return make


PRICE = "/uapi/domestic-stock/v1/quotations/inquire-price"


def price_ok(price: str = "71500") -> httpx.Response:
    return httpx.Response(
        200, json={**OK, "output": {"stck_prpr": price, "prdy_vrss": "500", "prdy_vrss_sign": "2", "prdy_ctrt": "0.70"}}
    )


def gw_error(code: str, status: int = 500) -> httpx.Response:
    return httpx.Response(status, json={"rt_cd": "1", "msg_cd": code, "msg1": "x"})


@pytest.mark.asyncio
async def test_transient_errors_retried_at_most_three_times(broker, make_client, redis_client):
    client = make_client()
    broker.script[PRICE] = [gw_error("EGW00201"), httpx.Response(502, text="bad gateway"), price_ok()]
    assert (await client.current_price("005930")).price == 71500
    broker.script[PRICE] = [httpx.Response(503, text="down")]
    with pytest.raises(BrokerTransientError):
        await client.current_price("005930")
    assert len(broker.data_calls()) == 3 + 4
    counters = read_metrics(redis_client, prefix=client.config.redis_prefix, scope=client.config.scope)
    assert counters["retries"] == 2 + 3 and counters["breaker"]["failures"] == 1
    await client.aclose()


@pytest.mark.asyncio
async def test_business_errors_and_4xx_are_raised_at_once(broker, make_client):
    client = make_client()
    broker.script[PRICE] = [httpx.Response(200, json={"rt_cd": "1", "msg_cd": "OPSQ2001", "msg1": " bad market  "})]
    with pytest.raises(BrokerBusinessError) as raised:
        await client.current_price("005930")
    assert (raised.value.msg_cd, raised.value.msg1) == ("OPSQ2001", "bad market")
    broker.script[PRICE] = [httpx.Response(400, text="bad request")]
    with pytest.raises(BrokerBusinessError):
        await client.current_price("005930")
    assert len(broker.data_calls()) == 2
    await client.aclose()


@pytest.mark.asyncio
async def test_rejected_token_is_renewed_once(broker, make_client):
    client = make_client()
    broker.script[PRICE] = [gw_error("EGW00123"), price_ok()]
    assert (await client.current_price("005930")).price == 71500
    assert broker.tokens == 2
    auths = [r.headers["authorization"] for r in broker.data_calls()]
    assert auths == ["Bearer tok1", "Bearer tok2"]
    broker.script[PRICE] = [gw_error("EGW00121")]
    with pytest.raises(BrokerTokenRejected):
        await client.current_price("005930")
    assert broker.tokens == 3  # renewed once, then given up
    await client.aclose()


@pytest.mark.asyncio
async def test_headers_and_paper_tr_id(broker, make_client):
    client = make_client()
    broker.script["/uapi/domestic-stock/v1/trading/inquire-balance"] = [httpx.Response(200, json={**OK})]
    await client.get("/uapi/domestic-stock/v1/trading/inquire-balance", "TTTC8434R", {"CANO": "1"})
    request = broker.data_calls()[-1]
    assert request.headers["tr_id"] == "VTTC8434R"
    assert request.headers["custtype"] == "P" and request.headers["tr_cont"] == ""
    assert request.headers["appkey"] == client.config.app_key
    token_request = broker.requests[0]
    assert json.loads(token_request.content)["grant_type"] == "client_credentials"
    await client.aclose()


@pytest.mark.asyncio
async def test_rate_limited_error_is_typed_after_retries(broker, make_client):
    client = make_client(max_retries=1)
    broker.script[PRICE] = [gw_error("EGW00201")]
    with pytest.raises(BrokerRateLimited) as raised:
        await client.current_price("005930")
    assert raised.value.msg_cd == "EGW00201" and raised.value.http_status == 500
    await client.aclose()


def _ymd(text: str) -> dt.date:
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))


def _day_row(day: dt.date) -> dict:
    price = "1000"
    return {
        "stck_bsop_date": day.strftime("%Y%m%d"),
        "stck_clpr": price,
        "stck_oprc": price,
        "stck_hgpr": price,
        "stck_lwpr": price,
        "acml_vol": "1",
        "acml_tr_pbmn": "1000",
        "prdy_vrss_sign": "3",
        "prdy_vrss": "0",
    }


@pytest.mark.asyncio
async def test_daily_bars_page_by_moving_date_2(broker, make_client):
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(250)]

    def chart(request: httpx.Request) -> httpx.Response:
        start = _ymd(request.url.params["FID_INPUT_DATE_1"])
        end = _ymd(request.url.params["FID_INPUT_DATE_2"])
        rows = [d for d in days if start <= d <= end][-100:][::-1]
        return httpx.Response(
            200, json={**OK, "output1": {"stck_prpr": "1000"}, "output2": [_day_row(d) for d in rows] + [{}]}
        )

    broker.routes["/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice"] = chart
    client = make_client()
    bars = await client.daily_bars("005930", days[0], days[-1])
    assert [b.date for b in bars] == days
    date_2 = [r.url.params["FID_INPUT_DATE_2"] for r in broker.requests if "itemchartprice" in r.url.path]
    assert date_2 == ["20240906", "20240529", "20240219"]
    await client.aclose()


@pytest.mark.asyncio
async def test_minute_bars_page_back_to_0900(broker, make_client):
    day = dt.date(2025, 1, 2)
    minutes = [dt.datetime.combine(day, dt.time(9, 0)) + dt.timedelta(minutes=i) for i in range(75)]  # 09:00-10:14

    def chart(request: httpx.Request) -> httpx.Response:
        raw = request.url.params["FID_INPUT_HOUR_1"]
        hour = dt.time(int(raw[:2]), int(raw[2:4]), int(raw[4:]))
        rows = [m for m in minutes if m.time() <= hour][-30:][::-1]
        out = [
            {
                "stck_bsop_date": m.strftime("%Y%m%d"),
                "stck_cntg_hour": m.strftime("%H%M%S"),
                "stck_prpr": "100",
                "stck_oprc": "100",
                "stck_hgpr": "100",
                "stck_lwpr": "100",
                "cntg_vol": "5",
                "acml_tr_pbmn": "500",
            }
            for m in rows
        ]
        return httpx.Response(200, json={**OK, "output1": {"stck_prpr": "100"}, "output2": out})

    broker.routes["/uapi/domestic-stock/v1/quotations/inquire-time-itemchartprice"] = chart
    client = make_client()
    bars = await client.minute_bars_today("005930", until=dt.time(10, 14))
    assert [b.at.replace(tzinfo=None) for b in bars] == minutes
    hours = [r.url.params["FID_INPUT_HOUR_1"] for r in broker.requests if "time-itemchartprice" in r.url.path]
    assert hours == ["101400", "094400", "091400"]
    await client.aclose()


@pytest.mark.asyncio
async def test_balance_follows_pages_and_reads_the_summary(broker, make_client):
    """``inquire-balance`` (kis-api.md §5.8): holdings in ``output1`` over ``tr_cont`` pages (M more / D last, the
    cursor from ``ctx_area_nk100``), the deposit in ``output2`` (an array of one row); sold-out rows are left out."""
    client = make_client()

    def holding(code: str, qty: str) -> dict:
        return {"pdno": code, "prdt_name": f"n{code}", "hldg_qty": qty, "ord_psbl_qty": qty,
                "pchs_avg_pric": "70100.5000", "pchs_amt": "140201", "prpr": "71000", "evlu_amt": "142000"}  # fmt: skip

    summary = [{"dnca_tot_amt": "9859799", "scts_evlu_amt": "142000", "tot_evlu_amt": "10001799", "nass_amt": "1"}]
    first = {**OK, "output1": [holding("005930", "2"), holding("000660", "0")], "output2": summary,
             "ctx_area_fk100": "F".ljust(100), "ctx_area_nk100": "0000000020".ljust(100)}  # fmt: skip
    last = {**OK, "output1": [holding("035420", "5"), {}], "output2": summary, "ctx_area_nk100": ""}
    broker.script["/uapi/domestic-stock/v1/trading/inquire-balance"] = [
        httpx.Response(200, json=first, headers={"tr_cont": "M"}),
        httpx.Response(200, json=last, headers={"tr_cont": "D"}),
    ]
    balance = await client.balance(account="50001234", product="01")
    assert (balance.cash, balance.securities_value, balance.total_value) == (9_859_799, 142_000, 10_001_799)
    assert [(h.code, h.quantity, h.avg_price) for h in balance.holdings] == [
        ("005930", 2, "70100.5000"), ("035420", 5, "70100.5000")]  # fmt: skip
    first_call, second_call = broker.data_calls()
    assert first_call.headers["tr_id"] == "VTTC8434R" and first_call.url.params["INQR_DVSN"] == "02"
    assert second_call.headers["tr_cont"] == "N" and second_call.url.params["CTX_AREA_NK100"].strip() == "0000000020"
    broker.script["/uapi/domestic-stock/v1/trading/inquire-balance"] = [httpx.Response(200, json={**OK})]
    with pytest.raises(BrokerProtocolError):  # no summary: no deposit to reconcile with
        await client.balance(account="50001234", product="01")
    await client.aclose()
