"""Strategy and backtest services: create and change a strategy (validated parameters and limits), start it,
stop it (the kill switch of the user and the admin, and the engine's own stop on a risk breach), and queue
backtests."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from apps.conditions.models import ConditionEvent
from apps.conditions.selectors import condition_list_for_user
from apps.core.exceptions import parse_id
from apps.core.groups import valid_code
from apps.core.redis import get_redis
from apps.live.realtime import keys
from apps.marketdata.models import Stock
from apps.trading.accounts.models import DEFAULT_COMMISSION_RATE
from apps.trading.accounts.selectors import paper_account_list_for_user
from apps.trading.orders.exceptions import OrderNotCancellable
from apps.trading.orders.executors import executor_for
from apps.trading.orders.models import OPEN_STATUSES, Order
from apps.trading.orders.release import order_cancel

from .exceptions import InvalidBacktest, InvalidStrategy, StrategyNotStartable, TooManyBacktests
from .interface import validate_params
from .models import Backtest, BacktestStatus, Strategy, StrategyStatus, Timeframe
from .registry import strategy_class

logger = logging.getLogger(__name__)

LIMIT_FIELDS = ("capital", "max_position_value", "max_order_value", "daily_loss_limit", "max_orders_per_minute")
MAX_KRW = 10**13


def _int_field(data: dict[str, Any], name: str, *, default: int | None = None, low: int = 0, high: int = MAX_KRW,
               error: type[InvalidStrategy] | type[InvalidBacktest] = InvalidStrategy) -> int:  # fmt: skip
    value = data.get(name, default)
    if value is None or isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise error(f"{name} must be a whole number between {low} and {high}.", fields={name: ["Invalid."]})
    return value


def _codes(raw: Any, *, error: type[InvalidStrategy] | type[InvalidBacktest] = InvalidStrategy) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > settings.STRATEGY_MAX_CODES:
        raise error(f"codes must be a list of at most {settings.STRATEGY_MAX_CODES} stock codes.",
                    fields={"codes": ["Invalid."]})  # fmt: skip
    codes = []
    for item in raw:
        code = item.strip().upper() if isinstance(item, str) else ""
        if not valid_code(code):
            raise error(f"{str(item)[:10]!r} is not a stock code.", fields={"codes": ["Not a stock code."]})
        if code not in codes:
            codes.append(code)
    known = set(Stock.objects.filter(code__in=codes).values_list("code", flat=True))
    missing = [c for c in codes if c not in known]
    if missing:
        raise error(f"Unknown stock(s): {', '.join(missing[:5])}.", fields={"codes": ["Unknown stock."]})
    return codes


def limits_clean(data: dict[str, Any], *, error: type[InvalidStrategy] | type[InvalidBacktest] = InvalidStrategy,
                 current: dict[str, int] | None = None) -> dict[str, int]:  # fmt: skip
    base = current or {}
    cleaned = {"capital": _int_field(data, "capital", default=base.get("capital"), low=1, error=error)}
    for name in LIMIT_FIELDS[1:]:
        high = 10**6 if name == "max_orders_per_minute" else MAX_KRW
        cleaned[name] = _int_field(data, name, default=base.get(name, 0), high=high, error=error)
    return cleaned


def _name(raw: Any, default: str) -> str:
    if raw is None or raw == "":
        return default
    if not isinstance(raw, str) or len(raw.strip()) > 100 or not raw.strip():
        raise InvalidStrategy("name must be 1-100 characters.", fields={"name": ["Invalid."]})
    return raw.strip()


@transaction.atomic
def strategy_create(*, user, data: dict[str, Any]) -> Strategy:
    """A draft strategy of ``user`` from client input; coded 400s name the field at fault."""
    cls = strategy_class(data.get("kind"))
    params = validate_params(cls, data.get("params"))
    account_id = data.get("account_id")
    accounts = paper_account_list_for_user(user=user)
    account = accounts.filter(pk=parse_id(account_id)).first() if account_id is not None else accounts.first()
    if account is None:
        raise InvalidStrategy("No such paper account of yours.", fields={"account_id": ["Not found."]})
    if executor_for(account) is not None:
        raise InvalidStrategy("Strategies trade on Hoga's paper engine; this account's orders go to a broker.",
                              fields={"account_id": ["Linked to a broker."]})  # fmt: skip
    condition = None
    codes = _codes(data.get("codes"))
    if cls.uses_condition:
        condition_id = parse_id(data.get("condition_id"))
        condition = condition_list_for_user(user=user).filter(pk=condition_id).first() if condition_id else None
        if condition is None:
            raise InvalidStrategy("A condition strategy needs one of your conditions.",
                                  fields={"condition_id": ["Not found."]})  # fmt: skip
    elif not codes:
        raise InvalidStrategy("A bar strategy needs at least one stock.", fields={"codes": ["Required."]})
    limits = limits_clean(data)
    with transaction.atomic():
        # the owner's row serialises concurrent creations, so the per-user cap holds
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        if Strategy.objects.filter(user=user).count() >= settings.STRATEGY_MAX_PER_USER:
            raise InvalidStrategy(f"At most {settings.STRATEGY_MAX_PER_USER} strategies; change a stopped one instead.",
                                  code="too_many_strategies")  # fmt: skip
        return Strategy.objects.create(
            user=user, account=account, name=_name(data.get("name"), cls.label), kind=cls.key, params=params,
            codes=codes, condition=condition, **limits,
        )  # fmt: skip


@transaction.atomic
def strategy_update(*, strategy: Strategy, data: dict[str, Any]) -> Strategy:
    """Change the name, parameters, stocks or limits of a strategy that is not running."""
    strategy = Strategy.objects.select_for_update().get(pk=strategy.pk)
    if strategy.status == StrategyStatus.RUNNING:
        raise StrategyNotStartable("Stop the strategy before changing it.", fields={"status": ["Running."]})
    cls = strategy_class(strategy.kind)
    if "params" in data:
        strategy.params = validate_params(cls, data["params"])
    if "codes" in data:
        strategy.codes = _codes(data["codes"])
    if "name" in data:
        strategy.name = _name(data["name"], strategy.name)
    limits = limits_clean(data, current={f: getattr(strategy, f) for f in LIMIT_FIELDS})
    for name, value in limits.items():
        setattr(strategy, name, value)
    strategy.save()
    return strategy


def strategy_start(*, strategy: Strategy) -> Strategy:
    """Run the strategy live: the host picks it up on its next pass, from the next print on."""
    with transaction.atomic():
        strategy = Strategy.objects.select_for_update().get(pk=strategy.pk)
        if strategy.status == StrategyStatus.RUNNING:
            return strategy
        strategy.status = StrategyStatus.RUNNING
        strategy.stop_reason = strategy.stopped_by = ""
        strategy.started_at = timezone.now()
        strategy.stopped_at = None
        if strategy.condition_id is not None:  # alerts from now on: none of those recorded while it was stopped
            latest = ConditionEvent.objects.filter(condition_id=strategy.condition_id).aggregate(m=Max("pk"))["m"]
            strategy.last_event_id = max(strategy.last_event_id, latest or 0)
        strategy.state = {**strategy.state, "bars": []}  # a bar left open when it stopped is stale now
        strategy.save()
    strategy_codes_sync()
    return strategy


def strategy_orders_cancel(*, strategy: Strategy) -> list[int]:
    """Cancel every open order the strategy placed (client order ids ``st<id>-…``) and the bracket legs of its
    entries; return their ids."""
    prefix = f"{strategy.order_prefix}-"
    open_ids = list(
        Order.objects.filter(
            Q(client_order_id__startswith=prefix) | Q(parent__client_order_id__startswith=prefix),
            account_id=strategy.account_id,
            status__in=OPEN_STATUSES,
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    cancelled = []
    for order_id in open_ids:
        try:
            order_cancel(order_id=order_id)
        except OrderNotCancellable:
            continue  # filled or expired meanwhile
        cancelled.append(order_id)
    return cancelled


def strategy_stop(*, strategy_id: int, reason: str, by: str) -> tuple[Strategy, list[int]]:
    """Stop a strategy (kill switch, risk breach, error) and cancel its open orders; idempotent."""
    with transaction.atomic():
        strategy = Strategy.objects.select_for_update().get(pk=strategy_id)
        if strategy.status != StrategyStatus.STOPPED:
            strategy.status = StrategyStatus.STOPPED
            strategy.stop_reason = reason[:300]
            strategy.stopped_by = by
            strategy.stopped_at = timezone.now()
            strategy.save()
        cancelled = strategy_orders_cancel(strategy=strategy)
    logger.info("strategy stopped", extra={"strategy_id": strategy_id, "by": by, "reason": reason[:200],
                                           "cancelled": len(cancelled)})  # fmt: skip
    strategy_codes_sync()
    return strategy, cancelled


def strategy_codes_sync() -> set[str]:
    """The stocks of running strategies, in Redis (``STRATEGY_CODES_SET``, and per owner in
    ``STRATEGY_USERS_HASH``): the feed subscribes them within their owner's fair share of live slots, and their
    prints reach the tick stream the host reads."""
    codes: set[str] = set()
    owners: dict[str, float] = {}  # "<user id>|<code>" -> when the user's earliest strategy on it started
    running = Strategy.objects.filter(status=StrategyStatus.RUNNING).values_list("user_id", "codes", "started_at")
    for user_id, watched, started_at in running:
        at = started_at.timestamp() if started_at else 0.0
        for code in watched or []:
            if valid_code(code):
                codes.add(code)
                field = f"{user_id}|{code}"
                owners[field] = min(owners.get(field, at), at)
    try:
        redis = get_redis()
        pipe = redis.pipeline(transaction=True)
        pipe.delete(keys.STRATEGY_CODES_SET, keys.STRATEGY_USERS_HASH)
        if codes:
            pipe.sadd(keys.STRATEGY_CODES_SET, *sorted(codes))
            pipe.hset(keys.STRATEGY_USERS_HASH, mapping={f: repr(at) for f, at in sorted(owners.items())})
        pipe.execute()
    except Exception:  # the host resyncs it on every pass
        logger.warning("strategy codes not synced to Redis")
    return codes


# --- backtests -------------------------------------------------------------------------------------------

MAX_BACKTEST_DAYS = 3 * 366


def _date(raw: Any, name: str) -> dt.date:
    if isinstance(raw, str) and len(raw) == 10:
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            pass
    raise InvalidBacktest(f"{name} must be a date (YYYY-MM-DD).", fields={name: ["Invalid date."]})


def backtest_create(*, user, data: dict[str, Any], enqueue: bool = True) -> Backtest:
    """A backtest of a strategy kind with parameters, stocks, a date range and limits; queued to Celery."""
    source = None
    if data.get("strategy_id") is not None:
        pk = parse_id(data.get("strategy_id"))
        source = Strategy.objects.filter(user=user, pk=pk).first() if pk else None
        if source is None:
            raise InvalidBacktest("No such strategy of yours.", fields={"strategy_id": ["Not found."]})
    kind = data.get("kind", source.kind if source else None)
    cls = strategy_class(kind)
    params = validate_params(cls, data.get("params", source.params if source else None))
    codes = _codes(data.get("codes", source.codes if source else None), error=InvalidBacktest)
    if not codes:
        raise InvalidBacktest("A backtest needs at least one stock.", fields={"codes": ["Required."]})
    timeframe = data.get("timeframe", Timeframe.MINUTE)
    if timeframe not in Timeframe.values:
        raise InvalidBacktest("timeframe must be 1m or 1d.", fields={"timeframe": ["Invalid choice."]})
    start, end = _date(data.get("start"), "start"), _date(data.get("end"), "end")
    if end < start or (end - start).days > MAX_BACKTEST_DAYS:
        raise InvalidBacktest("end must be on or after start, within 3 years.", fields={"end": ["Invalid range."]})
    current = {f: getattr(source, f) for f in LIMIT_FIELDS} if source else None
    limits = limits_clean(data, error=InvalidBacktest, current=current)
    with transaction.atomic():
        # the owner's row serialises concurrent creations, so the cap on active backtests holds
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        active = Backtest.objects.filter(user=user, status__in=(BacktestStatus.QUEUED, BacktestStatus.RUNNING))
        if active.count() >= settings.STRATEGY_BACKTESTS_ACTIVE_MAX:
            raise TooManyBacktests(
                f"At most {settings.STRATEGY_BACKTESTS_ACTIVE_MAX} backtests queued or running; wait for one to end."
            )
        backtest = Backtest.objects.create(
            user=user, strategy=source, name=_name(data.get("name"), cls.label), kind=cls.key, params=params,
            codes=codes, timeframe=timeframe, start=start, end=end, limits=limits,
            commission_rate=source.account.commission_rate if source else DEFAULT_COMMISSION_RATE,
        )  # fmt: skip
        if enqueue:
            transaction.on_commit(lambda: _enqueue(backtest.pk))
    return backtest


def _enqueue(backtest_id: int) -> None:
    from .tasks import strategy_backtest_run  # deferred: tasks import this module

    result = strategy_backtest_run.delay(backtest_id)
    Backtest.objects.filter(pk=backtest_id, task_id="").update(task_id=str(result.id or "")[:64])


def backtest_mark(backtest_id: int, **fields: Any) -> None:
    Backtest.objects.filter(pk=backtest_id).update(**fields, updated_at=timezone.now())


__all__ = ["BacktestStatus", "backtest_create", "strategy_create", "strategy_start", "strategy_stop"]
