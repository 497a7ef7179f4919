from apps.core.exceptions import ApplicationError, Conflict, NotFound, ValidationFailed


class NotLinked(NotFound):
    default_code = "not_linked"


class RealNotOptedIn(ApplicationError):
    status_code = 403
    default_code = "real_account_not_opted_in"


class ConfirmationRequired(Conflict):
    default_code = "confirmation_required"


class DailyLimitExceeded(Conflict):
    default_code = "daily_limit_exceeded"


class BrokerRefusedOrder(Conflict):
    default_code = "broker_refused"


class InvalidBrokerOrder(ValidationFailed):
    default_code = "invalid_broker_order"


class CancelPending(Conflict):
    default_code = "cancel_pending"
