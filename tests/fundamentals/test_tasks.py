"""The fundamentals tasks and command against the sandbox: the flow job runs once per trading day after the
close and triggers the flow validation, the estimate job only in session, the statement job when due."""

from __future__ import annotations

from datetime import datetime, time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.core.krx.calendar import KST
from apps.fundamentals import tasks
from apps.fundamentals.models import FinancialStatement, FlowValidationRun, InvestorFlow
from apps.marketdata.market_clock import CLOSED, CONTINUOUS, MarketNow
from apps.marketdata.models import CollectionRun

from .conftest import REPLAY_DAY, jump, universe

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def wired(monkeypatch, client_factory, sandbox, clean_redis):
    """The tasks' broker clients and market clock pointed at the test sandbox; returns a clock setter."""
    monkeypatch.setattr(tasks, "kis_client_async", lambda *args, **kwargs: client_factory())
    state = {"session": CLOSED, "at": time(16, 0)}
    monkeypatch.setattr(
        tasks,
        "market_now",
        lambda calendar: MarketNow(
            now=datetime.combine(REPLAY_DAY, state["at"], tzinfo=KST), trading_date=REPLAY_DAY,
            session=state["session"], source="test",
        ),
    )  # fmt: skip

    def set_clock(session: str, at: time) -> None:
        state.update(session=session, at=at)

    return set_clock


def test_flow_job_runs_once_after_the_close_and_reports_no_second_source(wired, sandbox, admin):
    codes = sandbox.server.core.clock_status()["universe"][:3]
    universe(codes)

    wired(CONTINUOUS, time(11, 0))
    assert tasks.collect_flows.apply().get() is None  # in session: nothing
    jump(admin, "16:00:00")
    wired(CLOSED, time(16, 0))
    out = StringIO()
    call_command("collect_fundamentals", "flows", "statements", "--codes", ",".join(codes), stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("flows: run #") and " succeeded: requested 3, stored 180, failed 0" in lines[0]
    assert lines[1].startswith("statements: run #") and " succeeded: requested 3" in lines[1]
    assert InvestorFlow.objects.count() == 180 and FinancialStatement.objects.exists()
    validation = FlowValidationRun.objects.get()
    assert (validation.second_source, validation.sources) == (False, ["kis"])
    assert "no second source" in validation.note
    # The beat's next run the same day finds the day collected and does nothing.
    assert tasks.collect_flows.apply().get() is None
    assert CollectionRun.objects.filter(job="flows").count() == 1


def test_estimate_job_runs_only_in_session(wired, sandbox, admin):
    codes = sandbox.server.core.clock_status()["universe"][:2]
    universe(codes)
    jump(admin, "11:30:00")
    wired(CLOSED, time(16, 0))
    assert tasks.collect_flow_estimates.apply(kwargs={"codes": codes}).get() is None

    wired(CONTINUOUS, time(11, 30))
    result = tasks.collect_flow_estimates.apply(kwargs={"codes": codes}).get()

    assert result["status"] == "skipped"  # the sandbox does not serve HHPTJ04160200


def test_command_refuses_unknown_codes_and_runs_nothing(wired):
    with pytest.raises(CommandError, match="unknown stock codes: 123456"):
        call_command("collect_fundamentals", "flows", "--codes", "123456")
    with pytest.raises(CommandError):
        call_command("collect_fundamentals", "everything")
    assert not CollectionRun.objects.exists()
