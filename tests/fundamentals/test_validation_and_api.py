"""The flow validation (no second source / two sources), the schedule rules, the parsers of the TR shapes, and
the API with its hostile inputs. Database rows are written directly (no broker needed)."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest

from apps.brokers.base import BrokerProtocolError
from apps.brokers.kis import fundamentals as kis
from apps.core.schedules import schedule_definitions
from apps.fundamentals.models import FinancialStatement, FlowValidationRun, InvestorFlow, InvestorFlowEstimate
from apps.fundamentals.services import flows_validate
from apps.fundamentals.tasks import statements_due
from apps.marketdata.models import Stock

D1, D2, D3 = date(2026, 2, 18), date(2026, 2, 19), date(2026, 2, 20)


def _stock(code: str = "005930", name: str = "삼성전자") -> Stock:
    return Stock.objects.create(code=code, name=name, market="KOSPI", rank=1)


def _flow(stock, day, *, foreign=100, institution=-40, individual=-50, other=-10, source="kis", value_k=1):
    return InvestorFlow.objects.create(
        stock=stock, date=day, source=source, close=70_000,
        foreign_net_qty=foreign, institution_net_qty=institution, individual_net_qty=individual,
        other_corp_net_qty=other, foreign_net_value=foreign * 70_000 * value_k,
        institution_net_value=institution * 70_000 * value_k,
    )  # fmt: skip


# --- validation -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_validation_reports_that_there_is_no_second_source():
    stock = _stock()
    _flow(stock, D1)

    run = flows_validate(date_from=D1, date_to=D3)

    assert (run.second_source, run.sources, run.stock_days_compared, run.agreement_pct) == (False, ["kis"], 0, None)
    assert run.note.startswith("no second source of investor flows: only kis is stored for 2026-02-18..2026-02-20")
    assert run.finished_at is not None


@pytest.mark.django_db
def test_validation_compares_two_sources_and_names_the_largest_difference():
    stock = _stock()
    for day in (D1, D2, D3):
        _flow(stock, day)
        _flow(stock, day, source="krx", foreign=100 if day != D2 else 130, individual=-50 if day != D2 else -80)
    _flow(stock, D1 - timedelta(days=1), source="krx")

    run = flows_validate(date_from=D1 - timedelta(days=1), date_to=D3)

    assert (run.second_source, run.sources) == (True, ["kis", "krx"])
    assert (run.stock_days_compared, run.values_compared, run.disagreements) == (3, 12, 2)
    assert run.agreement_pct == round(100 * 10 / 12, 4)
    assert (run.max_diff_qty, run.max_diff_stock, run.max_diff_date) == (30, "005930", D2)
    assert "only in krx: 1" in run.note


@pytest.mark.django_db
def test_validation_refuses_an_inverted_window():
    with pytest.raises(ValueError, match="after"):
        flows_validate(date_from=D3, date_to=D1)
    assert FlowValidationRun.objects.count() == 0


# --- schedule ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_beat_runs_flows_after_the_close_estimates_four_times_and_statements_daily():
    defs = {d["task"]: d for d in schedule_definitions("kis")}
    assert defs["fundamentals.collect_flows"]["crontab"] == {"minute": "*/10", "hour": "15-17", "day_of_week": "1-5"}
    estimates = defs["fundamentals.collect_flow_estimates"]["crontab"]
    assert (estimates["minute"], estimates["hour"].split(","), estimates["day_of_week"]) == (
        "35", ["9", "11", "13", "14"], "1-5")  # fmt: skip
    assert defs["fundamentals.collect_statements"]["crontab"]["hour"] == "19"
    sandbox = {d["task"]: d for d in schedule_definitions("sandbox")}
    assert sandbox["fundamentals.collect_flows"]["crontab"]["hour"] == "*"


@pytest.mark.parametrize(
    ("today", "last", "due"),
    [
        (date(2026, 5, 10), None, True),  # never collected
        (date(2026, 5, 10), date(2026, 5, 9), True),  # in season: daily
        (date(2026, 5, 10), date(2026, 5, 10), False),
        (date(2026, 6, 20), date(2026, 6, 15), False),  # off season: weekly
        (date(2026, 6, 20), date(2026, 6, 13), True),
        (date(2026, 3, 31), date(2026, 3, 30), True),  # the season's last day
    ],
)
def test_statements_are_due_daily_in_earnings_seasons_and_weekly_outside(today, last, due):
    seasons = "01-15:03-31,04-15:05-20,07-15:08-20,10-15:11-20"
    assert statements_due(today=today, last_success=last, seasons=seasons, in_season_days=1, off_days=7) is due


# --- parsers of the TR shapes (rows built as the module docstring of apps.brokers.kis.fundamentals describes) ----


def test_investor_rows_skip_todays_blank_row_and_carry_buys_and_sells():
    rows = [
        {"stck_bsop_date": "20260220", "stck_clpr": "70000", "frgn_ntby_qty": "", "prsn_ntby_qty": ""},
        {"stck_bsop_date": "20260219", "stck_clpr": "69500", "prsn_ntby_qty": "-30", "prsn_ntby_tr_pbmn": "-2",
         "prsn_shnu_vol": "70", "prsn_seln_vol": "100", "frgn_ntby_qty": "50", "frgn_ntby_tr_pbmn": "3",
         "frgn_shnu_vol": "80", "frgn_seln_vol": "30", "orgn_ntby_qty": "-20", "orgn_ntby_tr_pbmn": "-1",
         "orgn_shnu_vol": "10", "orgn_seln_vol": "30"},
    ]  # fmt: skip
    (day,) = kis.parse_investor_rows("005930", rows)
    assert (day.date, day.close, day.tr_id) == (D2, 69_500, "FHKST01010900")
    assert dict(day.net_qty) == {"individual": -30, "foreign": 50, "institution": -20, "other_corp": None}
    assert (day.buy_qty["foreign"], day.sell_qty["foreign"], day.net_value_units["foreign"]) == (80, 30, 3)


def test_estimate_rows_map_slots_to_input_times_and_reject_garbage():
    rows = [
        {"bsop_hour_gb": "3", "frgn_fake_ntby_qty": "1200", "orgn_fake_ntby_qty": "-300", "sum_fake_ntby_qty": "900"},
        {"bsop_hour_gb": "1", "frgn_fake_ntby_qty": "500", "orgn_fake_ntby_qty": "", "sum_fake_ntby_qty": "500"},
        {},
    ]
    first, third = kis.parse_estimate_rows("005930", rows)
    assert (first.slot, first.at, first.foreign_qty, first.institution_qty) == (1, time(9, 30), 500, None)
    assert (third.slot, third.at, third.total_qty) == (3, time(11, 20), 900)
    with pytest.raises(BrokerProtocolError):
        kis.parse_estimate_rows("005930", [{"bsop_hour_gb": "x"}])


def test_statement_rows_need_a_valid_period():
    (row,) = kis.parse_statement_rows("005930", "ratio", False, [{"stac_yymm": "202509", "roe_val": "8.12"}])
    assert (row.period, str(row.values["roe_val"]), row.annual) == ("202509", "8.12", False)
    for bad in ("202513", "2025-9", "abcdef"):
        with pytest.raises(BrokerProtocolError):
            kis.parse_statement_rows("005930", "ratio", False, [{"stac_yymm": bad}])


# --- API -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_flows_api_serves_days_with_running_totals_source_and_as_of(api_client):
    stock = _stock()
    _flow(stock, D1, foreign=100)
    _flow(stock, D2, foreign=-30)
    InvestorFlowEstimate.objects.create(stock=stock, date=D3, slot=1, slot_time=time(9, 30), foreign_qty=77)

    body = api_client.get(
        "/api/fundamentals/flows", {"code": "005930", "from": "2026-02-01", "to": "2026-02-28"}
    ).json()

    assert (body["code"], body["source"]) == ("005930", "kis")
    assert body["as_of"] is not None
    assert [d["date"] for d in body["days"]] == ["2026-02-18", "2026-02-19"]
    assert [d["foreign_cum_qty"] for d in body["days"]] == [100, 70]
    assert body["estimates"]["date"] == "2026-02-20"
    assert body["estimates"]["rows"] == [
        {"slot": 1, "time": "09:30", "foreign_qty": 77, "institution_qty": None, "total_qty": None}
    ]
    assert body["estimates"]["label"].startswith("estimate")


@pytest.mark.django_db
def test_flows_api_defaults_to_the_90_days_before_the_newest_stored_day(api_client):
    stock = _stock()
    _flow(stock, date(2025, 10, 1))
    _flow(stock, D1)
    _flow(stock, D2)

    body = api_client.get("/api/fundamentals/flows", {"code": "005930"}).json()

    assert [d["date"] for d in body["days"]] == ["2026-02-18", "2026-02-19"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"code": "999999"}, "code"),
        ({"code": "00593'"}, "code"),
        ({"code": "x" * 5000}, "code"),
        ({"code": "005930", "from": "2026-13-01"}, "from"),
        ({"code": "005930", "from": "2026-02-20", "to": "2026-02-01"}, "from"),
        ({"code": "005930", "from": "2019-01-01", "to": "2026-02-01"}, "to"),
        ({"code": "005930", "source": "naver"}, "source"),
    ],
)
def test_flows_api_answers_bad_input_with_a_coded_400(api_client, params, field):
    _stock()
    response = api_client.get("/api/fundamentals/flows", params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_flow_request"
    assert field in error["fields"]


@pytest.mark.django_db
def test_top_api_ranks_by_net_value_and_refuses_bad_input(api_client):
    a, b = _stock(), _stock("000660", "SK하이닉스")
    c = _stock("035420", "NAVER")
    _flow(a, D3, foreign=100, institution=40)
    _flow(b, D3, foreign=300, institution=-200)
    _flow(c, D3, foreign=-5, institution=10)
    _flow(b, D2, foreign=999_999)

    body = api_client.get("/api/fundamentals/flows/top", {"who": "foreign"}).json()
    assert (body["date"], [r["code"] for r in body["rows"]]) == ("2026-02-20", ["000660", "005930"])
    body = api_client.get("/api/fundamentals/flows/top", {"who": "institution", "limit": "1"}).json()
    assert [r["code"] for r in body["rows"]] == ["005930"]
    body = api_client.get("/api/fundamentals/flows/top", {"who": "institution"}).json()
    assert [r["code"] for r in body["rows"]] == ["005930", "035420"]  # net sellers are not listed
    for params in ({"who": "retail"}, {"who": "foreign", "limit": "0"}, {"who": "foreign", "limit": "9" * 30},
                   {"who": "foreign", "date": "yesterday"}):  # fmt: skip
        response = api_client.get("/api/fundamentals/flows/top", params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "invalid_flow_request"


@pytest.mark.django_db
def test_statements_api_serves_the_history_and_refuses_bad_input(api_client):
    stock = _stock()
    for period in ("202506", "202509"):
        FinancialStatement.objects.create(
            stock=stock,
            kind="income",
            period_type="quarter",
            period=period,
            period_end=date(2025, int(period[4:]), 30),
            values={"thtr_ntin": "1.50"},
        )

    body = api_client.get("/api/fundamentals/statements", {"code": "005930", "kind": "income"}).json()
    assert [s["period"] for s in body["statements"]] == ["202509", "202506"]
    assert body["statements"][0]["values"] == {"thtr_ntin": "1.50"}
    assert body["as_of"] is not None
    for params in ({"code": "005930", "kind": "cashflow"}, {"code": "005930", "period": "monthly"}, {"code": ""}):
        response = api_client.get("/api/fundamentals/statements", params)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_statement_request"


@pytest.mark.django_db
def test_the_api_needs_a_login(client):
    _stock()
    for url in ("/api/fundamentals/flows?code=005930", "/api/fundamentals/flows/top?who=foreign",
                "/api/fundamentals/statements?code=005930"):  # fmt: skip
        assert client.get(url).status_code in (401, 403)
