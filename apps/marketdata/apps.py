from django.apps import AppConfig


class MarketDataConfig(AppConfig):
    name = "apps.marketdata"
    label = "marketdata"
    default_auto_field = "django.db.models.BigAutoField"
