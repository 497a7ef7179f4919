from django.urls import path

from .apis import ExecutionListApi, OrderDetailApi, OrderListApi

urlpatterns = [
    path("orders", OrderListApi.as_view(), name="paper-order-list"),
    path("orders/<int:order_id>", OrderDetailApi.as_view(), name="paper-order-detail"),
    path("executions", ExecutionListApi.as_view(), name="paper-execution-list"),
]
