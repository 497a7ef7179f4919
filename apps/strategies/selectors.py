from __future__ import annotations

from django.db.models import QuerySet

from apps.core.exceptions import parse_id

from .exceptions import BacktestNotFound, StrategyNotFound
from .models import Backtest, Signal, Strategy


def strategy_list_for_user(*, user) -> QuerySet[Strategy]:
    return Strategy.objects.filter(user=user).select_related("account", "condition")


def strategy_get_for_user(*, user, strategy_id) -> Strategy:
    pk = parse_id(strategy_id)
    found = strategy_list_for_user(user=user).filter(pk=pk).first() if pk else None
    if found is None:
        raise StrategyNotFound(f"Strategy {str(strategy_id)[:20]} not found.")
    return found


def signal_list(*, strategy: Strategy) -> QuerySet[Signal]:
    return Signal.objects.filter(strategy=strategy).select_related("order")


def backtest_list_for_user(*, user) -> QuerySet[Backtest]:
    return Backtest.objects.filter(user=user)


def backtest_get_for_user(*, user, backtest_id) -> Backtest:
    pk = parse_id(backtest_id)
    found = backtest_list_for_user(user=user).filter(pk=pk).first() if pk else None
    if found is None:
        raise BacktestNotFound(f"Backtest {str(backtest_id)[:20]} not found.")
    return found
