"""Backtest task (queue ``default``): thin; progress goes to the backtest row (its page polls it) and to the
task state (``PROGRESS`` with ``done``/``total``, shown by Flower)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from .backtest import backtest_execute, bar_count
from .models import Backtest, BacktestStatus
from .services import backtest_mark

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="strategies.backtest_run", acks_late=False)
def strategy_backtest_run(self, backtest_id: int) -> dict:
    backtest = Backtest.objects.filter(pk=backtest_id).first()
    if backtest is None or backtest.status not in (BacktestStatus.QUEUED, BacktestStatus.RUNNING):
        return {"skipped": backtest_id}
    total = bar_count(backtest.codes, backtest.start, backtest.end, backtest.timeframe)
    backtest_mark(backtest_id, status=BacktestStatus.RUNNING, bars_total=total, progress=0.0)

    def progress(done: int) -> None:
        share = min(done / total, 1.0) if total else 0.0
        backtest_mark(backtest_id, bars_done=done, progress=round(share, 4))
        if self.request.id and not self.request.is_eager:
            self.update_state(state="PROGRESS", meta={"done": done, "total": total, "backtest_id": backtest_id})

    try:
        result = backtest_execute(
            kind=backtest.kind, params=backtest.params, codes=backtest.codes, start=backtest.start, end=backtest.end,
            timeframe=backtest.timeframe, limits=backtest.limits, commission_rate=backtest.commission_rate,
            progress=progress,
        )  # fmt: skip
    except Exception as exc:
        logger.exception("backtest failed", extra={"backtest_id": backtest_id})
        backtest_mark(backtest_id, status=BacktestStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:300],
                      finished_at=timezone.now())  # fmt: skip
        return {"failed": backtest_id}
    backtest_mark(backtest_id, status=BacktestStatus.DONE, result=result, bars_done=result["bars"], progress=1.0,
                  finished_at=timezone.now())  # fmt: skip
    return {"backtest_id": backtest_id, "bars": result["bars"]}
