from django.urls import path

from .apis import BarsApi, ChartStudiesApi, StockListApi, StockSearchApi, StudiesApi
from .broker_apis import BrokerMetricsApi

urlpatterns = [
    path("stocks/", StockListApi.as_view(), name="stock-list"),
    path("stocks/search", StockSearchApi.as_view(), name="stock-search"),
    path("bars", BarsApi.as_view(), name="bars"),
    path("studies", StudiesApi.as_view(), name="studies"),
    path("chart-studies", ChartStudiesApi.as_view(), name="chart-studies"),
    path("broker/metrics", BrokerMetricsApi.as_view(), name="broker-metrics"),
]
