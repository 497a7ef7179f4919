"""Condition errors: each has a stable ``code`` the API and the page show."""

from __future__ import annotations

from apps.core.exceptions import Conflict, NotFound, ServiceUnavailable, ValidationFailed


class ConditionNotFound(NotFound):
    default_code = "condition_not_found"


class InvalidConditionSeq(ValidationFailed):
    default_code = "invalid_condition_seq"


class InvalidConditionName(ValidationFailed):
    default_code = "invalid_condition_name"


class InvalidStockCode(ValidationFailed):
    default_code = "invalid_stock_code"


class InvalidAlertKind(ValidationFailed):
    default_code = "invalid_alert_kind"


class InvalidEventTime(ValidationFailed):
    default_code = "invalid_event_time"


class OperatorOnlySetting(ValidationFailed):
    """A setting only the operator changes (in the admin): Slack posting, e-mail recipients."""

    status_code = 403
    default_code = "operator_only_setting"


class NoBrokerConnection(ValidationFailed):
    """The user owns no broker connection: there is no condition list of theirs to read."""

    status_code = 403
    default_code = "no_broker_connection"


class BrokerConnectionMismatch(ValidationFailed):
    status_code = 403
    default_code = "broker_connection_mismatch"


class BrokerConnectionTaken(Conflict):
    default_code = "broker_connection_taken"


class InvalidToggle(ValidationFailed):
    default_code = "invalid_toggle"


class SlackNotConfigured(ValidationFailed):
    default_code = "slack_not_configured"


class NoPaperAccount(ValidationFailed):
    default_code = "no_paper_account"


class EventNotOrderable(ValidationFailed):
    default_code = "event_not_orderable"


class BrokerConditionsUnavailable(ServiceUnavailable):
    """The broker's condition list or search could not be fetched (network, credentials, limits)."""

    default_code = "broker_conditions_unavailable"
