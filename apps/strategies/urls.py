"""REST routes under /api/strategies/ and the pages under /strategies/ (config/urls.py)."""

from django.urls import path

from .apis import (
    BacktestCompareApi,
    BacktestDetailApi,
    BacktestListApi,
    StrategyDetailApi,
    StrategyKindListApi,
    StrategyListApi,
    StrategySignalListApi,
    StrategyStartApi,
    StrategyStopApi,
)

urlpatterns = [
    path("", StrategyListApi.as_view(), name="strategy-list"),
    path("kinds", StrategyKindListApi.as_view(), name="strategy-kinds"),
    path("backtests", BacktestListApi.as_view(), name="backtest-list"),
    path("backtests/compare", BacktestCompareApi.as_view(), name="backtest-compare"),
    path("backtests/<str:backtest_id>", BacktestDetailApi.as_view(), name="backtest-detail"),
    path("<str:strategy_id>", StrategyDetailApi.as_view(), name="strategy-detail"),
    path("<str:strategy_id>/start", StrategyStartApi.as_view(), name="strategy-start"),
    path("<str:strategy_id>/stop", StrategyStopApi.as_view(), name="strategy-stop"),
    path("<str:strategy_id>/signals", StrategySignalListApi.as_view(), name="strategy-signals"),
]

from . import views  # noqa: E402

page_urlpatterns = [
    path("", views.strategies_page, name="list"),
    path("create", views.strategy_create_submit, name="create"),
    path("<int:strategy_id>/", views.strategy_page, name="detail"),
    path("<int:strategy_id>/trail", views.strategy_trail_partial, name="trail"),
    path("<int:strategy_id>/start", views.strategy_start_submit, name="start"),
    path("<int:strategy_id>/stop", views.strategy_stop_submit, name="stop"),
    path("backtests/", views.backtests_page, name="backtests"),
    path("backtests/create", views.backtest_create_submit, name="backtest_create"),
    path("backtests/<int:backtest_id>/", views.backtest_page, name="backtest"),
]
