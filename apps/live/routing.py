"""WebSocket routes of the market data app (mounted by ``config/asgi.py`` behind session auth)."""

from django.urls import path

from .consumers import MarketConsumer

websocket_urlpatterns = [path("ws/market/", MarketConsumer.as_asgi())]
