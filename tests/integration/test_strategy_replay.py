"""A moving-average cross run live on the sandbox's replay of a recorded day, then backtested on the minute bars
the feed stored from that replay: the same signals at the same bar times, the same orders; fills that differ
only as the fill model says (live: the first print after the order reached the paper exchange, or a walk of the
stored book for a MARKET order; backtest: the next bar's open).

Every part is a real process: the sandbox replays at ``SANDBOX_SPEED`` 60 (a market minute a second), the feed
worker publishes the prints of the strategy's stock to the tick stream and stores live bars, and the
default-queue worker hosts the fill engine and the strategy host. After the second signal that worker is killed
(SIGKILL) and another one started: it takes over the host's lease and the unacknowledged prints, and the run
goes on with no order lost or placed twice. About 60 s: a handful of crosses needs a
dozen replayed minutes (tests/strategies/test_parity.py shows the same on a deterministic tape in a second)."""

from __future__ import annotations

import os
import signal
from datetime import date, datetime
from pathlib import Path

import pytest

from tests.integration.harness import ProcessStack, poll, stopped_after
from tests.integration.test_paper_trading_e2e import _load_stock_and_closes

ADMIN = "strategy-replay-admin"
CODE = "005930"
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class Stack(ProcessStack):
    def __init__(self, tmp_path: Path):
        super().__init__(
            tmp_path, admin_token=ADMIN, SANDBOX_SPEED="60", SANDBOX_PAPER_RATE_LIMIT="50", KIS_PAPER_RATE_LIMIT="40",
            PAPER_FILL_BLOCK_MS="200", STRATEGY_BLOCK_MS="200", PAPER_FILL_CLAIM_IDLE_MS="2000",
        )  # fmt: skip


@pytest.fixture
def stack(tmp_path, clean_redis, request):
    with stopped_after(Stack(tmp_path), request) as running:
        running.start_sandbox()
        yield running


def test_live_on_the_replay_and_the_backtest_of_its_bars_agree(stack, clean_redis):
    from apps.live.realtime import keys
    from apps.marketdata.models import MinuteBar
    from apps.strategies.backtest import backtest_execute, minute_bars
    from apps.strategies.live import LEASE_KEY
    from apps.strategies.models import Signal
    from apps.strategies.services import strategy_create, strategy_start, strategy_stop
    from apps.trading.accounts.services import paper_account_ensure, user_ensure
    from apps.trading.orders.models import Execution, Order

    replay_day = date.fromisoformat(stack.sandbox_clock()["replay_date"])
    _load_stock_and_closes(stack, replay_day)
    user, _ = user_ensure(username="strategy-trader", password="pw-strategy-123456")
    account = paper_account_ensure(user=user)
    params = {"fast": 1, "slow": 2, "quantity": 1}  # a cross at most price turns: many signals soon
    strategy = strategy_start(strategy=strategy_create(user=user, data={
        "kind": "ma_cross", "params": params, "codes": [CODE], "account_id": account.pk, "capital": 10**9,
    }))  # fmt: skip
    stack.start_worker("fills", "default")
    poll(lambda: clean_redis.get(LEASE_KEY), bool, timeout=30, what="the strategy host's lease", logs=stack.logs)
    stack.start_worker("feed", "feed")
    signals = Signal.objects.filter(strategy=strategy)
    poll(signals.count, lambda n: n >= 2, timeout=120, what="two signals of the live run", logs=stack.logs)
    os.killpg(stack.procs["fills"].pid, signal.SIGKILL)  # kill -9 of the worker hosting the strategy and fills
    stack.procs["fills"].wait(timeout=10)
    killed_at = signals.count()
    stack.start_worker("fills-2", "default")  # takes the lease when the dead one's expires
    poll(signals.count, lambda n: n >= killed_at + 3, timeout=120, what="signals after the restart",
         logs=stack.logs)  # fmt: skip
    strategy_stop(strategy_id=strategy.pk, reason="compared", by="user")
    strategy.refresh_from_db()
    open_minute = min(datetime.fromisoformat(bar["ts"]) for bar in strategy.state["bars"])  # not completed yet

    first = clean_redis.xrange(keys.FILL_TICKS_STREAM, "-", "+", count=1)[0][1]
    first_at = datetime.fromisoformat(first[b"at"].decode()).replace(second=0, microsecond=0)
    poll(lambda: MinuteBar.objects.filter(stock__code=CODE, source="ws", ts__gte=open_minute).exists(), bool,
         timeout=60, what="the feed's stored bars up to the host's last minute", logs=stack.logs)  # fmt: skip
    bars = [b for b in minute_bars([CODE], replay_day, replay_day) if b.ts >= first_at]
    result = backtest_execute(
        kind="ma_cross", params=strategy.params, codes=[CODE], start=replay_day, end=replay_day, timeframe="1m",
        limits={"capital": 10**9}, commission_rate=account.commission_rate, bars=bars,
    )  # fmt: skip

    live = [(s.at.isoformat(), s.side, s.quantity, s.key) for s in Signal.objects.filter(strategy=strategy)
            .order_by("at")]  # fmt: skip
    back = [
        (s["at"], s["side"], s["quantity"], s["key"])
        for s in result["signals"]
        if datetime.fromisoformat(s["at"]) < open_minute
    ]
    assert len(live) >= killed_at + 3
    # Up to the kill: the same signals at the same bar times. After it the new host catches up on the prints
    # of the outage faster than the fills of its orders land, so a rule that looks at its position may decide
    # differently there (the engine's docstring): the restart is checked for lost and duplicate orders instead.
    assert live[:killed_at] == back[:killed_at], stack.logs()
    placed = signals.filter(outcome="placed")
    orders = Order.objects.filter(account=account)
    assert sorted(orders.values_list("client_order_id", flat=True)) == sorted(s.client_order_id for s in placed)
    assert all(s.order_id for s in placed) and placed.count() == orders.count() >= killed_at + 2

    by_minute = {b.ts: b for b in bars}
    executions = list(Execution.objects.filter(account=account, order__in=list(orders.order_by("id")[:killed_at])))
    assert executions
    for execution in executions:
        bar = by_minute.get(execution.executed_at.replace(second=0, microsecond=0))
        assert bar is not None
        # the first print after the order: inside its bar's range, or a book level a tick or two beyond it
        assert bar.low * 0.99 <= execution.price <= bar.high * 1.01, (execution.price, bar)
