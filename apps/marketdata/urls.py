from django.urls import path

from .apis import BarsApi, StockListApi
from .broker_apis import BrokerMetricsApi
from .quote_apis import QuotesApi

urlpatterns = [
    path("stocks/", StockListApi.as_view(), name="stock-list"),
    path("bars", BarsApi.as_view(), name="bars"),
    path("quotes", QuotesApi.as_view(), name="quotes"),
    path("broker/metrics", BrokerMetricsApi.as_view(), name="broker-metrics"),
]
