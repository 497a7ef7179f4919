from django.urls import path

from . import views
from .apis import BrokerLinkApi, BrokerOptInApi, BrokerOrderDetailApi, BrokerOrdersApi

urlpatterns = [
    path("orders", BrokerOrdersApi.as_view(), name="broker-orders"),
    path("orders/<str:order_id>", BrokerOrderDetailApi.as_view(), name="broker-order"),
    path("link", BrokerLinkApi.as_view(), name="broker-link"),
    path("link/opt-in-real", BrokerOptInApi.as_view(), name="broker-opt-in"),
]

page_urlpatterns = [
    path("", views.broker_page, name="page"),
    path("order", views.broker_order_submit, name="order"),
]
