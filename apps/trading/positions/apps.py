from django.apps import AppConfig


class PositionsConfig(AppConfig):
    name = "apps.trading.positions"
    label = "positions"
    default_auto_field = "django.db.models.BigAutoField"
