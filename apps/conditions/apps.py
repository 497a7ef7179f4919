from django.apps import AppConfig


class ConditionsConfig(AppConfig):
    name = "apps.conditions"
    label = "conditions"
    verbose_name = "Condition search (조건검색)"
    default_auto_field = "django.db.models.BigAutoField"
