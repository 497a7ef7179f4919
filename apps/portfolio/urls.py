"""REST routes under /api/portfolio/ (config/urls.py)."""

from django.urls import path

from .apis import AnalyticsApi, ExecutionsCsvApi, RealizedPnlCsvApi, SnapshotRebuildApi

urlpatterns = [
    path("accounts/<int:account_id>/analytics", AnalyticsApi.as_view(), name="portfolio-analytics"),
    path("accounts/<int:account_id>/snapshots/rebuild", SnapshotRebuildApi.as_view(), name="portfolio-rebuild"),
    path("accounts/<int:account_id>/executions.csv", ExecutionsCsvApi.as_view(), name="portfolio-executions-csv"),
    path("accounts/<int:account_id>/realized-pnl.csv", RealizedPnlCsvApi.as_view(), name="portfolio-realized-pnl-csv"),
]
