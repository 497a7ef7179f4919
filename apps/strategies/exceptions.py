from __future__ import annotations

from apps.core.exceptions import ApplicationError, Conflict, NotFound, ValidationFailed


class StrategyNotFound(NotFound):
    default_code = "strategy_not_found"


class BacktestNotFound(NotFound):
    default_code = "backtest_not_found"


class UnknownStrategyKind(ValidationFailed):
    default_code = "unknown_strategy_kind"


class InvalidStrategy(ValidationFailed):
    default_code = "invalid_strategy"


class InvalidBacktest(ValidationFailed):
    default_code = "invalid_backtest"


class StrategyNotStartable(Conflict):
    default_code = "strategy_not_startable"


class TooManyBacktests(ApplicationError):
    """The user already has ``STRATEGY_BACKTESTS_ACTIVE_MAX`` backtests queued or running."""

    status_code = 429
    default_code = "too_many_backtests"
