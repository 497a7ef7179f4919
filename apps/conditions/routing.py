from django.urls import path

from .consumers import ConditionsConsumer, NotificationsConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationsConsumer.as_asgi()),
    path("ws/conditions/", ConditionsConsumer.as_asgi()),
]
