from django.urls import path

from .apis import StockListApi

urlpatterns = [path("stocks/", StockListApi.as_view(), name="stock-list")]
