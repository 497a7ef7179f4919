"""The data-quality page: collection runs with success rates and backfilled gaps, and the latest validation
report with its per-day difference chart and the CSV's disagreements."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db


def test_collection_runs_and_validation_report(web, stocks, tmp_path):
    from apps.marketdata.models import CollectionRun, DailyBar, ValidationRun

    CollectionRun.objects.create(
        job="minute_bars", status="partial", requested=200, stored=190, failed=10, backfilled=7
    )
    samsung, _ = stocks
    days = [dt.date(2026, 2, 16), dt.date(2026, 2, 17), dt.date(2026, 2, 18)]
    for day, (kis, fdr) in zip(days, [(70_000, 70_000), (71_000, 71_071), (72_000, 73_440)], strict=True):
        for source, close in (("kis", kis), ("fdr", fdr)):
            DailyBar.objects.create(
                stock=samsung, date=day, open=close, high=close, low=close, close=close, volume=1, source=source
            )
    report = tmp_path / "validation.csv"
    report.write_text("stock,date,field,value_kis,value_fdr,diff_pct\n005930,2026-02-18,close,72000,73440,2.0\n")
    ValidationRun.objects.create(
        source_a="kis", source_b="fdr", date_from=days[0], date_to=days[-1], codes=["005930"],
        finished_at=timezone.now(), total_compared=3, agreement_pct=91.67, max_diff_pct=2.0,
        max_diff_stock="005930", max_diff_date=days[-1], max_diff_field="close", disagreements=1,
        report_path=str(report),
    )  # fmt: skip

    html = web.get("/data-quality/").content.decode()

    runs = re.search(r'<table id="collection-runs">.*?</table>', html, re.S).group(0)
    assert '<td class="num" data-field="success_rate">95.00%</td>' in runs
    assert '<td class="num" data-field="backfilled">7</td>' in runs
    assert 'id="validation-report"' in html
    chart = re.search(r'<svg id="validation-chart".*?</svg>', html, re.S).group(0)
    bars = re.findall(r'<rect [^>]*class="(ok|over)" data-date="([\d-]+)" data-max="([\d.]+)"', chart)
    # close differences |fdr - kis| / kis: 0 %, 0.1 %, 2 %; the tolerance is 0.5 %
    assert bars == [("ok", "2026-02-16", "0.0"), ("ok", "2026-02-17", "0.1"), ("over", "2026-02-18", "2.0")]
    disagreements = re.search(r'<table id="disagreements">.*?</table>', html, re.S).group(0)
    assert "73,440" in disagreements and "2026-02-18" in disagreements


def test_empty_data_quality_page(web):
    html = web.get("/data-quality/").content.decode()

    assert '<table id="collection-runs">' in html and "수집 기록이 없습니다" in html
    assert 'id="validation-report"' in html and 'id="validation-chart"' in html
