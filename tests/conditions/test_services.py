"""Condition services: list sync, toggles, exactly-once real-time alerts and reconciliation by search."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.brokers.base import BrokerTransientError, ConditionInfo
from apps.conditions import feed
from apps.conditions.exceptions import (
    BrokerConditionsUnavailable,
    ConditionNotFound,
    InvalidAlertKind,
    InvalidConditionSeq,
    InvalidToggle,
    OperatorOnlySetting,
    SlackNotConfigured,
)
from apps.conditions.models import Condition, ConditionEvent, ConditionMember, ConditionRun
from apps.conditions.services import condition_alert_record, condition_reconcile, condition_update, conditions_sync

from .conftest import T0, alert, hit, set_quote


def events(condition) -> list[tuple[str, str, str]]:
    return list(ConditionEvent.objects.filter(condition=condition).order_by("id").values_list("kind", "code", "source"))


def members(condition) -> set[str]:
    return set(ConditionMember.objects.filter(condition=condition).values_list("code", flat=True))


# --- sync ------------------------------------------------------------------------------------------------


def test_sync_creates_renames_and_marks_missing_without_deleting_history(owner, conditions):
    condition_alert_record(alert=alert("1", "005930", "IN"))

    result = conditions_sync(owner=owner, infos=[ConditionInfo("0", "등락률 3% 이상"), ConditionInfo("7", "신고가")])

    assert (result.created, result.renamed, result.missing, result.total) == (["7"], ["0"], ["1"], 2)
    by_seq = {c.seq: c for c in Condition.objects.filter(owner=owner)}
    assert set(by_seq) == {"0", "1", "7"}
    assert by_seq["0"].name == "등락률 3% 이상"
    assert by_seq["1"].missing_since is not None and events(by_seq["1"]) == [("IN", "005930", "realtime")]
    assert feed.enabled_condition_seqs() == ["0", "7"]

    again = conditions_sync(
        owner=owner, infos=[ConditionInfo("0", "등락률 3% 이상"), ConditionInfo("1", "거래량 급증")]
    )
    assert (again.restored, again.missing, again.created) == (["1"], ["7"], [])
    assert feed.enabled_condition_seqs() == ["0", "1"]


@pytest.mark.parametrize(
    ("infos", "error"),
    [
        ([ConditionInfo("", "이름")], InvalidConditionSeq),
        ([ConditionInfo("3", "a"), ConditionInfo("3", "b")], InvalidConditionSeq),
        ([ConditionInfo("4", "  ")], Exception),
    ],
)
def test_sync_rejects_a_bad_list_and_changes_nothing(owner, conditions, infos, error):
    before = list(Condition.objects.order_by("id").values_list("seq", "name", "missing_since"))

    with pytest.raises(error) as caught:
        conditions_sync(owner=owner, infos=[ConditionInfo("0", "새 이름"), *infos])

    assert caught.value.code in {"invalid_condition_seq", "invalid_condition_name"}
    assert list(Condition.objects.order_by("id").values_list("seq", "name", "missing_since")) == before


def test_sync_without_a_reachable_broker_is_a_coded_error(owner, settings):
    # Nothing listens on port 9: the client's connection fails and the service says so with its code.
    settings.MARKET_BROKER = "sandbox"
    settings.SANDBOX_KIWOOM_REST_PORT = 9
    settings.SANDBOX_KIWOOM_WS_PORT = 9

    with pytest.raises(BrokerConditionsUnavailable) as caught:
        conditions_sync(owner=owner)

    assert caught.value.code == "broker_conditions_unavailable" and caught.value.status_code == 503
    assert Condition.objects.count() == 0


# --- toggles ---------------------------------------------------------------------------------------------


def test_update_toggles_and_the_recipient_is_the_verified_address(conditions, owner):
    condition = condition_update(condition_id=conditions["0"].pk, user=owner, realtime=False, notify_email=True)

    condition.refresh_from_db()
    assert (condition.realtime, condition.notify_email) == (False, True)
    assert condition.recipients() == ["trader@example.com"]
    assert feed.enabled_condition_seqs() == ["1"]


def test_update_rejects_bad_input_and_foreign_conditions(conditions, owner, django_user_model, settings):
    other = django_user_model.objects.create_user(username="other", password="pw-12345678")
    pk = conditions["0"].pk
    settings.CONDITIONS_SLACK_WEBHOOK_URL = ""

    with pytest.raises(InvalidToggle):
        condition_update(condition_id=pk, user=owner, notify_email=True, email_recipients="ok@example.com")
    with pytest.raises(OperatorOnlySetting):
        condition_update(condition_id=pk, user=owner, notify_slack=True)
    with pytest.raises(InvalidToggle):
        condition_update(condition_id=pk, user=owner, enabled="yes")
    with pytest.raises(InvalidToggle):
        condition_update(condition_id=pk, user=owner, owner=other)
    with pytest.raises(SlackNotConfigured):
        condition_update(condition_id=pk, operator=True, notify_slack=True)
    with pytest.raises(ConditionNotFound):
        condition_update(condition_id=pk, user=other, enabled=False)

    condition = Condition.objects.get(pk=pk)
    assert (condition.enabled, condition.notify_email, condition.notify_slack, condition.owner) == (
        True, False, False, owner,
    )  # fmt: skip


# --- real-time alerts ------------------------------------------------------------------------------------


def test_alert_is_recorded_exactly_once_with_the_latest_quote(conditions, clean_redis):
    condition = conditions["0"]
    set_quote(clean_redis, "005930", 71_500)

    first = condition_alert_record(alert=alert("0", "005930", "IN"))
    repeated = condition_alert_record(alert=alert("0", "005930", "IN", second=5))
    out_of_non_member = condition_alert_record(alert=alert("0", "000660", "OUT"))

    assert len(first) == 1 and repeated == [] and out_of_non_member == []
    event = first[0]
    assert (event.kind, event.code, event.price, event.source, event.at) == ("IN", "005930", 71_500, "realtime", T0)
    assert members(condition) == {"005930"}
    assert ConditionMember.objects.get(condition=condition).price_in == 71_500

    left = condition_alert_record(alert=alert("0", "005930", "OUT", second=9))
    assert [e.kind for e in left] == ["OUT"] and members(condition) == set()
    assert events(condition) == [("IN", "005930", "realtime"), ("OUT", "005930", "realtime")]
    assert events(conditions["1"]) == []


def test_alert_without_a_quote_has_no_price_and_disabled_conditions_ignore_alerts(conditions):
    condition_update(condition_id=conditions["1"].pk, enabled=False)

    recorded = condition_alert_record(alert=alert("0", "035720", "IN"))
    ignored = condition_alert_record(alert=alert("1", "035720", "IN"))

    assert recorded[0].price is None and ignored == []
    assert ConditionEvent.objects.count() == 1


def test_bad_alerts_raise_coded_errors_and_the_feed_hook_logs_them(conditions, caplog):
    with pytest.raises(InvalidAlertKind):
        condition_alert_record(alert=alert("0", "005930", "X"))

    feed.condition_alert_record(alert("0", "12345", "IN"))  # logged, never raised into the feed

    assert ConditionEvent.objects.count() == 0
    assert "condition alert not recorded" in caplog.text


# --- reconciliation --------------------------------------------------------------------------------------


def test_reconcile_records_missed_entries_and_exits_once_as_poll(conditions, clean_redis):
    condition = conditions["0"]
    condition_alert_record(alert=alert("0", "005930", "IN"))
    condition_alert_record(alert=alert("0", "000660", "IN"))
    set_quote(clean_redis, "005930", 69_900)

    runs = condition_reconcile(seq="0", search=lambda seq: [hit("000660"), hit("035420", price=250_500)], at=T0)

    assert len(runs) == 1
    run = ConditionRun.objects.get(pk=runs[0].pk)
    assert (run.status, run.hits, run.entered, run.exited, run.error) == ("ok", 2, 1, 1, "")
    assert members(condition) == {"000660", "035420"}
    assert events(condition)[2:] == [("IN", "035420", "poll"), ("OUT", "005930", "poll")]
    poll = {e.code: e for e in ConditionEvent.objects.filter(source="poll")}
    assert (poll["035420"].price, poll["005930"].price, poll["035420"].run_id) == (250_500, 69_900, run.pk)

    again = condition_reconcile(seq="0", search=lambda seq: [hit("000660"), hit("035420")])
    assert (again[0].entered, again[0].exited) == (0, 0)
    assert ConditionEvent.objects.filter(condition=condition).count() == 4


def test_failed_search_is_a_failed_run_and_changes_nothing(conditions):
    condition_alert_record(alert=alert("0", "005930", "IN"))

    def broken(seq):
        raise BrokerTransientError("connection reset", kind="network")

    runs = condition_reconcile(seq="0", search=broken)

    assert (runs[0].status, runs[0].error) == ("failed", "network: connection reset")
    assert members(conditions["0"]) == {"005930"}


def test_changes_recorded_during_the_search_are_newer_than_its_snapshot(conditions):
    condition = conditions["0"]
    condition_alert_record(alert=alert("0", "000660", "IN"))

    def search(seq):
        # While the search is in flight the stream reports 005930 entering and 000660 leaving.
        condition_alert_record(alert=alert("0", "005930", "IN", second=1))
        condition_alert_record(alert=alert("0", "000660", "OUT", second=1))
        return [hit("000660")]  # the snapshot predates both

    runs = condition_reconcile(seq="0", search=search)

    assert (runs[0].entered, runs[0].exited) == (0, 0)
    assert members(condition) == {"005930"}
    assert [e[2] for e in events(condition)] == ["realtime"] * 3


@pytest.mark.django_db(transaction=True)
def test_realtime_alert_and_search_racing_on_one_stock_record_it_once(owner):
    """A real-time IN and a reconciliation that found the same stock, released at the same instant, in
    separate threads with their own database connections: exactly one IN per stock, whoever wins."""
    conditions_sync(owner=owner, infos=[ConditionInfo("5", "race")])
    condition = Condition.objects.get(seq="5")
    codes = [f"{n:06d}" for n in range(100, 112)]

    for code in codes:
        barrier = threading.Barrier(2)
        errors = []

        def realtime(code=code, barrier=barrier, errors=errors):
            try:
                barrier.wait(5)
                condition_alert_record(alert=alert("5", code, "IN"))
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                connection.close()

        def search(seq, code=code, barrier=barrier):
            barrier.wait(5)
            return [hit(c) for c in codes[: codes.index(code) + 1]]

        def reconcile(errors=errors):
            try:
                condition_reconcile(seq="5", search=search)
            except Exception as exc:
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=realtime), threading.Thread(target=reconcile)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert errors == []

    for code in codes:
        assert ConditionEvent.objects.filter(condition=condition, code=code).count() == 1, code
    assert members(condition) == set(codes)
