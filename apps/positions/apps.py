from django.apps import AppConfig


class PositionsConfig(AppConfig):
    name = "apps.positions"
    label = "positions"
    default_auto_field = "django.db.models.BigAutoField"
