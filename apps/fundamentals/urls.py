from django.urls import path

from .apis import FlowsApi, FlowsTopApi, StatementsApi

urlpatterns = [
    path("flows", FlowsApi.as_view(), name="flows"),
    path("flows/top", FlowsTopApi.as_view(), name="flows-top"),
    path("statements", StatementsApi.as_view(), name="statements"),
]
