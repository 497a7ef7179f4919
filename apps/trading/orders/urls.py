from django.urls import path

from .apis import ExecutionListApi, ExternalOrderDetailApi, OrderDetailApi, OrderListApi

urlpatterns = [
    path("orders", OrderListApi.as_view(), name="paper-order-list"),
    path("orders/<int:order_id>", OrderDetailApi.as_view(), name="paper-order-detail"),
    path("orders/<str:executor>/<str:order_id>", ExternalOrderDetailApi.as_view(), name="paper-order-external"),
    path("executions", ExecutionListApi.as_view(), name="paper-execution-list"),
]
