from django.urls import path

from .apis import BarsApi, StockListApi

urlpatterns = [
    path("stocks/", StockListApi.as_view(), name="stock-list"),
    path("bars", BarsApi.as_view(), name="bars"),
]
