from django.apps import AppConfig


class StrategiesConfig(AppConfig):
    name = "apps.strategies"
    label = "strategies"
    verbose_name = "Strategies (자동매매 전략)"
    default_auto_field = "django.db.models.BigAutoField"
